//! WGSL that plugins share, carried by this crate so that no plugin reaches outside its own
//! crate for it, with the Rust types that describe the kernels' buffers.
//!
//! WGSL has no includes. [`WORKGROUP_SUM`] is a prelude (a deterministic 256-thread workgroup
//! sum, fixed order, so results are reproducible bit for bit on one adapter): a kernel that calls
//! it is compiled after it, as [`with_prelude`] does. The top-k kernels here are complete sources,
//! prelude included; line numbers in their compile errors count the prelude's lines first.
//!
//! - [`TOPK_CROSS_ENTROPY`]: each miner's mean next-token cross-entropy from its top-k answer
//!   (`miner_loss`) and the probability mass each answer leaves outside its top k
//!   (`position_logprobs`); buffers packed by [`TopKAnswers`](crate::TopKAnswers), uniform
//!   [`TopKParams`](crate::TopKParams). Declared with its bindings in [`miner_loss`].
//! - [`TOPK_DIVERGENCE`]: how far each miner's distribution is from the miners' average
//!   (Hellinger), per position, and how much it exceeds the usual spread; uniform
//!   [`TopKDivergenceParams`].
//!
//! Each file's header comment (see the `shaders/` folder of this crate) lists its bindings,
//! workgroup layout and limits.

use crate::{KernelDecl, TopKParams};

/// The prelude: `WG` (256), `partial` (workgroup memory) and `workgroup_sum(lid, value)`.
pub const WORKGROUP_SUM: &str = include_str!("../shaders/workgroup_sum.wgsl");

/// Top-k cross-entropy, prelude included: entry points `miner_loss` and `position_logprobs`.
pub const TOPK_CROSS_ENTROPY: &str =
    concat!(include_str!("../shaders/workgroup_sum.wgsl"), include_str!("../shaders/topk_cross_entropy.wgsl"));

/// Top-k divergence, prelude included: entry points `hellinger`, `position_spread`, `miner_excess`.
pub const TOPK_DIVERGENCE: &str =
    concat!(include_str!("../shaders/workgroup_sum.wgsl"), include_str!("../shaders/topk_divergence.wgsl"));

/// A plugin's own kernel that calls `workgroup_sum`, with the prelude in front.
pub fn with_prelude(body: &str) -> String {
    [WORKGROUP_SUM, body].concat()
}

/// [`TOPK_CROSS_ENTROPY`]'s `miner_loss`, declared: one workgroup per packed answer writes that
/// miner's mean loss over the positions.
pub fn miner_loss() -> KernelDecl<'static> {
    KernelDecl::new(TOPK_CROSS_ENTROPY, "miner_loss")
        .read("ids")
        .read("logprobs")
        .read("targets")
        .read("ks")
        .write("losses")
        .uniform::<TopKParams>()
}

/// [`TOPK_CROSS_ENTROPY`]'s `position_logprobs`, declared: per miner and position, the log of the
/// probability given to the target and the mass spread over each token outside the top k.
pub fn position_logprobs() -> KernelDecl<'static> {
    KernelDecl::new(TOPK_CROSS_ENTROPY, "position_logprobs")
        .read("ids")
        .read("logprobs")
        .read("targets")
        .read("ks")
        .write("position_logp")
        .write("position_rest")
        .uniform::<TopKParams>()
}

/// The uniform block of [`TOPK_DIVERGENCE`], byte for byte.
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
