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
    time::{Duration, Instant},
};

use crate::{
    config::Config,
    metrics::prometheus::{neuron, Metrics},
};

/// What the progress display needs beyond the metrics.
pub struct ProgressSettings {
    /// Epochs the run stops after (0: until stopped).
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
    tokio::spawn(async move {
        let period = if terminal { Duration::from_secs(1) } else { settings.every };
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let validator = validator.map(|v| neuron(&v));
        // The epoch start block last seen, when it was seen, and each neuron's step then.
        let mut epoch_start: Option<(i64, Instant, Vec<i64>)> = None;
        while !stop.load(Ordering::Acquire) {
            ticker.tick().await;
            let steps: Vec<i64> = neurons.iter().map(|n| metrics.global_step.get_or_create(&neuron(n)).get()).collect();
            let (mut progress, start_block) = match &validator {
                Some(v) => {
                    let start_block = metrics.epoch_start_block.get_or_create(v).get();
                    let blocks = metrics.epoch_length_blocks.get_or_create(v).get().max(0) as u64;
                    let epoch = metrics.epoch.get_or_create(v).get().max(0) as u64 + 1;
                    (
                        EpochProgress { has_epoch: true, epoch, epochs: settings.epochs, blocks, ..Default::default() },
                        start_block,
                    )
                }
                None => (EpochProgress::default(), 0),
            };
            if progress.blocks > 0 && epoch_start.as_ref().is_none_or(|(b, _, _)| *b != start_block) {
                epoch_start = Some((start_block, Instant::now(), steps.clone()));
            }
            if progress.blocks > 0 {
                progress.blocks_done = block().saturating_sub(start_block.max(0) as u64).min(progress.blocks);
                progress.left = settings.block_time * (progress.blocks - progress.blocks_done) as u32;
                if let (Some(limit), Some((_, since, _))) = (settings.epoch_time_limit, &epoch_start) {
                    progress.left = progress.left.min(limit.saturating_sub(since.elapsed()));
                }
            }
            progress.neurons = neurons
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    let at_start = epoch_start.as_ref().map_or(0, |(_, _, s)| s[i]);
                    let loss = metrics.loss.get_or_create(&neuron(name)).get();
                    (name.clone(), (steps[i] - at_start).max(0) as u64, (loss > 0.0).then_some(loss))
                })
                .collect();
            let line = progress.line();
            if terminal {
                eprint!("\r\x1b[2K{line}");
            } else {
                tracing::info!(target: "neuron_host::progress", "{line}");
            }
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
}
