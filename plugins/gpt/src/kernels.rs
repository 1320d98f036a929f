//! The WGSL kernels (this crate's `shaders/*.wgsl`), compiled once, and typed helpers that record their
//! dispatches. Each helper's uniform struct mirrors the `Params` struct of its shader.

use neuron_plugin_api::{
    bytemuck::{Pod, Zeroable},
    shaders::Reduction,
    Batch, BufferSlice, Gpu, Kernel, KernelDecl, Result,
};

pub const MATMUL: &str = include_str!("../shaders/matmul.wgsl");
pub const MATMUL_VEC4: &str = include_str!("../shaders/matmul_vec4.wgsl");
pub const LAYERNORM: &str = include_str!("../shaders/layernorm.wgsl");
pub const GELU: &str = include_str!("../shaders/gelu.wgsl");
pub const RESIDUAL: &str = include_str!("../shaders/residual.wgsl");
pub const ATTENTION: &str = include_str!("../shaders/attention.wgsl");
/// Compiled after one of plugin-api's reduction preludes ([`Reduction::with_prelude`]).
pub const CROSS_ENTROPY: &str = include_str!("../shaders/cross_entropy.wgsl");
pub const EMBEDDING: &str = include_str!("../shaders/embedding.wgsl");
/// Compiled after one of plugin-api's reduction preludes ([`Reduction::with_prelude`]).
pub const REDUCE: &str = include_str!("../shaders/reduce.wgsl");
pub const ADAMW: &str = include_str!("../shaders/adamw.wgsl");
/// The f16 copy of the weights (`weights_f16`); needs SHADER_F16.
pub const HALF: &str = include_str!("../shaders/half.wgsl");

/// Output tile of the matmul kernels (both dimensions).
pub const MATMUL_TILE: u32 = 64;
/// Queries (or keys) per attention workgroup.
pub const ATTENTION_BLOCK: u32 = 64;
/// Elements one `sum_squares_partial` workgroup reduces.
pub const SUMSQ_SEGMENT: u32 = 4096;

macro_rules! uniforms {
    ($($(#[$m:meta])* $name:ident { $($field:ident: $ty:ty),* $(,)? })*) => {$(
        $(#[$m])*
        #[repr(C)]
        #[derive(Copy, Clone, Debug, Default, Pod, Zeroable)]
        #[bytemuck(crate = "neuron_plugin_api::bytemuck")]
        pub struct $name { $(pub $field: $ty),* }
        // Checked against the WGSL's `Params` when each kernel is built (`KernelDecl::uniform`).
        neuron_plugin_api::uniform_layout!($name { $($field),* });
    )*};
}

uniforms! {
    /// `shaders/matmul.wgsl`
    MatmulParams { m: u32, n: u32, k: u32, lda: u32, ldb: u32, ldc: u32, a_off: u32, b_off: u32, c_off: u32, bias_off: u32, accumulate: u32, use_bias: u32 }
    /// `shaders/layernorm.wgsl`
    LayerNormParams { rows: u32, cols: u32, w_off: u32, b_off: u32, accumulate: u32, _pad0: u32, _pad1: u32, _pad2: u32 }
    /// `shaders/gelu.wgsl`, `shaders/residual.wgsl`
    ElementwiseParams { n: u32, _pad0: u32, _pad1: u32, _pad2: u32 }
    /// `shaders/attention.wgsl`
    AttentionParams { batch: u32, seq: u32, heads: u32, head_size: u32, channels: u32, scale: f32, _pad0: u32, _pad1: u32 }
    /// `shaders/cross_entropy.wgsl`
    CrossEntropyParams { rows: u32, vocab: u32, row_offset: u32, write_grad: u32, k: u32, scale: f32, _pad0: u32, _pad1: u32 }
    /// `shaders/embedding.wgsl`
    EmbeddingParams { positions: u32, seq: u32, channels: u32, row_start: u32, row_count: u32, wte_off: u32, wpe_off: u32, group_start: u32, group_count: u32, _pad0: u32, _pad1: u32, _pad2: u32 }
    /// `shaders/reduce.wgsl`
    ReduceParams { n: u32, off: u32, base: u32, out_index: u32, scale: f32, _pad0: u32, _pad1: u32, _pad2: u32 }
    /// `shaders/half.wgsl`
    HalfParams { n: u32, off: u32, _pad0: u32, _pad1: u32 }
    /// `shaders/adamw.wgsl`
    AdamWParams { n: u32, off: u32, lr: f32, beta1: f32, beta2: f32, eps: f32, weight_decay: f32, bc1: f32, bc2: f32, max_norm: f32, _pad0: u32, _pad1: u32 }
}

/// A row-major matrix inside a buffer: element (i, j) is at `off + i * ld + j` (elements).
#[derive(Copy, Clone, Debug)]
pub struct View {
    pub buf: BufferSlice,
    pub off: u32,
    pub ld: u32,
}

impl View {
    pub fn new(buf: BufferSlice, off: u32, ld: u32) -> Self {
        Self { buf, off, ld }
    }
    /// The same matrix starting `rows` rows and `cols` columns further in.
    pub fn at(self, rows: u32, cols: u32) -> Self {
        Self { off: self.off + rows * self.ld + cols, ..self }
    }
}

/// Which operand of a matmul is stored transposed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Form {
    /// C = A B^T (forward of a linear layer).
    Nt,
    /// C = A B (input gradient).
    Nn,
    /// C = A^T B (weight gradient).
    Tn,
}

/// Every kernel the model runs.
pub struct Kernels {
    pub matmul_nt: Kernel,
    pub matmul_nn: Kernel,
    pub matmul_tn: Kernel,
    pub bias_grad: Kernel,
    pub matmul_nt_v4: Kernel,
    pub matmul_nn_v4: Kernel,
    pub matmul_tn_v4: Kernel,
    /// Use the vec4 kernels (`shaders/matmul_vec4.wgsl`) for 4-aligned operands. On by default
    /// on CPU adapters only: on lavapipe they beat the shared-memory tiles 2-4x at every shape
    /// the model uses, and their 8-thread workgroups would leave most of a GPU's SIMD lanes idle.
    pub vec4: bool,
    pub layernorm_forward: Kernel,
    pub layernorm_backward: Kernel,
    pub layernorm_param_grad: Kernel,
    pub gelu_forward: Kernel,
    pub gelu_backward: Kernel,
    pub residual_forward: Kernel,
    pub attention_forward: Kernel,
    pub attention_backward_prep: Kernel,
    pub attention_backward_dq: Kernel,
    pub attention_backward_dkv: Kernel,
    pub cross_entropy: Kernel,
    pub top_k: Kernel,
    pub embedding_forward: Kernel,
    pub embedding_backward_wte: Kernel,
    pub embedding_backward_wpe: Kernel,
    pub sum_squares_partial: Kernel,
    pub sum_partial: Kernel,
    pub adamw: Kernel,
    /// The adapter's workgroups-per-dimension limit.
    pub max_groups: u32,
    /// The prelude `cross_entropy`, `top_k` and the reductions were compiled after.
    pub reduction: Reduction,
    /// The f16-weights kernels, once [`Kernels::enable_half_weights`] has compiled them.
    pub half: Option<HalfKernels>,
}

/// The kernels of the f16-weights option: the forward (`nt`) and input-gradient (`nn`) matmuls
/// reading B, the weights, from an f16 copy (each element converted to f32, the sums in f32), and
/// the kernel that refreshes the copy from the f32 master weights.
pub struct HalfKernels {
    pub matmul_nt: Kernel,
    pub matmul_nn: Kernel,
    pub matmul_nt_v4: Kernel,
    pub matmul_nn_v4: Kernel,
    pub to_f16: Kernel,
}

/// A matmul entry point of `source` (matmul.wgsl, matmul_vec4.wgsl or an f16-weights variant of
/// either), declared: a, b, the bias where the entry point binds it, c, and [`MatmulParams`].
fn matmul_decl<'a>(source: &'a str, entry: &'a str, binds_bias: bool) -> KernelDecl<'a> {
    let decl = KernelDecl::new(source, entry).read("a").read("b");
    let decl = if binds_bias { decl.read("bias") } else { decl };
    decl.write("c").uniform::<MatmulParams>()
}

/// `source` with its B operand read from f16 storage: `enable f16;` first, B's binding
/// `array<f16>` (or `array<vec4<f16>>`) and `b_at` converting each read to f32. The source must
/// read B only through `b_at`, as matmul.wgsl and matmul_vec4.wgsl do.
pub fn with_f16_b(source: &str) -> Result<String> {
    for (elem, half) in [("vec4<f32>", "vec4<f16>"), ("f32", "f16")] {
        let binding = format!("@group(0) @binding(1) var<storage, read> b: array<{elem}>;");
        let reader = format!("fn b_at(i: u32) -> {elem} {{\n    return b[i];\n}}");
        if source.contains(&binding) && source.contains(&reader) {
            let s = source
                .replace(&binding, &format!("@group(0) @binding(1) var<storage, read> b: array<{half}>;"))
                .replace(&reader, &format!("fn b_at(i: u32) -> {elem} {{\n    return {elem}(b[i]);\n}}"));
            return Ok(format!("enable f16;\n{s}"));
        }
    }
    Err(neuron_plugin_api::PluginError::internal(
        "gpt: a matmul kernel no longer reads B through `b_at`; the f16-weights variant cannot be made",
    ))
}

impl Kernels {
    /// Compiles every kernel, each declared with its storage bindings in binding order and its
    /// uniform struct, which `Gpu::kernel` checks against the WGSL. The kernels that sum over a
    /// workgroup are compiled after `reduction`'s prelude; [`Reduction::Subgroup`] needs a device
    /// with `SUBGROUP` enabled ([`Reduction::for_gpu`] says whether it has).
    pub fn new(gpu: &Gpu, reduction: Reduction) -> Result<Self> {
        let cross_entropy = reduction.with_prelude(CROSS_ENTROPY);
        let reduce = reduction.with_prelude(REDUCE);
        Ok(Self {
            matmul_nt: gpu.kernel(matmul_decl(MATMUL, "matmul_nt", true))?,
            matmul_nn: gpu.kernel(matmul_decl(MATMUL, "matmul_nn", false))?,
            matmul_tn: gpu.kernel(matmul_decl(MATMUL, "matmul_tn", false))?,
            bias_grad: gpu
                .kernel(KernelDecl::new(MATMUL, "bias_grad").read("a").write("c").uniform::<MatmulParams>())?,
            matmul_nt_v4: gpu.kernel(matmul_decl(MATMUL_VEC4, "matmul_nt_v4", true))?,
            matmul_nn_v4: gpu.kernel(matmul_decl(MATMUL_VEC4, "matmul_nn_v4", true))?,
            matmul_tn_v4: gpu.kernel(matmul_decl(MATMUL_VEC4, "matmul_tn_v4", true))?,
            vec4: gpu.adapter().device_type.as_str() == "cpu",
            layernorm_forward: gpu.kernel(
                KernelDecl::new(LAYERNORM, "layernorm_forward")
                    .read("x")
                    .read("params")
                    .write("y")
                    .write("mean_out")
                    .write("rstd_out")
                    .uniform::<LayerNormParams>(),
            )?,
            layernorm_backward: gpu.kernel(
                KernelDecl::new(LAYERNORM, "layernorm_backward")
                    .read("dy")
                    .read("x")
                    .read("params")
                    .read("mean_in")
                    .read("rstd_in")
                    .write("dx")
                    .uniform::<LayerNormParams>(),
            )?,
            layernorm_param_grad: gpu.kernel(
                KernelDecl::new(LAYERNORM, "layernorm_param_grad")
                    .read("dy")
                    .read("x")
                    .read("mean_in")
                    .read("rstd_in")
                    .write("grads")
                    .uniform::<LayerNormParams>(),
            )?,
            gelu_forward: gpu
                .kernel(KernelDecl::new(GELU, "gelu_forward").read("x").write("y").uniform::<ElementwiseParams>())?,
            gelu_backward: gpu
                .kernel(KernelDecl::new(GELU, "gelu_backward").read("x").write("d").uniform::<ElementwiseParams>())?,
            residual_forward: gpu.kernel(
                KernelDecl::new(RESIDUAL, "residual_forward")
                    .read("a")
                    .read("b")
                    .write("out")
                    .uniform::<ElementwiseParams>(),
            )?,
            attention_forward: gpu.kernel(
                KernelDecl::new(ATTENTION, "attention_forward")
                    .read("qkv")
                    .write("y")
                    .write("lse")
                    .uniform::<AttentionParams>(),
            )?,
            attention_backward_prep: gpu.kernel(
                KernelDecl::new(ATTENTION, "attention_backward_prep")
                    .read("dy")
                    .read("y_in")
                    .write("dd")
                    .uniform::<AttentionParams>(),
            )?,
            attention_backward_dq: gpu.kernel(
                KernelDecl::new(ATTENTION, "attention_backward_dq")
                    .read("qkv")
                    .read("dy")
                    .read("lse_in")
                    .read("dd_in")
                    .write("dqkv")
                    .uniform::<AttentionParams>(),
            )?,
            attention_backward_dkv: gpu.kernel(
                KernelDecl::new(ATTENTION, "attention_backward_dkv")
                    .read("qkv")
                    .read("dy")
                    .read("lse_in")
                    .read("dd_in")
                    .write("dqkv")
                    .uniform::<AttentionParams>(),
            )?,
            cross_entropy: gpu.kernel(
                KernelDecl::new(cross_entropy.as_str(), "cross_entropy")
                    .read("targets")
                    .write("logits")
                    .write("losses")
                    .uniform::<CrossEntropyParams>(),
            )?,
            top_k: gpu.kernel(
                KernelDecl::new(cross_entropy.as_str(), "top_k")
                    .read("scores")
                    .write("ids")
                    .write("logprobs")
                    .uniform::<CrossEntropyParams>(),
            )?,
            embedding_forward: gpu.kernel(
                KernelDecl::new(EMBEDDING, "embedding_forward")
                    .read("tokens")
                    .read("wte")
                    .read("wpe")
                    .write("out")
                    .uniform::<EmbeddingParams>(),
            )?,
            embedding_backward_wte: gpu.kernel(
                KernelDecl::new(EMBEDDING, "embedding_backward_wte")
                    .read("groups")
                    .read("order")
                    .read("dx")
                    .write("grads")
                    .uniform::<EmbeddingParams>(),
            )?,
            embedding_backward_wpe: gpu.kernel(
                KernelDecl::new(EMBEDDING, "embedding_backward_wpe")
                    .read("dx")
                    .write("grads")
                    .uniform::<EmbeddingParams>(),
            )?,
            sum_squares_partial: gpu.kernel(
                KernelDecl::new(reduce.as_str(), "sum_squares_partial")
                    .read("x")
                    .write("partials")
                    .uniform::<ReduceParams>(),
            )?,
            sum_partial: gpu.kernel(
                KernelDecl::new(reduce.as_str(), "sum_partial").read("x").write("out").uniform::<ReduceParams>(),
            )?,
            adamw: gpu.kernel(
                KernelDecl::new(ADAMW, "adamw")
                    .read("grads")
                    .read("scalars")
                    .write("params")
                    .write("m")
                    .write("v")
                    .uniform::<AdamWParams>(),
            )?,
            max_groups: gpu.adapter().limits.max_compute_workgroups_per_dimension.max(1),
            reduction,
            half: None,
        })
    }

    /// Compiles the f16-weights kernels ([`HalfKernels`]); the device must have SHADER_F16.
    pub fn enable_half_weights(&mut self, gpu: &Gpu) -> Result<()> {
        let (tiled, v4) = (with_f16_b(MATMUL)?, with_f16_b(MATMUL_VEC4)?);
        self.half = Some(HalfKernels {
            matmul_nt: gpu.kernel(matmul_decl(tiled.as_str(), "matmul_nt", true))?,
            matmul_nn: gpu.kernel(matmul_decl(tiled.as_str(), "matmul_nn", false))?,
            matmul_nt_v4: gpu.kernel(matmul_decl(v4.as_str(), "matmul_nt_v4", true))?,
            matmul_nn_v4: gpu.kernel(matmul_decl(v4.as_str(), "matmul_nn_v4", true))?,
            to_f16: gpu.kernel(KernelDecl::new(HALF, "to_f16").read("x").write("x16").uniform::<HalfParams>())?,
        });
        Ok(())
    }

    /// `x16[off..off + n] = f16(x[off..off + n])`: refreshes the f16 copy of the weights (a no-op
    /// until [`Kernels::enable_half_weights`]).
    pub fn to_f16(&self, b: &mut Batch<'_>, x: BufferSlice, x16: BufferSlice, off: u32, n: u32) {
        if let Some(half) = &self.half {
            let p = HalfParams { n, off, ..Default::default() };
            b.dispatch_with(&half.to_f16, &[x, x16], self.elementwise_grid(n), &p);
        }
    }

    /// A grid of at least `groups` workgroups, folded into two dimensions when one is not enough
    /// (the elementwise kernels index `(wg.y * num_workgroups.x + wg.x) * 256 + lid`).
    pub fn grid(&self, groups: u32) -> [u32; 3] {
        if groups <= self.max_groups {
            return [groups, 1, 1];
        }
        let y = groups.div_ceil(self.max_groups);
        [groups.div_ceil(y), y, 1]
    }

    fn elementwise_grid(&self, n: u32) -> [u32; 3] {
        self.grid(n.div_ceil(256))
    }

    /// C (+)= op(A) op(B) (+ bias), with C `m x n` and the shared dimension `k`.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul(
        &self,
        b: &mut Batch<'_>,
        form: Form,
        a: View,
        bm: View,
        c: View,
        mnk: [u32; 3],
        accumulate: bool,
        bias: Option<View>,
    ) {
        self.matmul_with(b, form, a, bm, c, mnk, accumulate, bias, None);
    }

    /// [`Kernels::matmul`] with B, the weights, read from their f16 copy `bm` (same offsets and
    /// leading dimension, in elements) by `half`'s kernels; only the forward (`Nt`) and
    /// input-gradient (`Nn`) forms.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul_half_b(
        &self,
        half: &HalfKernels,
        b: &mut Batch<'_>,
        form: Form,
        a: View,
        bm: View,
        c: View,
        mnk: [u32; 3],
        accumulate: bool,
        bias: Option<View>,
    ) {
        debug_assert!(form != Form::Tn, "the weight-gradient form reads no weights");
        self.matmul_with(b, form, a, bm, c, mnk, accumulate, bias, Some(half));
    }

    #[allow(clippy::too_many_arguments)]
    fn matmul_with(
        &self,
        b: &mut Batch<'_>,
        form: Form,
        a: View,
        bm: View,
        c: View,
        [m, n, k]: [u32; 3],
        accumulate: bool,
        bias: Option<View>,
        half: Option<&HalfKernels>,
    ) {
        if m == 0 || n == 0 {
            return;
        }
        let params = MatmulParams {
            m,
            n,
            k,
            lda: a.ld,
            ldb: bm.ld,
            ldc: c.ld,
            a_off: a.off,
            b_off: bm.off,
            c_off: c.off,
            bias_off: bias.map_or(0, |v| v.off),
            accumulate: u32::from(accumulate),
            use_bias: u32::from(bias.is_some()),
        };
        // Without a bias the binding still needs a read-only buffer: A's is one.
        let bias_buf = bias.map_or(a.buf, |v| v.buf);
        let aligned = |xs: &[u32]| xs.iter().all(|x| x % 4 == 0);
        let common = [a.ld, bm.ld, a.off, bm.off];
        let fast = self.vec4
            && aligned(&common)
            && match form {
                Form::Nt => aligned(&[k]),
                Form::Nn => aligned(&[k, n]),
                Form::Tn => aligned(&[m, n]),
            };
        if fast {
            let (kernel, groups) = match (form, half) {
                (Form::Nt, Some(h)) => (&h.matmul_nt_v4, [n.div_ceil(64), m.div_ceil(8), 1]),
                (Form::Nn, Some(h)) => (&h.matmul_nn_v4, [n.div_ceil(128), m.div_ceil(16), 1]),
                (Form::Nt, None) => (&self.matmul_nt_v4, [n.div_ceil(64), m.div_ceil(8), 1]),
                (Form::Nn, None) => (&self.matmul_nn_v4, [n.div_ceil(128), m.div_ceil(16), 1]),
                (Form::Tn, _) => (&self.matmul_tn_v4, [n.div_ceil(128), m.div_ceil(16), 1]),
            };
            b.dispatch_with(kernel, &[a.buf, bm.buf, bias_buf, c.buf], groups, &params);
            return;
        }
        let groups = [n.div_ceil(MATMUL_TILE), m.div_ceil(MATMUL_TILE), 1];
        let (nt, nn) = match half {
            Some(h) => (&h.matmul_nt, &h.matmul_nn),
            None => (&self.matmul_nt, &self.matmul_nn),
        };
        match form {
            Form::Nt => b.dispatch_with(nt, &[a.buf, bm.buf, bias_buf, c.buf], groups, &params),
            Form::Nn => b.dispatch_with(nn, &[a.buf, bm.buf, c.buf], groups, &params),
            Form::Tn => b.dispatch_with(&self.matmul_tn, &[a.buf, bm.buf, c.buf], groups, &params),
        };
    }

    /// `out[j] (+)= sum_i dy[i, j]` over `rows x cols` of `dy`.
    pub fn bias_grad(&self, b: &mut Batch<'_>, dy: View, out: View, rows: u32, cols: u32) {
        let params = MatmulParams {
            m: rows,
            n: cols,
            lda: dy.ld,
            a_off: dy.off,
            c_off: out.off,
            accumulate: 1,
            ..Default::default()
        };
        b.dispatch_with(&self.bias_grad, &[dy.buf, out.buf], [cols.div_ceil(64), 1, 1], &params);
    }

    pub fn gelu_forward(&self, b: &mut Batch<'_>, x: BufferSlice, y: BufferSlice, n: u32) {
        let p = ElementwiseParams { n, ..Default::default() };
        b.dispatch_with(&self.gelu_forward, &[x, y], self.elementwise_grid(n), &p);
    }

    /// `d = d * gelu'(x)` in place.
    pub fn gelu_backward(&self, b: &mut Batch<'_>, x: BufferSlice, d: BufferSlice, n: u32) {
        let p = ElementwiseParams { n, ..Default::default() };
        b.dispatch_with(&self.gelu_backward, &[x, d], self.elementwise_grid(n), &p);
    }

    pub fn residual(&self, b: &mut Batch<'_>, x: BufferSlice, y: BufferSlice, out: BufferSlice, n: u32) {
        let p = ElementwiseParams { n, ..Default::default() };
        b.dispatch_with(&self.residual_forward, &[x, y, out], self.elementwise_grid(n), &p);
    }

    /// `sum(x[off .. off + n]) * scale` into `out[index]`, by one workgroup.
    pub fn sum(&self, b: &mut Batch<'_>, x: BufferSlice, n: u32, scale: f32, out: BufferSlice, index: u32) {
        let p = ReduceParams { n, out_index: index, scale, ..Default::default() };
        b.dispatch_with(&self.sum_partial, &[x, out], [1, 1, 1], &p);
    }

    /// Partial sums of squares of `x[off .. off + n]` into `partials[base ..]`, one per 4096
    /// elements; returns how many it wrote.
    pub fn sum_squares(
        &self,
        b: &mut Batch<'_>,
        x: BufferSlice,
        off: u32,
        n: u32,
        partials: BufferSlice,
        base: u32,
    ) -> u32 {
        let groups = n.div_ceil(SUMSQ_SEGMENT);
        if groups > 0 {
            let p = ReduceParams { n, off, base, ..Default::default() };
            b.dispatch_with(&self.sum_squares_partial, &[x, partials], [groups, 1, 1], &p);
        }
        groups
    }

    /// Writes `p` as the uniform of an elementwise AdamW over `p.n` elements from `p.off`.
    pub fn adamw(&self, b: &mut Batch<'_>, bufs: [BufferSlice; 5], p: &AdamWParams) {
        if p.n > 0 {
            b.dispatch_with(&self.adamw, &bufs, self.elementwise_grid(p.n), p);
        }
    }

    pub fn embedding_grid(&self, n: u32) -> [u32; 3] {
        self.elementwise_grid(n)
    }
}
