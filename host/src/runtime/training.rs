//! Training, once for every role: the [`Trainer`] the miner's loop, the validator's own model and
//! `neuron-host train` all run (data stream, target noise, learning-rate schedule, the step, and
//! the miner-format checkpoints), one optimizer step ([`train_step`]), and a deterministic loss
//! estimate ([`estimate_loss`]). Everything calls only the model plugin's
//! `zero_grad`/`loss`/`backward`/`step`, so any model plugin trains and is measured the same way.
//!
//! What a checkpoint restores and what the configuration decides (the one rule, stated in the
//! README): a checkpoint restores the weights, the optimizer, the global step and the position in
//! the data stream (its seed included); the configuration decides the learning-rate schedule
//! (followed from the restored step), the batch size and the sequence length (capped to the
//! model's context).

use std::time::Instant;

use neuron_plugin_api::TokenBatch;

use super::{
    checkpoints::{DataPosition, Finished, MinerCheckpoint, PluginIdentity, Saver},
    schedule::LrSchedule,
};
use crate::{
    checkpoint::pickle::Value,
    data::{Batch, BatchSampler, Dataset},
    error::{Error, Result},
    metrics::prometheus::{Metrics, NeuronLabel},
    plugins::PluginModel,
};

/// What a trainer is configured with; a checkpoint never overrides these.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainerSettings {
    pub schedule: LrSchedule,
    /// Sequences per batch.
    pub batch_size: u32,
    /// Tokens per sequence asked for; the trainer caps it to the model's context.
    pub sequence_length: u32,
    /// Seed of the data stream and of the target noise (a checkpoint's stream replaces it).
    pub seed: u64,
    /// Share of targets replaced by random tokens (a miner trained on poorer data; 0: none).
    pub noise: f64,
}

/// One trained step, as the loop reports it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainedStep {
    /// The global step this was (1 for the first step of a fresh run).
    pub step: u64,
    /// Mean cross-entropy of the batch before the update (nats per token).
    pub loss: f32,
    /// Global gradient norm before clipping.
    pub grad_norm: f32,
    /// The learning rate the step used.
    pub lr: f64,
    /// Tokens in the batch.
    pub tokens: u64,
    /// Seconds the plugin took (loss, backward, optimizer).
    pub seconds: f64,
}

impl TrainedStep {
    pub fn tokens_per_second(&self) -> f64 {
        self.tokens as f64 / self.seconds.max(1e-9)
    }

    /// The step's figures in the neuron's metric families.
    pub fn record(&self, metrics: &Metrics, label: &NeuronLabel) {
        metrics.loss.get_or_create(label).set(f64::from(self.loss));
        metrics.learning_rate.get_or_create(label).set(self.lr);
        metrics.tokens_per_second.get_or_create(label).set(self.tokens_per_second());
        metrics.step_duration.get_or_create(label).observe(self.seconds);
        metrics.global_step.get_or_create(label).set(self.step as i64);
    }
}

/// Miner-format checkpoints taken by a trainer: every `every` steps and when asked.
struct Checkpointing {
    saver: Saver,
    every: u64,
    identity: PluginIdentity,
}

/// A model's training: the data stream (a seeded sampler and the noise generator), the schedule,
/// the global step, and optionally its checkpoints. It does not own the model: the miner's model
/// sits behind a lock shared with the queries, the validator's and `train`'s are their own.
pub struct Trainer {
    neuron: String,
    settings: TrainerSettings,
    vocab: u32,
    sampler: BatchSampler,
    noise_state: u64,
    step: u64,
    checkpoints: Option<Checkpointing>,
}

impl Trainer {
    /// A fresh trainer at step 0 for a model of `vocab` ids and a context of `block_size` tokens
    /// (0: unknown, no cap). `key` names the configured sequence length in the warning a cap prints.
    pub fn new(neuron: &str, key: &str, mut settings: TrainerSettings, vocab: u32, block_size: u32) -> Self {
        settings.sequence_length = fit_sequence_length(neuron, key, settings.sequence_length, block_size);
        Self {
            neuron: neuron.to_string(),
            sampler: BatchSampler::new(settings.seed, settings.batch_size, settings.sequence_length),
            noise_state: initial_noise_state(settings.seed),
            vocab,
            settings,
            step: 0,
            checkpoints: None,
        }
    }

    /// Continues at `step` from a saved data position. The configured schedule, batch size and
    /// sequence length stay; when `saved` (the checkpoint's schedule) differs from the configured
    /// one, one line says which is used.
    pub fn resume(&mut self, step: u64, data: DataPosition, saved: Option<&LrSchedule>) {
        self.step = step;
        self.sampler = BatchSampler::resume(data.sampler, self.settings.batch_size, self.settings.sequence_length);
        self.noise_state = data.noise_state;
        if let Some(saved) = saved.filter(|s| **s != self.settings.schedule) {
            tracing::warn!(
                target: "neuron_host::training",
                "{}: the configured learning-rate schedule ({:?}) differs from the checkpoint's ({saved:?}); the configured one is followed from step {step}",
                self.neuron, self.settings.schedule
            );
        }
    }

    /// Takes miner-format checkpoints through `saver`: every `every` steps (0: only when asked).
    pub fn save_with(&mut self, saver: Saver, every: u64, identity: PluginIdentity) {
        self.checkpoints = Some(Checkpointing { saver, every, identity });
    }

    pub fn global_step(&self) -> u64 {
        self.step
    }

    pub fn settings(&self) -> &TrainerSettings {
        &self.settings
    }

    /// The tokens per sequence the trainer uses (the configured length, capped to the context).
    pub fn sequence_length(&self) -> u32 {
        self.settings.sequence_length
    }

    /// Where the data stream is (saved with a checkpoint).
    pub fn data_position(&self) -> DataPosition {
        DataPosition { sampler: self.sampler.state(), noise_state: self.noise_state }
    }

    /// The next batch of the stream, with the configured share of its targets replaced by noise.
    pub fn next_batch(&mut self, data: &Dataset) -> Result<Batch> {
        let mut batch = self.sampler.next_batch(data)?;
        add_noise(&mut batch.targets, self.settings.noise, self.vocab, &mut self.noise_state);
        Ok(batch)
    }

    /// One optimizer step of `model` on `batch` at the schedule's rate for the current step.
    pub fn train_on(&mut self, model: &mut PluginModel, batch: &Batch) -> Result<TrainedStep> {
        let lr = self.settings.schedule.lr_at(self.step);
        let started = Instant::now();
        let StepOutcome { loss, grad_norm } = train_step(model, batch, lr)?;
        let seconds = started.elapsed().as_secs_f64();
        self.step += 1;
        let tokens = u64::from(batch.batch) * u64::from(batch.seq);
        Ok(TrainedStep { step: self.step, loss, grad_norm, lr, tokens, seconds })
    }

    /// The model's state, the schedule, the step and the data position as a miner checkpoint's
    /// value (GPU buffers read back: call between steps).
    pub fn capture(&self, model: &mut PluginModel, identity: &PluginIdentity) -> Result<Value> {
        MinerCheckpoint::capture(model, identity, &self.settings.schedule, self.step, self.data_position())
    }

    /// Whether a save is due (the step is a multiple of the interval and not yet saved); when
    /// none is, finished saves move into the metrics. Needs no model, so a loop whose model sits
    /// behind a lock takes it only to save.
    pub fn save_due(&mut self) -> bool {
        let Some(c) = self.checkpoints.as_mut() else { return false };
        let due = c.every > 0 && self.step.is_multiple_of(c.every) && c.saver.last_requested != Some(self.step);
        if !due {
            c.saver.record();
        }
        due
    }

    /// Saves now unless this step was already requested. Returns the step requested.
    pub fn save_now(&mut self, model: &mut PluginModel) -> Option<u64> {
        let c = self.checkpoints.as_ref()?;
        if c.saver.last_requested == Some(self.step) {
            return None;
        }
        let captured = self.capture(model, &c.identity);
        let c = self.checkpoints.as_mut()?;
        c.saver.request(captured, self.step);
        Some(self.step)
    }

    /// The checkpoint writer, while the trainer saves.
    pub fn saver(&self) -> Option<&Saver> {
        self.checkpoints.as_ref().map(|c| &c.saver)
    }

    /// Waits for the queued save to reach the disk (a clean stop): what is on disk, and why the
    /// last save failed if one did.
    pub fn finish_saves(&mut self) -> Option<Finished> {
        Some(self.checkpoints.take()?.saver.finish())
    }
}

/// Where a fresh data stream of `seed` starts (a checkpoint made outside training, such as an
/// imported model, starts its miner there).
pub fn fresh_data_position(seed: u64) -> DataPosition {
    DataPosition { sampler: BatchSampler::new(seed, 1, 1).state(), noise_state: initial_noise_state(seed) }
}

/// The noise generator's first state for a stream seeded with `seed` (saved in checkpoints: the
/// derivation must never change).
fn initial_noise_state(seed: u64) -> u64 {
    seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1
}

/// Replaces a `noise` share of `targets` with random tokens (xorshift64: its state is saved in
/// miner checkpoints, so the generator must stay bit-for-bit the same).
pub fn add_noise(targets: &mut [u32], noise: f64, vocab: u32, state: &mut u64) {
    if noise <= 0.0 || vocab == 0 {
        return;
    }
    for t in targets.iter_mut() {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        if ((*state >> 11) as f64 / (1u64 << 53) as f64) < noise {
            *t = ((*state >> 32) % u64::from(vocab)) as u32;
        }
    }
}

/// The sequence length a neuron can use with a model of `block_size` positions: `requested`, or
/// `block_size` with one warning when the configured length (often the network preset's) is
/// longer than the model's context (the `tiny` preset has 16).
pub fn fit_sequence_length(neuron: &str, key: &str, requested: u32, block_size: u32) -> u32 {
    if block_size == 0 || requested <= block_size {
        return requested;
    }
    tracing::warn!(
        target: "neuron_host::training",
        "{neuron}: {key} = {requested} is longer than the model's context of {block_size} tokens; using {block_size} (set {key} to silence this)"
    );
    block_size
}

/// What one optimizer step did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepOutcome {
    /// Mean cross-entropy of the batch before the update (nats per token).
    pub loss: f32,
    /// Global gradient norm before clipping.
    pub grad_norm: f32,
}

/// One training step: zero the gradients, loss, backward, optimizer step at `lr`.
pub fn train_step(model: &mut PluginModel, batch: &Batch, lr: f64) -> Result<StepOutcome> {
    let (loss, stats) =
        model.train_step(TokenBatch::new(batch.batch, batch.seq, &batch.tokens), &batch.targets, lr as f32)?;
    Ok(StepOutcome { loss, grad_norm: stats.grad_norm })
}

/// Which windows of a dataset a loss estimate averages over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvalWindows {
    /// `batches` batches from a sampler seeded with `seed`, started afresh on every estimate
    /// (nanoGPT's `estimate_loss`): the same windows every time.
    Sampled { seed: u64, batches: u32 },
    /// Every token once: consecutive non-overlapping windows from the start of the data; the
    /// tokens after the last whole window are left out.
    Whole,
}

/// A loss estimate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    /// Mean cross-entropy in nats per predicted token.
    pub loss: f64,
    /// Tokens predicted.
    pub tokens: u64,
    /// Batches run.
    pub batches: u32,
}

impl Estimate {
    pub fn perplexity(&self) -> f64 {
        self.loss.exp()
    }
}

/// The model's mean cross-entropy over `windows` of `data`, in batches of `batch` sequences of
/// `seq` tokens. Leaves the model's weights and optimizer untouched; gradients are cleared.
pub fn estimate_loss(
    model: &mut PluginModel,
    data: &Dataset,
    windows: EvalWindows,
    batch: u32,
    seq: u32,
) -> Result<Estimate> {
    let mut sum = 0.0f64;
    let mut tokens = 0u64;
    let mut batches = 0u32;
    let mut run = |b: &Batch| -> Result<()> {
        let loss = model.loss(TokenBatch::new(b.batch, b.seq, &b.tokens), &b.targets)?;
        if !loss.is_finite() {
            return Err(Error::Data(format!(
                "the model's loss on {} is {loss}; the weights have diverged",
                data.source()
            )));
        }
        let n = u64::from(b.batch) * u64::from(b.seq);
        sum += f64::from(loss) * n as f64;
        tokens += n;
        batches += 1;
        Ok(())
    };
    match windows {
        EvalWindows::Sampled { seed, batches: count } => {
            let mut sampler = BatchSampler::new(seed, batch, seq);
            for _ in 0..count.max(1) {
                run(&sampler.next_batch(data)?)?;
            }
        }
        EvalWindows::Whole => {
            let seq_us = seq as usize;
            let windows = if data.len() > seq_us { (data.len() - 1) / seq_us } else { 0 };
            if windows == 0 {
                return Err(Error::Data(format!(
                    "{} holds {} tokens, fewer than one window of {} (sequence length + 1); use more data or a shorter sequence",
                    data.source(),
                    data.len(),
                    seq_us + 1
                )));
            }
            let mut w = 0;
            while w < windows {
                let rows = (windows - w).min(batch as usize);
                let mut b = Batch { batch: rows as u32, seq, tokens: vec![], targets: vec![] };
                for r in 0..rows {
                    let window = data.slice((w + r) * seq_us, seq_us + 1);
                    b.tokens.extend_from_slice(&window[..seq_us]);
                    b.targets.extend_from_slice(&window[1..]);
                }
                run(&b)?;
                w += rows;
            }
        }
    }
    model.zero_grad()?;
    Ok(Estimate { loss: sum / tokens.max(1) as f64, tokens, batches })
}
