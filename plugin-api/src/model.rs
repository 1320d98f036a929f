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
/// # The training contract
///
/// The host trains a model as `zero_grad`, `loss(batch, targets)`, `backward`,
/// `step(learning_rate)`, in that order, every step (the learning rate comes from the host's
/// schedule). So:
///
/// - [`loss`](Self::loss) runs the forward pass over the batch with targets and **keeps what
///   `backward` needs** (activations, the batch shape, the targets) until the next `loss` or
///   `forward` call; it returns the mean next-token cross-entropy in nats over all positions.
/// - [`backward`](Self::backward) computes the gradients of that mean loss with respect to every
///   parameter and **adds** them to the gradient buffers, which only `zero_grad` clears. It refers
///   to the most recent `loss`; before any `loss` it returns an error.
/// - [`step`](Self::step) applies the optimizer to the accumulated gradients; it does not clear them.
/// - `state_schema`/`export_state`/`import_state` with [`StateGroup::MODEL`] are the parameters
///   (PyTorch's `state_dict()` names), with [`StateGroup::OPTIMIZER`] the optimizer's state, with
///   [`StateGroup::GRADIENTS`] the accumulated gradients named like the parameters (export only:
///   the test kit's gradient check reads them; the export machinery refuses importing them, so
///   `import_state` never sees that group from the host).
///
/// `forward` never changes state a later `backward` uses for the model's parameters; two
/// `forward` calls with the same input give the same output.
///
/// An inference-only model implements `describe`, `forward` and `loss`, plus the state methods
/// for its weights; the defaults refuse `backward` and `step` as unsupported and hold no state.
pub trait ModelPlugin: Send + 'static {
    fn describe(&self) -> ModelDescription;
    /// Forward pass returning logits or top-k per position.
    fn forward(&mut self, batch: TokenBatch<'_>, request: OutputRequest) -> Result<ForwardOutput>;
    /// Forward pass and mean next-token cross-entropy (nats) against `targets`, keeping what
    /// `backward` needs.
    fn loss(&mut self, batch: TokenBatch<'_>, targets: &[u32]) -> Result<f32>;
    /// Gradients of the last `loss` call, added to the gradient buffers. Default: unsupported
    /// (an inference-only model).
    fn backward(&mut self) -> Result<()> {
        Err(PluginError::unsupported("this model is inference-only: it has no backward pass"))
    }
    /// One optimizer step with the host's learning rate. Default: unsupported.
    fn step(&mut self, learning_rate: f32) -> Result<StepStats> {
        let _ = learning_rate;
        Err(PluginError::unsupported("this model is inference-only: it has no optimizer"))
    }
    /// Clears the gradient buffers. Default: nothing to clear.
    fn zero_grad(&mut self) -> Result<()> {
        Ok(())
    }
    /// Names, dtypes and shapes of the state in `group`, without data. Default: none.
    fn state_schema(&self, group: StateGroup) -> Vec<TensorSpec> {
        let _ = group;
        Vec::new()
    }
    /// The state of `group`, in `state_schema`'s order. Default: none.
    fn export_state(&mut self, group: StateGroup) -> Result<Vec<Tensor>> {
        let _ = group;
        Ok(Vec::new())
    }
    /// Replaces the state of `group`; must check everything before changing anything. Default:
    /// accepts exactly what `state_schema` lists, which by default is nothing.
    fn import_state(&mut self, group: StateGroup, tensors: &[Tensor]) -> Result<()> {
        crate::check_state(&self.state_schema(group), tensors)?;
        if tensors.is_empty() {
            Ok(())
        } else {
            Err(PluginError::unsupported(format!("importing state group {}", group.0)))
        }
    }
}

/// A boxed model is a model: a plugin can pick its architecture from its configuration and
/// return `Box<dyn ModelPlugin>` from its constructor.
impl ModelPlugin for Box<dyn ModelPlugin> {
    fn describe(&self) -> ModelDescription {
        (**self).describe()
    }
    fn forward(&mut self, batch: TokenBatch<'_>, request: OutputRequest) -> Result<ForwardOutput> {
        (**self).forward(batch, request)
    }
    fn loss(&mut self, batch: TokenBatch<'_>, targets: &[u32]) -> Result<f32> {
        (**self).loss(batch, targets)
    }
    fn backward(&mut self) -> Result<()> {
        (**self).backward()
    }
    fn step(&mut self, learning_rate: f32) -> Result<StepStats> {
        (**self).step(learning_rate)
    }
    fn zero_grad(&mut self) -> Result<()> {
        (**self).zero_grad()
    }
    fn state_schema(&self, group: StateGroup) -> Vec<TensorSpec> {
        (**self).state_schema(group)
    }
    fn export_state(&mut self, group: StateGroup) -> Result<Vec<Tensor>> {
        (**self).export_state(group)
    }
    fn import_state(&mut self, group: StateGroup, tensors: &[Tensor]) -> Result<()> {
        (**self).import_state(group, tensors)
    }
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
        guard("import_state", || {
            if group == StateGroup::GRADIENTS {
                return Err(PluginError::unsupported("gradients are export-only; import MODEL and OPTIMIZER state"));
            }
            self.0.import_state(group, tensors.as_slice())
        })
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
