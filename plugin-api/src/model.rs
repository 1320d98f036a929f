//! Models: what a miner trains and serves, and what a validator trains on the
//! batches it scores.

use abi_stable::{
    sabi_trait,
    sabi_trait::TD_Opaque,
    std_types::{RBox, RResult, RSlice, RString, RVec},
    StableAbi,
};

use crate::{
    guard::guard, ForwardOutput, OutputRequest, PluginError, Result, StateGroup, StepStats, Tensor, TensorSpec,
    TokenBatch,
};

/// What a model says about itself.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct ModelDescription {
    /// Architecture name, e.g. "gpt".
    pub architecture: RString,
    pub vocab_size: u32,
    /// Longest sequence the model accepts.
    pub block_size: u32,
    /// Number of trainable parameters.
    pub parameters: u64,
    /// Tokenizer the model expects: "bytes" (ids 0..256 are bytes) or "gpt2" (r50k BPE).
    pub tokenizer: RString,
    /// The effective configuration (presets expanded), as TOML; saved in checkpoints.
    pub config: RString,
}

/// The ABI form of a model, called by the host. Plugin authors implement
/// [`ModelPlugin`] instead; the export machinery adapts it (catching panics).
#[sabi_trait]
pub trait Model: Send {
    fn describe(&self) -> RResult<ModelDescription, PluginError>;
    fn forward(&mut self, batch: TokenBatch<'_>, request: OutputRequest) -> RResult<ForwardOutput, PluginError>;
    fn loss(&mut self, batch: TokenBatch<'_>, targets: RSlice<'_, u32>) -> RResult<f32, PluginError>;
    fn backward(&mut self) -> RResult<(), PluginError>;
    fn step(&mut self, learning_rate: f32) -> RResult<StepStats, PluginError>;
    fn zero_grad(&mut self) -> RResult<(), PluginError>;
    fn state_schema(&self, group: StateGroup) -> RResult<RVec<TensorSpec>, PluginError>;
    fn export_state(&mut self, group: StateGroup) -> RResult<RVec<Tensor>, PluginError>;
    #[sabi(last_prefix_field)]
    fn import_state(&mut self, group: StateGroup, tensors: RSlice<'_, Tensor>) -> RResult<(), PluginError>;
}

/// A model as it crosses the boundary.
pub type ModelBox = Model_TO<'static, RBox<()>>;

/// What a model plugin implements.
///
/// The host drives training as: `zero_grad`, `loss` (forward over the batch
/// with targets, keeping what backward needs), `backward`, `step(lr)` with the
/// learning rate from the host's schedule.
pub trait ModelPlugin: Send + 'static {
    fn describe(&self) -> ModelDescription;
    /// Forward pass returning logits or top-k per position.
    fn forward(&mut self, batch: TokenBatch<'_>, request: OutputRequest) -> Result<ForwardOutput>;
    /// Forward pass and mean next-token cross-entropy (nats) against `targets`.
    fn loss(&mut self, batch: TokenBatch<'_>, targets: &[u32]) -> Result<f32>;
    /// Gradients of the last `loss` call, accumulated into the gradient buffers.
    fn backward(&mut self) -> Result<()>;
    /// One optimizer step with the host's learning rate.
    fn step(&mut self, learning_rate: f32) -> Result<StepStats>;
    fn zero_grad(&mut self) -> Result<()>;
    /// Names, dtypes and shapes of the state in `group`, without data.
    fn state_schema(&self, group: StateGroup) -> Vec<TensorSpec>;
    fn export_state(&mut self, group: StateGroup) -> Result<Vec<Tensor>>;
    /// Replaces the state of `group`; must check everything before changing anything.
    fn import_state(&mut self, group: StateGroup, tensors: &[Tensor]) -> Result<()>;
}

struct ModelAdapter(Box<dyn ModelPlugin>);

impl Model for ModelAdapter {
    fn describe(&self) -> RResult<ModelDescription, PluginError> {
        guard("describe", || Ok(self.0.describe()))
    }
    fn forward(&mut self, batch: TokenBatch<'_>, request: OutputRequest) -> RResult<ForwardOutput, PluginError> {
        guard("forward", || {
            batch.check()?;
            self.0.forward(batch, request)
        })
    }
    fn loss(&mut self, batch: TokenBatch<'_>, targets: RSlice<'_, u32>) -> RResult<f32, PluginError> {
        guard("loss", || {
            batch.check()?;
            if targets.len() != batch.positions() {
                return Err(PluginError::input(format!(
                    "{} targets for {} positions",
                    targets.len(),
                    batch.positions()
                )));
            }
            self.0.loss(batch, targets.as_slice())
        })
    }
    fn backward(&mut self) -> RResult<(), PluginError> {
        guard("backward", || self.0.backward())
    }
    fn step(&mut self, learning_rate: f32) -> RResult<StepStats, PluginError> {
        guard("step", || {
            if !learning_rate.is_finite() || learning_rate < 0.0 {
                return Err(PluginError::input(format!(
                    "learning rate {learning_rate} is not a finite non-negative number"
                )));
            }
            self.0.step(learning_rate)
        })
    }
    fn zero_grad(&mut self) -> RResult<(), PluginError> {
        guard("zero_grad", || self.0.zero_grad())
    }
    fn state_schema(&self, group: StateGroup) -> RResult<RVec<TensorSpec>, PluginError> {
        guard("state_schema", || Ok(self.0.state_schema(group).into()))
    }
    fn export_state(&mut self, group: StateGroup) -> RResult<RVec<Tensor>, PluginError> {
        guard("export_state", || self.0.export_state(group).map(RVec::from))
    }
    fn import_state(&mut self, group: StateGroup, tensors: RSlice<'_, Tensor>) -> RResult<(), PluginError> {
        guard("import_state", || self.0.import_state(group, tensors.as_slice()))
    }
}

/// Wraps an author's model into its ABI form. The export macro does this; the
/// host's in-process tests may call it directly.
pub fn model_box(model: Box<dyn ModelPlugin>) -> ModelBox {
    Model_TO::from_value(ModelAdapter(model), TD_Opaque)
}

/// The `k` largest logits of one row as (ids, log-softmax values), best first;
/// ties go to the lower id. A CPU helper for plugins that compute top-k on the host.
pub fn top_k_logprobs(logits: &[f32], k: usize) -> (Vec<u32>, Vec<f32>) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let log_z = max + logits.iter().map(|&l| ((l - max) as f64).exp()).sum::<f64>().ln() as f32;
    let mut order: Vec<u32> = (0..logits.len() as u32).collect();
    let k = k.min(logits.len());
    order.sort_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]).then(a.cmp(&b)));
    order.truncate(k);
    let logprobs = order.iter().map(|&i| logits[i as usize] - log_z).collect();
    (order, logprobs)
}
