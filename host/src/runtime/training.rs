//! The pieces of training shared by a miner's loop and `neuron-host train`: one optimizer step
//! on a batch, and a deterministic loss estimate over a dataset. Both call only the model
//! plugin's `zero_grad`/`loss`/`backward`/`step`, so any model plugin trains and is measured
//! the same way.

use neuron_plugin_api::TokenBatch;

use crate::{
    data::{Batch, BatchSampler, Dataset},
    error::{Error, Result},
    plugins::PluginModel,
};

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
    model.zero_grad()?;
    let loss = model.loss(TokenBatch::new(batch.batch, batch.seq, &batch.tokens), &batch.targets)?;
    model.backward()?;
    let stats = model.step(lr as f32)?;
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
