//! # neuron-plugin-host
//!
//! The host side of the plugin boundary, in a crate of its own so that the neuron-host binary and
//! the plugin test kit (`neuron-plugin-testkit`) run plugins through one implementation:
//!
//! - [`gpu`]: the process's wgpu device ([`GpuDevice`]), the kernel cache and the compute context
//!   each plugin instance gets (`plugin_api::Compute`, checked before wgpu sees anything);
//! - [`loader`]: opening a plugin library ([`LoadedPlugin`]), checking its ABI, bridging its logs,
//!   and calling it ([`PluginModel`], [`PluginScorer`]) with every failure one line naming the
//!   plugin and the call.
//!
//! It knows nothing of chains, networks, checkpoints or configuration files.

pub mod error;
pub mod gpu;
pub mod loader;

pub use error::{Error, Result};
pub use gpu::{ComputeContext, GpuDevice, GpuOptions, Requirement};
pub use loader::{load_all, HostLogSink, LoadedPlugin, PluginModel, PluginScorer};
