//! The host end of the logging bridge: re-emits a plugin's events into the
//! host's `tracing` subscriber under the plugin's own target and level.
//!
//! `tracing` wants `'static` metadata with a registered callsite, while a
//! plugin's targets are only known at run time. Each (target, level) pair is
//! therefore interned once: a leaked callsite and metadata, registered with
//! `tracing-core` so filters (`RUST_LOG=gpt=debug`) see it like any other.
//! The set is bounded by the plugins' module paths; past a cap, events go out
//! under the target `plugin` with their real target in the message.

use std::{
    collections::HashMap,
    sync::{Mutex, OnceLock},
};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RArc, RStr},
};
use neuron_plugin_api::abi::{LogLevel, LogRecord, LogSink, LogSinkBox, LogSink_TO};
use tracing_core::{
    callsite::{Callsite, Identifier},
    field::{FieldSet, Value},
    metadata::Kind,
    subscriber::Interest,
    Event, Level, LevelFilter, Metadata,
};

const MAX_TARGETS: usize = 1024;
const OVERFLOW_TARGET: &str = "plugin";

struct PluginCallsite {
    meta: OnceLock<Metadata<'static>>,
}

impl Callsite for PluginCallsite {
    fn set_interest(&self, _interest: Interest) {}
    fn metadata(&self) -> &Metadata<'_> {
        self.meta.get().expect("metadata is set before the callsite is registered")
    }
}

static CALLSITES: OnceLock<Mutex<HashMap<(String, Level), &'static PluginCallsite>>> = OnceLock::new();

fn callsite(target: &str, level: Level) -> &'static PluginCallsite {
    let mut map = CALLSITES.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    let target = if map.len() >= MAX_TARGETS && !map.contains_key(&(target.to_string(), level)) {
        OVERFLOW_TARGET
    } else {
        target
    };
    if let Some(cs) = map.get(&(target.to_string(), level)) {
        return cs;
    }
    let cs: &'static PluginCallsite = Box::leak(Box::new(PluginCallsite { meta: OnceLock::new() }));
    let target_static: &'static str = Box::leak(target.to_string().into_boxed_str());
    let meta = Metadata::new(
        "plugin event",
        target_static,
        level,
        None,
        None,
        None,
        FieldSet::new(&["message"], Identifier(cs)),
        Kind::EVENT,
    );
    let _ = cs.meta.set(meta);
    tracing_core::callsite::register(cs);
    map.insert((target.to_string(), level), cs);
    cs
}

/// The sink handed to every plugin at load.
#[derive(Clone)]
pub struct HostLogSink;

impl HostLogSink {
    pub fn into_abi() -> LogSinkBox {
        LogSink_TO::from_ptr(RArc::new(HostLogSink), TD_Opaque)
    }
}

impl LogSink for HostLogSink {
    fn enabled(&self, level: LogLevel, target: RStr<'_>) -> bool {
        let Some(level) = level.to_tracing() else { return false };
        if LevelFilter::current() < level {
            return false;
        }
        let meta = callsite(target.as_str(), level).metadata();
        tracing::dispatcher::get_default(|d| d.enabled(meta))
    }

    fn max_level(&self) -> LogLevel {
        LogLevel::from_filter(LevelFilter::current())
    }

    fn log(&self, record: LogRecord<'_>) {
        let Some(level) = record.level.to_tracing() else { return };
        let cs = callsite(record.target.as_str(), level);
        let meta = cs.metadata();
        let overflowed = meta.target() != record.target.as_str();
        let message =
            if overflowed { format!("[{}] {}", record.target, record.message) } else { record.message.to_string() };
        tracing::dispatcher::get_default(|d| {
            if d.enabled(meta) {
                let fields = meta.fields();
                let field = fields.field("message").expect("declared above");
                let text = format_args!("{message}");
                let values = [(&field, Some(&text as &dyn Value))];
                d.event(&Event::new(meta, &fields.value_set(&values)));
            }
        });
    }
}
