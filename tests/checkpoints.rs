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

use neuron_e2e::{example, gpu, host_command, plugin, probe, workspace_root, TinySubnet, CLEAN_AND_NOISY_MINERS};
use neuron_host::{
    checkpoint::{
        pickle::Value,
        pth,
        writer::{load_with_fallback, prev_path, save_atomically, LoadedFrom},
    },
    data::{BatchSampler, SamplerState},
    plugins::LoadedPlugin,
    runtime::{
        checkpoints::{DataPosition, MinerCheckpoint, PluginIdentity, ValidatorCheckpoint},
        schedule::LrSchedule,
    },
};
use neuron_plugin_api::Tensor;
use rand_core::{Rng as _, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

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
    save_atomically(&path, &value, 1).unwrap();
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

/// A miner's checkpoint made entirely by PyTorch (`tests/python/make_torch_miner_checkpoint.py`: a
/// model with nanoGPT's module names trained with `torch.optim.AdamW` and saved with `torch.save`,
/// `state_dict()`'s `_metadata` and tied `lm_head.weight` included) loads in the host, gives
/// PyTorch's logits, and the real binary's training loop resumes from it.
#[test]
fn a_miner_checkpoint_written_by_pytorch_gives_its_logits_and_training_resumes_from_it() {
    let fixtures = workspace_root().join("tests/fixtures/checkpoints");
    let fixture = fixtures.join("torch_miner_tiny.pth");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures.join("torch_miner_tiny.json")).unwrap()).unwrap();
    let text = expected["text"].as_str().unwrap();
    let out = Command::new(example("checkpoint_probe"))
        .arg("forward")
        .arg(plugin("gpt"))
        .arg(&fixture)
        .arg(text)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let got: Vec<f64> = serde_json::from_value(got["logits"].clone()).unwrap();
    let want: Vec<f64> = serde_json::from_value(expected["logits"].clone()).unwrap();
    assert_eq!(got.len(), want.len());
    let worst = got.iter().zip(&want).map(|(g, w)| (g - w).abs()).fold(0.0, f64::max);
    // float32 on two implementations (and 6 decimals in the JSON): agreement to 1e-4 on logits of size ~1.
    assert!(worst < 1e-4, "the host's logits differ from PyTorch's by up to {worst}");

    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("miner_checkpoint.pth");
    std::fs::copy(&fixture, &copy).unwrap();
    let out = host_command()
        .arg("train")
        .arg("--plugin")
        .arg(plugin("gpt"))
        .args(["--preset", "tiny", "--seed", "7", "--steps", "33", "--batch-size", "4", "--eval-every", "0"])
        .args(["--eval-batches", "1", "--log-every", "1", "--json", "--checkpoint"])
        .arg(&copy)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let events: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let resumed = events.iter().find(|e| e["event"] == "resumed").expect("it resumed from PyTorch's file");
    assert_eq!(resumed["step"], expected["global_step"]);
    let trained: Vec<u64> =
        events.iter().filter(|e| e["event"] == "train").map(|e| e["step"].as_u64().unwrap()).collect();
    assert_eq!(trained, [31, 32, 33]);
    assert!(events.iter().filter(|e| e["event"] == "train").all(|e| e["loss"].as_f64().unwrap() < 5.0), "{events:?}");
    assert_eq!(global_step(&copy), Some(33));
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
    save_atomically(&path, &v, 1).unwrap();

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
            data: wte.data.clone(),
        }),
    );
    save_atomically(&path, &bad, 1).unwrap();
    let line = one_line_refusal(&miner(dir.path(), "run4", MINER).output().unwrap());
    assert!(line.contains("`transformer.wte.weight` has shape [128, 64]") && line.contains("[256, 32]"), "{line}");
    save_atomically(&path, &good, 1).unwrap();
    save_atomically(&path, &good, 1).unwrap(); // .prev too

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
    save_atomically(&good, &c.to_value(), 1).unwrap();
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

/// Kill moments: seeded from the clock, so each run tries other moments.
struct Rng(Xoshiro256PlusPlus);
impl Rng {
    fn from_clock() -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        Self(Xoshiro256PlusPlus::seed_from_u64(nanos as u64))
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0.next_u64() % n
    }
}

/// Runs the probe's save loop until a random moment, SIGKILLs it, and returns
/// (last step taken, newest save seen on disk by the process, requests a newer one replaced).
fn kill_save_loop(path: &Path, interval: u64, step_ms: u64, after: Duration) -> (u64, u64, u64) {
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
        let (mut done, mut saved, mut superseded) = (0u64, 0u64, 0u64);
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(n) = line.strip_prefix("step ") {
                done = n.parse().unwrap();
            } else if let Some(n) = line.strip_prefix("saved ") {
                saved = n.parse().unwrap();
            } else if let Some(n) = line.strip_prefix("superseded ") {
                superseded = n.parse().unwrap();
            }
        }
        (done, saved, superseded)
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
    // Saves every 100 ms: the issue's bound (one interval) assumes a save takes less than an interval.
    let (interval, step_ms) = (10u64, 10u64);
    let mut rng = Rng::from_clock();
    let mut last = 0u64;
    let (mut worst, mut replaced, mut behind) = (0u64, 0u64, 0u32);
    for kill in 0..60 {
        let after = Duration::from_millis(60 + rng.below(400));
        let (done, saved_seen, superseded) = kill_save_loop(&path, interval, step_ms, after);
        // The runtime's loader (the current file, or .prev with a warning) and parser.
        let (value, _) =
            load_with_fallback(&path).unwrap_or_else(|e| panic!("kill {kill}: {e}")).unwrap_or_else(|| {
                assert!(
                    done < (3 + superseded) * interval,
                    "kill {kill}: {done} steps and no checkpoint (only the first save may be missing)"
                );
                (Value::None, LoadedFrom::Current)
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
        // The loop asks for a save at every multiple of the interval; the one on disk is the
        // newest asked for or, when that one was in flight, the one before; more only when a
        // save takes longer than the interval (a loaded disk): then the one queued behind it and
        // any a newer request replaced (by design) are lost too.
        let asked = done / interval * interval;
        assert!(
            c.global_step + interval * (2 + superseded) >= asked,
            "kill {kill}: on disk {} after {done} steps ({superseded} replaced): a save lost",
            c.global_step
        );
        if c.global_step + interval < asked {
            behind += 1;
        }
        replaced += superseded;
        if done > c.global_step {
            worst = worst.max(done - c.global_step);
        }
        let inspect = host_command().args(["checkpoint", "inspect"]).arg(&path).output().unwrap();
        assert!(inspect.status.success(), "kill {kill}: {}", String::from_utf8_lossy(&inspect.stderr));
        last = c.global_step;
    }
    assert!(last > 100, "progress carried across the kills: {last}");
    eprintln!("60 kills: reached step {last}; most steps lost to a kill: {worst} (interval {interval}); kills with more than one save lost to a slow disk: {behind}; requests replaced by a newer one: {replaced}");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') && [".tmp.", ".prev.", ".old."].iter().any(|k| n.contains(k)))
        .collect();
    // Only the last process, killed, may have left its own.
    assert!(leftovers.len() <= 3, "stale temp files are removed at start: {leftovers:?}");
}

/// `neuron-host train` on the tiny model saving to `path` every `every` steps, with a line per step.
fn train_command(path: &Path, every: u64, steps: u64) -> Command {
    let mut cmd = host_command();
    cmd.arg("train")
        .arg("--plugin")
        .arg(plugin("gpt"))
        .args(["--preset", "tiny", "--batch-size", "2", "--warmup", "2", "--eval-every", "0", "--eval-batches", "1"])
        .args(["--log-every", "1", "--json", "--steps", &steps.to_string(), "--save-every", &every.to_string()])
        .arg("--checkpoint")
        .arg(path);
    cmd
}

/// The real binary, SIGKILLed at 50 random moments while it trains and saves every few steps:
/// after each kill the file loads as it is (no fallback needed), holds a save the process asked
/// for, is never older than a save the process reported done, and is at most one save behind the
/// newest one asked for, so at most one interval of progress (plus the steps of the save in flight)
/// is lost, as long as a save takes less than the interval (on a loaded disk the save queued behind
/// the one in flight, and any a newer request replaced, are lost too, and counted); the next start
/// resumes from it.
#[test]
fn the_real_binary_sigkilled_50_times_while_saving_always_resumes_from_a_good_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("miner_checkpoint.pth");
    let every = 3u64;
    let mut rng = Rng::from_clock();
    let (mut previous, mut worst, mut in_flight, mut replaced, mut behind) = (0u64, 0u64, 0u32, 0u64, 0u32);
    for kill in 0..50 {
        let mut child =
            train_command(&path, every, 1_000_000).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        // (resumed at, last step done, last save asked for, newest save reported on disk,
        // requests replaced by a newer one), updated as lines arrive.
        let seen = std::sync::Arc::new(std::sync::Mutex::new((None::<u64>, 0u64, 0u64, None::<u64>, 0u64)));
        let reader = {
            let seen = seen.clone();
            std::thread::spawn(move || {
                for line in stdout.lines().map_while(Result::ok) {
                    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                    let step = v["step"].as_u64().unwrap_or(0);
                    let mut s = seen.lock().unwrap();
                    match v["event"].as_str() {
                        Some("resumed") => s.0 = Some(step),
                        Some("train") => s.1 = step,
                        Some("checkpoint") => {
                            s.2 = step;
                            s.3 = v["saved"].as_u64();
                            s.4 = v["superseded"].as_u64().unwrap();
                        }
                        _ => {}
                    }
                }
            })
        };
        // Wait for the first step, then kill at a random moment 0-400 ms (2-8 steps) later.
        let deadline = Instant::now() + Duration::from_secs(120);
        while seen.lock().unwrap().1 <= previous {
            assert!(child.try_wait().unwrap().is_none(), "kill {kill}: train exited by itself");
            assert!(Instant::now() < deadline, "kill {kill}: no training step within 2 min");
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(rng.below(400)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        let (resumed, done, asked, saved, superseded) = *seen.lock().unwrap();
        if previous > 0 {
            assert_eq!(resumed, Some(previous), "kill {kill}: the restart resumed from the file on disk");
        }
        let Some((value, from)) = load_with_fallback(&path).unwrap_or_else(|e| panic!("kill {kill}: {e}")) else {
            // Killed before the first save reached the disk: only that one (and, on a slow
            // disk, those asked for while it was written) may be missing.
            assert!(
                previous == 0 && asked <= every * (2 + superseded),
                "kill {kill}: no checkpoint after {done} steps (asked for {asked}, {superseded} replaced)"
            );
            continue;
        };
        assert_eq!(from, LoadedFrom::Current, "kill {kill}: the newest file itself loads");
        let step = MinerCheckpoint::from_value(&value).unwrap_or_else(|e| panic!("kill {kill}: {e}")).global_step;
        assert!(
            step.is_multiple_of(every) && step >= previous && step <= done,
            "kill {kill}: step {step} (done {done}, before {previous})"
        );
        assert!(step >= saved.unwrap_or(0), "kill {kill}: on disk {step}, but step {saved:?} was reported saved");
        // Lost: the save in flight and, only when a save takes longer than the interval (a
        // loaded disk), the one queued behind it and those a newer request replaced (by design).
        assert!(
            step + every * (2 + superseded) >= asked,
            "kill {kill}: on disk {step}, but the newest save asked for was {asked} ({superseded} replaced): a save lost"
        );
        if step + every < asked {
            behind += 1;
        }
        replaced += superseded;
        if step < asked {
            in_flight += 1;
        }
        worst = worst.max(done - step);
        previous = step;
    }
    eprintln!("50 kills of neuron-host train: reached step {previous}; {in_flight} kills with a save in flight; most steps lost: {worst} (saving every {every}); kills with more than one save lost to a slow disk: {behind}; requests replaced by a newer one: {replaced}");
    assert!(previous > 100, "progress carried across the kills: {previous}");
    let out = host_command().args(["checkpoint", "inspect"]).arg(&path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Runs `script` (bash) as root in a private mount namespace, where it may mount a small tmpfs:
/// `unshare --mount` as root, else in a user namespace. `None` when neither is allowed here.
fn in_mount_namespace(script: &str, env: &[(&str, &Path)]) -> Option<Output> {
    for flags in [&["--mount"][..], &["--user", "--map-root-user", "--mount"][..]] {
        let probe = Command::new("unshare").args(flags).args(["true"]).output();
        if probe.is_ok_and(|o| o.status.success()) {
            let mut cmd = Command::new("unshare");
            cmd.args(flags).args(["bash", "-c", script]);
            for (k, v) in env {
                cmd.env(k, v);
            }
            return Some(cmd.output().unwrap());
        }
    }
    None
}

/// A full disk: the real binary trains on a small tmpfs that is then filled. Its saves fail with
/// "No space left on device", the training loop goes on to its last step regardless, the job
/// then exits non-zero with one line naming the problem and the fix, and the checkpoint and
/// `.prev` from before are intact, with no temp file left.
#[test]
fn a_full_disk_fails_the_saves_not_the_loop_and_keeps_the_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let (mnt, out) = (dir.path().join("mnt"), dir.path().join("out"));
    std::fs::create_dir_all(&mnt).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    let train = |steps: u64| {
        let cmd = train_command(&mnt.join("m.pth"), 5, steps);
        let mut line = format!("'{}'", cmd.get_program().to_string_lossy());
        for a in cmd.get_args() {
            line.push_str(&format!(" '{}'", a.to_string_lossy()));
        }
        line
    };
    let script = format!(
        r#"set -u
mount -t tmpfs -o size=4m none "$MNT" || exit 97
{first} > "$OUT/first.jsonl" 2> "$OUT/first.err" || exit 98
dd if=/dev/zero of="$MNT/filler" bs=4k 2>/dev/null
{second} > "$OUT/second.jsonl" 2> "$OUT/second.err"
echo $? > "$OUT/second.rc"
cp "$MNT/m.pth" "$MNT/m.pth.prev" "$OUT/"
ls -a "$MNT" > "$OUT/ls"
"#,
        first = train(10),
        second = train(20),
    );
    let Some(result) = in_mount_namespace(&script, &[("MNT", &mnt), ("OUT", &out)]) else {
        panic!("this test mounts a 4 MiB tmpfs in a private mount namespace: run it as root or where unprivileged user namespaces are allowed (unshare --user --map-root-user --mount)");
    };
    let read = |f: &str| std::fs::read_to_string(out.join(f)).unwrap_or_default();
    assert!(
        result.status.success(),
        "{}{}{}",
        String::from_utf8_lossy(&result.stderr),
        read("first.err"),
        read("second.err")
    );
    let rc: i32 = read("second.rc").trim().parse().unwrap();
    assert!(rc != 0 && rc != 130, "a run whose saves failed does not report success (exit {rc})");
    let err = read("second.err");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(errors[0].contains("No space left on device") && errors[0].contains("free space"), "{}", errors[0]);
    // The writer says it once for the streak of failed saves, and nothing of the zip library's own.
    let said = err.lines().filter(|l| l.contains("cannot save checkpoint") && !l.starts_with("error:")).count();
    assert_eq!(said, 1, "one line for the streak: {err}");
    assert!(!err.contains("ZipWriter"), "{err}");
    // The loop went on past the failed saves (at 15 and 20) to its last step.
    let steps: Vec<u64> = read("second.jsonl")
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["event"] == "train")
        .map(|v| v["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, (11..=20).collect::<Vec<_>>());
    assert_eq!(global_step(&out.join("m.pth")), Some(10), "the checkpoint from before the disk filled is intact");
    let prev = load_with_fallback(&out.join("m.pth.prev")).unwrap().unwrap().0;
    assert_eq!(prev.get("global_step").and_then(Value::as_int), Some(5), "and so is .prev");
    let listing = read("ls");
    assert!(!listing.contains(".tmp."), "no temp file left behind: {listing}");
}

/// A checkpoint path that cannot work is refused before the plugin loads or a step is taken, in
/// one line naming `--checkpoint` and the cause: a directory, a file where a folder should be, a
/// read-only filesystem. A missing folder is made.
#[test]
fn train_checks_its_checkpoint_path_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let refused = |path: &Path| {
        let out = train_command(path, 5, 3).output().unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!out.status.success(), "{path:?}: {stdout}{stderr}");
        assert!(!stdout.contains("\"event\":\"train\""), "nothing trained before the refusal: {stdout}");
        let lines: Vec<_> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(lines[0].contains("--checkpoint"), "{}", lines[0]);
        lines[0].to_string()
    };
    let line = refused(dir.path());
    assert!(line.contains("is a directory"), "{line}");
    let file = dir.path().join("plain");
    std::fs::write(&file, b"x").unwrap();
    let line = refused(&file.join("m.pth"));
    assert!(line.contains("is a file, not a folder"), "{line}");

    let mnt = dir.path().join("ro");
    std::fs::create_dir_all(&mnt).unwrap();
    let cmd = train_command(&mnt.join("m.pth"), 5, 3);
    let mut line = format!("'{}'", cmd.get_program().to_string_lossy());
    for a in cmd.get_args() {
        line.push_str(&format!(" '{}'", a.to_string_lossy()));
    }
    let script = format!("mount -t tmpfs -o ro,size=1m none \"$MNT\" || exit 97\n{line}");
    let Some(out) = in_mount_namespace(&script, &[("MNT", &mnt)]) else {
        panic!("this test mounts a read-only tmpfs in a private mount namespace: run it as root or where unprivileged user namespaces are allowed");
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && out.status.code() != Some(97), "{stderr}");
    assert!(stderr.contains("--checkpoint") && stderr.contains("Read-only file system"), "{stderr}");

    // A missing folder is made, and the run saves there.
    let deep = dir.path().join("new/folder/m.pth");
    let out = train_command(&deep, 5, 3).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(global_step(&deep), Some(3));
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

    // Again, asking for one epoch (--epochs counts this run's): the same subnet continues.
    subnet(dir.path(), "run2", 1);
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

#[test]
fn neurons_configured_longer_than_their_models_context_restart_on_their_own_checkpoints() {
    // The finney/test presets ask for 256 tokens; the tiny model's context is 16. The first run
    // caps the length with a warning; a restart must cap it again, not rebuild the data stream at
    // the configured length (which made the validator exit and the miners stop training).
    let dir = tempfile::tempdir().unwrap();
    let config = TinySubnet { miner: "log_every = 0", sections: CLEAN_AND_NOISY_MINERS, ..Default::default() }.toml();
    let run = |name: &str, epochs: u64| {
        let out = neuron_e2e::subnet_command(dir.path(), &config, name, &["scoring_loss"], epochs)
            .args(["--set", "miner.sequence_length=256", "--set", "validator.sequence_length=256"])
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{name}: {text}");
        assert!(!text.contains("stopped:"), "{name}: a miner stopped training: {text}");
        text
    };
    run("run1", 1);
    let ckpts = dir.path().join("checkpoints");
    let miner_step = global_step(&ckpts.join("miner1/miner_checkpoint.pth")).unwrap();
    let validator_step = global_step(&ckpts.join("validator/validator_checkpoint.pth")).unwrap();
    assert!(miner_step > 0 && validator_step > 0);
    let text = run("run2", 1);
    assert!(text.contains("longer than the model's context"), "the cap is said again: {text}");
    assert!(global_step(&ckpts.join("miner1/miner_checkpoint.pth")).unwrap() > miner_step, "miner1 trained on");
    assert!(
        global_step(&ckpts.join("validator/validator_checkpoint.pth")).unwrap() > validator_step,
        "the validator stepped on"
    );
    let resumed = steps(&dir.path().join("run2"));
    let first = resumed.iter().find(|s| s["neuron"] == "miner1").expect("miner1 logged steps");
    assert_eq!(first["step"].as_u64().unwrap(), miner_step + 1, "miner1 continued its own count");
}

#[test]
fn a_lone_neuron_writes_its_runs_config_and_no_resume_leaves_the_saved_chain_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("chain.state");
    let config = format!("{MINER}\n[chain]\nstate = {:?}\nblock_time = 0.5\n", state.display().to_string());
    let mut child = miner(dir.path(), "run1", &config).spawn().unwrap();
    let path = dir.path().join("miner.pth");
    wait_for("a checkpoint", &mut child, Duration::from_secs(180), || global_step(&path).is_some());
    terminate(child);
    // Every run records the configuration it ran with, a lone neuron's too.
    let written = std::fs::read_to_string(dir.path().join("run1/config.toml")).expect("the run's config.toml");
    let written = neuron_host::config::Config::parse(&written).expect("the written config loads back");
    assert_eq!(written.role.to_string(), "miner");
    assert!(written.plugin_section("gpt").contains("preset = \"tiny\""), "{}", written.plugin_section("gpt"));
    let saved = std::fs::read(&state).expect("a clean stop saves the chain");

    // --no-resume starts a fresh chain and deletes nothing: the saved chain stays byte for byte.
    let mut cmd = miner(dir.path(), "run2", &config);
    cmd.arg("--no-resume");
    let mut child = cmd.spawn().unwrap();
    wait_for("training", &mut child, Duration::from_secs(180), || steps(&dir.path().join("run2")).len() >= 3);
    let out = terminate(child);
    assert_eq!(std::fs::read(&state).unwrap(), saved, "{}", String::from_utf8_lossy(&out.stderr));
}

/// Where a killed local subnet stands, read from what it left on disk.
#[derive(Debug, Clone, Default)]
struct Standing {
    chain_block: u64,
    total_stake: u64,
    validator_block: u64,
    validator_step: u64,
    queried: u64,
    miner_steps: Vec<u64>,
}

fn standing(ckpts: &Path, miners: usize) -> Standing {
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(ckpts.join("chain.state")).expect("the chain's state is saved while it runs"),
    )
    .expect("the chain's state is whole");
    let stake = &state["subnets"]["1"]["stake"];
    let total_stake = stake.as_object().expect("stakes").values().map(|v| v.as_u64().unwrap()).sum();
    let v = ValidatorCheckpoint::from_value(&load(&ckpts.join("validator/validator_checkpoint.pth")))
        .expect("the validator's checkpoint loads");
    Standing {
        chain_block: state["block"].as_u64().unwrap(),
        total_stake,
        validator_block: v.block,
        validator_step: v.global_step,
        queried: v.stats.iter().map(|s| s.queried).sum(),
        miner_steps: (1..=miners)
            .map(|i| global_step(&ckpts.join(format!("miner{i}/miner_checkpoint.pth"))).unwrap_or(0))
            .collect(),
    }
}

#[test]
fn a_whole_local_subnet_killed_again_and_again_restarts_where_its_checkpoints_are() {
    // The main job, SIGKILLed at random moments: after each kill the chain's state, the
    // validator's and the miners' checkpoints must agree, and nothing may go backwards (before,
    // the chain was saved only on a clean stop, so each restart began a new chain at block 0
    // under checkpoints from later blocks).
    let dir = tempfile::tempdir().unwrap();
    let ckpts = dir.path().join("checkpoints");
    let (chain_every, validator_every) = (2u64, 4u64);
    let sections = format!(
        "[checkpoint]\nvalidator_every_blocks = {validator_every}\nminer_every_steps = 5\n\n{CLEAN_AND_NOISY_MINERS}"
    );
    let config = TinySubnet { miner: "log_every = 0", sections: &sections, ..Default::default() }.toml();
    let start = |run: &str, epochs: u64| {
        let log = std::fs::File::create(dir.path().join(format!("{run}.log"))).unwrap();
        neuron_e2e::subnet_command(dir.path(), &config, run, &["scoring_loss"], epochs)
            .args(["--set", "chain.block_time=0.5", "--set", &format!("chain.save_every_blocks={chain_every}")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    };
    let log = |run: &str| std::fs::read_to_string(dir.path().join(format!("{run}.log"))).unwrap_or_default();
    let mut rng = Rng::from_clock();
    let mut before = Standing::default();
    let kills = 4;
    for kill in 0..kills {
        let run = format!("life{kill}");
        let mut child = start(&run, 0);
        // Each life runs until every piece has saved beyond where the last life left it and the
        // chain has run an epoch (tempo 10) in it, then a random moment more.
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("life {kill} exited by itself ({status}): {}", log(&run));
            }
            assert!(Instant::now() < deadline, "life {kill} made no progress in 240 s: {}", log(&run));
            let saved_beyond =
                ckpts.join("validator/validator_checkpoint.pth").exists() && ckpts.join("chain.state").exists() && {
                    let now = standing(&ckpts, 2);
                    now.validator_block > before.validator_block
                        && now.chain_block >= before.chain_block + 10
                        && now.miner_steps.iter().zip(&before.miner_steps).all(|(n, b)| n > b)
                        && now.miner_steps.len() == 2
                        && now.miner_steps.iter().all(|&s| s > 0)
                };
            if saved_beyond {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(rng.below(3000)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let now = standing(&ckpts, 2);
        eprintln!("kill {kill}: {now:?}");
        let text = log(&run);
        assert!(!text.contains("behind the neurons' checkpoints"), "life {kill} found its pieces disagreeing: {text}");
        // The chain's state is never more than one chain save behind the validator's checkpoint
        // (a save in flight at the kill, on a loaded machine a second one: the slack).
        assert!(
            now.chain_block + 2 * chain_every + 2 >= now.validator_block,
            "kill {kill}: the chain's state (block {}) is behind the validator's checkpoint (block {})",
            now.chain_block,
            now.validator_block
        );
        // Nothing goes backwards from one life to the next.
        assert!(now.chain_block >= before.chain_block, "kill {kill}: the chain went back: {before:?} -> {now:?}");
        // Each life ran an epoch, whose emission is added to stake: more, never back to genesis.
        assert!(now.total_stake > before.total_stake, "kill {kill}: stake went back or stood: {before:?} -> {now:?}");
        assert!(
            now.validator_block > before.validator_block && now.validator_step >= before.validator_step,
            "kill {kill}: the validator went back or stood still: {before:?} -> {now:?}"
        );
        assert!(now.queried >= before.queried, "kill {kill}: the validator's statistics went back");
        for (i, (&a, &b)) in before.miner_steps.iter().zip(&now.miner_steps).enumerate() {
            assert!(b >= a, "kill {kill}: miner{} went back from step {a} to {b}", i + 1);
        }
        before = now;
    }
    // A clean run after the last kill continues the same subnet, saying nothing about disagreement.
    let child = start("last", 1);
    let out = child.wait_with_output().unwrap();
    let text = log("last");
    assert!(out.status.success(), "the run after the kills: {text}");
    assert!(!text.contains("behind the neurons' checkpoints"), "{text}");
    let last = standing(&ckpts, 2);
    assert!(last.chain_block > before.chain_block && last.validator_block > before.validator_block, "{last:?}");
    assert!(last.total_stake > before.total_stake, "the last epoch's emission was added: {last:?}");

    // The chain's state lost: the new chain at block 0 disagrees with the checkpoints, in one line.
    std::fs::remove_file(ckpts.join("chain.state")).unwrap();
    let out = start("lost", 1).wait_with_output().unwrap();
    let text = log("lost");
    assert!(out.status.success(), "{text}");
    let said: Vec<_> = text.lines().filter(|l| l.contains("behind the neurons' checkpoints")).collect();
    assert_eq!(said.len(), 1, "{text}");
    assert!(said[0].contains(&format!("is of block {}", last.validator_block)), "{}", said[0]);
}
