//! The runtime: the epoch scheduler and the miner and validator roles, and a
//! whole local subnet in one process.

pub mod checkpoints;
pub mod directory;
pub mod epoch;
pub mod local_net;
pub mod miner;
pub mod neurons;
pub mod plugin_set;
pub mod progress;
pub mod schedule;
pub mod scorer_slot;
pub mod scoring;
pub mod service;
pub mod subnet;
pub mod training;
pub mod validator;
