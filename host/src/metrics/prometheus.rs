//! Prometheus metrics: one registry per process, served as OpenMetrics text
//! on `/metrics`.
//!
//! Names follow Prometheus' conventions: prefix `neuron_`, base units in the
//! name (`_seconds`, `_bytes`), `_total` on counters. Every series carries a
//! `neuron` label (a local subnet runs several neurons in one process);
//! per-uid series also carry `uid`, and are dropped when the subnet shrinks,
//! so label cardinality stays bounded by the subnet's size.

use std::{
    net::SocketAddr,
    sync::{atomic::AtomicU64, Arc, Mutex},
};

use prometheus_client::{
    encoding::{text::encode, EncodeLabelSet},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{exponential_buckets, Histogram},
    },
    registry::{Registry, Unit},
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NeuronLabel {
    pub neuron: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UidLabels {
    pub neuron: String,
    pub uid: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub neuron: String,
    /// answered, timeout, malformed, error
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub neuron: String,
    /// The chain call, e.g. set_weights, metagraph.
    pub call: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub neuron: String,
    /// The chain's error name, e.g. SettingWeightsTooFast.
    pub reason: String,
}

type FGauge = Gauge<f64, AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    name: String,
    version: String,
    kind: String,
}

/// `neuron_plugin_info{name, version, kind} 1`, one sample per loaded plugin,
/// in one family (a plugin loaded twice is listed once).
#[derive(Debug, Default)]
struct PluginInfos(Mutex<Vec<PluginLabels>>);

impl prometheus_client::collector::Collector for PluginInfos {
    fn encode(&self, mut encoder: prometheus_client::encoding::DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let plugins = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if plugins.is_empty() {
            return Ok(());
        }
        let mut family = encoder.encode_descriptor(
            "plugin",
            "A loaded plugin, its version and what it provides",
            None,
            prometheus_client::metrics::MetricType::Info,
        )?;
        for p in plugins.iter() {
            family.encode_info(p)?;
        }
        Ok(())
    }
}

fn seconds_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.001, 2.0, 18)
}

/// Every metric family of the process.
pub struct Metrics {
    registry: Mutex<Registry>,
    plugins: Arc<PluginInfos>,
    pub step_duration: Family<NeuronLabel, Histogram>,
    pub tokens_per_second: Family<NeuronLabel, FGauge>,
    pub loss: Family<NeuronLabel, FGauge>,
    pub learning_rate: Family<NeuronLabel, FGauge>,
    pub global_step: Family<NeuronLabel, Gauge>,
    pub epoch: Family<NeuronLabel, Gauge>,
    pub block: Family<NeuronLabel, Gauge>,
    pub uid_score: Family<UidLabels, FGauge>,
    pub uid_weight: Family<UidLabels, FGauge>,
    pub queries: Family<OutcomeLabels, Counter>,
    pub query_latency: Family<NeuronLabel, Histogram>,
    pub forward_duration: Family<NeuronLabel, Histogram>,
    pub chain_request_duration: Family<CallLabels, Histogram>,
    pub chain_errors: Family<CallLabels, Counter>,
    pub weights_set: Family<NeuronLabel, Counter>,
    pub weights_refused: Family<ReasonLabels, Counter>,
    pub checkpoint_duration: Family<NeuronLabel, Histogram>,
    pub checkpoint_size: Family<NeuronLabel, Gauge>,
    pub checkpoint_failures: Family<NeuronLabel, Counter>,
    pub gpu_memory: Family<NeuronLabel, Gauge>,
    pub epoch_start_block: Family<NeuronLabel, Gauge>,
    pub epoch_length_blocks: Family<NeuronLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let hist = || Family::<NeuronLabel, Histogram>::new_with_constructor(|| Histogram::new(seconds_buckets()));
        let m = Metrics {
            registry: Mutex::new(Registry::with_prefix("neuron")),
            plugins: Arc::default(),
            step_duration: hist(),
            tokens_per_second: Family::default(),
            loss: Family::default(),
            learning_rate: Family::default(),
            global_step: Family::default(),
            epoch: Family::default(),
            block: Family::default(),
            uid_score: Family::default(),
            uid_weight: Family::default(),
            queries: Family::default(),
            query_latency: hist(),
            forward_duration: hist(),
            chain_request_duration: Family::<CallLabels, Histogram>::new_with_constructor(|| {
                Histogram::new(seconds_buckets())
            }),
            chain_errors: Family::default(),
            weights_set: Family::default(),
            weights_refused: Family::default(),
            checkpoint_duration: hist(),
            checkpoint_size: Family::default(),
            checkpoint_failures: Family::default(),
            gpu_memory: Family::default(),
            epoch_start_block: Family::default(),
            epoch_length_blocks: Family::default(),
        };
        {
            let mut r = m.registry.lock().expect("fresh mutex");
            r.register_with_unit(
                "step_duration",
                "Duration of one training or validation step",
                Unit::Seconds,
                m.step_duration.clone(),
            );
            r.register(
                "tokens_per_second",
                "Tokens processed per second in the last step",
                m.tokens_per_second.clone(),
            );
            r.register("loss", "Mean next-token cross-entropy of the last step, in nats per token", m.loss.clone());
            r.register("learning_rate", "Learning rate of the last optimizer step", m.learning_rate.clone());
            r.register(
                "global_step",
                "Optimizer steps taken since the first start (resumed from checkpoints)",
                m.global_step.clone(),
            );
            r.register("epoch", "Epochs completed", m.epoch.clone());
            r.register("block", "Latest chain block seen", m.block.clone());
            r.register("uid_score", "A validator's moving-average score of each uid", m.uid_score.clone());
            r.register(
                "uid_weight",
                "The weight a validator last set on each uid, as a share of 1",
                m.uid_weight.clone(),
            );
            r.register("queries", "Queries a validator sent to miners, by outcome", m.queries.clone());
            r.register_with_unit(
                "query_latency",
                "Time from sending a query to its answer",
                Unit::Seconds,
                m.query_latency.clone(),
            );
            r.register_with_unit(
                "forward_duration",
                "Time a miner's model spent computing the answer to one query",
                Unit::Seconds,
                m.forward_duration.clone(),
            );
            r.register_with_unit(
                "chain_request_duration",
                "Duration of chain reads and extrinsics",
                Unit::Seconds,
                m.chain_request_duration.clone(),
            );
            r.register("chain_errors", "Chain calls that failed", m.chain_errors.clone());
            r.register("weights_set", "Weight vectors the chain accepted (set or revealed)", m.weights_set.clone());
            r.register(
                "weights_refused",
                "Weight submissions the chain refused, by the chain's error name",
                m.weights_refused.clone(),
            );
            r.register_with_unit(
                "checkpoint_duration",
                "Time to write one checkpoint",
                Unit::Seconds,
                m.checkpoint_duration.clone(),
            );
            r.register_with_unit(
                "checkpoint_size",
                "Size of the last checkpoint written",
                Unit::Bytes,
                m.checkpoint_size.clone(),
            );
            r.register(
                "checkpoint_failures",
                "Checkpoint saves that failed (the previous checkpoint was kept)",
                m.checkpoint_failures.clone(),
            );
            r.register_with_unit(
                "gpu_memory",
                "GPU memory in buffers of a neuron's plugins",
                Unit::Bytes,
                m.gpu_memory.clone(),
            );
            r.register(
                "epoch_start_block",
                "Block at which a validator's current epoch started",
                m.epoch_start_block.clone(),
            );
            r.register(
                "epoch_length_blocks",
                "Length of a validator's epochs, in blocks",
                m.epoch_length_blocks.clone(),
            );
            r.register_collector(Box::new(m.plugins.clone()));
        }
        m
    }

    /// Declares a loaded plugin (`neuron_plugin_info{name, version, kind} 1`).
    pub fn plugin_info(&self, name: &str, version: &str, kind: &str) {
        let labels = PluginLabels { name: name.into(), version: version.into(), kind: kind.into() };
        let mut plugins = self.plugins.0.lock().unwrap_or_else(|p| p.into_inner());
        if !plugins.contains(&labels) {
            plugins.push(labels);
        }
    }

    /// Drops per-uid series of `neuron` for uids at or above `n`.
    pub fn truncate_uids(&self, neuron: &str, n: usize, previous_n: usize) {
        for uid in n..previous_n {
            let labels = UidLabels { neuron: neuron.to_string(), uid: uid.to_string() };
            self.uid_score.remove(&labels);
            self.uid_weight.remove(&labels);
        }
    }

    /// The OpenMetrics text of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let r = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        encode(&mut out, &r).expect("writing to a String cannot fail");
        out
    }

    /// The same metrics in Prometheus' older text format (0.0.4), for
    /// scrapers that do not ask for OpenMetrics (`curl`, `promtool check metrics`).
    pub fn render_text(&self) -> String {
        openmetrics_to_text(&self.render())
    }
}

/// Rewrites OpenMetrics text as Prometheus text format 0.0.4: counter
/// families take the `_total` name of their samples, info families become
/// `_info` gauges, and `# UNIT` and `# EOF` go (0.0.4 has neither).
fn openmetrics_to_text(om: &str) -> String {
    let mut renamed: std::collections::HashMap<&str, (String, &str)> = std::collections::HashMap::new();
    for line in om.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some((name, kind)) = rest.split_once(' ') {
                match kind {
                    "counter" => renamed.insert(name, (format!("{name}_total"), "counter")),
                    "info" => renamed.insert(name, (format!("{name}_info"), "gauge")),
                    _ => None,
                };
            }
        }
    }
    let mut out = String::with_capacity(om.len());
    for line in om.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let rewritten = if let Some(rest) = line.strip_prefix("# TYPE ") {
            match rest.split_once(' ').and_then(|(name, _)| renamed.get(name)) {
                Some((name, kind)) => format!("# TYPE {name} {kind}"),
                None => line.to_string(),
            }
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            // 0.0.4 escapes only backslash and newline in help text.
            let help = help.replace("\\\"", "\"");
            let name = renamed.get(name).map_or(name, |(n, _)| n.as_str());
            format!("# HELP {name} {help}")
        } else {
            line.to_string()
        };
        out.push_str(&rewritten);
        out.push('\n');
    }
    out
}

/// Labels for one neuron's series.
pub fn neuron(name: &str) -> NeuronLabel {
    NeuronLabel { neuron: name.to_string() }
}

/// The `/metrics` endpoint, running on the current tokio runtime.
pub struct MetricsServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl MetricsServer {
    pub async fn start(bind: SocketAddr, metrics: Arc<Metrics>) -> Result<Self, String> {
        use axum::{
            http::{header, HeaderMap},
            routing::get,
            Router,
        };
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .map_err(|e| format!("cannot serve metrics on {bind}: {e} (choose another port with --metrics.port, or 0 to turn metrics off)"))?;
        let addr = listener.local_addr().map_err(|e| format!("metrics socket: {e}"))?;
        let app = Router::new().route(
            "/metrics",
            get(move |headers: HeaderMap| {
                let metrics = metrics.clone();
                async move {
                    // Prometheus asks for OpenMetrics; anything else gets the 0.0.4 text format.
                    let openmetrics = headers
                        .get_all(header::ACCEPT)
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .any(|v| v.contains("application/openmetrics-text"));
                    if openmetrics {
                        (
                            [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
                            metrics.render(),
                        )
                    } else {
                        ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], metrics.render_text())
                    }
                }
            }),
        );
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(target: "neuron_host::metrics", "metrics server stopped: {e}");
            }
        });
        tracing::info!(target: "neuron_host::metrics", "Prometheus metrics on http://{addr}/metrics");
        Ok(Self { addr, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_conventional_names() {
        let m = Metrics::new();
        m.loss.get_or_create(&neuron("miner-1")).set(2.5);
        m.step_duration.get_or_create(&neuron("miner-1")).observe(0.25);
        m.queries.get_or_create(&OutcomeLabels { neuron: "validator".into(), outcome: "timeout".into() }).inc();
        m.uid_score.get_or_create(&UidLabels { neuron: "validator".into(), uid: "3".into() }).set(0.5);
        m.plugin_info("gpt", "0.1.0", "model");
        let text = m.render();
        for expected in [
            "neuron_loss{neuron=\"miner-1\"} 2.5",
            "neuron_step_duration_seconds_count{neuron=\"miner-1\"} 1",
            "neuron_queries_total{neuron=\"validator\",outcome=\"timeout\"} 1",
            "neuron_uid_score{neuron=\"validator\",uid=\"3\"} 0.5",
            "neuron_plugin_info{name=\"gpt\",version=\"0.1.0\",kind=\"model\"} 1",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
        m.plugin_info("gpt", "0.1.0", "model");
        m.plugin_info("scoring-loss", "0.1.0", "scorer");
        let text = m.render();
        assert_eq!(text.matches("# TYPE neuron_plugin info").count(), 1, "one family: {text}");
        assert_eq!(text.matches("neuron_plugin_info{").count(), 2, "one sample per plugin: {text}");
        assert!(text.ends_with("# EOF\n"));

        // The 0.0.4 text: families named like their samples, no OpenMetrics-only lines.
        let plain = m.render_text();
        for expected in [
            "# TYPE neuron_queries_total counter",
            "# HELP neuron_queries_total Queries",
            "# TYPE neuron_plugin_info gauge",
            "# TYPE neuron_step_duration_seconds histogram",
            "neuron_queries_total{neuron=\"validator\",outcome=\"timeout\"} 1",
        ] {
            assert!(plain.contains(expected), "missing {expected:?} in:\n{plain}");
        }
        assert!(!plain.contains("# EOF") && !plain.contains("# UNIT") && !plain.contains(" info\n"), "{plain}");
        m.truncate_uids("validator", 2, 4);
        assert!(!m.render().contains("uid=\"3\""));
    }
}
