//! The runtime: the epoch scheduler and the miner and validator roles, and a
//! whole local subnet in one process.

pub mod checkpoints;
pub mod directory;
pub mod epoch;
pub mod miner;
pub mod progress;
pub mod schedule;
pub mod scorer_slot;
pub mod scores;
pub mod scoring;
pub mod service;
pub mod subnet;
pub mod training;
pub mod validator;

/// The sequence length a neuron can use with a model of `block_size`
/// positions: `requested`, or `block_size` with one warning when the
/// configured length (often the default, 64) is longer than the model's
/// context (the `tiny` preset has 16).
pub(crate) fn fit_sequence_length(neuron: &str, key: &str, requested: u32, block_size: u32) -> u32 {
    if block_size == 0 || requested <= block_size {
        return requested;
    }
    tracing::warn!(
        target: "neuron_host::runtime",
        "{neuron}: {key} = {requested} is longer than the model's context of {block_size} tokens; using {block_size} (set {key} to silence this)"
    );
    block_size
}
