//! Operating a neuron: Prometheus metrics and the run log (JSON lines and TensorBoard event files).
pub mod chain;
pub mod prometheus;
pub mod runlog;
pub mod tfevents;
