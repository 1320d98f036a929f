//! The logging bridge.
//!
//! A plugin is a separate shared library with its own copy of `tracing`, so its
//! events would never reach the host's subscriber. When the host loads a
//! plugin it hands over a [`LogSink`]; the plugin installs a subscriber that
//! forwards every event, with its own target and level, to that sink, and the
//! host re-emits it into its subscriber. `RUST_LOG=gpt=debug` therefore
//! filters a plugin's events exactly as if they were the host's.

use std::{
    fmt::{self, Write as _},
    sync::atomic::{AtomicU64, Ordering},
};

use abi_stable::{
    sabi_trait,
    std_types::{RArc, RStr, RString},
    StableAbi,
};
use tracing_core::{
    field::{Field, Visit},
    span, Event, Interest, Level, LevelFilter, Metadata, Subscriber,
};

/// A log level; `OFF` means nothing is logged.
#[repr(transparent)]
#[derive(StableAbi, Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogLevel(pub u32);

impl LogLevel {
    pub const OFF: Self = Self(0);
    pub const ERROR: Self = Self(1);
    pub const WARN: Self = Self(2);
    pub const INFO: Self = Self(3);
    pub const DEBUG: Self = Self(4);
    pub const TRACE: Self = Self(5);

    pub fn from_tracing(level: &Level) -> Self {
        match *level {
            Level::ERROR => Self::ERROR,
            Level::WARN => Self::WARN,
            Level::INFO => Self::INFO,
            Level::DEBUG => Self::DEBUG,
            Level::TRACE => Self::TRACE,
        }
    }
    /// The tracing level, or `None` for `OFF` (and unknown values).
    pub fn to_tracing(self) -> Option<Level> {
        Some(match self {
            Self::ERROR => Level::ERROR,
            Self::WARN => Level::WARN,
            Self::INFO => Level::INFO,
            Self::DEBUG => Level::DEBUG,
            Self::TRACE => Level::TRACE,
            _ => return None,
        })
    }
    pub fn to_filter(self) -> LevelFilter {
        self.to_tracing().map(LevelFilter::from_level).unwrap_or(LevelFilter::OFF)
    }
    pub fn from_filter(filter: LevelFilter) -> Self {
        filter.into_level().map(|l| Self::from_tracing(&l)).unwrap_or(Self::OFF)
    }
}

/// One event from a plugin.
#[repr(C)]
#[derive(StableAbi, Copy, Clone, Debug)]
pub struct LogRecord<'a> {
    pub level: LogLevel,
    pub target: RStr<'a>,
    /// The event's message followed by its other fields as ` key=value`.
    pub message: RStr<'a>,
    pub module_path: RStr<'a>,
    pub file: RStr<'a>,
    /// 0 when unknown.
    pub line: u32,
}

/// Where a plugin's events go; implemented by the host.
#[sabi_trait]
pub trait LogSink: Send + Sync + Clone {
    /// Whether the host's subscriber wants events of this level and target.
    fn enabled(&self, level: LogLevel, target: RStr<'_>) -> bool;
    /// The most verbose level the host's subscriber may want.
    fn max_level(&self) -> LogLevel;
    #[sabi(last_prefix_field)]
    fn log(&self, record: LogRecord<'_>);
}

pub type LogSinkBox = LogSink_TO<'static, RArc<()>>;

/// What the host gives a plugin once, right after loading it.
#[repr(C)]
#[derive(StableAbi, Clone)]
pub struct HostServices {
    pub log: LogSinkBox,
    /// The host's own version, for the plugin's information.
    pub host_version: RString,
}

/// Forwards the plugin's events to the host. Spans are accepted and ignored:
/// only events cross the boundary.
struct Forwarder {
    sink: LogSinkBox,
    max: LevelFilter,
    next_span: AtomicU64,
}

impl Subscriber for Forwarder {
    fn register_callsite(&self, _meta: &'static Metadata<'static>) -> Interest {
        // The host decides per event; its filter may depend on the target.
        Interest::sometimes()
    }
    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        meta.is_span() || self.sink.enabled(LogLevel::from_tracing(meta.level()), meta.target().into())
    }
    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.max)
    }
    fn new_span(&self, _span: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(self.next_span.fetch_add(1, Ordering::Relaxed) + 1)
    }
    fn record(&self, _span: &span::Id, _values: &span::Record<'_>) {}
    fn record_follows_from(&self, _span: &span::Id, _follows: &span::Id) {}
    fn event(&self, event: &Event<'_>) {
        let meta = event.metadata();
        let mut text = MessageText::default();
        event.record(&mut text);
        let message = text.finish();
        self.sink.log(LogRecord {
            level: LogLevel::from_tracing(meta.level()),
            target: meta.target().into(),
            message: message.as_str().into(),
            module_path: meta.module_path().unwrap_or("").into(),
            file: meta.file().unwrap_or("").into(),
            line: meta.line().unwrap_or(0),
        });
    }
    fn enter(&self, _span: &span::Id) {}
    fn exit(&self, _span: &span::Id) {}
}

#[derive(Default)]
struct MessageText {
    message: String,
    fields: String,
}

impl MessageText {
    fn finish(self) -> String {
        if self.fields.is_empty() {
            self.message
        } else if self.message.is_empty() {
            self.fields.trim_start().to_string()
        } else {
            self.message + &self.fields
        }
    }
}

impl Visit for MessageText {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }
}

/// Installs the forwarding subscriber as this plugin's global default. Called
/// once by the host through the root module's `init`; a second call (the same
/// library loaded again) keeps the first subscriber.
pub(crate) fn install(host: &HostServices) {
    let forwarder =
        Forwarder { sink: host.log.clone(), max: host.log.max_level().to_filter(), next_span: AtomicU64::new(0) };
    if tracing::subscriber::set_global_default(forwarder).is_ok() {
        tracing_core::callsite::rebuild_interest_cache();
    }
}
