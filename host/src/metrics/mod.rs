//! Operating a neuron: the run log (JSON lines and TensorBoard event files).
pub mod runlog;
pub mod tfevents;
