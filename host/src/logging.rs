//! The host's log subscriber: human-readable lines on stderr, filtered by
//! `RUST_LOG` (default `info`). Plugin events arrive through the log bridge
//! under their own targets, so `RUST_LOG=gpt=debug` works for plugins too.

use tracing_subscriber::{fmt, prelude::*, EnvFilter};

/// Installs the global subscriber (once; later calls are ignored).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt::layer().with_writer(std::io::stderr).with_target(true))
        .try_init();
}
