//! How a local subnet's start, epoch and stop times grow with its number of miners (the `tiny`
//! GPT, training on): a subnet designer wants hundreds of uids. Each size runs as one in-process
//! `SubnetRun` of two epochs of 10 blocks of 0.5 s, checkpoints on (stopping saves every miner).
//!
//! start: from the call until the validator runs (every miner registered, built, serving);
//! epoch: between the two epochs' ends (5 s of blocks, plus whatever the validator's step
//! overruns); stop: from the last epoch's end until the run returns (miners stopped, checkpoints
//! on disk, the chain saved). Ratios are against the 3-miner subnet of the same run, measured
//! after an unreported warm-up subnet (kernel compilation is once per process).
//!
//! `cargo bench -p neuron-e2e --bench subnet_scale [-- 3 16 64 256]`

use std::{
    path::Path,
    sync::{atomic::AtomicBool, Arc, Mutex},
    time::{Duration, Instant},
};

use neuron_e2e::plugin;
use neuron_host::{
    config::Config,
    metrics::prometheus::{neuron, Metrics},
    runtime::subnet::SubnetRun,
};

#[derive(Clone, Copy, Debug)]
struct Times {
    start: f64,
    epoch: f64,
    stop: f64,
    total: f64,
}

fn run(miners: usize, dir: &Path) -> Times {
    let mut text = format!(
        r#"
plugins = ["{gpt}"]
scoring = ["{loss}"]
epochs = 2
[plugin.gpt]
preset = "tiny"
[miner]
batch_size = 4
sequence_length = 16
log_every = 0
[validator]
batch_size = 4
sequence_length = 16
sample_size = 16
[chain]
block_time = 0.5
[chain.hyperparams]
tempo = 10
max_allowed_uids = {uids}
[logging]
run_dir = "{run}"
progress_every = 3600.0
[checkpoint]
path = "{checkpoints}"
"#,
        gpt = plugin("gpt").display(),
        loss = plugin("scoring_loss").display(),
        uids = (miners + 1).max(256),
        run = dir.join("run").display(),
        checkpoints = dir.join("checkpoints").display(),
    );
    for i in 0..miners {
        text.push_str(&format!("\n[[subnet.miners]]\nseed = {}\nnoise = 0.0\n", 100 + i));
    }
    let config = Config::parse(&text).expect("bench config");
    let metrics = Arc::new(Metrics::new());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let started = Instant::now();
    let running = Arc::new(Mutex::new(None::<Instant>));
    let epochs = Arc::new(Mutex::new(Vec::<Instant>::new()));
    runtime.block_on(async {
        let watcher = {
            let (metrics, running) = (metrics.clone(), running.clone());
            tokio::spawn(async move {
                // The validator publishes its epoch length when it starts its loop.
                while metrics.epoch_length_blocks.get_or_create(&neuron("validator")).get() == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                *running.lock().unwrap() = Some(Instant::now());
            })
        };
        let seen = epochs.clone();
        SubnetRun {
            config,
            metrics: metrics.clone(),
            stop: Arc::new(AtomicBool::new(false)),
            on_epoch: Box::new(move |_| seen.lock().unwrap().push(Instant::now())),
            on_metrics: Box::new(|_| {}),
            reload: None,
        }
        .run()
        .await
        .expect("the subnet runs");
        watcher.abort();
    });
    let ended = Instant::now();
    let epochs = epochs.lock().unwrap().clone();
    let running = running.lock().unwrap().expect("the validator started");
    assert_eq!(epochs.len(), 2, "two epochs");
    Times {
        start: (running - started).as_secs_f64(),
        epoch: (epochs[1] - epochs[0]).as_secs_f64(),
        stop: (ended - epochs[1]).as_secs_f64(),
        total: (ended - started).as_secs_f64(),
    }
}

fn main() {
    std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir().join("neuron-host-no-display"));
    let mut sizes: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    if sizes.is_empty() {
        sizes = vec![3, 16, 64, 256];
    }
    if sizes[0] != 3 {
        sizes.insert(0, 3);
    }
    // The first subnet of a process compiles every kernel and opens the GPU: a 3-miner warm-up
    // run, not reported, keeps that out of the first measured start.
    run(3, tempfile::tempdir().unwrap().path());
    let mut base: Option<Times> = None;
    for miners in sizes {
        let dir = tempfile::tempdir().unwrap();
        let t = run(miners, dir.path());
        let b = *base.get_or_insert(t);
        println!(
            "{miners:>4} miners  start {:>6.1} s ({:>5.1}x)  epoch {:>5.1} s ({:>4.2}x)  stop {:>5.2} s ({:>5.1}x)  total {:>6.1} s",
            t.start,
            t.start / b.start,
            t.epoch,
            t.epoch / b.epoch,
            t.stop,
            t.stop / b.stop,
            t.total
        );
    }
}
