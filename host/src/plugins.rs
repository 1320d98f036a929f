//! Plugins as the host loads and calls them: `neuron-plugin-host`'s loader, re-exported so the
//! runtime and the plugin test kit open and call plugins through one implementation.

pub use neuron_plugin_host::loader::*;
pub use neuron_plugin_host::Error;
