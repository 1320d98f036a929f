//! # neuron-host
//!
//! The runtime for Bittensor neurons. The host owns what every neuron shares:
//! the GPU ([`gpu`]), plugin loading ([`plugins`]), configuration
//! ([`config`]) and logging ([`logging`]), wallets ([`wallet`]), signed
//! HTTP between neurons ([`net`]) and training data ([`data`]). Models and scoring policies are
//! plugins built against `neuron-plugin-api`.
//!
//! Data flows one way: CLI -> config -> jobs -> plugins -> GPU. A lower layer
//! never reaches back up.

pub mod chain;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod error;
pub mod fsutil;
pub mod gpu;
pub mod jobs;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod plugins;
pub mod record;
pub mod report;
pub mod runtime;
pub mod scores;
pub mod wallet;
pub mod weights;

pub use error::{Error, Result};
