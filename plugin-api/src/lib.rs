//! # neuron-plugin-api
//!
//! The only crate a neuron-host plugin depends on. Start with [`prelude`]:
//!
//! ```
//! use neuron_plugin_api::prelude::*;
//! ```
//!
//! It brings what an author writes against:
//!
//! - [`Plugin`], the descriptor a plugin builds and hands to [`export_plugin!`];
//! - the traits a plugin implements: [`ModelPlugin`] (forward, loss, backward, optimizer step,
//!   state; its documentation is the training contract) and [`ScorerPlugin`] (one score per
//!   miner); methods an inference-only model or a stateless scorer does not need have defaults;
//! - the GPU: [`Gpu`] (WGSL kernels, buffers, batched submissions through the host's device,
//!   without linking wgpu) and [`KernelDecl`], which states a kernel's bindings and uniform layout
//!   once in Rust and has them checked against the WGSL when the kernel is built;
//! - [`shaders`]: the WGSL plugins share (the workgroup reductions, as a tree or on subgroup
//!   operations per device, and the top-k kernels) beside the
//!   Rust types that describe their buffers ([`TopKAnswers`], [`TopKParams`]);
//! - [`PluginConfig`] for reading the plugin's TOML section, and the data types that cross the
//!   boundary ([`TokenBatch`], [`ForwardOutput`], [`Tensor`], ...).
//!
//! What the host and the export macro use to cross the ABI (the `#[sabi_trait]` traits, their
//! trait objects, the root module, the logging bridge) is in [`abi`]; an author never needs it.
//!
//! Every entry point is wrapped in a panic guard: a panic becomes a [`PluginError`] of kind
//! [`ErrorKind::PANIC`] instead of aborting the host. Test a plugin with `neuron-plugin-testkit`.
//!
//! It is not a place for host logic: nothing here talks to a chain, a network or a file.

// abi_stable's #[sabi_trait] expands to impls inside a generated const block.
#![allow(non_local_definitions)]

mod compute;
pub mod config;
mod error;
#[doc(hidden)]
pub mod export;
mod guard;
mod kernel;
mod logging;
mod model;
mod plugin;
pub mod rand;
mod scorer;
pub mod shaders;
mod types;

pub use abi_stable;
pub use bytemuck;
pub use toml;
pub use tracing;

#[doc(hidden)]
pub use export::__private;

pub use compute::{
    AdapterInfo, Batch, Buffer, BufferId, BufferSlice, ComputeStats, DeviceLimits, Gpu, Kernel, KernelBinding,
    KernelId, KernelInfo, ReadToken, Readback, Recorded, UniformMember,
};
pub use config::PluginConfig;
pub use error::{ErrorKind, PluginError, Result};
pub use kernel::{Access, KernelDecl, Uniform, UniformField};
pub use model::{top_k_logprobs, ModelDescription, ModelPlugin};
pub use plugin::{GpuRequirements, LimitRequirement, Plugin, PluginInfo, PluginKinds, ABI_VERSION};
pub use scorer::{usable_response, ScorerDescription, ScorerPlugin, TopKAnswers, TopKParams};
pub use types::{
    check_state, DType, ForwardOutput, MinerResponse, OutputKind, OutputRequest, Positions, ResponseStatus, Scores,
    ScoringBatch, StateGroup, StepStats, Tensor, TensorSpec, TokenBatch,
};

/// What a plugin author uses, in one import: `use neuron_plugin_api::prelude::*;`.
pub mod prelude {
    pub use crate::{
        export_plugin, shaders, uniform_layout, Batch, Buffer, BufferSlice, DType, ForwardOutput, Gpu, Kernel,
        KernelDecl, MinerResponse, ModelDescription, ModelPlugin, OutputKind, OutputRequest, Plugin, PluginConfig,
        PluginError, Positions, ResponseStatus, Result, ScorerDescription, ScorerPlugin, Scores, ScoringBatch,
        StateGroup, StepStats, Tensor, TensorSpec, TokenBatch, TopKAnswers, TopKParams, Uniform,
    };
    pub use bytemuck::{Pod, Zeroable};
}

/// The ABI itself: the `#[sabi_trait]` traits the host calls and their trait objects, the
/// commands a batch crosses as, the root module and the logging bridge. The host and
/// [`export_plugin!`] use these; a plugin author does not.
pub mod abi {
    pub use crate::{
        compute::{Command, Commands, Compute, ComputeBox, Compute_TO},
        logging::{HostServices, LogLevel, LogRecord, LogSink, LogSinkBox, LogSink_TO},
        model::{model_box, Model, ModelBox, Model_TO},
        plugin::{PluginMod, PluginModRef},
        scorer::{scorer_box, Scorer, ScorerBox, Scorer_TO},
    };
}
