//! The runtime: the epoch scheduler and the miner and validator roles.

pub mod epoch;
pub mod schedule;
pub mod scores;
