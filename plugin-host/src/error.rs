//! What can go wrong on the host side of the plugin boundary. Every variant renders as one line
//! that names the thing and, where there is one, the fix. The host turns these into its own
//! error type variant for variant.

use std::path::PathBuf;

use neuron_plugin_api::PluginError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No GPU adapter at all.
    #[error("no GPU adapter found ({searched}): {hint}")]
    NoAdapter { searched: String, hint: String },

    /// The GPU refused or failed something outside a plugin call.
    #[error("GPU: {0}")]
    Gpu(String),

    /// A GPU option that names nothing this host knows.
    #[error("{0}")]
    Config(String),

    /// A plugin file could not be loaded.
    #[error("cannot load plugin {}: {cause}", path.display())]
    PluginLoad { path: PathBuf, cause: String },

    /// A plugin call returned an error (or panicked).
    #[error("plugin {plugin} ({op}): {}", source.message)]
    Plugin { plugin: String, op: &'static str, source: PluginError },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn plugin(plugin: &str, op: &'static str, source: PluginError) -> Self {
        Self::Plugin { plugin: plugin.to_string(), op, source }
    }
}
