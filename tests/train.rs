//! `neuron-host train`, `eval` and `sample` as the real binary, on the `tiny` GPT model and the
//! built-in corpus.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Output, Stdio},
};

use neuron_e2e::{host_command, plugin};
use serde_json::Value;

/// Runs the binary with `args`, expects success, returns its JSON lines.
fn run_json(args: &[&str]) -> Vec<Value> {
    let out = run(args);
    assert!(out.status.success(), "neuron-host {} failed:\n{}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

fn run(args: &[&str]) -> Output {
    let mut cmd = host_command();
    cmd.args(args).env("XDG_RUNTIME_DIR", std::env::temp_dir().join("neuron-host-no-display"));
    cmd.output().expect("the binary runs")
}

fn events<'a>(lines: &'a [Value], kind: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["event"] == kind).collect()
}

fn gpt() -> String {
    plugin("gpt").display().to_string()
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn tiny_model_learns_the_builtin_corpus_and_eval_of_its_checkpoint_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = s(&dir.path().join("tiny.pth"));
    let lines = run_json(&[
        "train",
        "--plugin",
        &gpt(),
        "--preset",
        "tiny",
        "--dataset",
        "builtin",
        "--steps",
        "300",
        "--batch-size",
        "8",
        "--lr",
        "3e-3",
        "--warmup",
        "10",
        "--eval-every",
        "100",
        "--eval-batches",
        "8",
        "--checkpoint",
        &ckpt,
        "--save-every",
        "100",
        "--json",
    ]);
    let evals = events(&lines, "eval");
    let steps: Vec<u64> = evals.iter().map(|e| e["step"].as_u64().unwrap()).collect();
    assert_eq!(steps, [0, 100, 200, 300], "an estimate at the start and every 100 steps");
    let uniform = 256f64.ln();
    let first = evals[0]["val_loss"].as_f64().unwrap();
    assert!((first - uniform).abs() < 0.1, "an untrained model is near uniform: {first} vs ln 256 = {uniform}");
    let last = evals[3]["val_loss"].as_f64().unwrap();
    assert!(last < uniform - 2.0, "after 300 steps the validation loss {last} is not well below ln 256 = {uniform}");
    let train_last = evals[3]["train_loss"].as_f64().unwrap();
    assert!(train_last < uniform - 2.0, "train loss {train_last}");
    assert!(evals[3]["tokens_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(events(&lines, "train").len(), 300 / 10, "a train line every 10 steps");
    let start = events(&lines, "start")[0];
    assert_eq!(start["sequence_length"], 16, "the tiny model's context");
    let saved: Vec<u64> = events(&lines, "checkpoint").iter().map(|c| c["step"].as_u64().unwrap()).collect();
    assert_eq!(saved, [100, 200, 300]);

    // eval of the saved checkpoint, on the validation part and the batches train used, reports
    // the validation loss train printed at step 300.
    let e = run_json(&[
        "eval",
        "--checkpoint",
        &ckpt,
        "--val-fraction",
        "0.1",
        "--batches",
        "8",
        "--batch-size",
        "8",
        "--json",
    ]);
    let reported = events(&e, "eval")[0]["loss"].as_f64().unwrap();
    assert!((reported - last).abs() < 1e-6, "eval says {reported}, train printed {last} at step 300");
    // Over every token of the validation part: close to the sampled estimate, and a perplexity.
    let whole = run_json(&["eval", "--checkpoint", &ckpt, "--val-fraction", "0.1", "--json"]);
    let w = events(&whole, "eval")[0];
    let loss = w["loss"].as_f64().unwrap();
    assert!((loss - last).abs() < 0.3, "whole validation part {loss} vs 8 sampled batches {last}");
    assert!((w["perplexity"].as_f64().unwrap() - loss.exp()).abs() < 1e-9);
    assert!(w["tokens"].as_u64().unwrap() > 100_000, "every window of the ~105k validation tokens: {w}");

    // The trained model writes text that looks like its corpus: mostly letters, spaces, punctuation.
    let out = run_json(&["sample", "--checkpoint", &ckpt, "--tokens", "120", "--temperature", "0.8", "--json"]);
    let text = events(&out, "done")[0]["text"].as_str().unwrap().to_string();
    let plain = text.chars().filter(|c| c.is_ascii_alphabetic() || " .,;!?'\n".contains(*c)).count();
    assert!(plain * 10 >= text.chars().count() * 9, "not text-like: {text:?}");
}

#[test]
fn sample_is_reproducible_with_a_seed_and_greedy_at_temperature_zero() {
    // The model's weights are seeded from its section, so --seed changes only the sampling.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("model.toml");
    std::fs::write(&config, "[plugin.gpt]\npreset = \"tiny\"\nseed = 1\n").unwrap();
    let config = s(&config);
    let sample = |extra: &[&str]| -> Vec<u64> {
        let plugin = gpt();
        let mut args = vec!["sample", "--plugin", &plugin, "--config", &config, "--tokens", "24", "--json"];
        args.extend_from_slice(extra);
        let lines = run_json(&args);
        let tokens: Vec<u64> = events(&lines, "token").iter().map(|t| t["id"].as_u64().unwrap()).collect();
        let done = events(&lines, "done");
        let ids: Vec<u64> = done[0]["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        assert_eq!(tokens, ids, "the streamed tokens are the ones returned");
        assert_eq!(ids.len(), 24);
        ids
    };
    let a = sample(&["--seed", "5", "--temperature", "1.0"]);
    let b = sample(&["--seed", "5", "--temperature", "1.0"]);
    assert_eq!(a, b, "one seed, one text");
    let c = sample(&["--seed", "6", "--temperature", "1.0"]);
    assert_ne!(a, c, "another seed, another text");
    // Greedy: the seed does not matter...
    let greedy = sample(&["--seed", "5", "--temperature", "0"]);
    assert_eq!(sample(&["--seed", "6", "--temperature", "0"]), greedy);
    // ...and it is the one path on which nothing but the most likely token can be drawn (top-k 1,
    // sampled at any temperature with any seed).
    assert_eq!(sample(&["--seed", "7", "--temperature", "1.5", "--top-k", "1"]), greedy);
    assert_ne!(greedy, a, "sampling at temperature 1 is not greedy");
}

#[test]
fn bad_arguments_are_one_line_and_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let odd = dir.path().join("odd.bin");
    std::fs::write(&odd, [1u8, 2, 3]).unwrap();
    for (args, expect) in [
        (vec!["train", "--plugin", &gpt(), "--preset", "tiny", "--val-fraction", "1.5"], "--val-fraction"),
        (vec!["train", "--plugin", &gpt(), "--preset", "tiny", "--lr-decay", "linear"], "--lr-decay `linear`"),
        (vec!["train", "--plugin", &gpt(), "--preset", "tiny", "--seq-len", "17"], "context of 16"),
        (vec!["train", "--plugin", &gpt(), "--preset", "tiny", "--dataset", &s(&odd)], "not a whole number of uint16"),
        (vec!["sample", "--plugin", &gpt(), "--preset", "tiny", "--temperature=-1"], "--temperature"),
        (vec!["sample", "--plugin", &gpt(), "--preset", "tiny", "--top-k", "0"], "--top-k"),
        (vec!["eval", "--plugin", &gpt(), "--preset", "tiny", "--batches", "0"], "--batches"),
    ] {
        let out = run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        let last = err.lines().filter(|l| l.starts_with("error:")).collect::<Vec<_>>();
        assert_eq!(last.len(), 1, "{args:?}: one error line expected:\n{err}");
        assert!(last[0].contains(expect), "{args:?}: {err}");
    }
}

/// Reads a running train's JSON lines until one satisfies `until`; returns them.
fn read_until(
    child: &mut Child,
    lines: &mut impl Iterator<Item = std::io::Result<String>>,
    until: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let v: Value = serde_json::from_str(&line.unwrap()).unwrap();
        let stop = until(&v);
        seen.push(v);
        if stop {
            return seen;
        }
    }
    panic!("train ended ({:?}) before the awaited line; saw {seen:?}", child.wait());
}

fn spawn_train(args: &[&str]) -> (Child, impl Iterator<Item = std::io::Result<String>>) {
    let mut cmd = host_command();
    cmd.args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir().join("neuron-host-no-display"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("the binary starts");
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

#[test]
fn interrupted_training_continues_the_same_curve() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = s(&dir.path().join("run.pth"));
    let plugin = gpt();
    let base = [
        "train",
        "--plugin",
        &plugin,
        "--preset",
        "tiny",
        "--steps",
        "120",
        "--batch-size",
        "8",
        "--lr",
        "3e-3",
        "--warmup",
        "10",
        "--eval-every",
        "40",
        "--eval-batches",
        "4",
        "--log-every",
        "1",
        "--json",
    ];
    let whole = run_json(&base);
    let mut with_ckpt = base.to_vec();
    with_ckpt.extend_from_slice(&["--checkpoint", &ckpt, "--save-every", "20"]);

    // First killed outright (SIGKILL) past step 50: the restart resumes from the last periodic
    // checkpoint (step 40) and redoes the steps after it.
    let (mut child, mut lines) = spawn_train(&with_ckpt);
    let mut seen = read_until(&mut child, &mut lines, |v| v["event"] == "train" && v["step"].as_u64() >= Some(50));
    child.kill().unwrap();
    child.wait().unwrap();
    // Then interrupted (SIGTERM) past step 90: it finishes the step, saves and exits.
    let (mut child, mut lines) = spawn_train(&with_ckpt);
    let resumed = read_until(&mut child, &mut lines, |v| v["event"] == "train" && v["step"].as_u64() >= Some(90));
    let first = resumed.iter().find(|v| v["event"] == "resumed").expect("it resumed");
    assert_eq!(first["step"], 40, "the newest checkpoint on disk when it was killed was step 40");
    seen.extend(resumed);
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    seen.extend(lines.map(|l| serde_json::from_str::<Value>(&l.unwrap()).unwrap()));
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "an interrupted run exits 130 (as a shell does on Ctrl-C), not success");
    let stopped =
        seen.iter().find(|v| v["event"] == "interrupted").expect("SIGTERM stops it cleanly")["step"].as_u64().unwrap();
    assert!((90..120).contains(&stopped), "{stopped}");
    // And started once more to the end.
    let last = run_json(&with_ckpt);
    assert_eq!(events(&last, "resumed")[0]["step"], stopped);
    seen.extend(last);

    // Every step's loss and every estimate is the uninterrupted run's (later runs overwrite
    // redone steps).
    let by_step = |lines: &[Value], kind: &str, key: &str| -> std::collections::BTreeMap<u64, f64> {
        lines
            .iter()
            .filter(|l| l["event"] == kind)
            .map(|l| (l["step"].as_u64().unwrap(), l[key].as_f64().unwrap()))
            .collect()
    };
    let expected = by_step(&whole, "train", "loss");
    let got = by_step(&seen, "train", "loss");
    assert_eq!(got.keys().copied().collect::<Vec<_>>(), (1..=120).collect::<Vec<_>>());
    for (step, loss) in &expected {
        assert!(
            (got[step] - loss).abs() <= 1e-5 * loss.abs(),
            "step {step}: {} resumed vs {loss} uninterrupted",
            got[step]
        );
    }
    let expected = by_step(&whole, "eval", "val_loss");
    let got = by_step(&seen, "eval", "val_loss");
    for step in [40, 80, 120] {
        assert!(
            (got[&step] - expected[&step]).abs() <= 1e-5,
            "val loss at {step}: {} vs {}",
            got[&step],
            expected[&step]
        );
    }
}

#[test]
fn a_token_file_trains_exactly_like_the_text_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let words = ["miner", "trains", "the", "validator", "scores", "a", "model", "chain", "weights", "keeps"];
    let mut state = 1u64;
    let text: String = (0..6000)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            words[(state >> 33) as usize % words.len()]
        })
        .collect::<Vec<_>>()
        .join(" ");
    let txt = dir.path().join("corpus.txt");
    let bin = dir.path().join("corpus.bin");
    std::fs::write(&txt, &text).unwrap();
    std::fs::write(&bin, text.bytes().flat_map(|b| u16::from(b).to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    let plugin = gpt();
    let train = |data: &Path| -> Vec<Value> {
        let data = s(data);
        let lines = run_json(&[
            "train",
            "--plugin",
            &plugin,
            "--preset",
            "tiny",
            "--dataset",
            &data,
            "--steps",
            "20",
            "--eval-every",
            "10",
            "--eval-batches",
            "2",
            "--log-every",
            "1",
            "--json",
        ]);
        lines.into_iter().filter(|l| l["event"] == "train" || l["event"] == "eval").map(strip_timing).collect()
    };
    let from_text = train(&txt);
    assert_eq!(from_text.len(), 20 + 3);
    assert_eq!(from_text, train(&bin), "the same tokens, the same run");
}

/// A line without its wall-clock fields.
fn strip_timing(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.retain(|k, _| !k.ends_with("_s") && k != "tokens_per_s");
    }
    v
}

#[test]
fn a_short_run_needs_no_warm_up_flag_and_a_negative_rate_is_named() {
    // The configured warm-up (20 steps) is longer than this run: it is capped, with a note.
    let out = run(&["train", "--plugin", &gpt(), "--preset", "tiny", "--steps", "12", "--eval-every", "0", "--json"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("warming up for 1 steps"), "{err}");
    // A negative number is a value, not an unknown flag, and the refusal names the flag.
    let out = run(&["train", "--plugin", &gpt(), "--preset", "tiny", "--steps", "12", "--lr", "-1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains("lr must be a positive number, got -1") && lines[0].contains("--lr"), "{err}");
    let out = run(&["train", "--plugin", &gpt(), "--preset", "tiny", "--steps", "12", "--warmup", "50"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--warmup 50 is longer than the run (--steps 12)"), "{err}");
}
