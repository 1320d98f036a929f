//! # neuron-host
//!
//! The runtime for Bittensor neurons. The host owns what every neuron shares:
//! the GPU ([`gpu`]), plugin loading ([`plugins`]), configuration
//! ([`config`]), logging ([`logging`]) and training data ([`data`]). Models and scoring policies are
//! plugins built against `neuron-plugin-api`.
//!
//! Data flows one way: CLI -> config -> jobs -> plugins -> GPU. A lower layer
//! never reaches back up.

pub mod config;
pub mod data;
pub mod error;
pub mod gpu;
pub mod jobs;
pub mod logging;
pub mod plugins;

pub use error::{Error, Result};
