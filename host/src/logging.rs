//! The host's log subscriber: human-readable lines (or JSON objects with
//! `logging.format = "json"`) on stderr, filtered by
//! `RUST_LOG` (default `info`). Plugin events arrive through the log bridge
//! under their own targets, so `RUST_LOG=gpt=debug` works for plugins too.

use tracing_subscriber::{fmt, prelude::*, EnvFilter};

/// Installs the global subscriber with text lines (once; later calls are ignored).
pub fn init() {
    init_with_format("text");
}

/// Installs the global subscriber: `json` writes one JSON object per event
/// (for log collectors), anything else human-readable lines.
pub fn init_with_format(format: &str) {
    use std::io::IsTerminal;
    // Colours only on a terminal: a log file or pipe gets no control codes.
    let ansi = std::io::stderr().is_terminal();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = if format == "json" {
        registry.with(fmt::layer().json().with_writer(std::io::stderr).with_target(true)).try_init()
    } else {
        registry.with(fmt::layer().with_writer(std::io::stderr).with_target(true).with_ansi(ansi)).try_init()
    };
}
