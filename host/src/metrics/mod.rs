//! Operating a neuron: Prometheus metrics and the run log (JSON lines and TensorBoard event files).
pub mod chain;
pub mod prometheus;
pub mod runlog;
pub mod tfevents;

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// Address for Prometheus' /metrics.
    pub ip: String,
    /// Port for /metrics (0: off).
    pub port: u16,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self { ip: "127.0.0.1".into(), port: 0 }
    }
}
