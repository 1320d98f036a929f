//! The template plugin: the smallest complete neuron-host plugin.
//!
//! A bigram language model (the next token's logits are one row of a
//! `vocab x vocab` table) whose forward pass, loss, gradient and SGD step are
//! WGSL kernels run through the host's compute context. Copy this crate to
//! start a plugin of your own: it depends only on `neuron-plugin-api`,
//! declares itself with `export_plugin!`, and its tests run it on a real GPU.

use neuron_plugin_api::{prelude::*, tracing};

const KERNELS: &str = include_str!("bigram.wgsl");
const WORKGROUP: u32 = 64;
/// The longest sequence accepted (a bigram looks at one token, but the kernels' grid is bounded).
const CONTEXT: u32 = 1024;

/// The plugin's declaration: the host reads it through the export below.
pub fn plugin() -> Plugin {
    Plugin::new("template", "Bigram language model: the smallest complete neuron-host plugin").model(Bigram::new)
}

export_plugin!(plugin);

/// The uniform block of every kernel in `bigram.wgsl` (same layout as `Params`).
#[repr(C)]
#[derive(Copy, Clone, Pod, Zeroable)]
#[bytemuck(crate = "neuron_plugin_api::bytemuck")]
struct Params {
    positions: u32,
    vocab: u32,
    lr: f32,
    _pad: u32,
}
// The fields once more, so each kernel's uniform block is checked against this struct when it is
// built (offsets and sizes come from the compiler).
uniform_layout!(Params { positions, vocab, lr, _pad });

struct Kernels {
    gather: Kernel,
    cross_entropy: Kernel,
    accumulate: Kernel,
    sgd: Kernel,
}

/// What `loss` keeps for `backward`.
struct Pending {
    positions: u32,
    tokens: Buffer,
    dlogits: Buffer,
}

pub struct Bigram {
    gpu: Gpu,
    vocab: u32,
    seed: u64,
    table: Buffer,
    grad: Buffer,
    kernels: Kernels,
    pending: Option<Pending>,
    steps: i64,
}

fn groups(threads: u32) -> [u32; 3] {
    [threads.div_ceil(WORKGROUP), 1, 1]
}

impl Bigram {
    pub fn new(gpu: Gpu, config: &str) -> Result<Self> {
        let mut cfg = PluginConfig::parse("template", config)?;
        let vocab: u32 = cfg.get("vocab_size", 256)?;
        let seed: u64 = cfg.get("seed", 0)?;
        cfg.finish()?;
        if !(2..=4096).contains(&vocab) {
            return Err(PluginError::config(format!("plugin template: vocab_size must be 2..=4096, got {vocab}")));
        }
        // Each kernel's storage bindings in binding order, and its uniform struct: checked against
        // the WGSL here, so a binding out of place is an error now rather than garbage later.
        let kernels = Kernels {
            gather: gpu.kernel(
                KernelDecl::new(KERNELS, "gather").read("tokens").write("table").write("logits").uniform::<Params>(),
            )?,
            cross_entropy: gpu.kernel(
                KernelDecl::new(KERNELS, "cross_entropy")
                    .write("logits")
                    .read("targets")
                    .write("losses")
                    .write("dlogits")
                    .uniform::<Params>(),
            )?,
            accumulate: gpu.kernel(
                KernelDecl::new(KERNELS, "accumulate")
                    .read("tokens")
                    .write("dlogits")
                    .write("grad")
                    .uniform::<Params>(),
            )?,
            sgd: gpu.kernel(KernelDecl::new(KERNELS, "sgd").write("table").write("grad").uniform::<Params>())?,
        };
        let cells = (vocab * vocab) as usize;
        let table = gpu.buffer_from(&init_table(cells, seed), "bigram.weight")?;
        let grad = gpu.zeros_f32(cells, "bigram.grad")?;
        tracing::info!(vocab, seed, "bigram model ready");
        Ok(Self { gpu, vocab, seed, table, grad, kernels, pending: None, steps: 0 })
    }

    fn params(&self, positions: u32, lr: f32) -> Params {
        Params { positions, vocab: self.vocab, lr, _pad: 0 }
    }

    fn check_batch(&self, batch: &TokenBatch<'_>) -> Result<()> {
        if batch.seq_len > CONTEXT {
            return Err(PluginError::input(format!("sequence of {} tokens; the context is {CONTEXT}", batch.seq_len)));
        }
        self.check_tokens(&batch.tokens)
    }

    fn check_tokens(&self, tokens: &[u32]) -> Result<()> {
        match tokens.iter().find(|&&t| t >= self.vocab) {
            Some(t) => Err(PluginError::input(format!("token id {t} is outside the vocabulary of {}", self.vocab))),
            None => Ok(()),
        }
    }
}

/// Small values in [-0.01, 0.01) from plugin-api's seeded generator: one table per seed, the
/// same on every machine.
fn init_table(cells: usize, seed: u64) -> Vec<f32> {
    let mut rng = neuron_plugin_api::rand::SplitMix64::new(seed);
    (0..cells).map(|_| (rng.unit() as f32 - 0.5) * 0.02).collect()
}

impl ModelPlugin for Bigram {
    fn describe(&self) -> ModelDescription {
        ModelDescription {
            architecture: "bigram".into(),
            vocab_size: self.vocab,
            block_size: CONTEXT,
            parameters: u64::from(self.vocab) * u64::from(self.vocab),
            tokenizer: "bytes".into(),
            config: format!("vocab_size = {}\nseed = {}\n", self.vocab, self.seed).into(),
        }
    }

    fn forward(&mut self, batch: TokenBatch<'_>, request: OutputRequest) -> Result<ForwardOutput> {
        self.check_batch(&batch)?;
        let positions = batch.positions() as u32;
        let tokens = self.gpu.buffer_from(&batch.tokens, "tokens")?;
        let logits = self.gpu.zeros_f32((positions * self.vocab) as usize, "logits")?;
        let mut b = self.gpu.batch();
        b.dispatch_with(
            &self.kernels.gather,
            &[tokens.all(), self.table.all(), logits.all()],
            groups(positions * self.vocab),
            &self.params(positions, 0.0),
        );
        let read = b.read(logits.all());
        let all: Vec<f32> = b.submit()?.get(read)?;
        ForwardOutput::from_full_logits(batch, self.vocab, &all, request)
    }

    fn loss(&mut self, batch: TokenBatch<'_>, targets: &[u32]) -> Result<f32> {
        self.check_batch(&batch)?;
        self.check_tokens(targets)?;
        let positions = batch.positions() as u32;
        let cells = (positions * self.vocab) as usize;
        let tokens = self.gpu.buffer_from(&batch.tokens, "tokens")?;
        let targets = self.gpu.buffer_from(targets, "targets")?;
        let logits = self.gpu.zeros_f32(cells, "logits")?;
        let dlogits = self.gpu.zeros_f32(cells, "dlogits")?;
        let losses = self.gpu.zeros_f32(positions as usize, "losses")?;
        let params = self.params(positions, 0.0);
        let mut b = self.gpu.batch();
        b.dispatch_with(
            &self.kernels.gather,
            &[tokens.all(), self.table.all(), logits.all()],
            groups(positions * self.vocab),
            &params,
        );
        b.dispatch_with(
            &self.kernels.cross_entropy,
            &[logits.all(), targets.all(), losses.all(), dlogits.all()],
            groups(positions),
            &params,
        );
        let read = b.read(losses.all());
        let per_position: Vec<f32> = b.submit()?.get(read)?;
        self.pending = Some(Pending { positions, tokens, dlogits });
        Ok(per_position.iter().map(|&l| f64::from(l)).sum::<f64>() as f32 / positions as f32)
    }

    fn backward(&mut self) -> Result<()> {
        let Some(p) = self.pending.take() else {
            return Err(PluginError::input("backward called without a preceding loss"));
        };
        let mut b = self.gpu.batch();
        b.dispatch_with(
            &self.kernels.accumulate,
            &[p.tokens.all(), p.dlogits.all(), self.grad.all()],
            groups(self.vocab * self.vocab),
            &self.params(p.positions, 0.0),
        );
        b.submit()?;
        Ok(())
    }

    fn step(&mut self, learning_rate: f32) -> Result<StepStats> {
        let grad: Vec<f32> = self.gpu.read(&self.grad)?;
        let grad_norm = grad.iter().map(|&g| f64::from(g) * f64::from(g)).sum::<f64>().sqrt() as f32;
        let mut b = self.gpu.batch();
        b.dispatch_with(
            &self.kernels.sgd,
            &[self.table.all(), self.grad.all()],
            groups(self.vocab * self.vocab),
            &self.params(0, learning_rate),
        );
        b.submit()?;
        self.steps += 1;
        Ok(StepStats { grad_norm, clip_scale: 1.0 })
    }

    fn zero_grad(&mut self) -> Result<()> {
        let mut b = self.gpu.batch();
        b.clear(self.grad.all());
        b.submit()?;
        Ok(())
    }

    fn state_schema(&self, group: StateGroup) -> Vec<TensorSpec> {
        let v = u64::from(self.vocab);
        match group {
            StateGroup::MODEL => vec![TensorSpec::new("bigram.weight", DType::F32, &[v, v])],
            StateGroup::OPTIMIZER => vec![TensorSpec::new("step", DType::I64, &[])],
            StateGroup::GRADIENTS => vec![TensorSpec::new("bigram.weight", DType::F32, &[v, v])],
            _ => Vec::new(),
        }
    }

    fn export_state(&mut self, group: StateGroup) -> Result<Vec<Tensor>> {
        let v = u64::from(self.vocab);
        match group {
            StateGroup::MODEL => Ok(vec![Tensor::f32("bigram.weight", &[v, v], &self.gpu.read::<f32>(&self.table)?)]),
            StateGroup::OPTIMIZER => Ok(vec![Tensor::i64_scalar("step", self.steps)]),
            // What the test kit's gradient check compares with finite differences.
            StateGroup::GRADIENTS => {
                Ok(vec![Tensor::f32("bigram.weight", &[v, v], &self.gpu.read::<f32>(&self.grad)?)])
            }
            other => Err(PluginError::unsupported(format!("state group {}", other.0))),
        }
    }

    fn import_state(&mut self, group: StateGroup, tensors: &[Tensor]) -> Result<()> {
        neuron_plugin_api::check_state(&self.state_schema(group), tensors)?;
        match group {
            StateGroup::MODEL => self.gpu.write(&self.table, 0, &tensors[0].to_f32()?),
            StateGroup::OPTIMIZER => {
                self.steps = tensors[0].to_i64_scalar()?;
                Ok(())
            }
            other => Err(PluginError::unsupported(format!("state group {}", other.0))),
        }
    }
}
