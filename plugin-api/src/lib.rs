//! # neuron-plugin-api
//!
//! The only crate a neuron-host plugin depends on. It defines:
//!
//! - the plugin's root module and what it declares ([`PluginInfo`]), built from
//!   a [`Plugin`] descriptor with [`export_plugin!`];
//! - the traits a plugin implements: [`ModelPlugin`] (forward, loss, backward,
//!   optimizer step, state export/import) and [`ScorerPlugin`] (one score per
//!   miner);
//! - the GPU [`Gpu`] compute context the host provides: WGSL kernels, buffers
//!   and batched submissions, without the plugin linking wgpu;
//! - the logging bridge that carries a plugin's `tracing` events to the host;
//! - [`PluginConfig`] for reading the plugin's TOML section.
//!
//! It is not a place for host logic: nothing here talks to a chain, a network
//! or a file.
//!
//! Every entry point is wrapped in a panic guard: a panic becomes a
//! [`PluginError`] of kind [`ErrorKind::PANIC`] instead of aborting the host.

// abi_stable's #[sabi_trait] expands to impls inside a generated const block.
#![allow(non_local_definitions)]

pub mod compute;
pub mod config;
mod error;
pub mod export;
mod guard;
pub mod logging;
pub mod model;
mod plugin;
pub mod scorer;
mod types;

pub use abi_stable;
pub use bytemuck;
pub use toml;
pub use tracing;

#[doc(hidden)]
pub use export::__private;

pub use compute::{
    AdapterInfo, Batch, Buffer, BufferId, BufferSlice, Command, Commands, Compute, ComputeBox, ComputeStats,
    Compute_TO, DeviceLimits, Gpu, Kernel, KernelBinding, KernelId, KernelInfo, ReadToken, Readback, Recorded,
};
pub use config::PluginConfig;
pub use error::{ErrorKind, PluginError, Result};
pub use logging::{HostServices, LogLevel, LogRecord, LogSink, LogSinkBox, LogSink_TO};
pub use model::{model_box, top_k_logprobs, Model, ModelBox, ModelDescription, ModelPlugin, Model_TO};
pub use plugin::{
    GpuRequirements, LimitRequirement, Plugin, PluginInfo, PluginKinds, PluginMod, PluginModRef, ABI_VERSION,
};
pub use scorer::{
    scorer_box, usable_response, Scorer, ScorerBox, ScorerDescription, ScorerPlugin, Scorer_TO, TopKAnswers, TopKParams,
};
pub use types::{
    check_state, DType, ForwardOutput, MinerResponse, OutputKind, OutputRequest, Positions, ResponseStatus, Scores,
    ScoringBatch, StateGroup, StepStats, Tensor, TensorSpec, TokenBatch,
};
