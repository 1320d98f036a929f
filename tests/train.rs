//! `neuron-host train`, `eval` and `sample` as the real binary, on the `tiny` GPT model and the
//! built-in corpus.

use std::{path::Path, process::Output};

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
fn tiny_model_learns_the_builtin_corpus_well_below_the_uniform_baseline() {
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
    // Every step reported, and the training loss falls.
    let train = events(&lines, "train");
    assert_eq!(train.len(), 300 / 10, "a train line every 10 steps");
    let start = events(&lines, "start")[0];
    assert_eq!(start["sequence_length"], 16, "the tiny model's context");
    assert!(start["val_tokens"].as_u64().unwrap() * 9 <= start["train_tokens"].as_u64().unwrap() + 9);
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
