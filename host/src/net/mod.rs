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

use std::{net::SocketAddr, time::Duration};

/// `[net]` in the configuration: the server this neuron runs and the client
/// it queries others with.
///
/// ```toml
/// [net]
/// bind = "0.0.0.0:8091"           # where the server listens
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
#[derive(Clone, Debug, Default)]
pub struct NetConfig {
    pub server: ServerConfig,
    pub client: ClientConfig,
}

pub const NET_KEYS: &[&str] = &[
    "bind",
    "max_body_bytes",
    "max_query_tokens",
    "max_concurrent_forwards",
    "max_age_s",
    "allowed_skew_s",
    "require_registered",
    "require_validator_permit",
    "min_stake_tao",
    "timeout_s",
    "max_in_flight",
];

impl NetConfig {
    /// Reads a `[net]` table whose keys are all in [`NET_KEYS`].
    pub fn from_table(table: &toml::Table) -> Result<NetConfig, String> {
        let mut c = NetConfig::default();
        for (key, value) in table {
            let int = || {
                value
                    .as_integer()
                    .and_then(|v| usize::try_from(v).ok())
                    .filter(|v| *v > 0)
                    .ok_or_else(|| format!("`net.{key}` must be a positive integer"))
            };
            let seconds = || {
                value
                    .as_float()
                    .or_else(|| value.as_integer().map(|v| v as f64))
                    .filter(|v| v.is_finite() && *v >= 0.0 && *v < 1e9)
                    .map(Duration::from_secs_f64)
                    .ok_or_else(|| format!("`net.{key}` must be a number of seconds"))
            };
            let flag = || value.as_bool().ok_or_else(|| format!("`net.{key}` must be true or false"));
            match key.as_str() {
                "bind" => {
                    c.server.bind = value
                        .as_str()
                        .and_then(|s| s.parse::<SocketAddr>().ok())
                        .ok_or_else(|| "`net.bind` must be an address and port, like \"0.0.0.0:8091\"".to_string())?
                }
                "max_body_bytes" => c.server.max_body_bytes = int()?,
                "max_query_tokens" => c.server.max_query_tokens = int()?,
                "max_concurrent_forwards" => c.server.max_concurrent_forwards = int()?,
                "max_age_s" => c.server.freshness.max_age = seconds()?,
                "allowed_skew_s" => c.server.freshness.allowed_skew = seconds()?,
                "require_registered" => c.server.access.require_registered = flag()?,
                "require_validator_permit" => c.server.access.require_validator_permit = flag()?,
                "min_stake_tao" => {
                    let tao = value
                        .as_float()
                        .or_else(|| value.as_integer().map(|v| v as f64))
                        .filter(|v| v.is_finite() && *v >= 0.0 && *v <= 21e6)
                        .ok_or_else(|| "`net.min_stake_tao` must be a number of TAO".to_string())?;
                    c.server.access.min_stake_rao = (tao * 1e9).round() as u64;
                }
                "timeout_s" => c.client.timeout = seconds()?,
                "max_in_flight" => c.client.max_in_flight = int()?,
                other => return Err(format!("unknown key `net.{other}`")),
            }
        }
        Ok(c)
    }
}
