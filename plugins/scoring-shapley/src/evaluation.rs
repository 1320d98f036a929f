//! One step's evaluation on the GPU: the kernels, the buffers between them,
//! and the two submissions (everything per miner and per position first,
//! then, once the kept miners are known, everything per pair).

use neuron_plugin_api::{
    bytemuck::{Pod, Zeroable},
    shaders::{self, Reduction},
    Batch, Buffer, Gpu, Kernel, MinerResponse, PluginError, ReadToken, Readback, Result, ScoringBatch, TopKAnswers,
};

use crate::ShapleyConfig;

// Each kernel after the shared workgroup-sum prelude it calls (WGSL has no includes): the tree,
// or subgroup operations where the device has them (`Kernels::compile`'s `reduction`).
// The top-k kernels are plugin-api's; the synergy kernel is this crate's.
const SYNERGY: &str = include_str!("../shaders/shapley_synergy.wgsl");
/// Scratch the divergence pass takes per buffer (two of them), at most, by default.
pub(crate) const SCRATCH_BYTES: u64 = 32 << 20;
/// Threads per workgroup of the entry points that take one thread per item.
const THREADS: u32 = 64;

use neuron_plugin_api::shaders::TopKDivergenceParams as DivergenceParams;

#[repr(C)]
#[derive(Copy, Clone, Pod, Zeroable)]
#[bytemuck(crate = "neuron_plugin_api::bytemuck")]
struct SynergyParams {
    kept: u32,
    positions: u32,
    scaling_law_power: f32,
    synergy_scaling_law_power: f32,
    logits_divergence: f32,
    min_loss: f32,
    _pad: [u32; 2],
}

/// The compiled entry points.
pub(crate) struct Kernels {
    miner_loss: Kernel,
    position_logprobs: Kernel,
    hellinger: Kernel,
    position_spread: Kernel,
    miner_excess: Kernel,
    pair_losses: Kernel,
    shapley_values: Kernel,
}

impl Kernels {
    /// Compiles every kernel after `reduction`'s prelude ([`Reduction::for_gpu`] in the plugin).
    pub fn compile(gpu: &Gpu, reduction: Reduction) -> Result<Self> {
        let synergy = reduction.with_prelude(SYNERGY);
        let divergence = reduction.topk_divergence();
        Ok(Self {
            miner_loss: gpu.kernel(shaders::miner_loss(reduction))?,
            position_logprobs: gpu.kernel(shaders::position_logprobs(reduction))?,
            hellinger: gpu.compile(divergence, "hellinger")?,
            position_spread: gpu.compile(divergence, "position_spread")?,
            miner_excess: gpu.compile(divergence, "miner_excess")?,
            pair_losses: gpu.compile(&synergy, "pair_losses")?,
            shapley_values: gpu.compile(&synergy, "shapley_values")?,
        })
    }
}

/// What one step's evaluation found. Per-miner vectors are indexed by usable
/// answer (`rows[i]` is its index in the responses); per-kept vectors by kept
/// miner (`kept[i]` is an index into `rows`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Evaluation {
    /// Index in the responses of each usable answer.
    pub rows: Vec<usize>,
    /// Each usable answer's next-token cross-entropy (nats per token).
    pub losses: Vec<f32>,
    /// The kept miners (lowest loss first, at most `prune_len`), as indices
    /// into `rows`, in the responses' order.
    pub kept: Vec<usize>,
    /// Each kept miner's value: (base + synergy) / (1 + logits_divergence * excess).
    pub values: Vec<f32>,
    /// Each kept miner's own scaled parameter count.
    pub base: Vec<f32>,
    /// Each kept miner's share of the pairwise synergies.
    pub synergy: Vec<f32>,
    /// Intermediates, read back only when asked for (tests, diagnostics).
    pub trace: Option<Trace>,
}

/// Every intermediate the kernels computed, for checking them one by one.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Trace {
    /// The packed answers the kernels read.
    pub answers: TopKAnswers,
    /// log of the probability each usable answer gave the true token, `[miner][position]`.
    pub position_logp: Vec<f32>,
    /// The probability each spread over every token outside its top k, `[miner][position]`.
    pub position_rest: Vec<f32>,
    /// Hellinger distance to the average distribution, `[miner][position]` (empty when
    /// `logits_divergence` is 0).
    pub distances: Vec<f32>,
    /// Mean and standard deviation of the distances, per position (empty likewise).
    pub spread: Vec<f32>,
    /// Each usable answer's divergence excess (zeros when `logits_divergence` is 0).
    pub excess: Vec<f32>,
    /// Mixture loss of each kept pair, `[kept][kept]`; the diagonal is a miner's own loss.
    pub pair_loss: Vec<f32>,
}

/// Evaluates one step: usable answers packed, per-miner losses, divergence
/// excess, pruning, pair losses and Shapley values.
pub(crate) fn evaluate(
    gpu: &Gpu,
    kernels: &Kernels,
    config: &ShapleyConfig,
    batch: &ScoringBatch<'_>,
    responses: &[MinerResponse],
    scratch_bytes: u64,
    trace: bool,
) -> Result<Evaluation> {
    let answers = TopKAnswers::pack(batch, responses)?;
    let miners = answers.miners();
    if miners == 0 {
        return Ok(Evaluation { trace: trace.then(|| Trace { answers, ..Trace::default() }), ..Evaluation::default() });
    }
    let positions = batch.tokens.positions();
    let too_many = |what: &str| PluginError::input(format!("{what}; query fewer miners per step"));
    let miners_u32 = u32::try_from(miners).ok().filter(|&m| m <= u32::from(u16::MAX)).ok_or_else(|| {
        too_many(&format!("{miners} usable answers is more than the {} one step can score", u16::MAX))
    })?;
    if 2 * miners as u64 * u64::from(answers.k) >= u64::from(u32::MAX) {
        return Err(too_many(&format!("{miners} answers of {} tokens each are too many to compare", answers.k)));
    }

    let per_miner = |label: &str| gpu.zeros_f32(miners * positions, label);
    let ids = gpu.buffer_from(&answers.ids, "response ids")?;
    let logprobs = gpu.buffer_from(&answers.logprobs, "response logprobs")?;
    let targets = gpu.buffer_from(batch.targets.as_slice(), "targets")?;
    let ks = gpu.buffer_from(&answers.ks, "k per miner")?;
    let losses = gpu.zeros_f32(miners, "losses")?;
    let position_logp = per_miner("position log-probabilities")?;
    let position_rest = per_miner("position rest probabilities")?;
    let excess = gpu.zeros_f32(miners, "divergence excess")?;

    // Submission 1: per miner and per position.
    let mut b = gpu.batch();
    let ce = answers.params(batch, config.floor);
    b.dispatch_with(
        &kernels.miner_loss,
        &[ids.all(), logprobs.all(), targets.all(), ks.all(), losses.all()],
        [miners_u32, 1, 1],
        &ce,
    );
    b.dispatch_with(
        &kernels.position_logprobs,
        &[ids.all(), logprobs.all(), targets.all(), ks.all(), position_logp.all(), position_rest.all()],
        [groups(positions)?, miners_u32, 1],
        &ce,
    );
    let divergence = if config.logits_divergence > 0.0 {
        let bindings = DivergenceBindings {
            ids: &ids,
            logprobs: &logprobs,
            ks: &ks,
            position_rest: &position_rest,
            excess: &excess,
        };
        Some(record_divergence(gpu, kernels, &mut b, &answers, batch, &bindings, scratch_bytes)?)
    } else {
        None
    };
    let read_losses = b.read(losses.all());
    let traced = trace.then(|| {
        let divergence = divergence.as_ref().map(|d| (b.read(d.distances.all()), b.read(d.spread.all())));
        (b.read(position_logp.all()), b.read(position_rest.all()), divergence, b.read(excess.all()))
    });
    let first = b.submit()?;
    let miner_losses: Vec<f32> = first.get(read_losses)?;

    // The kept miners: lowest loss first (earlier answer on ties), then back in the responses' order.
    let mut kept: Vec<usize> = (0..miners).collect();
    kept.sort_by(|&a, &b| miner_losses[a].total_cmp(&miner_losses[b]).then(a.cmp(&b)));
    if config.prune_len > 0 {
        kept.truncate(config.prune_len as usize);
    }
    kept.sort_unstable();
    let n = kept.len();

    // Submission 2: per pair of kept miners, then per kept miner.
    let kept_rows: Vec<u32> = kept.iter().map(|&i| i as u32).collect();
    let kept_buf = gpu.buffer_from(&kept_rows, "kept miners")?;
    let pair_loss = gpu.zeros_f32(n * n, "pair losses")?;
    let values = gpu.zeros_f32(3 * n, "Shapley values")?;
    let sp = SynergyParams {
        kept: n as u32,
        positions: positions as u32,
        scaling_law_power: config.scaling_law_power,
        synergy_scaling_law_power: config.synergy_scaling_law_power,
        logits_divergence: config.logits_divergence,
        min_loss: config.min_loss,
        _pad: [0; 2],
    };
    let mut b = gpu.batch();
    b.dispatch_with(
        &kernels.pair_losses,
        &[position_logp.all(), kept_buf.all(), pair_loss.all()],
        [n as u32, n as u32, 1],
        &sp,
    );
    b.dispatch_with(
        &kernels.shapley_values,
        &[kept_buf.all(), pair_loss.all(), excess.all(), values.all()],
        [groups(n)?, 1, 1],
        &sp,
    );
    let read_values = b.read(values.all());
    let read_pairs = trace.then(|| b.read(pair_loss.all()));
    let second = b.submit()?;
    let v: Vec<f32> = second.get(read_values)?;

    let trace = match traced {
        None => None,
        Some((logp, rest, divergence, excess)) => {
            let (distances, spread) = match divergence {
                Some((d, s)) => (first.get(d)?, first.get(s)?),
                None => (Vec::new(), Vec::new()),
            };
            Some(Trace {
                answers: answers.clone(),
                position_logp: first.get(logp)?,
                position_rest: first.get(rest)?,
                distances,
                spread,
                excess: first.get(excess)?,
                pair_loss: read_optional(&second, read_pairs)?,
            })
        }
    };
    Ok(Evaluation {
        rows: answers.rows,
        losses: miner_losses,
        kept,
        values: v[..n].to_vec(),
        base: v[n..2 * n].to_vec(),
        synergy: v[2 * n..].to_vec(),
        trace,
    })
}

/// The buffers of submission 1 the divergence pass binds: what it reads, and `excess`, which it writes.
struct DivergenceBindings<'a> {
    ids: &'a Buffer,
    logprobs: &'a Buffer,
    ks: &'a Buffer,
    position_rest: &'a Buffer,
    excess: &'a Buffer,
}

/// The divergence pass's buffers, alive until its submission is done.
struct Divergence {
    distances: Buffer,
    spread: Buffer,
    _scratch: [Buffer; 2],
}

/// Records the Hellinger distances (in chunks of positions whose dense
/// vocabulary rows fit in `scratch_bytes`), their spread and each miner's
/// excess.
fn record_divergence(
    gpu: &Gpu,
    kernels: &Kernels,
    b: &mut Batch<'_>,
    answers: &TopKAnswers,
    batch: &ScoringBatch<'_>,
    inputs: &DivergenceBindings<'_>,
    scratch_bytes: u64,
) -> Result<Divergence> {
    let (miners, positions) = (answers.miners(), batch.tokens.positions());
    let limits = gpu.adapter().limits;
    let row_bytes = u64::from(batch.vocab_size) * 4;
    let scratch = scratch_bytes.min(limits.max_storage_buffer_binding_size);
    if row_bytes > scratch {
        return Err(PluginError::input(format!(
            "a vocabulary of {} tokens is too large for the divergence pass; set logits_divergence = 0",
            batch.vocab_size
        )));
    }
    let chunk = (scratch / row_bytes).min(positions as u64).min(u64::from(limits.max_compute_workgroups_per_dimension))
        as usize;
    let sqrt_mixture = gpu.buffer(chunk as u64 * row_bytes, "sqrt mixture")?;
    let stamps = gpu.buffer(chunk as u64 * row_bytes, "top-k stamps")?;
    let distances = gpu.zeros_f32(miners * positions, "Hellinger distances")?;
    let spread = gpu.zeros_f32(2 * positions, "distance spread")?;
    let all = DivergenceParams {
        miners: miners as u32,
        positions: positions as u32,
        k: answers.k,
        vocab: batch.vocab_size,
        first: 0,
        count: positions as u32,
        _pad: [0; 2],
    };
    for first in (0..positions).step_by(chunk) {
        let count = chunk.min(positions - first) as u32;
        b.dispatch_with(
            &kernels.hellinger,
            &[
                inputs.ids.all(),
                inputs.logprobs.all(),
                inputs.ks.all(),
                inputs.position_rest.all(),
                sqrt_mixture.all(),
                stamps.all(),
                distances.all(),
            ],
            [count, 1, 1],
            &DivergenceParams { first: first as u32, count, ..all },
        );
    }
    b.dispatch_with(&kernels.position_spread, &[distances.all(), spread.all()], [groups(positions)?, 1, 1], &all);
    b.dispatch_with(
        &kernels.miner_excess,
        &[distances.all(), spread.all(), inputs.excess.all()],
        [miners as u32, 1, 1],
        &all,
    );
    Ok(Divergence { distances, spread, _scratch: [sqrt_mixture, stamps] })
}

fn read_optional(readback: &Readback, token: Option<ReadToken>) -> Result<Vec<f32>> {
    token.map_or(Ok(Vec::new()), |t| readback.get(t))
}

/// Workgroups of [`THREADS`] covering `items`.
fn groups(items: usize) -> Result<u32> {
    u32::try_from(items.div_ceil(THREADS as usize))
        .map_err(|_| PluginError::input(format!("{items} items are too many for one dispatch")))
}
