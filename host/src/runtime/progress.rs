//! The live progress display: where the epoch is (blocks done, time left)
//! and each neuron's steps this epoch and last loss, read from the metrics
//! the neurons already keep. On a terminal one status line is redrawn every
//! second; otherwise the same text is logged every `logging.progress_every`
//! seconds, with no control codes.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::time::Instant;

use crate::{
    config::Config,
    metrics::prometheus::{neuron, Metrics},
};

/// What the progress display needs beyond the metrics.
pub struct ProgressSettings {
    /// Epochs this run stops after (0: until stopped).
    pub epochs: u64,
    pub block_time: Duration,
    pub epoch_time_limit: Option<Duration>,
    /// Between lines when stderr is not a terminal.
    pub every: Duration,
}

impl ProgressSettings {
    pub fn from_config(config: &Config) -> Self {
        Self {
            epochs: config.epochs,
            block_time: Duration::from_secs_f64(config.chain.block_time),
            epoch_time_limit: (config.validator.epoch_time_limit > 0.0)
                .then(|| Duration::from_secs_f64(config.validator.epoch_time_limit)),
            every: Duration::from_secs_f64(config.logging.progress_every),
        }
    }
}

/// Where one epoch stands, for the progress line.
#[derive(Debug, Default, PartialEq)]
struct EpochProgress {
    /// Whether a validator's epoch is shown (a lone miner has none).
    has_epoch: bool,
    /// The epoch under way (1-based) and the run's total (0: open-ended).
    epoch: u64,
    epochs: u64,
    blocks_done: u64,
    blocks: u64,
    left: Duration,
    /// (name, steps this epoch, last loss if any) of each neuron.
    neurons: Vec<(String, u64, Option<f64>)>,
}

impl EpochProgress {
    fn line(&self) -> String {
        let mut parts = Vec::new();
        if self.has_epoch {
            parts.push(if self.blocks == 0 {
                "waiting for the validator's first epoch".to_string()
            } else {
                let of = if self.epochs > 0 { format!("/{}", self.epochs) } else { String::new() };
                format!(
                    "epoch {}{of}: block {}/{}, ~{}s left",
                    self.epoch,
                    self.blocks_done,
                    self.blocks,
                    self.left.as_secs()
                )
            });
        }
        for (name, steps, loss) in &self.neurons {
            let mut part = format!("{name} {steps} steps");
            if let Some(loss) = loss {
                part.push_str(&format!(" loss {loss:.3}"));
            }
            parts.push(part);
        }
        parts.join(" | ")
    }
}

/// Whether progress goes to a terminal (one line redrawn in place) or to a log (a line now and then).
fn progress_on_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}

/// Each neuron's step count when the shown epoch began. Sampled every second whatever the
/// printing interval, so an epoch shorter than that interval still counts its steps from (within
/// a second of) its first block, not from the first line printed in it.
#[derive(Debug, Default)]
struct EpochSteps {
    /// The epoch's start block and the neurons' step counts first seen in it.
    start: Option<(i64, Vec<i64>)>,
}

impl EpochSteps {
    /// Takes in the current step counts; `start_block` is the shown epoch's (None: no epoch, so
    /// steps count from the start of the run).
    fn sample(&mut self, start_block: Option<i64>, steps: &[i64]) {
        if let Some(b) = start_block {
            if self.start.as_ref().is_none_or(|(seen, _)| *seen != b) {
                self.start = Some((b, steps.to_vec()));
            }
        }
    }

    /// Steps made since the epoch began.
    fn since_start(&self, steps: &[i64]) -> Vec<u64> {
        let at_start = |i: usize| self.start.as_ref().map_or(0, |(_, s)| s.get(i).copied().unwrap_or(0));
        steps.iter().enumerate().map(|(i, &s)| (s - at_start(i)).max(0) as u64).collect()
    }
}

/// Starts the display. `block` reads the latest block; `validator` names the
/// neuron whose epoch is shown (None: steps and loss only); `neurons` are
/// the neurons listed, in order.
pub fn spawn(
    block: Box<dyn Fn() -> u64 + Send + Sync>,
    metrics: Arc<Metrics>,
    validator: Option<String>,
    neurons: Vec<String>,
    settings: ProgressSettings,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    let terminal = progress_on_terminal();
    let print: Box<dyn Fn(&str) + Send> = if terminal {
        Box::new(|line| eprint!("\r\x1b[2K{line}"))
    } else {
        Box::new(|line| tracing::info!(target: "neuron_host::progress", "{line}"))
    };
    let every = if terminal { Duration::from_secs(1) } else { settings.every };
    spawn_printing(block, metrics, validator, neurons, settings, every, print, stop)
}

/// [`spawn`] with the printing interval and the line's destination given.
#[allow(clippy::too_many_arguments)]
fn spawn_printing(
    block: Box<dyn Fn() -> u64 + Send + Sync>,
    metrics: Arc<Metrics>,
    validator: Option<String>,
    neurons: Vec<String>,
    settings: ProgressSettings,
    every: Duration,
    print: Box<dyn Fn(&str) + Send>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        const SAMPLE: Duration = Duration::from_secs(1);
        let print_every = every.max(SAMPLE);
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + SAMPLE, SAMPLE);
        let mut last_print = Instant::now();
        let validator = validator.map(|v| neuron(&v));
        let labels: Vec<_> = neurons.iter().map(|n| neuron(n)).collect();
        let mut epoch_steps = EpochSteps::default();
        // When the shown epoch was first seen (for its time limit).
        let mut epoch_seen: Option<(i64, Instant)> = None;
        // The epochs completed when the run started (a resumed validator continues its count):
        // the run ends at that plus `settings.epochs`.
        let mut completed_at_start: Option<u64> = None;
        while !stop.load(Ordering::Acquire) {
            ticker.tick().await;
            let steps: Vec<i64> = labels.iter().map(|l| metrics.global_step.get_or_create(l).get()).collect();
            let (mut progress, start_block) = match &validator {
                Some(v) => {
                    let start_block = metrics.epoch_start_block.get_or_create(v).get();
                    let blocks = metrics.epoch_length_blocks.get_or_create(v).get().max(0) as u64;
                    let completed = metrics.epoch.get_or_create(v).get().max(0) as u64;
                    let epochs = match (settings.epochs, blocks) {
                        (0, _) | (_, 0) => 0,
                        (n, _) => *completed_at_start.get_or_insert(completed) + n,
                    };
                    (
                        EpochProgress { has_epoch: true, epoch: completed + 1, epochs, blocks, ..Default::default() },
                        Some(start_block),
                    )
                }
                None => (EpochProgress::default(), None),
            };
            let in_epoch = start_block.filter(|_| progress.blocks > 0);
            epoch_steps.sample(in_epoch, &steps);
            if let Some(b) = in_epoch {
                if epoch_seen.is_none_or(|(seen, _)| seen != b) {
                    epoch_seen = Some((b, Instant::now()));
                }
            }
            if last_print.elapsed() + Duration::from_millis(50) < print_every {
                continue;
            }
            last_print = Instant::now();
            if let Some(start) = in_epoch {
                progress.blocks_done = block().saturating_sub(start.max(0) as u64).min(progress.blocks);
                progress.left = settings.block_time * (progress.blocks - progress.blocks_done) as u32;
                if let (Some(limit), Some((_, since))) = (settings.epoch_time_limit, &epoch_seen) {
                    progress.left = progress.left.min(limit.saturating_sub(since.elapsed()));
                }
            }
            progress.neurons = neurons
                .iter()
                .zip(&labels)
                .zip(epoch_steps.since_start(&steps))
                .map(|((name, label), made)| {
                    let loss = metrics.loss.get_or_create(label).get();
                    (name.clone(), made, (loss > 0.0).then_some(loss))
                })
                .collect();
            print(&progress.line());
        }
    })
}

/// Clears the progress line before something else is printed.
pub fn clear_progress_line() {
    if progress_on_terminal() {
        eprint!("\r\x1b[2K");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_line_shows_the_epoch_its_blocks_time_left_steps_and_loss() {
        let p = EpochProgress {
            has_epoch: true,
            epoch: 2,
            epochs: 3,
            blocks_done: 7,
            blocks: 10,
            left: Duration::from_secs(3),
            neurons: vec![("validator".into(), 5, None), ("miner1".into(), 20, Some(4.12345))],
        };
        assert_eq!(p.line(), "epoch 2/3: block 7/10, ~3s left | validator 5 steps | miner1 20 steps loss 4.123");
        let open = EpochProgress { has_epoch: true, epoch: 4, blocks: 10, ..Default::default() };
        assert_eq!(open.line(), "epoch 4: block 0/10, ~0s left");
        let waiting = EpochProgress { has_epoch: true, ..Default::default() };
        assert_eq!(waiting.line(), "waiting for the validator's first epoch");
        let miner = EpochProgress { neurons: vec![("m/h".into(), 12, Some(3.0))], ..Default::default() };
        assert_eq!(miner.line(), "m/h 12 steps loss 3.000", "a lone miner has no epoch");
    }

    #[tokio::test(start_paused = true)]
    async fn lines_rarer_than_epochs_still_count_each_epochs_steps() {
        // Epochs of 3 blocks of a second, a line every 30 s, a neuron making 10 steps a second.
        // Each line must count the steps of the epoch under way since its first block (10 or
        // 20), not since the line (which said 0 when every line fell in a new epoch).
        let metrics = Arc::new(Metrics::new());
        let (v, m) = (neuron("v"), neuron("m"));
        metrics.epoch_length_blocks.get_or_create(&v).set(3);
        let lines = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let sink = lines.clone();
        let block = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let reader = block.clone();
        let settings = ProgressSettings {
            epochs: 0,
            block_time: Duration::from_secs(1),
            epoch_time_limit: None,
            every: Duration::ZERO,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let display = spawn_printing(
            Box::new(move || reader.load(Ordering::Acquire)),
            metrics.clone(),
            Some("v".into()),
            vec!["m".into()],
            settings,
            Duration::from_secs(30),
            Box::new(move |line| sink.lock().unwrap().push(line.to_string())),
            stop.clone(),
        );
        for second in 1..=95u64 {
            block.store(second, Ordering::Release);
            metrics.epoch_start_block.get_or_create(&v).set((second / 3 * 3) as i64);
            metrics.global_step.get_or_create(&m).set(second as i64 * 10);
            tokio::time::advance(Duration::from_secs(1)).await;
            tokio::task::yield_now().await;
        }
        stop.store(true, Ordering::Release);
        display.abort();
        let lines = lines.lock().unwrap().clone();
        assert!(lines.len() >= 3, "a line every 30 s: {lines:?}");
        for line in &lines {
            let steps: u64 = line.split("m ").nth(1).and_then(|t| t.split(' ').next()).unwrap().parse().unwrap();
            assert!(steps > 0, "steps of the epoch under way are counted: {line}");
        }
    }

    #[test]
    fn steps_count_from_the_first_sample_of_the_epoch() {
        let mut tracker = EpochSteps::default();
        for (second, steps) in [(27, 270), (28, 280), (29, 290)] {
            tracker.sample(Some(second / 3 * 3), &[steps]);
        }
        assert_eq!(tracker.since_start(&[300]), vec![30], "counted from the sample at the epoch's first second");
        // No epoch (a lone miner): steps since the run began.
        let mut tracker = EpochSteps::default();
        tracker.sample(None, &[5]);
        assert_eq!(tracker.since_start(&[12]), vec![12]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_resumed_run_counts_its_epochs_on_from_where_it_resumed() {
        // The validator resumed after epoch 3 and this run asks for 2 more: epoch 4 of 5.
        let metrics = Arc::new(Metrics::new());
        let v = neuron("v");
        metrics.epoch.get_or_create(&v).set(3);
        metrics.epoch_length_blocks.get_or_create(&v).set(10);
        let lines = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let sink = lines.clone();
        let settings = ProgressSettings {
            epochs: 2,
            block_time: Duration::from_secs(1),
            epoch_time_limit: None,
            every: Duration::ZERO,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let display = spawn_printing(
            Box::new(|| 0),
            metrics.clone(),
            Some("v".into()),
            vec![],
            settings,
            Duration::from_secs(1),
            Box::new(move |line| sink.lock().unwrap().push(line.to_string())),
            stop.clone(),
        );
        for _ in 0..3 {
            tokio::time::advance(Duration::from_secs(1)).await;
            tokio::task::yield_now().await;
        }
        metrics.epoch.get_or_create(&v).set(4);
        for _ in 0..3 {
            tokio::time::advance(Duration::from_secs(1)).await;
            tokio::task::yield_now().await;
        }
        stop.store(true, Ordering::Release);
        display.abort();
        let lines = lines.lock().unwrap().clone();
        assert!(lines.iter().any(|l| l.starts_with("epoch 4/5:")), "{lines:?}");
        assert!(lines.iter().any(|l| l.starts_with("epoch 5/5:")), "{lines:?}");
    }
}
