//! The host's one error type. Every variant renders as one line that names
//! the thing that went wrong and, where there is one, what to do about it.

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

    /// A plugin file could not be loaded.
    #[error("cannot load plugin {}: {cause}", path.display())]
    PluginLoad { path: PathBuf, cause: String },

    /// A plugin call returned an error (or panicked).
    #[error("plugin {plugin} ({op}): {}", source.message)]
    Plugin { plugin: String, op: &'static str, source: PluginError },

    /// Bad configuration: a flag, a file, an environment variable.
    #[error("{0}")]
    Config(String),

    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },

    /// Training or evaluation data that cannot be used (a malformed token file, ids outside a
    /// vocabulary, too little data for one batch).
    #[error("{0}")]
    Data(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn plugin(plugin: &str, op: &'static str, source: PluginError) -> Self {
        Self::Plugin { plugin: plugin.to_string(), op, source }
    }
}
