//! The GPT model: buffers, and the forward, backward and optimizer passes recorded as batches of
//! kernel dispatches. The CPU validates input, uploads token ids, builds the embedding
//! backward's index, and reads back only scalars (loss, gradient norm) or what the caller asked
//! for (logits, or top-k entries computed on the GPU).

use neuron_plugin_api::{
    shaders::Reduction, tracing, Batch, Buffer, DType, ForwardOutput, Gpu, ModelDescription, ModelPlugin, OutputKind,
    OutputRequest, PluginError, Positions, Result, StateGroup, StepStats, Tensor, TensorSpec, TokenBatch,
};

use crate::{
    config::GptConfig,
    kernels::{
        AdamWParams, AttentionParams, CrossEntropyParams, EmbeddingParams, Form, Kernels, LayerNormParams, View,
        ATTENTION_BLOCK, SUMSQ_SEGMENT,
    },
    params::{Layout, ParamTensor, Piece},
};

/// Parameters, gradients and both Adam moments of one shard of the packed parameters.
struct Shard {
    len: usize,
    decay_len: usize,
    params: Buffer,
    grads: Buffer,
    m: Buffer,
    v: Buffer,
    /// The f16 copy of `params` that the matmuls read with `weights_f16` (refreshed after every
    /// change of `params`); `None` without it.
    half: Option<Buffer>,
}

/// What one transformer block keeps from the forward pass for the backward pass.
struct BlockActs {
    ln1: Buffer,
    ln1_mean: Buffer,
    ln1_rstd: Buffer,
    qkv: Buffer,
    atty: Buffer,
    lse: Buffer,
    resid_mid: Buffer,
    ln2: Buffer,
    ln2_mean: Buffer,
    ln2_rstd: Buffer,
    fch: Buffer,
    fcg: Buffer,
}

/// Gradient scratch buffers of the backward pass.
struct GradActs {
    d_resid: Buffer,
    d_ln: Buffer,
    d_atty: Buffer,
    d_qkv: Buffer,
    d_fc: Buffer,
    dd: Buffer,
    /// The embedding backward's index: (token, first, end, 0) per distinct token, then positions
    /// grouped by token.
    groups: Buffer,
    order: Buffer,
}

/// Activations for one batch shape.
struct Acts {
    batch: u32,
    seq: u32,
    tokens: Buffer,
    targets: Buffer,
    /// Input of block l at l; the final block's output last.
    resid: Vec<Buffer>,
    blocks: Vec<BlockActs>,
    proj: Buffer,
    lnf: Buffer,
    lnf_mean: Buffer,
    lnf_rstd: Buffer,
    /// Final LayerNorm output of the last position of each sequence.
    last: Buffer,
    /// Logits in chunks of `chunk_rows` rows, each within one storage binding.
    logits: Vec<Buffer>,
    chunk_rows: u32,
    losses: Buffer,
    grads: Option<GradActs>,
}

impl Acts {
    fn positions(&self) -> u32 {
        self.batch * self.seq
    }
}

/// What `loss` leaves for `backward`: the embedding backward's dispatch ranges, one per piece of
/// the token embedding, as (piece, first group, groups).
struct Pending {
    group_ranges: Vec<(usize, u32, u32)>,
}

/// Options that are not configuration: for tests that need a small storage-binding limit.
#[derive(Clone, Debug, Default)]
pub struct GptOptions {
    /// Largest parameter shard and logits chunk in bytes (default, and at most: the adapter's
    /// storage-binding limit). Small values exercise the split paths on small models.
    pub max_binding_bytes: Option<u64>,
}

pub struct Gpt {
    gpu: Gpu,
    cfg: GptConfig,
    k: Kernels,
    layout: Layout,
    shards: Vec<Shard>,
    /// The gradient norm's partial sums, then (at the end) nothing else.
    partials: Buffer,
    /// [0]: squared gradient norm, [1]: mean loss.
    scalars: Buffer,
    /// Largest number of f32s one binding may hold.
    max_elems: usize,
    /// Largest number of f32s in a parameter shard or a logits chunk (`max_elems` unless a test
    /// asks for less).
    split_elems: usize,
    train: Option<Acts>,
    infer: Option<Acts>,
    pending: Option<Pending>,
    step: i64,
}

fn f32s(n: usize) -> u64 {
    (n.max(1) * 4) as u64
}

impl Gpt {
    pub fn new(gpu: Gpu, config: &str) -> Result<Self> {
        Self::with_options(gpu, config, GptOptions::default())
    }

    pub fn with_options(gpu: Gpu, config: &str, options: GptOptions) -> Result<Self> {
        let cfg = GptConfig::parse(config)?;
        let adapter = gpu.adapter();
        let limits = &adapter.limits;
        let binding = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
        let max_elems = (binding / 4).min(u64::from(u32::MAX)) as usize;
        let split_elems = options.max_binding_bytes.map_or(max_elems, |b| (b as usize / 4).min(max_elems));
        let layout = Layout::new(&cfg, split_elems)?;
        let reduction = if cfg.subgroups { Reduction::for_gpu(&gpu) } else { Reduction::Tree };
        let mut k = Kernels::new(&gpu, reduction)?;
        let half_weights = cfg.weights_f16 && {
            let offered = adapter.has_feature("SHADER_F16");
            if !offered {
                tracing::warn!(
                    "weights_f16 = true, but adapter {} has no SHADER_F16: the matmuls read the f32 weights",
                    adapter.name
                );
            }
            offered
        };
        if half_weights {
            k.enable_half_weights(&gpu)?;
        }
        let mut shards = Vec::new();
        for (i, values) in layout.initial_values(cfg.seed).into_iter().enumerate() {
            let n = values.len();
            let params = gpu.buffer(f32s(n), &format!("gpt.params.{i}"))?;
            gpu.write(&params, 0, &values)?;
            shards.push(Shard {
                len: n,
                decay_len: layout.shard_decay_len[i],
                params,
                grads: gpu.buffer(f32s(n), &format!("gpt.grads.{i}"))?,
                m: gpu.buffer(f32s(n), &format!("gpt.exp_avg.{i}"))?,
                v: gpu.buffer(f32s(n), &format!("gpt.exp_avg_sq.{i}"))?,
                half: match half_weights {
                    // f16 elements, padded to whole 4-byte words.
                    true => {
                        Some(gpu.buffer((n.max(1) * 2).next_multiple_of(4) as u64, &format!("gpt.params_f16.{i}"))?)
                    }
                    false => None,
                },
            });
        }
        let partial_count: u32 = shards.iter().map(|s| (s.len as u32).div_ceil(SUMSQ_SEGMENT)).sum();
        let partials = gpu.zeros_f32(partial_count as usize, "gpt.norm_partials")?;
        let scalars = gpu.zeros_f32(4, "gpt.scalars")?;
        tracing::info!(
            preset = cfg.preset.as_str(),
            layers = cfg.n_layer,
            width = cfg.n_embd,
            parameters = layout.parameters(),
            shards = shards.len(),
            reductions = ?reduction,
            weights = if half_weights { "f16 copy for the matmuls, f32 master" } else { "f32" },
            "gpt model ready"
        );
        let model = Self {
            gpu,
            cfg,
            k,
            layout,
            shards,
            partials,
            scalars,
            max_elems,
            split_elems,
            train: None,
            infer: None,
            pending: None,
            step: 0,
        };
        model.refresh_half_weights()?;
        Ok(model)
    }

    /// Records the refresh of every shard's f16 copy from its f32 weights (nothing without
    /// `weights_f16`).
    fn record_half_weights(&self, b: &mut Batch<'_>) {
        for s in &self.shards {
            if let Some(half) = &s.half {
                self.k.to_f16(b, s.params.all(), half.all(), 0, s.len as u32);
            }
        }
    }

    fn refresh_half_weights(&self) -> Result<()> {
        if self.shards.iter().any(|s| s.half.is_some()) {
            let mut b = self.gpu.batch();
            self.record_half_weights(&mut b);
            b.submit()?;
        }
        Ok(())
    }

    /// C (+)= op(A) W-piece, where the weights are the `p` piece of a tensor with rows of `inp`:
    /// from their f16 copy with `weights_f16`, else from the f32 weights.
    #[allow(clippy::too_many_arguments)]
    fn weight_matmul(
        &self,
        b: &mut Batch<'_>,
        form: Form,
        a: View,
        p: &Piece,
        inp: u32,
        c: View,
        mnk: [u32; 3],
        accumulate: bool,
        bias: Option<View>,
    ) {
        let shard = &self.shards[p.shard];
        match (&self.k.half, &shard.half) {
            (Some(h), Some(x16)) => {
                let wv = View::new(x16.all(), p.offset, inp);
                self.k.matmul_half_b(h, b, form, a, wv, c, mnk, accumulate, bias)
            }
            _ => self.k.matmul(b, form, a, View::new(shard.params.all(), p.offset, inp), c, mnk, accumulate, bias),
        }
    }

    /// Whether the matmuls read an f16 copy of the weights (`weights_f16` on a device with
    /// SHADER_F16).
    pub fn weights_f16(&self) -> bool {
        self.k.half.is_some()
    }

    pub fn config(&self) -> &GptConfig {
        &self.cfg
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// The accumulated gradients, named and shaped like the parameters (for tests and tools).
    pub fn gradients(&mut self) -> Result<Vec<Tensor>> {
        self.read_tensors(|s| &s.grads, "")
    }

    /// Bytes of parameters, gradients and Adam moments (4 copies of every parameter), and of the
    /// f16 copy of the weights with `weights_f16`.
    pub fn state_bytes(&self) -> u64 {
        self.shards.iter().map(|s| 16 * s.len as u64 + s.half.as_ref().map_or(0, |h| h.size())).sum()
    }

    fn tensor(&self, id: usize) -> &ParamTensor {
        &self.layout.tensors[id]
    }

    /// A single-piece parameter tensor as a view with row length `ld`.
    fn param_view(&self, id: usize, ld: u32) -> View {
        let (s, off) = self.tensor(id).at();
        View::new(self.shards[s].params.all(), off, ld)
    }

    fn grad_view(&self, id: usize, ld: u32) -> View {
        let (s, off) = self.tensor(id).at();
        View::new(self.shards[s].grads.all(), off, ld)
    }

    // ---- checks -------------------------------------------------------------------------------

    fn check_ids(&self, ids: &[u32], what: &str) -> Result<()> {
        match ids.iter().find(|&&t| t >= self.cfg.vocab_size) {
            Some(t) => Err(PluginError::input(format!(
                "{what} id {t} is outside the vocabulary of {}; tokenize with the model's tokenizer ({})",
                self.cfg.vocab_size, self.cfg.tokenizer
            ))),
            None => Ok(()),
        }
    }

    fn check_shape(&self, batch: &TokenBatch<'_>) -> Result<()> {
        if batch.seq_len > self.cfg.block_size {
            return Err(PluginError::input(format!(
                "sequence length {} exceeds the model's block_size {}; send at most {} tokens per sequence",
                batch.seq_len, self.cfg.block_size, self.cfg.block_size
            )));
        }
        let positions = batch.positions() as u64;
        let widest = positions * 4 * u64::from(self.cfg.n_embd);
        if positions > u64::from(self.k.max_groups) || widest > self.max_elems as u64 {
            return Err(PluginError::input(format!(
                "a batch of {positions} positions is too large for this adapter (an activation of {} bytes, at most {} per binding); send fewer sequences per call",
                widest * 4,
                self.max_elems * 4
            )));
        }
        Ok(())
    }

    // ---- buffers ------------------------------------------------------------------------------

    fn new_acts(&self, batch: u32, seq: u32, training: bool) -> Result<Acts> {
        let g = &self.gpu;
        let (bt, c, v) = (batch as usize * seq as usize, self.cfg.n_embd as usize, self.cfg.vocab_size as usize);
        let bht = batch as usize * self.cfg.n_head as usize * seq as usize;
        let buf = |n: usize, name: &str| g.buffer(f32s(n), name);
        let mut blocks = Vec::new();
        for _ in 0..self.cfg.n_layer {
            blocks.push(BlockActs {
                ln1: buf(bt * c, "gpt.ln1")?,
                ln1_mean: buf(bt, "gpt.ln1_mean")?,
                ln1_rstd: buf(bt, "gpt.ln1_rstd")?,
                qkv: buf(bt * 3 * c, "gpt.qkv")?,
                atty: buf(bt * c, "gpt.atty")?,
                lse: buf(bht, "gpt.lse")?,
                resid_mid: buf(bt * c, "gpt.resid_mid")?,
                ln2: buf(bt * c, "gpt.ln2")?,
                ln2_mean: buf(bt, "gpt.ln2_mean")?,
                ln2_rstd: buf(bt, "gpt.ln2_rstd")?,
                fch: buf(bt * 4 * c, "gpt.fch")?,
                fcg: buf(bt * 4 * c, "gpt.fcg")?,
            });
        }
        let chunk_rows = (self.split_elems / v).clamp(1, bt).min(self.k.max_groups as usize);
        let mut logits = Vec::new();
        let mut row = 0;
        while row < bt {
            let rows = chunk_rows.min(bt - row);
            logits.push(buf(rows * v, "gpt.logits")?);
            row += rows;
        }
        let grads = if training {
            Some(GradActs {
                d_resid: buf(bt * c, "gpt.d_resid")?,
                d_ln: buf(bt * c, "gpt.d_ln")?,
                d_atty: buf(bt * c, "gpt.d_atty")?,
                d_qkv: buf(bt * 3 * c, "gpt.d_qkv")?,
                d_fc: buf(bt * 4 * c, "gpt.d_fc")?,
                dd: buf(bht, "gpt.attention_dd")?,
                groups: g.buffer((bt * 16) as u64, "gpt.embedding_groups")?,
                order: g.buffer((bt * 4) as u64, "gpt.embedding_order")?,
            })
        } else {
            None
        };
        Ok(Acts {
            batch,
            seq,
            tokens: g.buffer((bt * 4) as u64, "gpt.tokens")?,
            targets: g.buffer((bt * 4) as u64, "gpt.targets")?,
            resid: (0..=self.cfg.n_layer).map(|_| buf(bt * c, "gpt.resid")).collect::<Result<_>>()?,
            blocks,
            proj: buf(bt * c, "gpt.proj")?,
            lnf: buf(bt * c, "gpt.lnf")?,
            lnf_mean: buf(bt, "gpt.lnf_mean")?,
            lnf_rstd: buf(bt, "gpt.lnf_rstd")?,
            last: buf(batch as usize * c, "gpt.last")?,
            logits,
            chunk_rows: chunk_rows as u32,
            losses: buf(bt, "gpt.losses")?,
            grads,
        })
    }

    /// The activation set for `training` (kept separate, so that serving a forward pass between
    /// `loss` and `backward` never disturbs what backward needs), reallocated when the shape changes.
    fn acts(&mut self, batch: u32, seq: u32, training: bool) -> Result<()> {
        let slot = if training { &self.train } else { &self.infer };
        if slot.as_ref().is_some_and(|a| a.batch == batch && a.seq == seq) {
            return Ok(());
        }
        // Free the old set before allocating the new one.
        if training {
            self.train = None;
            self.pending = None;
        } else {
            self.infer = None;
        }
        let acts = self.new_acts(batch, seq, training)?;
        if training {
            self.train = Some(acts);
        } else {
            self.infer = Some(acts);
        }
        Ok(())
    }

    // ---- recording ----------------------------------------------------------------------------

    /// y[rows, out] = x[rows, in] W^T + b over every piece of W.
    fn linear(&self, b: &mut Batch<'_>, x: View, y: View, rows: u32, w: usize, bias: Option<usize>) {
        let t = self.tensor(w);
        let inp = t.row_len() as u32;
        for p in &t.pieces {
            let bv = bias.map(|id| self.param_view(id, 0).at(0, p.row_start));
            self.weight_matmul(b, Form::Nt, x, p, inp, y.at(0, p.row_start), [rows, p.rows, inp], false, bv);
        }
    }

    /// dx = dy W (when asked), dW += dy^T x, db += column sums of dy, over every piece of W.
    #[allow(clippy::too_many_arguments)]
    fn linear_backward(
        &self,
        b: &mut Batch<'_>,
        x: View,
        dy: View,
        dx: Option<View>,
        rows: u32,
        w: usize,
        bias: Option<usize>,
    ) {
        let t = self.tensor(w);
        let inp = t.row_len() as u32;
        for (i, p) in t.pieces.iter().enumerate() {
            let dy_cols = dy.at(0, p.row_start);
            if let Some(dx) = dx {
                self.weight_matmul(b, Form::Nn, dy_cols, p, inp, dx, [rows, inp, p.rows], i > 0, None);
            }
            let gv = View::new(self.shards[p.shard].grads.all(), p.offset, inp);
            self.k.matmul(b, Form::Tn, dy_cols, x, gv, [p.rows, inp, rows], true, None);
        }
        if let Some(id) = bias {
            self.k.bias_grad(b, dy, self.grad_view(id, 0), rows, t.rows() as u32);
        }
    }

    /// y = LayerNorm(x) with parameters (w, bias), saving each row's mean and 1/std.
    fn layernorm(
        &self,
        b: &mut Batch<'_>,
        x: &Buffer,
        [y, mean, rstd]: [&Buffer; 3],
        (w, bias): (usize, usize),
        rows: u32,
    ) {
        let (s, w_off) = self.tensor(w).at();
        let (_, b_off) = self.tensor(bias).at();
        let p = LayerNormParams { rows, cols: self.cfg.n_embd, w_off, b_off, ..Default::default() };
        let bufs = [x.all(), self.shards[s].params.all(), y.all(), mean.all(), rstd.all()];
        b.dispatch_with(&self.k.layernorm_forward, &bufs, [rows, 1, 1], &p);
    }

    /// dx += LayerNorm backward of dy (dx = when `accumulate` is false); dw, db += their gradients.
    #[allow(clippy::too_many_arguments)]
    fn layernorm_backward(
        &self,
        b: &mut Batch<'_>,
        dy: &Buffer,
        x: &Buffer,
        mean: &Buffer,
        rstd: &Buffer,
        dx: &Buffer,
        (w, bias): (usize, usize),
        rows: u32,
        accumulate: bool,
    ) {
        let (s, w_off) = self.tensor(w).at();
        let (_, b_off) = self.tensor(bias).at();
        let c = self.cfg.n_embd;
        let p =
            LayerNormParams { rows, cols: c, w_off, b_off, accumulate: u32::from(accumulate), ..Default::default() };
        let bufs = [dy.all(), x.all(), self.shards[s].params.all(), mean.all(), rstd.all(), dx.all()];
        b.dispatch_with(&self.k.layernorm_backward, &bufs, [rows, 1, 1], &p);
        let bufs = [dy.all(), x.all(), mean.all(), rstd.all(), self.shards[s].grads.all()];
        b.dispatch_with(&self.k.layernorm_param_grad, &bufs, [c.div_ceil(64), 1, 1], &p);
    }

    fn attention_params(&self, a: &Acts) -> AttentionParams {
        let hs = self.cfg.head_size();
        AttentionParams {
            batch: a.batch,
            seq: a.seq,
            heads: self.cfg.n_head,
            head_size: hs,
            channels: self.cfg.n_embd,
            scale: 1.0 / (hs as f32).sqrt(),
            ..Default::default()
        }
    }

    /// The embedding kernels' uniforms for one piece of the token embedding.
    fn embedding_params(&self, a: &Acts, p: &Piece) -> EmbeddingParams {
        EmbeddingParams {
            positions: a.positions(),
            seq: a.seq,
            channels: self.cfg.n_embd,
            row_start: p.row_start,
            row_count: p.rows,
            wte_off: p.offset,
            ..Default::default()
        }
    }

    /// Embedding, every block and the final LayerNorm: `a.lnf` holds the result.
    fn record_forward(&self, b: &mut Batch<'_>, a: &Acts) {
        let (bt, c) = (a.positions(), self.cfg.n_embd);
        let (wpe_s, wpe_off) = self.tensor(self.layout.wpe).at();
        for p in &self.tensor(self.layout.wte).pieces {
            let params = EmbeddingParams { wpe_off, ..self.embedding_params(a, p) };
            let bufs =
                [a.tokens.all(), self.shards[p.shard].params.all(), self.shards[wpe_s].params.all(), a.resid[0].all()];
            b.dispatch_with(&self.k.embedding_forward, &bufs, self.k.embedding_grid(bt * c), &params);
        }
        let attn = self.attention_params(a);
        let attn_groups = [a.seq.div_ceil(ATTENTION_BLOCK), a.batch * self.cfg.n_head, 1];
        let v = |buf: &Buffer, ld: u32| View::new(buf.all(), 0, ld);
        for (l, ids) in self.layout.blocks.iter().enumerate() {
            let s = &a.blocks[l];
            self.layernorm(b, &a.resid[l], [&s.ln1, &s.ln1_mean, &s.ln1_rstd], (ids.ln1_w, ids.ln1_b), bt);
            self.linear(b, v(&s.ln1, c), v(&s.qkv, 3 * c), bt, ids.attn_w, Some(ids.attn_b));
            b.dispatch_with(&self.k.attention_forward, &[s.qkv.all(), s.atty.all(), s.lse.all()], attn_groups, &attn);
            self.linear(b, v(&s.atty, c), v(&a.proj, c), bt, ids.proj_w, Some(ids.proj_b));
            self.k.residual(b, a.resid[l].all(), a.proj.all(), s.resid_mid.all(), bt * c);
            self.layernorm(b, &s.resid_mid, [&s.ln2, &s.ln2_mean, &s.ln2_rstd], (ids.ln2_w, ids.ln2_b), bt);
            self.linear(b, v(&s.ln2, c), v(&s.fch, 4 * c), bt, ids.fc_w, Some(ids.fc_b));
            self.k.gelu_forward(b, s.fch.all(), s.fcg.all(), bt * 4 * c);
            self.linear(b, v(&s.fcg, 4 * c), v(&a.proj, c), bt, ids.fc_proj_w, Some(ids.fc_proj_b));
            self.k.residual(b, s.resid_mid.all(), a.proj.all(), a.resid[l + 1].all(), bt * c);
        }
        let last = &a.resid[self.cfg.n_layer as usize];
        let lnf = (self.layout.lnf_w, self.layout.lnf_b);
        self.layernorm(b, last, [&a.lnf, &a.lnf_mean, &a.lnf_rstd], lnf, bt);
    }

    /// Logits of `rows` rows of `x` (width C) into the logit chunks, chunk by chunk.
    fn record_lm_head(
        &self,
        b: &mut Batch<'_>,
        a: &Acts,
        x: &Buffer,
        rows: u32,
        mut each: impl FnMut(&mut Batch<'_>, usize, u32, u32),
    ) {
        let (c, v) = (self.cfg.n_embd, self.cfg.vocab_size);
        let mut row = 0;
        for (i, chunk) in a.logits.iter().enumerate() {
            if row >= rows {
                break;
            }
            let n = a.chunk_rows.min(rows - row);
            self.linear(b, View::new(x.all(), row * c, c), View::new(chunk.all(), 0, v), n, self.layout.wte, None);
            each(b, i, row, n);
            row += n;
        }
    }

    fn record_backward(&self, b: &mut Batch<'_>, a: &Acts, pending: &Pending) -> Result<()> {
        let g = a.grads.as_ref().ok_or_else(|| PluginError::internal("training activations without gradients"))?;
        let (bt, c) = (a.positions(), self.cfg.n_embd);
        let v = |buf: &Buffer, ld: u32| View::new(buf.all(), 0, ld);
        // LM head, chunk by chunk: dlnf = dlogits wte, dwte += dlogits^T lnf.
        let mut row = 0;
        for chunk in &a.logits {
            let n = a.chunk_rows.min(bt - row);
            let x = View::new(a.lnf.all(), row * c, c);
            let dx = View::new(g.d_ln.all(), row * c, c);
            let dy = View::new(chunk.all(), 0, self.cfg.vocab_size);
            self.linear_backward(b, x, dy, Some(dx), n, self.layout.wte, None);
            row += n;
        }
        let lnf = (self.layout.lnf_w, self.layout.lnf_b);
        let top = &a.resid[self.cfg.n_layer as usize];
        self.layernorm_backward(b, &g.d_ln, top, &a.lnf_mean, &a.lnf_rstd, &g.d_resid, lnf, bt, false);
        let attn = self.attention_params(a);
        let attn_groups = [a.seq.div_ceil(ATTENTION_BLOCK), a.batch * self.cfg.n_head, 1];
        for (l, ids) in self.layout.blocks.iter().enumerate().rev() {
            let s = &a.blocks[l];
            // MLP branch; d_resid holds the gradient of the block's output.
            self.linear_backward(
                b,
                v(&s.fcg, 4 * c),
                v(&g.d_resid, c),
                Some(v(&g.d_fc, 4 * c)),
                bt,
                ids.fc_proj_w,
                Some(ids.fc_proj_b),
            );
            self.k.gelu_backward(b, s.fch.all(), g.d_fc.all(), bt * 4 * c);
            self.linear_backward(b, v(&s.ln2, c), v(&g.d_fc, 4 * c), Some(v(&g.d_ln, c)), bt, ids.fc_w, Some(ids.fc_b));
            let ln2 = (ids.ln2_w, ids.ln2_b);
            self.layernorm_backward(b, &g.d_ln, &s.resid_mid, &s.ln2_mean, &s.ln2_rstd, &g.d_resid, ln2, bt, true);
            // Attention branch; d_resid now holds the gradient of the residual in the middle.
            self.linear_backward(
                b,
                v(&s.atty, c),
                v(&g.d_resid, c),
                Some(v(&g.d_atty, c)),
                bt,
                ids.proj_w,
                Some(ids.proj_b),
            );
            let prep_groups = [(a.batch * self.cfg.n_head * a.seq).div_ceil(64), 1, 1];
            b.dispatch_with(
                &self.k.attention_backward_prep,
                &[g.d_atty.all(), s.atty.all(), g.dd.all()],
                prep_groups,
                &attn,
            );
            let bufs = [s.qkv.all(), g.d_atty.all(), s.lse.all(), g.dd.all(), g.d_qkv.all()];
            b.dispatch_with(&self.k.attention_backward_dq, &bufs, attn_groups, &attn);
            b.dispatch_with(&self.k.attention_backward_dkv, &bufs, attn_groups, &attn);
            self.linear_backward(
                b,
                v(&s.ln1, c),
                v(&g.d_qkv, 3 * c),
                Some(v(&g.d_ln, c)),
                bt,
                ids.attn_w,
                Some(ids.attn_b),
            );
            let ln1 = (ids.ln1_w, ids.ln1_b);
            self.layernorm_backward(b, &g.d_ln, &a.resid[l], &s.ln1_mean, &s.ln1_rstd, &g.d_resid, ln1, bt, true);
        }
        // Embeddings: d_resid is now the gradient of the embedding output.
        let wte = self.tensor(self.layout.wte);
        for &(piece, start, count) in &pending.group_ranges {
            let p = wte.pieces[piece];
            let params = EmbeddingParams { group_start: start, group_count: count, ..self.embedding_params(a, &p) };
            let bufs = [g.groups.all(), g.order.all(), g.d_resid.all(), self.shards[p.shard].grads.all()];
            b.dispatch_with(&self.k.embedding_backward_wte, &bufs, self.k.embedding_grid(count * c), &params);
        }
        let (wpe_s, wpe_off) = self.tensor(self.layout.wpe).at();
        let params = EmbeddingParams { positions: bt, seq: a.seq, channels: c, wpe_off, ..Default::default() };
        let bufs = [g.d_resid.all(), self.shards[wpe_s].grads.all()];
        b.dispatch_with(&self.k.embedding_backward_wpe, &bufs, self.k.embedding_grid(a.seq * c), &params);
        Ok(())
    }

    /// Groups positions by token for the embedding backward, uploads the index, and returns the
    /// dispatch range of each piece of the token embedding.
    fn upload_embedding_index(&self, tokens: &[u32], g: &GradActs) -> Result<Vec<(usize, u32, u32)>> {
        let mut order: Vec<u32> = (0..tokens.len() as u32).collect();
        order.sort_by_key(|&p| (tokens[p as usize], p));
        let mut groups: Vec<[u32; 4]> = Vec::new();
        for (i, &p) in order.iter().enumerate() {
            let tok = tokens[p as usize];
            match groups.last_mut() {
                Some(last) if last[0] == tok => last[2] = i as u32 + 1,
                _ => groups.push([tok, i as u32, i as u32 + 1, 0]),
            }
        }
        self.gpu.write(&g.order, 0, &order)?;
        self.gpu.write(&g.groups, 0, &groups)?;
        let wte = self.tensor(self.layout.wte);
        let mut ranges = Vec::new();
        for (i, p) in wte.pieces.iter().enumerate() {
            let start = groups.partition_point(|g| g[0] < p.row_start);
            let end = groups.partition_point(|g| g[0] < p.row_start + p.rows);
            if end > start {
                ranges.push((i, start as u32, (end - start) as u32));
            }
        }
        Ok(ranges)
    }

    // ---- state --------------------------------------------------------------------------------

    /// Reads one buffer of every shard and cuts it into named tensors (`suffix` appended).
    fn read_tensors(&self, which: impl Fn(&Shard) -> &Buffer, suffix: &str) -> Result<Vec<Tensor>> {
        let mut b = self.gpu.batch();
        let reads: Vec<_> = self.shards.iter().map(|s| b.read(which(s).range(0, f32s(s.len)))).collect();
        let back = b.submit()?;
        let shards: Vec<Vec<f32>> = reads.into_iter().map(|r| back.get(r)).collect::<Result<_>>()?;
        Ok(self
            .layout
            .tensors
            .iter()
            .map(|t| Tensor::f32(format!("{}{suffix}", t.name), &t.shape, &self.layout.gather(t, &shards)))
            .collect())
    }

    /// Named tensors (already checked against the schema) laid out as shard contents.
    fn assemble(&self, tensors: &[Tensor], suffix: &str) -> Result<Vec<Vec<f32>>> {
        let mut shards: Vec<Vec<f32>> = self.shards.iter().map(|s| vec![0.0; s.len]).collect();
        for t in &self.layout.tensors {
            let name = format!("{}{suffix}", t.name);
            let found = tensors
                .iter()
                .find(|x| x.name.as_str() == name)
                .ok_or_else(|| PluginError::state(format!("missing tensor {name}")))?;
            let values = found.to_f32()?;
            if let Some(bad) = values.iter().find(|x| !x.is_finite()) {
                return Err(PluginError::state(format!("tensor {name} holds a non-finite value ({bad})")));
            }
            self.layout.scatter(t, &values, &mut shards);
        }
        Ok(shards)
    }

    fn upload(&self, shards: &[Vec<f32>], which: impl Fn(&Shard) -> &Buffer) -> Result<()> {
        for (s, values) in self.shards.iter().zip(shards) {
            self.gpu.write(which(s), 0, values)?;
        }
        Ok(())
    }
}

impl ModelPlugin for Gpt {
    fn describe(&self) -> ModelDescription {
        ModelDescription {
            architecture: "gpt".into(),
            vocab_size: self.cfg.vocab_size,
            block_size: self.cfg.block_size,
            parameters: self.layout.parameters(),
            tokenizer: self.cfg.tokenizer.as_str().into(),
            config: self.cfg.to_toml().into(),
        }
    }

    fn forward(&mut self, batch: TokenBatch<'_>, request: OutputRequest) -> Result<ForwardOutput> {
        self.check_shape(&batch)?;
        self.check_ids(&batch.tokens, "token")?;
        let vocab = self.cfg.vocab_size;
        let k = match request.kind {
            OutputKind::LOGITS => 0,
            OutputKind::TOP_K => request.k.clamp(1, vocab),
            other => return Err(PluginError::unsupported(format!("output kind {}", other.0))),
        };
        let last = match request.positions {
            Positions::ALL => false,
            Positions::LAST => true,
            other => return Err(PluginError::unsupported(format!("positions {}", other.0))),
        };
        self.acts(batch.batch, batch.seq_len, false)?;
        let a = self.infer.as_ref().expect("just ensured");
        self.gpu.write(&a.tokens, 0, &batch.tokens)?;
        let c = self.cfg.n_embd;
        let rows = if last { a.batch } else { a.positions() };
        let topk = if k > 0 {
            Some((
                self.gpu.buffer((rows * k * 4) as u64, "gpt.top_k_ids")?,
                self.gpu.buffer((rows * k * 4) as u64, "gpt.top_k_logprobs")?,
            ))
        } else {
            None
        };
        let mut b = self.gpu.batch();
        self.record_forward(&mut b, a);
        let source = if last {
            for s in 0..a.batch {
                let row = u64::from(s * a.seq + a.seq - 1);
                b.copy(a.lnf.range(row * u64::from(c) * 4, u64::from(c) * 4), &a.last, u64::from(s * c) * 4);
            }
            &a.last
        } else {
            &a.lnf
        };
        let mut reads = Vec::new();
        self.record_lm_head(&mut b, a, source, rows, |b, i, row, n| match &topk {
            None => reads.push(b.read(a.logits[i].range(0, u64::from(n * vocab) * 4))),
            Some((ids, logprobs)) => {
                let p = CrossEntropyParams { rows: n, vocab, k, row_offset: row, ..Default::default() };
                b.dispatch_with(&self.k.top_k, &[a.logits[i].all(), ids.all(), logprobs.all()], [n, 1, 1], &p);
            }
        });
        let positions = if last { 1 } else { batch.seq_len };
        let mut out = ForwardOutput { batch: batch.batch, positions, vocab_size: vocab, ..Default::default() };
        match &topk {
            None => {
                let back = b.submit()?;
                for r in reads {
                    out.logits.extend(back.get::<f32>(r)?);
                }
            }
            Some((ids, logprobs)) => {
                let ri = b.read(ids.all());
                let rl = b.read(logprobs.all());
                let back = b.submit()?;
                out.k = k;
                out.ids = back.get::<u32>(ri)?.into();
                out.logprobs = back.get::<f32>(rl)?.into();
            }
        }
        Ok(out)
    }

    fn loss(&mut self, batch: TokenBatch<'_>, targets: &[u32]) -> Result<f32> {
        self.check_shape(&batch)?;
        self.check_ids(&batch.tokens, "token")?;
        self.check_ids(targets, "target")?;
        self.pending = None;
        self.acts(batch.batch, batch.seq_len, true)?;
        let a = self.train.as_ref().expect("just ensured");
        let g = a.grads.as_ref().expect("training activations have gradient buffers");
        self.gpu.write(&a.tokens, 0, &batch.tokens)?;
        self.gpu.write(&a.targets, 0, targets)?;
        let group_ranges = self.upload_embedding_index(&batch.tokens, g)?;
        let bt = a.positions();
        let vocab = self.cfg.vocab_size;
        let mut b = self.gpu.batch();
        self.record_forward(&mut b, a);
        self.record_lm_head(&mut b, a, &a.lnf, bt, |b, i, row, n| {
            // Loss and dlogits in one pass; the logits become their gradient in place.
            let p = CrossEntropyParams {
                rows: n,
                vocab,
                row_offset: row,
                write_grad: 1,
                scale: 1.0 / bt as f32,
                ..Default::default()
            };
            b.dispatch_with(
                &self.k.cross_entropy,
                &[a.targets.all(), a.logits[i].all(), a.losses.all()],
                [n, 1, 1],
                &p,
            );
        });
        self.k.sum(&mut b, a.losses.all(), bt, 1.0 / bt as f32, self.scalars.all(), 1);
        let r = b.read(self.scalars.range(4, 4));
        let loss = b.submit()?.get::<f32>(r)?[0];
        self.pending = Some(Pending { group_ranges });
        Ok(loss)
    }

    fn backward(&mut self) -> Result<()> {
        let Some(pending) = self.pending.take() else {
            return Err(PluginError::input("backward called without a preceding loss; call loss first"));
        };
        let a = self.train.as_ref().ok_or_else(|| PluginError::internal("no training activations"))?;
        let mut b = self.gpu.batch();
        self.record_backward(&mut b, a, &pending)?;
        b.submit()?;
        Ok(())
    }

    fn step(&mut self, learning_rate: f32) -> Result<StepStats> {
        self.step += 1;
        let t = self.step as i32;
        let c = &self.cfg;
        let mut b = self.gpu.batch();
        let mut base = 0;
        for s in &self.shards {
            base += self.k.sum_squares(&mut b, s.grads.all(), 0, s.len as u32, self.partials.all(), base);
        }
        self.k.sum(&mut b, self.partials.all(), base, 1.0, self.scalars.all(), 0);
        for s in &self.shards {
            let bufs = [s.grads.all(), self.scalars.all(), s.params.all(), s.m.all(), s.v.all()];
            let mut p = AdamWParams {
                n: s.decay_len as u32,
                off: 0,
                lr: learning_rate,
                beta1: c.beta1,
                beta2: c.beta2,
                eps: c.eps,
                weight_decay: c.weight_decay,
                bc1: 1.0 - c.beta1.powi(t),
                bc2: 1.0 - c.beta2.powi(t),
                max_norm: c.grad_clip,
                ..Default::default()
            };
            self.k.adamw(&mut b, bufs, &p);
            p.off = s.decay_len as u32;
            p.n = (s.len - s.decay_len) as u32;
            p.weight_decay = 0.0;
            self.k.adamw(&mut b, bufs, &p);
        }
        self.record_half_weights(&mut b);
        let r = b.read(self.scalars.range(0, 4));
        let norm = b.submit()?.get::<f32>(r)?[0].sqrt();
        let clip = if c.grad_clip > 0.0 && norm > c.grad_clip { c.grad_clip / (norm + 1e-6) } else { 1.0 };
        Ok(StepStats { grad_norm: norm, clip_scale: clip })
    }

    fn zero_grad(&mut self) -> Result<()> {
        let mut b = self.gpu.batch();
        for s in &self.shards {
            b.clear(s.grads.all());
        }
        b.submit()?;
        Ok(())
    }

    fn state_schema(&self, group: StateGroup) -> Vec<TensorSpec> {
        let tensors = &self.layout.tensors;
        match group {
            StateGroup::MODEL => {
                tensors.iter().map(|t| TensorSpec::new(t.name.clone(), DType::F32, &t.shape)).collect()
            }
            StateGroup::OPTIMIZER => {
                let mut v: Vec<TensorSpec> = Vec::new();
                for suffix in [".exp_avg", ".exp_avg_sq"] {
                    v.extend(
                        tensors.iter().map(|t| TensorSpec::new(format!("{}{suffix}", t.name), DType::F32, &t.shape)),
                    );
                }
                v.push(TensorSpec::new("step", DType::I64, &[]));
                v
            }
            StateGroup::GRADIENTS => {
                tensors.iter().map(|t| TensorSpec::new(t.name.clone(), DType::F32, &t.shape)).collect()
            }
            _ => Vec::new(),
        }
    }

    fn export_state(&mut self, group: StateGroup) -> Result<Vec<Tensor>> {
        match group {
            StateGroup::MODEL => self.read_tensors(|s| &s.params, ""),
            StateGroup::OPTIMIZER => {
                let mut v = self.read_tensors(|s| &s.m, ".exp_avg")?;
                v.extend(self.read_tensors(|s| &s.v, ".exp_avg_sq")?);
                v.push(Tensor::i64_scalar("step", self.step));
                Ok(v)
            }
            StateGroup::GRADIENTS => self.gradients(),
            other => Err(PluginError::unsupported(format!("state group {}", other.0))),
        }
    }

    fn import_state(&mut self, group: StateGroup, tensors: &[Tensor]) -> Result<()> {
        neuron_plugin_api::check_state(&self.state_schema(group), tensors)?;
        match group {
            StateGroup::MODEL => {
                let params = self.assemble(tensors, "")?;
                self.upload(&params, |s| &s.params)?;
                self.refresh_half_weights()
            }
            StateGroup::OPTIMIZER => {
                let step = tensors.iter().find(|t| t.name.as_str() == "step").expect("checked").to_i64_scalar()?;
                if step < 0 {
                    return Err(PluginError::state(format!("optimizer step {step} is negative")));
                }
                // Everything is checked before anything changes.
                let m = self.assemble(tensors, ".exp_avg")?;
                let v = self.assemble(tensors, ".exp_avg_sq")?;
                self.upload(&m, |s| &s.m)?;
                self.upload(&v, |s| &s.v)?;
                self.step = step;
                Ok(())
            }
            other => Err(PluginError::unsupported(format!("state group {}", other.0))),
        }
    }
}
