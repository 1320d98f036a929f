//! Checkpoints in the runtime, end to end: the real binary saving, stopped
//! (SIGTERM) and killed (SIGKILL), resuming with no flags; a restored model
//! in a fresh process; hostile and broken files through `checkpoint inspect`
//! and through resuming; a local subnet whose validator keeps its scores.

use std::{
    io::{BufRead, BufReader, Cursor, Write},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use neuron_e2e::{example, gpu, host_command, plugin, probe, TinySubnet, CLEAN_AND_NOISY_MINERS};
use neuron_host::{
    checkpoint::{
        pickle::Value,
        pth,
        writer::{load_with_fallback, prev_path, save_atomically},
    },
    data::{BatchSampler, SamplerState},
    plugins::LoadedPlugin,
    runtime::{
        checkpoints::{DataPosition, MinerCheckpoint, PluginIdentity, ValidatorCheckpoint},
        schedule::LrSchedule,
    },
};
use neuron_plugin_api::Tensor;

const MINER: &str = r#"
[plugin.gpt]
preset = "tiny"
[miner]
lr = 3e-3
min_lr = 3e-4
warmup_steps = 5
decay_steps = 5000
batch_size = 4
sequence_length = 16
log_every = 0
[checkpoint]
miner_every_steps = 5
"#;

fn schedule() -> LrSchedule {
    LrSchedule { lr: 3e-3, min_lr: 3e-4, warmup_steps: 5, decay_steps: 5000 }
}

/// A lone miner on the embedded chain with config `text`, saving to
/// `dir/miner.pth`, logging to `dir/<run>`.
fn miner(dir: &Path, run: &str, text: &str) -> Command {
    let config = dir.join(format!("{run}.toml"));
    std::fs::write(&config, text).unwrap();
    let mut cmd = host_command();
    cmd.args(["--role", "miner", "--subtensor.network", "local", "--plugin"])
        .arg(plugin("gpt"))
        .arg("--config")
        .arg(&config)
        .arg("--checkpoint_path")
        .arg(dir.join("miner.pth"))
        .arg("--run_dir")
        .arg(dir.join(run))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn load(path: &Path) -> Value {
    load_with_fallback(path).unwrap().expect("a checkpoint").0
}

fn global_step(path: &Path) -> Option<u64> {
    let (v, _) = load_with_fallback(path).ok()??;
    Some(v.get("global_step")?.as_int()? as u64)
}

fn wait_for(what: &str, child: &mut Child, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("exited ({status}) before {what}: {err}");
        }
        assert!(Instant::now() < deadline, "no {what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn terminate(child: Child) -> Output {
    let kill = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "SIGTERM is a clean stop ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn steps(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("steps.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Sets `key` (a path of dict keys) in a checkpoint value.
fn set(v: &mut Value, key: &[&str], new: Value) {
    let (Value::Dict(entries) | Value::OrderedDict(entries)) = v else { panic!("not a dict") };
    let slot = &mut entries.iter_mut().find(|(k, _)| k.as_str() == Some(key[0])).expect(key[0]).1;
    if key.len() == 1 {
        *slot = new;
    } else {
        set(slot, &key[1..], new);
    }
}

/// A refusal: non-zero exit, nothing on stdout, exactly one line on stderr.
fn one_line_refusal(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert!(!out.status.success(), "must fail: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "one error line: {err}");
    assert!(!lines[0].contains('\n'));
    lines[0].to_string()
}

#[test]
fn a_restored_model_in_a_fresh_process_gives_identical_logits_and_next_losses() {
    let gpu = gpu();
    let gpt = LoadedPlugin::load(&plugin("gpt")).unwrap();
    let data = probe::dataset();
    let mut model = gpt.new_model(&gpu, &probe::tiny_config(1)).unwrap();
    let mut sampler = BatchSampler::new(3, 4, 16);
    probe::train(&mut model, &data, &mut sampler, 30, 3e-3);
    let id = PluginIdentity::of(&model, &gpt.info().version).unwrap();
    let data_pos = DataPosition { sampler: sampler.state(), noise_state: 5 };
    let value = MinerCheckpoint::capture(&mut model, &id, &schedule(), 30, data_pos).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("miner_checkpoint.pth");
    save_atomically(&path, &value).unwrap();
    let (logits, step_loss, after_loss) = probe::fingerprint(&mut model, &data);

    let out = Command::new(example("checkpoint_probe")).arg("restore").arg(plugin("gpt")).arg(&path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["global_step"], 30);
    let got_logits: Vec<u32> = serde_json::from_value(got["logits"].clone()).unwrap();
    assert_eq!(got_logits.len(), logits.len());
    assert!(got_logits == logits, "the restored model's logits differ");
    assert_eq!(got["step_loss"], step_loss, "the next training step's loss differs");
    assert_eq!(got["after_loss"], after_loss, "the loss after one more optimizer step differs (optimizer state)");

    // The comparison can fail: the fresh model the probe starts from differs.
    let mut fresh = gpt.new_model(&gpu, &probe::tiny_config(99)).unwrap();
    assert_ne!(probe::fingerprint(&mut fresh, &data).0, logits);
}

#[test]
fn a_miner_stopped_at_step_1234_continues_at_1235_and_a_different_model_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("miner.pth");
    // First run: until the first periodic save, then SIGTERM (which saves where it stopped).
    let mut child = miner(dir.path(), "run1", MINER).spawn().unwrap();
    wait_for("a checkpoint", &mut child, Duration::from_secs(180), || global_step(&path).is_some_and(|s| s >= 5));
    let out = terminate(child);
    let first = steps(&dir.path().join("run1"));
    let saved = global_step(&path).unwrap();
    assert_eq!(saved, first.last().unwrap()["step"].as_u64().unwrap(), "the shutdown save holds the last step");
    let inspect = host_command().args(["checkpoint", "inspect"]).arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert!(inspect.status.success(), "{text}");
    assert!(text.contains(&format!("global_step  {saved}")) && text.contains("plugin       gpt"), "{text}");
    assert!(text.contains("model.transformer.wte.weight  float32 [256, 32]"), "{text}");
    assert!(text.contains("optimizer.step  int64 []"), "{text}");
    drop(out);

    // Move it to step 1,234 (the stream too), as if it had trained that long.
    let mut v = load(&path);
    set(&mut v, &["global_step"], Value::Int(1234));
    set(&mut v, &["data", "step"], Value::Int(1234));
    save_atomically(&path, &v).unwrap();

    let mut child = miner(dir.path(), "run2", MINER).spawn().unwrap();
    wait_for("a save after 1235", &mut child, Duration::from_secs(180), || {
        global_step(&path).is_some_and(|s| s >= 1240)
    });
    terminate(child);
    let resumed = steps(&dir.path().join("run2"));
    assert_eq!(resumed[0]["step"], 1235, "continues at the next step: {}", resumed[0]);
    let lr = resumed[0]["lr"].as_f64().unwrap();
    assert!((lr - schedule().lr_at(1234)).abs() < 1e-15, "the schedule continues: {lr} vs {}", schedule().lr_at(1234));
    assert!(lr < schedule().lr, "not warm-up from zero again");
    let c = MinerCheckpoint::from_value(&load(&path)).unwrap();
    assert_eq!(c.global_step, resumed.last().unwrap()["step"].as_u64().unwrap());
    assert_eq!(c.data.sampler.step, c.global_step, "the data stream advanced with the steps");

    // Another model config, another tensor shape: refused in one line, naming the difference.
    let other = MINER.replace("preset = \"tiny\"", "preset = \"tiny\"\nn_layer = 1");
    let line = one_line_refusal(&miner(dir.path(), "run3", &other).output().unwrap());
    assert!(line.contains("n_layer is 2 in the checkpoint, 1 here"), "{line}");

    let good = load(&path);
    let mut bad = good.clone();
    let wte = Tensor::f32("x", &[128, 64], &vec![0.0; 128 * 64]);
    set(
        &mut bad,
        &["model", "transformer.wte.weight"],
        Value::Tensor(neuron_host::checkpoint::pickle::TensorValue {
            dtype: wte.dtype,
            shape: vec![128, 64],
            data: wte.data.to_vec(),
        }),
    );
    save_atomically(&path, &bad).unwrap();
    let line = one_line_refusal(&miner(dir.path(), "run4", MINER).output().unwrap());
    assert!(line.contains("`transformer.wte.weight` has shape [128, 64]") && line.contains("[256, 32]"), "{line}");
    save_atomically(&path, &good).unwrap();
    save_atomically(&path, &good).unwrap(); // .prev too

    // A damaged file: resuming falls back to .prev (with a warning) and continues from it.
    let prev_step = MinerCheckpoint::from_value(&load(&prev_path(&path))).unwrap().global_step;
    std::fs::write(&path, b"not a zip").unwrap();
    let mut child = miner(dir.path(), "run5", MINER).spawn().unwrap();
    // (Wait for the damaged file itself to be replaced: the fallback would read .prev at once.)
    let replaced = || std::fs::read(&path).ok().and_then(|b| pth::load(Cursor::new(b)).ok()).is_some();
    wait_for("a save", &mut child, Duration::from_secs(180), replaced);
    let out = terminate(child);
    assert_eq!(steps(&dir.path().join("run5"))[0]["step"], prev_step + 1);
    let _ = out;

    // --no-resume starts at step 1; the checkpoint stays until the first save replaces it.
    let mut cmd = miner(dir.path(), "run6", MINER);
    cmd.arg("--no-resume");
    let mut child = cmd.spawn().unwrap();
    wait_for("a fresh save", &mut child, Duration::from_secs(180), || global_step(&path).is_some_and(|s| s < 1000));
    terminate(child);
    assert_eq!(steps(&dir.path().join("run6"))[0]["step"], 1);
}

#[test]
fn hostile_and_broken_files_are_refused_by_inspect_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.pth");
    let c = MinerCheckpoint {
        plugin: PluginIdentity {
            name: "gpt".into(),
            version: "0.1.0".into(),
            architecture: "gpt".into(),
            config: "n_layer = 2\n".into(),
        },
        model: vec![Tensor::f32("transformer.wte.weight", &[64, 32], &vec![0.5; 64 * 32])],
        optimizer: vec![Tensor::i64_scalar("step", 9)],
        schedule: schedule(),
        global_step: 9,
        data: DataPosition { sampler: SamplerState { seed: 1, step: 9 }, noise_state: 0 },
    };
    save_atomically(&good, &c.to_value()).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let inspect = |name: &str, data: &[u8]| -> Output {
        let p = dir.path().join(name);
        std::fs::write(&p, data).unwrap();
        host_command().args(["checkpoint", "inspect"]).arg(&p).output().unwrap()
    };
    let out = inspect("copy.pth", &bytes);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("global_step  9"));

    let line = one_line_refusal(&inspect("empty.pth", b""));
    assert!(line.contains("not a PyTorch checkpoint"), "{line}");
    let line = one_line_refusal(&inspect("truncated.pth", &bytes[..bytes.len() / 2]));
    assert!(line.contains("truncated.pth"), "{line}");
    // A flipped bit in the middle of the tensor data (the archive's checksum catches it).
    let mut flipped = bytes.clone();
    let at = bytes.windows(4).position(|w| w == 0.5f32.to_le_bytes()).unwrap() + 64;
    flipped[at] ^= 0x10;
    let line = one_line_refusal(&inspect("flipped.pth", &flipped));
    assert!(line.contains("flipped.pth"), "{line}");
    // A pickle that would run `touch MARKER` through os.system.
    let marker = dir.path().join("pwned");
    let command = format!("touch {}", marker.display());
    let mut p = b"\x80\x02cos\nsystem\n".to_vec();
    p.push(b'X');
    p.extend_from_slice(&(command.len() as u32).to_le_bytes());
    p.extend_from_slice(command.as_bytes());
    p.extend_from_slice(b"\x85R.");
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("x/data.pkl", opts).unwrap();
    zip.write_all(&p).unwrap();
    let hostile = zip.finish().unwrap().into_inner();
    let line = one_line_refusal(&inspect("hostile.pth", &hostile));
    assert!(line.contains("`os.system`"), "{line}");
    assert!(!marker.exists(), "nothing was executed");
    // A miner's file where a validator's is expected is refused by the parser, naming it.
    let e = ValidatorCheckpoint::from_value(&pth::load(Cursor::new(bytes)).unwrap()).unwrap_err();
    assert!(e.contains("miner's checkpoint"), "{e}");
}

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Runs the probe's save loop until a random moment, SIGKILLs it, and returns
/// (last step taken, newest save seen on disk by the process).
fn kill_save_loop(path: &Path, interval: u64, step_ms: u64, after: Duration) -> (u64, u64) {
    let mut child = Command::new(example("checkpoint_probe"))
        .arg("save-loop")
        .arg(path)
        .args([interval.to_string(), step_ms.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let (mut done, mut saved) = (0u64, 0u64);
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(n) = line.strip_prefix("step ") {
                done = n.parse().unwrap();
            } else if let Some(n) = line.strip_prefix("saved ") {
                saved = n.parse().unwrap();
            }
        }
        (done, saved)
    });
    std::thread::sleep(after);
    if let Some(status) = child.try_wait().unwrap() {
        let out = child.wait_with_output().unwrap();
        panic!("the save loop exited by itself ({status}): {}", String::from_utf8_lossy(&out.stderr));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    reader.join().unwrap()
}

#[test]
fn sigkill_at_random_moments_never_leaves_a_checkpoint_that_fails_to_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("miner_checkpoint.pth");
    let (interval, step_ms) = (4u64, 10u64);
    let mut rng =
        Rng(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1);
    let mut last = 0u64;
    let mut worst = 0u64;
    for kill in 0..60 {
        let after = Duration::from_millis(60 + rng.below(400));
        let (done, saved_seen) = kill_save_loop(&path, interval, step_ms, after);
        // The runtime's loader (the current file, or .prev with a warning) and parser.
        let (value, _) =
            load_with_fallback(&path).unwrap_or_else(|e| panic!("kill {kill}: {e}")).unwrap_or_else(|| {
                assert!(done < interval, "kill {kill}: {done} steps and no checkpoint");
                (Value::None, neuron_host::checkpoint::writer::LoadedFrom::Current)
            });
        if value == Value::None {
            continue;
        }
        let c = MinerCheckpoint::from_value(&value).unwrap_or_else(|e| panic!("kill {kill}: {e}"));
        for t in &c.model {
            assert!(t.to_f32().unwrap().iter().all(|&x| x == c.global_step as f32), "kill {kill}: torn tensor");
        }
        assert!(c.global_step >= last, "kill {kill}: went back from {last} to {}", c.global_step);
        assert!(c.global_step >= saved_seen, "kill {kill}: lost a save that had completed ({saved_seen})");
        assert!(c.global_step <= done.max(last), "kill {kill}");
        assert_eq!(c.global_step % interval, 0);
        if done > c.global_step {
            worst = worst.max(done - c.global_step);
        }
        let inspect = host_command().args(["checkpoint", "inspect"]).arg(&path).output().unwrap();
        assert!(inspect.status.success(), "kill {kill}: {}", String::from_utf8_lossy(&inspect.stderr));
        last = c.global_step;
    }
    assert!(last > 100, "progress carried across the kills: {last}");
    // At most one interval plus the save in flight; a save takes a few steps' time here.
    assert!(worst <= 3 * interval, "lost up to {worst} steps with saves every {interval}");
    eprintln!("60 kills: reached step {last}; most steps lost to a kill: {worst} (interval {interval})");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp.") || n.contains(".prev."))
        .collect();
    assert!(leftovers.len() <= 2, "stale temp files are removed at start: {leftovers:?}");

    // The real binary, killed at random moments while it trains and saves every 5 steps.
    let mut previous = 0;
    for kill in 0..5 {
        let mut child = miner(dir.path(), &format!("kill{kill}"), MINER).spawn().unwrap();
        wait_for("training", &mut child, Duration::from_secs(180), || {
            global_step(&dir.path().join("miner.pth")).is_some_and(|s| s > previous)
        });
        std::thread::sleep(Duration::from_millis(rng.below(1500)));
        child.kill().unwrap();
        child.wait().unwrap();
        let step = global_step(&dir.path().join("miner.pth")).expect("loads after SIGKILL");
        assert!(step > previous && step.is_multiple_of(5), "kill {kill}: step {step} after {previous}");
        let inspect =
            host_command().args(["checkpoint", "inspect"]).arg(dir.path().join("miner.pth")).output().unwrap();
        assert!(inspect.status.success(), "{}", String::from_utf8_lossy(&inspect.stderr));
        previous = step;
    }
}

fn subnet(dir: &Path, run: &str, epochs: u64) -> Output {
    let sections =
        format!("[checkpoint]\nvalidator_every_blocks = 5\nminer_every_steps = 20\n\n{CLEAN_AND_NOISY_MINERS}");
    let config = TinySubnet { miner: "log_every = 0", sections: &sections, ..Default::default() }.toml();
    let out = neuron_e2e::subnet_command(dir, &config, run, &["scoring_loss"], epochs).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out
}

fn epochs(run: PathBuf) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("epochs.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_restarted_local_subnet_resumes_with_no_flags_and_the_validator_keeps_its_scores() {
    let dir = tempfile::tempdir().unwrap();
    subnet(dir.path(), "run1", 2);
    let ckpts = dir.path().join("checkpoints");
    assert!(ckpts.join("chain.state").exists());
    let v1 = ValidatorCheckpoint::from_value(&load(&ckpts.join("validator/validator_checkpoint.pth"))).unwrap();
    assert_eq!(v1.epoch, 2);
    assert!(v1.model.is_some() && v1.global_step > 0);
    let first = epochs(dir.path().join("run1"));
    let uid_of = |e: &serde_json::Value, name: &str| {
        e["uids"].as_array().unwrap().iter().find(|r| r["name"] == name).unwrap()["uid"].as_u64().unwrap() as usize
    };
    let m1 = uid_of(&first[1], "miner1");
    assert!(v1.scores[m1] > 0.0 && v1.stats[m1].queried > 0, "scores {:?}", v1.scores);
    let miner_step_1 = global_step(&ckpts.join("miner1/miner_checkpoint.pth")).unwrap();

    // Again, with nothing but a higher epoch target: the same subnet continues.
    subnet(dir.path(), "run2", 3);
    let second = epochs(dir.path().join("run2"));
    assert_eq!(second.len(), 1, "one more epoch: {second:?}");
    assert_eq!(second[0]["epoch"], 3, "the epoch counter continues");
    assert_eq!(uid_of(&second[0], "miner1"), m1, "the chain's registrations were kept");
    let row = second[0]["uids"].as_array().unwrap().iter().find(|r| r["name"] == "miner1").unwrap();
    assert!(
        row["queried"].as_u64().unwrap() > v1.stats[m1].queried,
        "miner1's statistics carried on from {}: {row}",
        v1.stats[m1].queried
    );
    assert!(second[0]["steps"].as_u64().unwrap() > v1.global_step, "the validator's steps continue");
    let v2 = ValidatorCheckpoint::from_value(&load(&ckpts.join("validator/validator_checkpoint.pth"))).unwrap();
    assert_eq!(v2.epoch, 3);
    assert!(v2.stats[m1].queried > v1.stats[m1].queried);
    assert!(global_step(&ckpts.join("miner1/miner_checkpoint.pth")).unwrap() > miner_step_1);
}
