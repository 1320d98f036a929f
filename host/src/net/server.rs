//! The HTTP server every neuron runs (axum on tokio).
//!
//! Routes:
//! - `GET /v1/health` (unsigned): liveness and the neuron's hotkey, as
//!   [`NodeInfo`] JSON.
//! - `GET /v1/info` (signed): [`NodeInfo`] with the forward service's model summary.
//! - `POST /v1/forward` (signed): a [`ForwardQuery`] as JSON in, the binary
//!   forward output (see [`super::wire`]) out.
//!
//! A signed route answers, in order: 413 when the body is larger than
//! `max_body_bytes` (refused from `Content-Length` before reading, or while
//! reading); 401 when `btauth/1` verification fails; 403 when the caller does
//! not meet the [`AccessRule`] by the [`PeerDirectory`]; 400 for a body that
//! is not a valid query; 500 when the service fails. Error bodies are
//! `{"error": "..."}`, one line, echoing nothing the caller signed.

use std::{future::Future, net::SocketAddr, sync::Arc};

use axum::{
    body::{Body, Bytes},
    extract::{Request, State},
    http::{header, HeaderMap, Method, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use neuron_plugin_api::ForwardOutput;
use tokio::{net::TcpListener, sync::Semaphore};

use super::{
    access::{AccessRule, PeerDirectory},
    auth::{now_ns, Caller, Freshness, Verifier, PROTOCOL},
    wire::{self, ErrorBody, ForwardQuery, ModelSummary, NodeInfo, FORMAT_VERSION},
};
use crate::{
    error::{Error, Result},
    wallet::Keypair,
};

/// What answers forward queries: the runtime implements it over a model
/// plugin; the server knows nothing about models.
pub trait ForwardService: Send + Sync + 'static {
    /// Runs a checked query for an authenticated, authorized caller.
    fn forward(
        &self,
        caller: &Caller,
        query: ForwardQuery,
    ) -> impl Future<Output = std::result::Result<ForwardOutput, ServiceError>> + Send;

    /// What `GET /v1/info` reports about the model.
    fn summary(&self) -> ModelSummary;
}

/// A shared service is a service (the runtime keeps a handle to its own).
impl<S: ForwardService> ForwardService for Arc<S> {
    fn forward(
        &self,
        caller: &Caller,
        query: ForwardQuery,
    ) -> impl Future<Output = std::result::Result<ForwardOutput, ServiceError>> + Send {
        S::forward(self, caller, query)
    }
    fn summary(&self) -> ModelSummary {
        S::summary(self)
    }
}

/// A forward service's refusal or failure.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// The query cannot be run (too long for the model, a token outside the
    /// vocabulary): 400, the message goes back to the caller.
    #[error("{0}")]
    BadQuery(String),
    /// The service is not ready (no model loaded yet): 503.
    #[error("{0}")]
    Unavailable(String),
    /// Anything else: 500; the message is logged, not sent.
    #[error("{0}")]
    Internal(String),
}

/// How a server runs.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    pub bind: SocketAddr,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Most tokens a forward query may carry.
    pub max_query_tokens: usize,
    /// Forward queries run at once; more wait their turn.
    pub max_concurrent_forwards: usize,
    pub freshness: Freshness,
    pub access: AccessRule,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: SocketAddr::from(([0, 0, 0, 0], 8091)),
            max_body_bytes: 4 << 20,
            max_query_tokens: 1 << 16,
            max_concurrent_forwards: 4,
            freshness: Freshness::default(),
            access: AccessRule::default(),
        }
    }
}

struct Shared<S> {
    service: S,
    verifier: Verifier,
    peers: Arc<dyn PeerDirectory>,
    config: ServerConfig,
    hotkey: String,
    forwards: Semaphore,
}

/// A running server; dropping it (or [`RunningServer::shutdown`]) stops it.
pub struct RunningServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl RunningServer {
    /// The address it listens on (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets requests in flight finish, and waits.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Binds `config.bind` and serves on the current tokio runtime, signing
/// nothing and accepting requests addressed to `identity`'s hotkey.
pub async fn serve<S: ForwardService>(
    config: ServerConfig,
    identity: &Keypair,
    service: S,
    peers: Arc<dyn PeerDirectory>,
) -> Result<RunningServer> {
    let listener = TcpListener::bind(config.bind).await.map_err(|e| {
        Error::Net(format!(
            "cannot listen on {}: {e} (a miner serves on [axon]: choose another port with --axon.port or axon.ip)",
            config.bind
        ))
    })?;
    let addr = listener.local_addr().map_err(|e| Error::Net(format!("listening socket: {e}")))?;
    let shared = Arc::new(Shared {
        service,
        verifier: Verifier::new(identity.account(), config.freshness),
        peers,
        hotkey: identity.ss58(),
        forwards: Semaphore::new(config.max_concurrent_forwards.max(1)),
        config,
    });
    let app = router(shared);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = stopped.await;
        });
        if let Err(e) = served.await {
            tracing::error!("network server stopped: {e}");
        }
    });
    tracing::info!("serving btauth/1 on {addr}");
    Ok(RunningServer { addr, stop: Some(stop), task: Some(task) })
}

fn router<S: ForwardService>(shared: Arc<Shared<S>>) -> Router {
    Router::new()
        .route("/v1/health", get(health::<S>))
        .route("/v1/info", get(info::<S>))
        .route("/v1/forward", post(forward::<S>))
        .with_state(shared)
}

/// An error answer: a status and a one-line reason, sent as `{"error": reason}`.
pub(crate) struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorBody { error: self.1 })).into_response()
    }
}

fn refuse(status: StatusCode, reason: impl Into<String>) -> Refusal {
    Refusal(status, reason.into())
}

fn node_info(hotkey: &str, model: Option<ModelSummary>) -> NodeInfo {
    NodeInfo {
        version: FORMAT_VERSION,
        protocol: PROTOCOL.to_string(),
        hotkey: hotkey.to_string(),
        software: concat!("neuron-host/", env!("CARGO_PKG_VERSION")).to_string(),
        model,
    }
}

async fn health<S: ForwardService>(State(shared): State<Arc<Shared<S>>>) -> Response {
    Json(node_info(&shared.hotkey, None)).into_response()
}

async fn info<S: ForwardService>(State(shared): State<Arc<Shared<S>>>, request: Request) -> Response {
    match authenticate(&shared, request).await {
        Ok((_, _)) => Json(node_info(&shared.hotkey, Some(shared.service.summary()))).into_response(),
        Err(r) => r.into_response(),
    }
}

async fn forward<S: ForwardService>(State(shared): State<Arc<Shared<S>>>, request: Request) -> Response {
    let (caller, body) = match authenticate(&shared, request).await {
        Ok(x) => x,
        Err(r) => return r.into_response(),
    };
    let query = match parse_query(&body, shared.config.max_query_tokens) {
        Ok(q) => q,
        Err(r) => return r.into_response(),
    };
    let Ok(_permit) = shared.forwards.acquire().await else {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "the server is shutting down").into_response();
    };
    answer(shared.service.forward(&caller, query).await)
}

/// Parses and checks a forward query body (400 with the reason otherwise).
pub(crate) fn parse_query(body: &[u8], max_tokens: usize) -> std::result::Result<ForwardQuery, Refusal> {
    let query: ForwardQuery = serde_json::from_slice(body)
        .map_err(|e| refuse(StatusCode::BAD_REQUEST, format!("the body is not a forward query: {e}")))?;
    query.check(max_tokens).map_err(|e| refuse(StatusCode::BAD_REQUEST, e))?;
    Ok(query)
}

/// The HTTP answer for a service's result.
pub(crate) fn answer(result: std::result::Result<ForwardOutput, ServiceError>) -> Response {
    match result {
        Ok(out) => match wire::encode_output(&out) {
            Ok(bytes) => ([(header::CONTENT_TYPE, wire::OUTPUT_CONTENT_TYPE)], bytes).into_response(),
            Err(e) => {
                tracing::error!("forward service returned an inconsistent output: {e}");
                refuse(StatusCode::INTERNAL_SERVER_ERROR, "the model produced an inconsistent output").into_response()
            }
        },
        Err(ServiceError::BadQuery(m)) => refuse(StatusCode::BAD_REQUEST, m).into_response(),
        Err(ServiceError::Unavailable(m)) => refuse(StatusCode::SERVICE_UNAVAILABLE, m).into_response(),
        Err(ServiceError::Internal(m)) => {
            tracing::error!("forward service failed: {m}");
            refuse(StatusCode::INTERNAL_SERVER_ERROR, "the forward pass failed").into_response()
        }
    }
}

/// Reads the body (size-limited), verifies the signature, applies the access rule.
async fn authenticate<S>(shared: &Shared<S>, request: Request) -> std::result::Result<(Caller, Bytes), Refusal> {
    let (parts, body) = request.into_parts();
    let body = read_body(&parts.headers, body, shared.config.max_body_bytes).await?;
    let target = parts.uri.path_and_query().map(|pq| pq.as_str()).unwrap_or("/");
    let mut caller = verify(&shared.verifier, &parts.headers, &parts.method, target, &body)
        .map_err(|e| refuse(StatusCode::UNAUTHORIZED, e))?;
    caller.standing = shared
        .config
        .access
        .admit(&caller.hotkey, shared.peers.as_ref())
        .map_err(|reason| refuse(StatusCode::FORBIDDEN, reason))?;
    Ok((caller, body))
}

fn verify(
    verifier: &Verifier,
    headers: &HeaderMap,
    method: &Method,
    target: &str,
    body: &[u8],
) -> std::result::Result<Caller, String> {
    verifier.verify(headers, method.as_str(), target, body, now_ns()).map_err(|e| e.to_string())
}

/// The whole body, or 413 once it passes `limit` bytes.
pub(crate) async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> std::result::Result<Bytes, Refusal> {
    let too_large = || refuse(StatusCode::PAYLOAD_TOO_LARGE, format!("the body is larger than {limit} bytes"));
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|_| too_large())
}

/// The forward route without `btauth/1` and without access control, over the
/// same body limit, parsing and encoding: the baseline the signed-throughput
/// benchmark compares against. neuron-host never serves it.
#[doc(hidden)]
pub fn unsigned_baseline_router<S: ForwardService>(service: S, config: ServerConfig) -> Router {
    let shared = Arc::new((service, config));
    Router::new()
        .route(
            "/v1/forward",
            post(|State(shared): State<Arc<(S, ServerConfig)>>, request: Request| async move {
                let (parts, body) = request.into_parts();
                let body = match read_body(&parts.headers, body, shared.1.max_body_bytes).await {
                    Ok(b) => b,
                    Err(r) => return r.into_response(),
                };
                let query = match parse_query(&body, shared.1.max_query_tokens) {
                    Ok(q) => q,
                    Err(r) => return r.into_response(),
                };
                let caller = Caller {
                    hotkey: crate::wallet::AccountId([0; 32]),
                    nonce_ns: 0,
                    scheme: crate::wallet::Scheme::Sr25519,
                    standing: None,
                };
                answer(shared.0.forward(&caller, query).await)
            }),
        )
        .with_state(shared)
}
