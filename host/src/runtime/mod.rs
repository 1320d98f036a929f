//! The runtime: the epoch scheduler and the miner and validator roles, and a
//! whole local subnet in one process.

pub mod checkpoints;
pub mod directory;
pub mod epoch;
pub mod miner;
pub mod schedule;
pub mod scores;
pub mod service;
pub mod subnet;
pub mod training;
pub mod validator;
