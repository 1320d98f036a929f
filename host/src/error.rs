//! The host's one error type. Every variant renders as one line that names
//! the thing that went wrong and, where there is one, what to do about it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The GPU or a plugin: no adapter, a device failure, a plugin that cannot load, a plugin call
    /// that failed (each one line from `neuron-plugin-host`, which the test kit shares).
    #[error(transparent)]
    Plugins(#[from] neuron_plugin_host::Error),

    /// Training or evaluation data that cannot be used (a malformed token file, ids outside a
    /// vocabulary, too little data for one batch).
    #[error("{0}")]
    Data(String),

    /// Bad configuration: a flag, a file, an environment variable.
    #[error("{0}")]
    Config(String),

    /// A chain call failed (each `ChainError` is one line naming the endpoint or the refusal).
    #[error("{0}")]
    Chain(#[from] crate::chain::ChainError),

    /// A wallet could not be used (names the wallet or variable and the fix).
    #[error("wallet: {0}")]
    Wallet(String),

    /// A keyfile could not be read or written; `problem` never holds secrets.
    #[error("keyfile {} {problem}", path.display())]
    Keyfile { path: PathBuf, problem: String },

    /// The network layer could not start or was misconfigured.
    #[error("network: {0}")]
    Net(String),

    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },

    /// A check the user asked for found a problem (`plugin check`); the report above says more.
    #[error("{0}")]
    Check(String),

    /// A job stopped early by Ctrl-C or SIGTERM, after saving what it could; the message says
    /// where and how to continue. The process exits with 130, as a shell does for SIGINT.
    #[error("{0}")]
    Interrupted(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The process's exit status for this error: 130 for an interrupted job, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Interrupted(_) => 130,
            _ => 1,
        }
    }
}
