//! WGSL that plugins share, carried by this crate so that no plugin reaches outside its own
//! crate for it, with the Rust types that describe the kernels' buffers.
//!
//! WGSL has no includes. The reductions over a 256-thread workgroup (`workgroup_sum`,
//! `workgroup_max`) come as a prelude that a kernel is compiled after, in two versions with one
//! interface ([`Reduction`]): [`WORKGROUP_SUM`], a fixed tree in workgroup memory for every
//! adapter, and [`WORKGROUP_SUM_SUBGROUP`], on subgroup operations, for devices with wgpu's
//! `SUBGROUP` feature. Both add in a fixed order, so results are reproducible bit for bit on one
//! adapter; the two differ from each other by rounding only. [`Reduction::for_gpu`] picks the
//! subgroup one where the device has the feature enabled (declare it with
//! `Plugin::use_feature_if_available("SUBGROUP")`), the tree elsewhere.
//!
//! - [`Reduction::topk_cross_entropy`]: each miner's mean next-token cross-entropy from its top-k
//!   answer (`miner_loss`) and the probability mass each answer leaves outside its top k
//!   (`position_logprobs`); buffers packed by [`TopKAnswers`](crate::TopKAnswers), uniform
//!   [`TopKParams`]. Declared with its bindings in [`miner_loss`].
//! - [`Reduction::topk_divergence`]: how far each miner's distribution is from the miners'
//!   average (Hellinger), per position, and how much it exceeds the usual spread; uniform
//!   [`TopKDivergenceParams`].
//!
//! Each file's header comment (see the `shaders/` folder of this crate) lists its bindings,
//! workgroup layout and limits.

use crate::{Gpu, KernelDecl, TopKParams};

/// The plain prelude: `WG` (256), `Lane` (an entry point's `lane: Lane` argument), `partial`
/// (workgroup memory), `workgroup_sum(lane, value)` and `workgroup_max(lane, value)`.
pub const WORKGROUP_SUM: &str = include_str!("../shaders/workgroup_sum.wgsl");

/// The same interface on subgroup operations; compiles only on a device with `SUBGROUP` enabled.
pub const WORKGROUP_SUM_SUBGROUP: &str = include_str!("../shaders/workgroup_sum_subgroup.wgsl");

/// Top-k cross-entropy with the plain prelude: entry points `miner_loss` and `position_logprobs`.
pub const TOPK_CROSS_ENTROPY: &str =
    concat!(include_str!("../shaders/workgroup_sum.wgsl"), include_str!("../shaders/topk_cross_entropy.wgsl"));

/// Top-k divergence with the plain prelude: entry points `hellinger`, `position_spread`,
/// `miner_excess`.
pub const TOPK_DIVERGENCE: &str =
    concat!(include_str!("../shaders/workgroup_sum.wgsl"), include_str!("../shaders/topk_divergence.wgsl"));

const TOPK_CROSS_ENTROPY_SUBGROUP: &str =
    concat!(include_str!("../shaders/workgroup_sum_subgroup.wgsl"), include_str!("../shaders/topk_cross_entropy.wgsl"));
const TOPK_DIVERGENCE_SUBGROUP: &str =
    concat!(include_str!("../shaders/workgroup_sum_subgroup.wgsl"), include_str!("../shaders/topk_divergence.wgsl"));

/// Which prelude a kernel that reduces over its workgroup is compiled after.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Reduction {
    /// [`WORKGROUP_SUM`]: a fixed tree in workgroup memory; runs everywhere.
    #[default]
    Tree,
    /// [`WORKGROUP_SUM_SUBGROUP`]: subgroup sums, then one pass over the subgroups' partial sums.
    Subgroup,
}

impl Reduction {
    /// [`Reduction::Subgroup`] where `gpu`'s device has wgpu's `SUBGROUP` feature enabled, else
    /// [`Reduction::Tree`]. The host enables the feature for a plugin that declares
    /// `use_feature_if_available("SUBGROUP")` on an adapter that offers it (or for another plugin
    /// on the same device).
    pub fn for_gpu(gpu: &Gpu) -> Self {
        if gpu.adapter().has_feature("SUBGROUP") {
            Self::Subgroup
        } else {
            Self::Tree
        }
    }

    /// The prelude's WGSL.
    pub const fn prelude(self) -> &'static str {
        match self {
            Self::Tree => WORKGROUP_SUM,
            Self::Subgroup => WORKGROUP_SUM_SUBGROUP,
        }
    }

    /// A plugin's own kernel that calls `workgroup_sum` or `workgroup_max`, with this prelude in
    /// front.
    pub fn with_prelude(self, body: &str) -> String {
        [self.prelude(), body].concat()
    }

    /// The top-k cross-entropy kernels (`miner_loss`, `position_logprobs`) after this prelude.
    pub const fn topk_cross_entropy(self) -> &'static str {
        match self {
            Self::Tree => TOPK_CROSS_ENTROPY,
            Self::Subgroup => TOPK_CROSS_ENTROPY_SUBGROUP,
        }
    }

    /// The top-k divergence kernels (`hellinger`, `position_spread`, `miner_excess`) after this
    /// prelude.
    pub const fn topk_divergence(self) -> &'static str {
        match self {
            Self::Tree => TOPK_DIVERGENCE,
            Self::Subgroup => TOPK_DIVERGENCE_SUBGROUP,
        }
    }
}

/// A plugin's own kernel that calls `workgroup_sum` or `workgroup_max`, after the plain prelude
/// ([`Reduction::Tree`]); [`Reduction::with_prelude`] picks either.
pub fn with_prelude(body: &str) -> String {
    Reduction::Tree.with_prelude(body)
}

/// The top-k cross-entropy's `miner_loss` after `reduction`'s prelude, declared: one workgroup per
/// packed answer writes that miner's mean loss over the positions.
pub fn miner_loss(reduction: Reduction) -> KernelDecl<'static> {
    KernelDecl::new(reduction.topk_cross_entropy(), "miner_loss")
        .read("ids")
        .read("logprobs")
        .read("targets")
        .read("ks")
        .write("losses")
        .uniform::<TopKParams>()
}

/// The top-k cross-entropy's `position_logprobs` after `reduction`'s prelude, declared: per miner
/// and position, the log of the probability given to the target and the mass spread over each
/// token outside the top k.
pub fn position_logprobs(reduction: Reduction) -> KernelDecl<'static> {
    KernelDecl::new(reduction.topk_cross_entropy(), "position_logprobs")
        .read("ids")
        .read("logprobs")
        .read("targets")
        .read("ks")
        .write("position_logp")
        .write("position_rest")
        .uniform::<TopKParams>()
}

/// The uniform block of the top-k divergence kernels, byte for byte.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct TopKDivergenceParams {
    pub miners: u32,
    pub positions: u32,
    /// The padded width.
    pub k: u32,
    pub vocab: u32,
    /// The chunk of positions `hellinger` covers: `first .. first + count`.
    pub first: u32,
    pub count: u32,
    pub _pad: [u32; 2],
}
crate::uniform_layout!(TopKDivergenceParams { miners, positions, k, vocab, first, count, _pad });
