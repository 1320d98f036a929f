//! The client a validator queries miners with: every request signed with
//! `btauth/1` for the miner's hotkey, a timeout per request, a cap on
//! requests in flight, connections kept alive and reused per miner, and
//! answers checked before anyone scores them.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use neuron_plugin_api::{ForwardOutput, MinerResponse, ResponseStatus};
use tokio::{sync::Semaphore, time::Instant};

use super::{
    auth,
    wire::{self, ErrorBody, ForwardQuery, NodeInfo},
};
use crate::{
    error::{Error, Result},
    wallet::{AccountId, Keypair},
};

/// How a client behaves.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// From sending a request to having its whole answer.
    pub timeout: Duration,
    /// For opening a connection (inside `timeout`).
    pub connect_timeout: Duration,
    /// Requests in flight at once, across all peers; more wait (untimed) for a slot.
    pub max_in_flight: usize,
    /// Largest answer accepted; a longer one is malformed.
    pub max_response_bytes: usize,
    /// Idle keep-alive connections kept per peer.
    pub idle_per_peer: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            timeout: Duration::from_secs(12),
            connect_timeout: Duration::from_secs(3),
            max_in_flight: 64,
            max_response_bytes: 64 << 20,
            idle_per_peer: 4,
        }
    }
}

/// A neuron to call: where it listens and which hotkey it signs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub uid: u16,
    pub addr: SocketAddr,
    pub hotkey: AccountId,
}

/// Why a call did not produce a usable answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The peer answered with an error status.
    #[error("refused with {status}: {reason}")]
    Refused { status: u16, reason: String },
    /// The peer answered 200 with something unusable.
    #[error("{0}")]
    Malformed(String),
    /// No HTTP exchange happened (connection refused, reset).
    #[error("transport: {0}")]
    Transport(String),
}

impl CallError {
    /// How a validator records it.
    pub fn status(&self) -> ResponseStatus {
        match self {
            CallError::Timeout(_) => ResponseStatus::TIMEOUT,
            CallError::Malformed(_) => ResponseStatus::MALFORMED,
            CallError::Refused { .. } | CallError::Transport(_) => ResponseStatus::ERROR,
        }
    }
}

/// A call's result and how long it took.
#[derive(Clone, Debug)]
pub struct Answer<T> {
    pub result: std::result::Result<T, CallError>,
    pub latency: Duration,
}

impl Answer<ForwardOutput> {
    /// The validator's record of a top-k answer: ids and log-probabilities on
    /// OK, empty with the failure's status otherwise.
    pub fn to_miner_response(&self, uid: u16) -> MinerResponse {
        let latency_s = self.latency.as_secs_f32();
        match &self.result {
            Ok(out) if out.k > 0 => MinerResponse {
                uid,
                status: ResponseStatus::OK,
                k: out.k,
                ids: out.ids.clone(),
                logprobs: out.logprobs.clone(),
                latency_s,
            },
            Ok(_) => MinerResponse {
                uid,
                status: ResponseStatus::MALFORMED,
                k: 0,
                ids: Default::default(),
                logprobs: Default::default(),
                latency_s,
            },
            Err(e) => MinerResponse {
                uid,
                status: e.status(),
                k: 0,
                ids: Default::default(),
                logprobs: Default::default(),
                latency_s,
            },
        }
    }
}

/// A signing HTTP client; cheap to clone (clones share connections and the
/// in-flight cap).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    identity: Arc<Keypair>,
    slots: Arc<Semaphore>,
    config: ClientConfig,
}

impl Client {
    pub fn new(identity: Arc<Keypair>, config: ClientConfig) -> Result<Client> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .pool_max_idle_per_host(config.idle_per_peer)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .no_proxy()
            .build()
            .map_err(|e| Error::Net(format!("cannot build the HTTP client: {e}")))?;
        Ok(Client { http, identity, slots: Arc::new(Semaphore::new(config.max_in_flight.max(1))), config })
    }

    /// The hotkey this client signs as.
    pub fn hotkey(&self) -> AccountId {
        self.identity.account()
    }

    /// Asks `peer` for a forward pass; checks the answer against the query.
    pub async fn forward(&self, peer: &Peer, query: &ForwardQuery) -> Answer<ForwardOutput> {
        let body = serde_json::to_vec(query).expect("a query serializes");
        let answer = self.call(peer, reqwest::Method::POST, "/v1/forward", body).await;
        let result = answer.result.and_then(|bytes| {
            let out = wire::decode_output(&bytes).map_err(|e| CallError::Malformed(e.to_string()))?;
            wire::check_answer(query, &out).map_err(|e| CallError::Malformed(e.to_string()))?;
            Ok(out)
        });
        Answer { result, latency: answer.latency }
    }

    /// Asks every peer at once (within the in-flight cap); answers in the peers' order.
    pub async fn forward_all(&self, peers: &[Peer], query: &ForwardQuery) -> Vec<Answer<ForwardOutput>> {
        let mut tasks = tokio::task::JoinSet::new();
        for (i, peer) in peers.iter().enumerate() {
            let (client, peer, query) = (self.clone(), peer.clone(), query.clone());
            tasks.spawn(async move { (i, client.forward(&peer, &query).await) });
        }
        let mut answers: Vec<Option<Answer<ForwardOutput>>> = (0..peers.len()).map(|_| None).collect();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((i, a)) => answers[i] = Some(a),
                Err(e) => tracing::error!("a query task failed: {e}"),
            }
        }
        answers
            .into_iter()
            .map(|a| {
                a.unwrap_or(Answer {
                    result: Err(CallError::Transport("the query task failed".into())),
                    latency: Duration::ZERO,
                })
            })
            .collect()
    }

    /// `GET /v1/info`, signed.
    pub async fn info(&self, peer: &Peer) -> Answer<NodeInfo> {
        let answer = self.call(peer, reqwest::Method::GET, "/v1/info", Vec::new()).await;
        let result = answer.result.and_then(|bytes| {
            serde_json::from_slice(&bytes).map_err(|e| CallError::Malformed(format!("not node info: {e}")))
        });
        Answer { result, latency: answer.latency }
    }

    /// One signed request; the raw body of a 200 answer.
    async fn call(&self, peer: &Peer, method: reqwest::Method, target: &str, body: Vec<u8>) -> Answer<Vec<u8>> {
        let Ok(_slot) = self.slots.acquire().await else {
            return Answer {
                result: Err(CallError::Transport("the client is closed".into())),
                latency: Duration::ZERO,
            };
        };
        let started = Instant::now();
        let timeout = self.config.timeout;
        let result = match tokio::time::timeout(timeout, self.exchange(peer, method, target, body)).await {
            Ok(r) => r,
            Err(_) => Err(CallError::Timeout(timeout)),
        };
        Answer { result, latency: started.elapsed() }
    }

    async fn exchange(
        &self,
        peer: &Peer,
        method: reqwest::Method,
        target: &str,
        body: Vec<u8>,
    ) -> std::result::Result<Vec<u8>, CallError> {
        let headers = auth::sign(&self.identity, method.as_str(), target, &body, &peer.hotkey, None);
        let mut request = self.http.request(method, format!("http://{}{target}", peer.addr));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        if !body.is_empty() {
            request = request.header(reqwest::header::CONTENT_TYPE, "application/json").body(body);
        }
        let mut response = request.send().await.map_err(transport)?;
        let status = response.status();
        if response.content_length().is_some_and(|n| n > self.config.max_response_bytes as u64) {
            return Err(CallError::Malformed(format!(
                "the answer is larger than {} bytes",
                self.config.max_response_bytes
            )));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if bytes.len() + chunk.len() > self.config.max_response_bytes {
                return Err(CallError::Malformed(format!(
                    "the answer is larger than {} bytes",
                    self.config.max_response_bytes
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            let reason = serde_json::from_slice::<ErrorBody>(&bytes)
                .map(|b| b.error)
                .unwrap_or_else(|_| status.canonical_reason().unwrap_or("no reason").to_string());
            // The peer's text is untrusted: one line, bounded.
            let reason: String = reason.chars().filter(|c| !c.is_control()).take(200).collect();
            return Err(CallError::Refused { status: status.as_u16(), reason });
        }
        Ok(bytes)
    }
}

fn transport(e: reqwest::Error) -> CallError {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    CallError::Transport(text)
}
