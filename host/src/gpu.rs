//! The GPU as the host configures it. The device, kernels and compute contexts live in
//! `neuron-plugin-host` (shared with the plugin test kit); this module re-exports them and owns
//! the `[gpu]` settings.

pub use neuron_plugin_host::gpu::*;

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GpuSettings {
    /// auto, vulkan, metal, dx12 or gl.
    pub backend: String,
    /// Use only adapters whose name contains this ("" for any).
    pub adapter: String,
}

impl Default for GpuSettings {
    fn default() -> Self {
        Self { backend: "auto".into(), adapter: String::new() }
    }
}
