//! The host's log subscriber: human-readable lines (or JSON objects with
//! `logging.format = "json"`) on stderr, filtered by
//! `RUST_LOG` (default `info`). Plugin events arrive through the log bridge
//! under their own targets, so `RUST_LOG=gpt=debug` works for plugins too.

use tracing_subscriber::{fmt, prelude::*, EnvFilter};

/// Installs the global subscriber with text lines (once; later calls are ignored).
pub fn init() {
    init_with_format(LogFormat::Text);
}

/// How log lines are written (`logging.format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Lines for people (coloured on a terminal).
    #[default]
    Text,
    /// One JSON object per event, for log collectors.
    Json,
}

/// Installs the global subscriber in `format`.
pub fn init_with_format(format: LogFormat) {
    use std::io::IsTerminal;
    // Colours only on a terminal: a log file or pipe gets no control codes.
    let ansi = std::io::stderr().is_terminal();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = if format == LogFormat::Json {
        registry.with(fmt::layer().json().with_writer(std::io::stderr).with_target(true)).try_init()
    } else {
        registry.with(fmt::layer().with_writer(std::io::stderr).with_target(true).with_ansi(ansi)).try_init()
    };
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingSettings {
    /// text or json.
    pub format: LogFormat,
    /// Where runs write their logs ("" for runs/<time>).
    pub run_dir: String,
    /// Seconds between progress lines when stderr is not a terminal (on a
    /// terminal the progress line is redrawn every second).
    pub progress_every: f64,
}

impl Default for LoggingSettings {
    fn default() -> Self {
        Self { format: LogFormat::Text, run_dir: String::new(), progress_every: 30.0 }
    }
}

impl LoggingSettings {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.progress_every.is_finite() && self.progress_every > 0.0) {
            return Err(format!(
                "logging.progress_every must be a number of seconds above 0, got {}",
                self.progress_every
            ));
        }
        Ok(())
    }
}
