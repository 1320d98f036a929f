//! Signed HTTP between neurons, interoperable with the Bittensor SDK's
//! `btauth/1` (`bittensor.http_auth`, SDK v11).
//!
//! - [`auth`]: the headers, the signed payload, [`Verifier`] (receiver
//!   binding, freshness window, replay cache written only after the signature
//!   verifies).
//! - [`server`]: the axum server every neuron runs ([`serve`]); it answers
//!   forward queries through a [`ForwardService`] the runtime implements.
//! - [`access`]: who may call ([`AccessRule`] over a [`PeerDirectory`]); 403
//!   when the caller is not registered, has no validator permit or too little stake.
//! - [`client`]: the validator's side ([`Client`]): signed requests, timeouts,
//!   an in-flight cap, keep-alive connections, answers checked and turned into
//!   `MinerResponse`s.
//! - [`wire`]: the messages: JSON for small ones, a versioned binary layout
//!   for forward outputs (top-k and logits), documented there.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use neuron_host::net::*;
//! # use neuron_host::wallet::{Keypair, Scheme};
//! # async fn demo(service: impl ForwardService, miner: Peer, query: wire::ForwardQuery) -> neuron_host::Result<()> {
//! // A miner:
//! let hotkey = Keypair::generate(Scheme::Sr25519, 12)?;
//! let config = ServerConfig { access: AccessRule::validators_only(), ..Default::default() };
//! let server = serve(config, &hotkey, service, Arc::new(OpenDirectory)).await?;
//! // A validator:
//! let client = Client::new(Arc::new(Keypair::generate(Scheme::Sr25519, 12)?), ClientConfig::default())?;
//! let response = client.forward(&miner, &query).await.to_miner_response(miner.uid);
//! # Ok(()) }
//! ```

pub mod access;
pub mod auth;
pub mod client;
pub mod server;
pub mod wire;

pub use access::{AccessRule, OpenDirectory, PeerDirectory, PeerStanding, StaticDirectory};
pub use auth::{AuthError, Caller, Freshness, Verifier};
pub use client::{Answer, CallError, Client, ClientConfig, Peer};
pub use server::{serve, ForwardService, RunningServer, ServerConfig, ServiceError};
pub use wire::{ForwardQuery, ModelSummary};

use std::time::Duration;

/// `[net]` in the configuration: how this neuron's server treats callers and how its client
/// queries others. (Where a miner's server listens is `[axon]`.)
///
/// ```toml
/// [net]
/// max_body_bytes = 4194304        # larger request bodies get 413
/// max_query_tokens = 65536
/// max_concurrent_forwards = 4
/// max_age_s = 10.0                # btauth/1 freshness window, back
/// allowed_skew_s = 2.0            # and ahead
/// require_registered = false      # who may call (403 otherwise)
/// require_validator_permit = false
/// min_stake_tao = 0.0
/// timeout_s = 12.0                # client: per request
/// max_in_flight = 64              # client: requests at once
/// ```
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetSettings {
    pub max_body_bytes: usize,
    pub max_query_tokens: usize,
    pub max_concurrent_forwards: usize,
    pub max_age_s: f64,
    pub allowed_skew_s: f64,
    pub require_registered: bool,
    pub require_validator_permit: bool,
    pub min_stake_tao: f64,
    pub timeout_s: f64,
    pub max_in_flight: usize,
}

impl Default for NetSettings {
    fn default() -> Self {
        let (server, client) = (ServerConfig::default(), ClientConfig::default());
        Self {
            max_body_bytes: server.max_body_bytes,
            max_query_tokens: server.max_query_tokens,
            max_concurrent_forwards: server.max_concurrent_forwards,
            max_age_s: server.freshness.max_age.as_secs_f64(),
            allowed_skew_s: server.freshness.allowed_skew.as_secs_f64(),
            require_registered: server.access.require_registered,
            require_validator_permit: server.access.require_validator_permit,
            min_stake_tao: server.access.min_stake_rao as f64 / 1e9,
            timeout_s: client.timeout.as_secs_f64(),
            max_in_flight: client.max_in_flight,
        }
    }
}

/// The server's and the client's configuration, from `[net]`.
#[derive(Clone, Debug, Default)]
pub struct NetConfig {
    pub server: ServerConfig,
    pub client: ClientConfig,
}

impl NetSettings {
    /// The server's and client's configuration; refuses values that cannot work, naming the key.
    pub fn to_config(&self) -> Result<NetConfig, String> {
        let positive = |key: &str, v: usize| {
            if v == 0 {
                Err(format!("net.{key} must be a positive integer"))
            } else {
                Ok(v)
            }
        };
        let seconds = |key: &str, v: f64| {
            if v.is_finite() && (0.0..1e9).contains(&v) {
                Ok(Duration::from_secs_f64(v))
            } else {
                Err(format!("net.{key} must be a number of seconds, got {v}"))
            }
        };
        if !(self.min_stake_tao.is_finite() && (0.0..=21e6).contains(&self.min_stake_tao)) {
            return Err(format!("net.min_stake_tao must be a number of TAO, got {}", self.min_stake_tao));
        }
        let mut c = NetConfig::default();
        c.server.max_body_bytes = positive("max_body_bytes", self.max_body_bytes)?;
        c.server.max_query_tokens = positive("max_query_tokens", self.max_query_tokens)?;
        c.server.max_concurrent_forwards = positive("max_concurrent_forwards", self.max_concurrent_forwards)?;
        c.server.freshness.max_age = seconds("max_age_s", self.max_age_s)?;
        c.server.freshness.allowed_skew = seconds("allowed_skew_s", self.allowed_skew_s)?;
        c.server.access.require_registered = self.require_registered;
        c.server.access.require_validator_permit = self.require_validator_permit;
        c.server.access.min_stake_rao = (self.min_stake_tao * 1e9).round() as u64;
        c.client.timeout = seconds("timeout_s", self.timeout_s)?;
        c.client.max_in_flight = positive("max_in_flight", self.max_in_flight)?;
        Ok(c)
    }
}
