//! A plugin's `tracing` events reach the host's subscriber with the plugin's
//! own target and level, and the host's filter applies to them.

use std::sync::{Arc, Mutex};

use neuron_e2e::{gpu, host_command, plugin};
use neuron_host::plugins::LoadedPlugin;
use neuron_plugin_api::{OutputRequest, TokenBatch};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::{layer::Context, prelude::*, EnvFilter, Layer};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<(String, Level, String)>>>);

impl<S: Subscriber> Layer<S> for Captured {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                if f.name() == "message" {
                    self.0 = format!("{v:?}");
                }
            }
        }
        let mut m = Message(String::new());
        event.record(&mut m);
        let meta = event.metadata();
        self.0.lock().unwrap().push((meta.target().to_string(), *meta.level(), m.0));
    }
}

#[test]
fn plugin_events_arrive_with_their_target_and_obey_the_filter() {
    let captured = Captured::default();
    tracing_subscriber::registry()
        .with(captured.clone().with_filter(EnvFilter::new("info,fixture_model=debug,fixture_model::audit=off")))
        .init();

    let fixture = LoadedPlugin::load(&plugin("fixture_model")).unwrap();
    let mut model = fixture.new_model(&gpu(), "").unwrap();
    model.forward(TokenBatch::new(1, 4, &[1, 2, 3, 4]), OutputRequest::logits()).unwrap();

    let events = captured.0.lock().unwrap().clone();
    let from_plugin: Vec<_> = events.iter().filter(|(t, _, _)| t.starts_with("fixture_model")).collect();
    assert!(
        from_plugin
            .iter()
            .any(|(t, l, m)| t == "fixture_model" && *l == Level::INFO && m == "fixture model ready vocab=16 shift=1"),
        "info event with fields: {events:?}"
    );
    assert!(
        from_plugin
            .iter()
            .any(|(t, l, m)| t == "fixture_model" && *l == Level::DEBUG && m == "fixture forward positions=4"),
        "debug event passes `fixture_model=debug`: {events:?}"
    );
    assert!(!from_plugin.iter().any(|(_, l, _)| *l == Level::TRACE), "trace is filtered: {events:?}");
    assert!(!from_plugin.iter().any(|(t, _, _)| t == "fixture_model::audit"), "audit target is off: {events:?}");
}

#[test]
fn rust_log_filters_plugin_events_in_the_binary() {
    let run = |filter: &str| {
        let out = host_command()
            .env("RUST_LOG", filter)
            .args(["plugin", "inspect"])
            .arg(plugin("fixture_model"))
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let shown = run("warn,fixture_model=info");
    assert!(shown.contains("fixture_model") && shown.contains("fixture model ready"), "{shown}");
    assert!(shown.contains("fixture_model::audit") && shown.contains("audit trail opened"), "{shown}");
    let hidden = run("warn,fixture_model=error");
    assert!(!hidden.contains("fixture model ready") && !hidden.contains("audit trail"), "{hidden}");
}
