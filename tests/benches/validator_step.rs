//! Where a validator step's time goes: plugin compute against everything
//! else (scheduling, signing and HTTP, encoding, the score book, chain reads,
//! run-log writes).
//!
//! ```sh
//! cargo bench -p neuron-e2e --bench validator_step            # tiny and nano
//! cargo bench -p neuron-e2e --bench validator_step -- tiny    # one preset
//! ```
//!
//! A local subnet runs in this process (the real `SubnetRun`: embedded chain,
//! signed HTTP over loopback, one GPU device) with three miners that serve
//! without training (`miner.train = false`), so the only compute besides the
//! validator's is the miners' answers, and the validator queries one miner per
//! step (`validator.sample_size = 1`), so that answer lies on the step's
//! critical path. Plugin compute per step is then
//!
//!   the validator's scorer pass + its own model's loss/backward/step
//!   (`plugin_s` in steps.jsonl) + the miner's forward pass (the
//!   `neuron_forward_duration_seconds` histogram, summed over miners),
//!
//! and the rest of the step's wall time (`step_s`) is the host's share. The
//! first `WARMUP` steps (kernel compilation) are left out: the forward sums are
//! read when the validator reaches step `WARMUP` and again at the end.

use std::{
    path::Path,
    sync::{atomic::AtomicBool, Arc},
    time::{Duration, Instant},
};

use neuron_e2e::plugin;
use neuron_host::{
    config::Config,
    metrics::prometheus::{neuron, Metrics},
    runtime::subnet::SubnetRun,
};

const WARMUP: i64 = 5;

struct Case {
    preset: &'static str,
    seq: u32,
    /// Blocks of 0.5 s in the measured epoch.
    blocks: u64,
}

fn forward_seconds(metrics: &Metrics) -> f64 {
    let text = metrics.render();
    text.lines()
        .filter(|l| l.starts_with("neuron_forward_duration_seconds_sum{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

fn run(case: &Case, dir: &Path) {
    let text = format!(
        r#"
plugins = ["{gpt}"]
scoring = ["{loss}"]
epochs = 1
[plugin.gpt]
preset = "{preset}"
[miner]
train = false
log_every = 0
[validator]
sample_size = 1
batch_size = 4
sequence_length = {seq}
epoch_length = {blocks}
[chain]
block_time = 0.5
[chain.hyperparams]
tempo = 1000
[logging]
run_dir = "{run}"
[checkpoint]
path = "{checkpoints}"
"#,
        gpt = plugin("gpt").display(),
        loss = plugin("scoring_loss").display(),
        preset = case.preset,
        seq = case.seq,
        blocks = case.blocks,
        run = dir.join("run").display(),
        checkpoints = dir.join("checkpoints").display(),
    );
    let config = Config::parse(&text).expect("bench config");
    let metrics = Arc::new(Metrics::new());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let started = Instant::now();
    let warm_forward = Arc::new(std::sync::Mutex::new(None::<f64>));
    runtime.block_on(async {
        let watcher = {
            let metrics = metrics.clone();
            let warm_forward = warm_forward.clone();
            tokio::spawn(async move {
                loop {
                    if metrics.global_step.get_or_create(&neuron("validator")).get() >= WARMUP {
                        *warm_forward.lock().unwrap() = Some(forward_seconds(&metrics));
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        };
        SubnetRun {
            config,
            metrics: metrics.clone(),
            stop: Arc::new(AtomicBool::new(false)),
            on_epoch: Box::new(|_| {}),
            on_metrics: Box::new(|_| {}),
        }
        .run()
        .await
        .expect("the subnet runs");
        watcher.abort();
    });
    let wall = started.elapsed();
    let steps: Vec<serde_json::Value> = std::fs::read_to_string(dir.join("run/steps.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["neuron"] == "validator" && v["step"].as_i64().unwrap_or(0) > WARMUP)
        .collect();
    let warm = warm_forward.lock().unwrap().expect("the validator got past its warm-up steps");
    let forward = forward_seconds(&metrics) - warm;
    let step_s: f64 = steps.iter().map(|v| v["step_s"].as_f64().unwrap()).sum();
    let plugin_s: f64 = steps.iter().map(|v| v["plugin_s"].as_f64().unwrap()).sum();
    let query_s: Vec<f64> = steps.iter().map(|v| v["query_s"].as_f64().unwrap()).collect();
    let per_step: Vec<f64> = steps.iter().map(|v| v["step_s"].as_f64().unwrap()).collect();
    let outside = step_s - plugin_s - forward;
    println!(
        "{:<5} batch 4x{:<3} {:>4} steps  median step {:>7.1} ms  validator plugins {:>5.1}%  miner forward {:>5.1}%  \
         outside plugin compute {:>5.1}% ({:.1} ms/step; median query round trip {:.1} ms)  [{:.0} s wall]",
        case.preset,
        case.seq,
        steps.len(),
        median(per_step) * 1e3,
        100.0 * plugin_s / step_s,
        100.0 * forward / step_s,
        100.0 * outside / step_s,
        1e3 * outside / steps.len() as f64,
        median(query_s) * 1e3,
        wall.as_secs_f64(),
    );
}

fn main() {
    std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir().join("neuron-host-no-display"));
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let cases = [Case { preset: "tiny", seq: 16, blocks: 60 }, Case { preset: "nano", seq: 64, blocks: 120 }];
    for case in cases.iter().filter(|c| filter.is_empty() || filter.iter().any(|f| f == c.preset)) {
        let dir = tempfile::tempdir().unwrap();
        run(case, dir.path());
    }
}
