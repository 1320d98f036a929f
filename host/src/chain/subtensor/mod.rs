//! The chain through a real subtensor node, with subxt's dynamic API.
//!
//! Nothing about the runtime is compiled in: subxt reads the runtime version
//! at each block it works at and fetches metadata for a version it has not
//! seen (a runtime upgrade is picked up on the next call, no rebuild), calls
//! are encoded by field name against that metadata, and transaction
//! extensions are filled in the order the metadata lists them ([`runtime`]).
//!
//! - Reads: the metagraph comes from `SubnetInfoRuntimeApi::get_metagraph`
//!   in one call (validator trust, which it lacks, is read from storage in
//!   the same round trip); runtimes without it are read with
//!   `NeuronInfoRuntimeApi::get_neurons_lite` and storage. Hyperparameters
//!   come from `get_subnet_hyperparams(_v2)` plus the storage values it omits;
//!   epoch status is computed from the subnet's tempo as subtensor schedules
//!   epochs ([`reads::epoch_status`]); weights are read from storage.
//! - Writes are signed by the neuron's [`signer::HotkeySigner`], mortal
//!   ([`NodeConfig::mortal_period`] blocks), with nonces assigned here so two
//!   extrinsics can be in flight, and waited for in a block or until
//!   finalised ([`WaitFor`]). Refusals come back named ([`errors`]);
//!   [`policy`] says what to do about them.
//! - Blocks: [`blocks`] follows finalised heads, reconnecting with backoff
//!   and filling any gap so no block number (and so no epoch boundary) is
//!   missed.
//! - The node may offer only the legacy JSON-RPC methods or the new
//!   `chainHead_v1`/`archive_v1` ones: subxt's combined backend asks
//!   `rpc_methods` and uses what is there.

pub mod blocks;
pub mod calls;
pub mod errors;
pub mod reads;
pub mod runtime;
pub mod signer;

use std::{path::PathBuf, sync::Arc, time::Duration};

use subxt::{
    backend::LegacyBackend,
    client::{ClientAtBlock, OnlineClientAtBlockImpl},
    ext::futures::future::try_join,
    rpcs::client::{jsonrpsee_client, JsonrpseeRpcClient, RpcClient},
    tx::{TransactionInBlock, TransactionStatus},
    utils::AccountId32,
    OnlineClient,
};
use tokio::sync::Mutex;

use self::{
    calls::{encode_error, SubtensorCall, SubxtSigner},
    reads::{ExtraParams, RawHyperparams, RawMetagraph, RawNeuronLite},
    runtime::{ExtensionParams, Mortality, Subtensor},
    signer::HotkeySigner,
};
use super::{
    commits::CommitStore, mechanism_storage_index, timelock, AccountId, AxonInfo, BlockStream, Chain, ChainError,
    DispatchError, EpochStatus, Hyperparams, Metagraph, NetUid, StoredCommit, TimelockContext,
};

/// The most blocks [`Chain::timelocked_revealed_in`] reads events of in one call (a reveal
/// comes within a few blocks of its epoch's start; this bounds the cost of a late look).
const MAX_EVENT_SCAN_BLOCKS: u64 = 1000;

/// The public finney endpoint (as the Bittensor SDK names it).
pub const FINNEY_ENDPOINT: &str = "wss://entrypoint-finney.opentensor.ai:443";
/// The public testnet endpoint.
pub const TEST_ENDPOINT: &str = "wss://test.finney.opentensor.ai:443";

/// A node to talk to: a name for logs and its WebSocket URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub name: String,
    pub url: String,
}

impl Endpoint {
    pub fn url(url: &str) -> Result<Self, String> {
        if !(url.starts_with("ws://") || url.starts_with("wss://")) || url.len() <= "wss://".len() {
            return Err(format!(
                "`{url}` is not a node endpoint: give a WebSocket URL such as ws://127.0.0.1:9944 or wss://HOST:443"
            ));
        }
        Ok(Self { name: url.to_string(), url: url.to_string() })
    }
}

/// Which chain a neuron runs against, from `--subtensor.network` and `--subtensor.chain_endpoint`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainSelection {
    /// The embedded chain in this process (`chain::local`), the default.
    Local,
    /// A subtensor node.
    Node(Endpoint),
}

impl ChainSelection {
    /// `--subtensor.chain_endpoint` wins over `--subtensor.network` (as in the
    /// Bittensor SDK); `local` means the embedded chain: a node on this machine
    /// is reached with `--subtensor.chain_endpoint ws://127.0.0.1:9944`.
    pub fn from_flags(network: Option<&str>, chain_endpoint: Option<&str>) -> Result<Self, String> {
        if let Some(url) = chain_endpoint.filter(|u| !u.is_empty()) {
            return Endpoint::url(url).map(Self::Node);
        }
        match network.unwrap_or("local") {
            "local" => Ok(Self::Local),
            "finney" => Ok(Self::Node(Endpoint { name: "finney".into(), url: FINNEY_ENDPOINT.into() })),
            "test" => Ok(Self::Node(Endpoint { name: "test".into(), url: TEST_ENDPOINT.into() })),
            url if url.starts_with("ws://") || url.starts_with("wss://") => Endpoint::url(url).map(Self::Node),
            other => Err(format!(
                "unknown --subtensor.network `{other}`: use finney, test or local (the embedded chain); \
                 for a node of your own give --subtensor.chain_endpoint ws://HOST:PORT"
            )),
        }
    }
}

/// When an extrinsic counts as done (`subtensor.wait_for`: "inclusion" or "finalized").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum WaitFor {
    /// Included in a best block (about 12 s on finney).
    #[default]
    #[serde(rename = "inclusion")]
    InBlock,
    /// In a finalised block (tens of seconds more, but never reverted).
    #[serde(rename = "finalized")]
    Finalized,
}

/// Which of a node's JSON-RPC methods to use (`subtensor.rpc`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RpcMode {
    /// The new methods (`chainHead_v1`, `archive_v1`) where the node offers them, the legacy
    /// ones for the rest; after repeated block subscriptions that end without a block, the
    /// legacy ones only (a node whose `chainHead_v1` is broken). Transactions go through
    /// `author_submitAndWatchExtrinsic` when the node has it, so a refusal is the node's own.
    #[default]
    Auto,
    /// Only the legacy methods (`chain_*`, `state_*`, `author_*`).
    Legacy,
    /// The new methods wherever the node offers them, never falling back on its own.
    New,
}

/// How to talk to a node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub endpoint: Endpoint,
    pub wait_for: WaitFor,
    pub rpc: RpcMode,
    /// The subnet mechanism this neuron reads and sets weights for (`validator.mechanism`).
    pub mechanism: u8,
    /// Blocks an extrinsic stays valid for (rounded up to a power of two); 0 = immortal.
    pub mortal_period: u64,
    /// Where pending weight commits (hash, salt, weights) are kept across restarts.
    pub commit_state: Option<PathBuf>,
    /// How long to wait for the node to accept a connection.
    pub connect_timeout: Duration,
    /// Reconnection backoff of the block follower: first delay, doubling up to the second.
    pub reconnect_delay: (Duration, Duration),
}

impl NodeConfig {
    pub fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            wait_for: WaitFor::InBlock,
            rpc: RpcMode::Auto,
            mechanism: 0,
            mortal_period: 64,
            commit_state: None,
            connect_timeout: Duration::from_secs(20),
            reconnect_delay: (Duration::from_millis(500), Duration::from_secs(30)),
        }
    }
}

type AtBlock = ClientAtBlock<Subtensor, OnlineClientAtBlockImpl<Subtensor>>;

/// The live connection, replaced when it drops.
struct Live {
    client: OnlineClient<Subtensor>,
    /// The client transactions are submitted through: the legacy methods when the node has
    /// them (see [`RpcMode::Auto`]), else `client`.
    submitter: OnlineClient<Subtensor>,
    rpc: Arc<JsonrpseeRpcClient>,
}

/// One node's connection: opened on first use, reopened after a drop.
pub(crate) struct Connection {
    endpoint: Endpoint,
    connect_timeout: Duration,
    /// Shared across reconnections: metadata is fetched once per runtime version.
    config: Subtensor,
    live: Mutex<Option<Live>>,
    mode: RpcMode,
    /// Set when `auto` gave up on the new methods: every later connection uses the legacy ones.
    legacy_only: std::sync::atomic::AtomicBool,
}

impl Connection {
    fn new(config: &NodeConfig) -> Self {
        Self {
            endpoint: config.endpoint.clone(),
            connect_timeout: config.connect_timeout,
            config: Subtensor::online(),
            live: Mutex::new(None),
            mode: config.rpc,
            legacy_only: std::sync::atomic::AtomicBool::new(config.rpc == RpcMode::Legacy),
        }
    }

    /// Whether `auto` may still give up on the new methods.
    pub(crate) fn can_fall_back(&self) -> bool {
        self.mode == RpcMode::Auto && !self.legacy_only.load(std::sync::atomic::Ordering::Acquire)
    }

    /// From now on, the legacy methods only: the current connection is closed and the next
    /// request opens one that uses them.
    pub(crate) async fn fall_back_to_legacy(&self, why: &str) {
        if !self.can_fall_back() {
            return;
        }
        self.legacy_only.store(true, std::sync::atomic::Ordering::Release);
        *self.live.lock().await = None;
        tracing::warn!(target: "neuron_host::chain", "{}: {why}; using the node's legacy RPC methods from now on (set subtensor.rpc = \"legacy\" to start with them)", self.endpoint.url);
    }

    fn unreachable(&self, reason: impl std::fmt::Display) -> ChainError {
        let Endpoint { name, url } = &self.endpoint;
        ChainError::Connection {
            endpoint: if name == url { url.clone() } else { format!("{name} ({url})") },
            reason: format!(
                "{reason}; check the URL, that the node is running and that its RPC port accepts WebSocket connections from here"
            ),
        }
    }

    /// The client, connecting (again) if there is none or the last one dropped.
    async fn client(&self) -> Result<OnlineClient<Subtensor>, ChainError> {
        let mut live = self.live.lock().await;
        if let Some(l) = live.as_ref() {
            if l.rpc.is_connected() {
                return Ok(l.client.clone());
            }
            tracing::warn!(target: "neuron_host::chain", "connection to {} dropped; reconnecting", self.endpoint.url);
        }
        let url = self.endpoint.url.as_str();
        let legacy_only = self.legacy_only.load(std::sync::atomic::Ordering::Acquire);
        let open = async {
            let rpc = Arc::new(jsonrpsee_client(url).await.map_err(|e| self.unreachable(e))?);
            let methods: RpcMethods = RpcClient::new(rpc.clone())
                .request("rpc_methods", subxt::rpcs::rpc_params![])
                .await
                .map_err(|e| self.unreachable(format!("rpc_methods: {e}")))?;
            let has = |m: &str| methods.methods.iter().any(|x| x == m);
            let legacy = || {
                OnlineClient::from_backend_with_config(
                    self.config.clone(),
                    Arc::new(LegacyBackend::builder().build(RpcClient::new(rpc.clone()))),
                )
            };
            let client = if legacy_only {
                legacy().await
            } else {
                OnlineClient::from_rpc_client_with_config(self.config.clone(), RpcClient::new(rpc.clone())).await
            }
            .map_err(|e| self.unreachable(e))?;
            let submitter = if self.mode != RpcMode::New && !legacy_only && has("author_submitAndWatchExtrinsic") {
                legacy().await.map_err(|e| self.unreachable(e))?
            } else {
                client.clone()
            };
            Ok::<_, ChainError>(Live { client, submitter, rpc })
        };
        let opened = tokio::time::timeout(self.connect_timeout, open)
            .await
            .map_err(|_| self.unreachable(format!("no answer within {} s", self.connect_timeout.as_secs())))??;
        let client = opened.client.clone();
        *live = Some(opened);
        Ok(client)
    }

    /// The client transactions go through.
    async fn submitter(&self) -> Result<OnlineClient<Subtensor>, ChainError> {
        self.client().await?;
        let live = self.live.lock().await;
        Ok(live.as_ref().map(|l| l.submitter.clone()).expect("connected just now"))
    }

    /// A failed request: a connection error if the connection is gone, else what the node said.
    async fn error(&self, what: &str, e: impl std::fmt::Display) -> ChainError {
        let connected = self.live.lock().await.as_ref().is_some_and(|l| l.rpc.is_connected());
        if connected {
            ChainError::Other(format!("{what}: {e}"))
        } else {
            self.unreachable(format!("lost during {what}: {e}"))
        }
    }

    /// The client at the latest finalised block.
    async fn at_finalized(&self, what: &str) -> Result<AtBlock, ChainError> {
        let client = self.client().await?;
        match client.at_current_block().await {
            Ok(at) => Ok(at),
            Err(e) => Err(self.error(what, e).await),
        }
    }
}

/// The answer of `rpc_methods`.
#[derive(serde::Deserialize)]
struct RpcMethods {
    methods: Vec<String>,
}

/// A neuron's handle on a subtensor node.
pub struct SubtensorChain {
    config: NodeConfig,
    signer: Arc<dyn HotkeySigner>,
    conn: Arc<Connection>,
    /// The nonce for the next extrinsic, when one is in flight (the chain's count does not include it yet).
    next_nonce: Mutex<Option<u64>>,
    commits: CommitStore,
}

/// Connects to the node (one line naming the endpoint when it cannot be reached).
pub async fn connect(config: NodeConfig, signer: Arc<dyn HotkeySigner>) -> Result<Arc<SubtensorChain>, ChainError> {
    let commits = CommitStore::open(config.commit_state.clone())?;
    let conn = Arc::new(Connection::new(&config));
    conn.client().await?;
    Ok(Arc::new(SubtensorChain { config, signer, conn, next_nonce: Mutex::new(None), commits }))
}

impl SubtensorChain {
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// Pending weight commits kept for reveal (see [`policy`]).
    pub fn commits(&self) -> &CommitStore {
        &self.commits
    }

    /// A runtime API call at `at`, decoded as `R`.
    async fn api<A, R>(&self, at: &AtBlock, what: &str, api: &str, method: &str, args: A) -> Result<R, ChainError>
    where
        A: subxt::ext::frame_decode::runtime_apis::IntoEncodableValues,
        R: scale_decode::DecodeAsType,
    {
        let payload = subxt::dynamic::runtime_api_call::<A, R>(api, method, args);
        match at.runtime_apis().call(payload).await {
            Ok(v) => Ok(v),
            Err(e) => Err(self.conn.error(&format!("{what} ({api}_{method})"), e).await),
        }
    }

    /// A storage value at `at` (the entry's default when unset), decoded as `R`.
    async fn storage<K, R>(&self, at: &AtBlock, entry: &str, key: K) -> Result<R, ChainError>
    where
        K: subxt::ext::frame_decode::storage::IntoEncodableValues
            + subxt::ext::frame_decode::storage::IntoDecodableValues,
        R: scale_decode::DecodeAsType,
    {
        let addr = subxt::storage::dynamic::<K, R>(calls::PALLET, entry);
        let value = match at.storage().fetch(addr, key).await {
            Ok(v) => v,
            Err(e) => return Err(self.conn.error(&format!("reading {entry}"), e).await),
        };
        value.decode().map_err(|e| ChainError::Other(format!("cannot decode {entry}: {e}")))
    }

    fn no_mechanisms(&self) -> ChainError {
        ChainError::Other(format!(
            "this runtime has no subnet mechanisms: validator.mechanism {} cannot be used; set it to 0",
            self.config.mechanism
        ))
    }

    /// The subnet's epoch state at `at`: from storage on runtimes with the stateful epoch
    /// scheduler ("dynamic tempo"; decided by the metadata, not a version), else as the old
    /// block-number rule places the epochs (one block longer each than the stateful rule counts;
    /// the chain retries a timelocked reveal through its whole reveal epoch, so a round computed
    /// from it stays inside that epoch).
    async fn epoch_schedule(
        &self,
        at: &AtBlock,
        netuid: NetUid,
        tempo: u16,
    ) -> Result<timelock::EpochSchedule, ChainError> {
        let current_block = at.block_number();
        let blocks_since_last_step = self.storage(at, "BlocksSinceLastStep", (netuid,)).await?;
        if Self::has_storage(at, "SubnetEpochIndex") {
            return Ok(timelock::EpochSchedule {
                current_block,
                tempo,
                last_epoch_block: self.storage(at, "LastEpochBlock", (netuid,)).await?,
                pending_epoch_at: self.storage(at, "PendingEpochAt", (netuid,)).await?,
                subnet_epoch_index: self.storage(at, "SubnetEpochIndex", (netuid,)).await?,
                blocks_since_last_step,
            });
        }
        let old = reads::epoch_status(netuid, tempo, current_block);
        Ok(timelock::EpochSchedule {
            current_block,
            tempo,
            last_epoch_block: old.last_epoch_block,
            pending_epoch_at: 0,
            subnet_epoch_index: old.epoch_index,
            blocks_since_last_step,
        })
    }

    fn has_storage(at: &AtBlock, entry: &str) -> bool {
        at.metadata_ref()
            .pallet_by_name(calls::PALLET)
            .and_then(|p| p.storage())
            .is_some_and(|s| s.entry_by_name(entry).is_some())
    }

    fn has_api(at: &AtBlock, api: &str, method: &str) -> bool {
        at.metadata_ref().runtime_api_trait_by_name(api).is_some_and(|t| t.method_by_name(method).is_some())
    }

    async fn subnet_exists(&self, at: &AtBlock, call: &'static str, netuid: NetUid) -> Result<(), ChainError> {
        if self.storage::<_, bool>(at, "NetworksAdded", (netuid,)).await? {
            Ok(())
        } else {
            Err(ChainError::dispatch(call, DispatchError::SubnetNotExists))
        }
    }

    async fn metagraph_at(&self, at: &AtBlock, netuid: NetUid, mecid: u8) -> Result<Metagraph, ChainError> {
        const API: &str = "SubnetInfoRuntimeApi";
        if mecid != 0 {
            // A mechanism's own view: its weights, bonds, incentives and emissions.
            if !Self::has_api(at, API, "get_mechagraph") {
                return Err(self.no_mechanisms());
            }
            let (raw, trust) = try_join(
                self.api::<_, Option<RawMetagraph>>(at, "metagraph", API, "get_mechagraph", (netuid, mecid)),
                self.storage::<_, Vec<u16>>(at, "ValidatorTrust", (netuid,)),
            )
            .await?;
            let raw = raw.ok_or(ChainError::dispatch("metagraph", DispatchError::MechanismDoesNotExist))?;
            return Ok(reads::metagraph(netuid, raw, &trust));
        }
        if Self::has_api(at, API, "get_metagraph") {
            let (raw, trust) = try_join(
                self.api::<_, Option<RawMetagraph>>(at, "metagraph", API, "get_metagraph", (netuid,)),
                self.storage::<_, Vec<u16>>(at, "ValidatorTrust", (netuid,)),
            )
            .await?;
            let raw = raw.ok_or(ChainError::dispatch("metagraph", DispatchError::SubnetNotExists))?;
            return Ok(reads::metagraph(netuid, raw, &trust));
        }
        self.subnet_exists(at, "metagraph", netuid).await?;
        let neurons: Vec<RawNeuronLite> =
            self.api(at, "metagraph", "NeuronInfoRuntimeApi", "get_neurons_lite", (netuid,)).await?;
        let mut registered = Vec::with_capacity(neurons.len());
        for n in &neurons {
            registered.push((n.uid, self.storage::<_, u64>(at, "BlockAtRegistration", (netuid, n.uid)).await?));
        }
        Ok(reads::metagraph_from_neurons(netuid, at.block_number(), neurons, &registered))
    }

    async fn hyperparams_at(&self, at: &AtBlock, netuid: NetUid) -> Result<Hyperparams, ChainError> {
        const API: &str = "SubnetInfoRuntimeApi";
        let method = if Self::has_api(at, API, "get_subnet_hyperparams_v2") {
            "get_subnet_hyperparams_v2"
        } else {
            "get_subnet_hyperparams"
        };
        let raw = self.api::<_, Option<RawHyperparams>>(at, "hyperparams", API, method, (netuid,));
        let extra = async {
            Ok::<_, ChainError>(ExtraParams {
                max_allowed_uids: self.storage(at, "MaxAllowedUids", (netuid,)).await?,
                bonds_penalty: self.storage(at, "BondsPenalty", (netuid,)).await?,
                yuma3: self.storage(at, "Yuma3On", (netuid,)).await?,
                min_stake: self.storage(at, "StakeThreshold", ()).await?,
            })
        };
        let (raw, extra) = try_join(raw, extra).await?;
        let raw = raw.ok_or(ChainError::dispatch("hyperparams", DispatchError::SubnetNotExists))?;
        Ok(reads::hyperparams(raw, extra))
    }

    /// Signs and submits `call`, then waits as configured; the refusal, if any, named.
    pub async fn submit(&self, call: SubtensorCall) -> Result<(), ChainError> {
        let name = call.name();
        let payload = call.payload();
        let mut progress = {
            // Held from reading the nonce until the node has the transaction,
            // so concurrent submissions get consecutive nonces.
            let mut next_nonce = self.next_nonce.lock().await;
            let submitter = self.conn.submitter().await?;
            let at = match submitter.at_current_block().await {
                Ok(at) => at,
                Err(e) => return Err(self.conn.error(name, e).await),
            };
            let account = AccountId32(self.signer.account().0);
            let chain_nonce = match at.tx().account_nonce(&account).await {
                Ok(n) => n,
                Err(e) => return Err(self.conn.error("reading the account nonce", e).await),
            };
            let nonce = next_nonce.map_or(chain_nonce, |n| n.max(chain_nonce));
            let mortality = if self.config.mortal_period == 0 {
                Mortality::Immortal
            } else {
                Mortality::Mortal {
                    period: self.config.mortal_period,
                    birth_block: at.block_number(),
                    birth_hash: at.block_hash().0,
                }
            };
            let params = ExtensionParams { nonce: Some(nonce), tip: 0, mortal_period: 0, mortality: Some(mortality) };
            let mut signable =
                at.tx().create_v4_signable_offline(&payload, params).map_err(|e| encode_error(name, e))?;
            let tx = signable.sign(&SubxtSigner(&*self.signer)).map_err(|e| encode_error(name, e))?;
            let progress = match tx.submit_and_watch().await {
                Ok(p) => p,
                Err(e) => {
                    *next_nonce = None;
                    let connected = self.conn.live.lock().await.as_ref().is_some_and(|l| l.rpc.is_connected());
                    return Err(if connected {
                        errors::from_pool_rejection(name, &format!("{e} {e:?}"))
                    } else {
                        self.conn.unreachable(format!("lost while submitting {name}: {e}"))
                    });
                }
            };
            *next_nonce = Some(nonce + 1);
            progress
        };
        while let Some(status) = progress.next().await {
            let status = match status {
                Ok(s) => s,
                Err(e) => return Err(self.conn.error(&format!("following {name}"), e).await),
            };
            match status {
                TransactionStatus::InBestBlock(b) if self.config.wait_for == WaitFor::InBlock => {
                    return self.outcome(name, b).await
                }
                TransactionStatus::InFinalizedBlock(b) => return self.outcome(name, b).await,
                TransactionStatus::Invalid { message }
                | TransactionStatus::Dropped { message }
                | TransactionStatus::Error { message } => {
                    *self.next_nonce.lock().await = None;
                    return Err(errors::from_pool_rejection(name, &message));
                }
                _ => {}
            }
        }
        Err(self.conn.unreachable(format!("the node stopped reporting on {name} before it was included")))
    }

    async fn outcome(
        &self,
        name: &'static str,
        included: TransactionInBlock<Subtensor, OnlineClientAtBlockImpl<Subtensor>>,
    ) -> Result<(), ChainError> {
        use subxt::error::TransactionEventsError as E;
        match included.wait_for_success().await {
            Ok(_) => Ok(()),
            Err(E::ExtrinsicFailed(dispatch)) => Err(errors::from_dispatch(name, &dispatch)),
            Err(e) => Err(self.conn.error(&format!("reading the events of {name}"), e).await),
        }
    }

    /// How many mechanisms (weight vectors) `netuid` has: `MechanismCountCurrent`, or 1 on
    /// runtimes without mechanisms.
    pub async fn mechanism_count(&self, netuid: NetUid) -> Result<u8, ChainError> {
        let at = self.conn.at_finalized("mechanism_count").await?;
        self.subnet_exists(&at, "mechanism_count", netuid).await?;
        if !Self::has_storage(&at, "MechanismCountCurrent") {
            return Ok(1);
        }
        Ok(self.storage::<_, u8>(&at, "MechanismCountCurrent", (netuid,)).await?.max(1))
    }

    /// Mechanism `mecid`'s view of `netuid` (its weights, incentives and emissions), whatever
    /// mechanism this handle sets weights for.
    pub async fn mechagraph(&self, netuid: NetUid, mecid: u8) -> Result<Metagraph, ChainError> {
        let at = self.conn.at_finalized("metagraph").await?;
        self.metagraph_at(&at, netuid, mecid).await
    }

    /// The uid of this hotkey on `netuid`, if registered.
    pub async fn uid(&self, netuid: NetUid) -> Result<Option<u16>, ChainError> {
        let at = self.conn.at_finalized("uid").await?;
        let addr = subxt::storage::dynamic::<(u16, [u8; 32]), u16>(calls::PALLET, "Uids");
        match at.storage().try_fetch(addr, (netuid, self.signer.account().0)).await {
            Ok(Some(v)) => v.decode().map(Some).map_err(|e| ChainError::Other(format!("cannot decode Uids: {e}"))),
            Ok(None) => Ok(None),
            Err(e) => Err(self.conn.error("reading Uids", e).await),
        }
    }
}

#[async_trait::async_trait]
impl Chain for SubtensorChain {
    fn describe(&self) -> String {
        format!("subtensor node {} ({})", self.config.endpoint.name, self.config.endpoint.url)
    }

    fn hotkey(&self) -> AccountId {
        self.signer.account()
    }

    fn mechanism(&self) -> u8 {
        self.config.mechanism
    }

    async fn block(&self) -> Result<u64, ChainError> {
        Ok(self.conn.at_finalized("block").await?.block_number())
    }

    async fn subscribe_blocks(&self) -> Result<BlockStream, ChainError> {
        blocks::follow(self.conn.clone(), self.config.reconnect_delay).await
    }

    async fn metagraph(&self, netuid: NetUid) -> Result<Metagraph, ChainError> {
        self.mechagraph(netuid, self.config.mechanism).await
    }

    async fn hyperparams(&self, netuid: NetUid) -> Result<Hyperparams, ChainError> {
        let at = self.conn.at_finalized("hyperparams").await?;
        self.hyperparams_at(&at, netuid).await
    }

    async fn epoch_status(&self, netuid: NetUid) -> Result<EpochStatus, ChainError> {
        let at = self.conn.at_finalized("epoch_status").await?;
        self.subnet_exists(&at, "epoch_status", netuid).await?;
        let tempo: u16 = self.storage(&at, "Tempo", (netuid,)).await?;
        if !Self::has_storage(&at, "SubnetEpochIndex") {
            return Ok(reads::epoch_status(netuid, tempo, at.block_number()));
        }
        Ok(self.epoch_schedule(&at, netuid, tempo).await?.status())
    }

    async fn timelock_context(&self, netuid: NetUid) -> Result<TimelockContext, ChainError> {
        let at = self.conn.at_finalized("timelock_context").await?;
        self.subnet_exists(&at, "timelock_context", netuid).await?;
        let tempo: u16 = self.storage(&at, "Tempo", (netuid,)).await?;
        let schedule = self.epoch_schedule(&at, netuid, tempo).await?;
        let reveal_period_epochs: u64 = self.storage(&at, "RevealPeriodEpochs", (netuid,)).await?;
        let commit_reveal_version: u16 = self.storage(&at, "CommitRevealWeightsVersion", ()).await?;
        // Blocks come every 2 x Timestamp.MinimumPeriod (6 s on finney: 12 s blocks; fast-block
        // development nodes are quicker).
        let minimum_period_ms = at
            .constants()
            .entry(subxt::dynamic::constant::<u64>("Timestamp", "MinimumPeriod"))
            .ok()
            .filter(|&ms| ms > 0);
        let block_time_secs = minimum_period_ms.map_or(12.0, |ms| 2.0 * ms as f64 / 1000.0);
        let now_secs =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        Ok(TimelockContext {
            beacon: timelock::Beacon::quicknet(),
            schedule,
            reveal_period_epochs,
            block_time_secs,
            now_secs,
            commit_reveal_version,
        })
    }

    async fn weight_commits(&self, netuid: NetUid) -> Result<Vec<StoredCommit>, ChainError> {
        let at = self.conn.at_finalized("weight_commits").await?;
        self.subnet_exists(&at, "weight_commits", netuid).await?;
        let index = mechanism_storage_index(netuid, self.config.mechanism);
        let addr =
            subxt::storage::dynamic::<(u16, [u8; 32]), Vec<([u8; 32], u64, u64, u64)>>(calls::PALLET, "WeightCommits");
        let raw = match at.storage().try_fetch(addr, (index, self.signer.account().0)).await {
            Ok(Some(v)) => v.decode().map_err(|e| ChainError::Other(format!("cannot decode WeightCommits: {e}")))?,
            Ok(None) => Vec::new(),
            Err(e) => return Err(self.conn.error("reading WeightCommits", e).await),
        };
        let (tempo, period) = try_join(
            self.storage::<_, u16>(&at, "Tempo", (netuid,)),
            self.storage::<_, u64>(&at, "RevealPeriodEpochs", (netuid,)),
        )
        .await?;
        // The tuple's fields changed meaning with the stateful scheduler; the metadata tells which.
        let layout = if Self::has_storage(&at, "SubnetEpochIndex") {
            reads::CommitLayout::Stateful
        } else {
            reads::CommitLayout::BlockRule
        };
        Ok(reads::stored_commits(netuid, tempo, period, layout, &raw))
    }

    async fn timelocked_revealed_in(
        &self,
        netuid: NetUid,
        from_block: u64,
        to_block: u64,
    ) -> Result<Option<u64>, ChainError> {
        let client = self.conn.client().await?;
        let head = self.conn.at_finalized("timelocked_revealed_in").await?.block_number();
        let index = mechanism_storage_index(netuid, self.config.mechanism);
        let me = self.signer.account().0;
        let last = to_block.min(head);
        for n in from_block.max(last.saturating_sub(MAX_EVENT_SCAN_BLOCKS))..=last {
            let at = match client.at_block(n).await {
                Ok(at) => at,
                Err(e) => return Err(self.conn.error(&format!("reading block {n}"), e).await),
            };
            let events = match at.events().fetch().await {
                Ok(ev) => ev,
                Err(e) => return Err(self.conn.error(&format!("reading the events of block {n}"), e).await),
            };
            for event in events.iter() {
                let event =
                    event.map_err(|e| ChainError::Other(format!("cannot decode the events of block {n}: {e}")))?;
                if event.pallet_name() != calls::PALLET || event.event_name() != "TimelockedWeightsRevealed" {
                    continue;
                }
                let (revealed_index, who): (u16, [u8; 32]) = event.decode_fields_unchecked_as().map_err(|e| {
                    ChainError::Other(format!("cannot decode TimelockedWeightsRevealed in block {n}: {e}"))
                })?;
                if revealed_index == index && who == me {
                    return Ok(Some(n));
                }
            }
        }
        Ok(None)
    }

    async fn commit_timelocked_weights(
        &self,
        netuid: NetUid,
        mecid: u8,
        commit: &[u8],
        reveal_round: u64,
        commit_reveal_version: u16,
    ) -> Result<(), ChainError> {
        let at = self.conn.at_finalized("commit_timelocked_weights").await?;
        let has_call = |name: &str| {
            at.metadata_ref().pallet_by_name(calls::PALLET).is_some_and(|p| p.call_variant_by_name(name).is_some())
        };
        let commit = commit.to_vec();
        let call = if has_call("commit_timelocked_mechanism_weights") {
            SubtensorCall::CommitTimelockedMechanismWeights {
                netuid,
                mecid,
                commit,
                reveal_round,
                commit_reveal_version,
            }
        } else if has_call("commit_timelocked_weights") && mecid == 0 {
            SubtensorCall::CommitTimelockedWeights { netuid, commit, reveal_round, commit_reveal_version }
        } else if has_call("commit_timelocked_weights") {
            return Err(self.no_mechanisms());
        } else {
            return Err(ChainError::Other(
                "this runtime has no timelocked commits: set validator.commit_reveal = \"hash\"".into(),
            ));
        };
        self.submit(call).await
    }

    async fn weights(&self, netuid: NetUid) -> Result<Vec<(u16, Vec<(u16, u16)>)>, ChainError> {
        let at = self.conn.at_finalized("weights").await?;
        self.subnet_exists(&at, "weights", netuid).await?;
        let addr = subxt::storage::dynamic::<(u16, u16), Vec<(u16, u16)>>(calls::PALLET, "Weights");
        let mut entries = match at.storage().iter(addr, (netuid,)).await {
            Ok(s) => s,
            Err(e) => return Err(self.conn.error("reading Weights", e).await),
        };
        let mut out = Vec::new();
        while let Some(entry) = entries.next().await {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => return Err(self.conn.error("reading Weights", e).await),
            };
            let key = entry.key().map_err(|e| ChainError::Other(format!("cannot decode a Weights key: {e}")))?;
            let uid = key
                .part(1)
                .and_then(|p| p.decode_as::<u16>().ok().flatten())
                .ok_or_else(|| ChainError::Other("a Weights key without its uid".into()))?;
            let weights: Vec<(u16, u16)> =
                entry.value().decode_as().map_err(|e| ChainError::Other(format!("cannot decode Weights: {e}")))?;
            if !weights.is_empty() {
                out.push((uid, weights));
            }
        }
        out.sort_by_key(|(uid, _)| *uid);
        Ok(out)
    }

    async fn register(&self, netuid: NetUid) -> Result<u16, ChainError> {
        let hotkey = self.signer.account();
        self.submit(SubtensorCall::BurnedRegister { netuid, hotkey }).await?;
        self.uid(netuid).await?.ok_or_else(|| {
            ChainError::Other(format!("burned_register succeeded but {hotkey} has no uid on subnet {netuid} yet"))
        })
    }

    async fn serve_axon(&self, netuid: NetUid, axon: AxonInfo) -> Result<(), ChainError> {
        self.submit(SubtensorCall::ServeAxon { netuid, axon }).await
    }

    async fn set_weights(
        &self,
        netuid: NetUid,
        uids: &[u16],
        weights: &[u16],
        version_key: u64,
    ) -> Result<(), ChainError> {
        let (dests, weights) = (uids.to_vec(), weights.to_vec());
        self.submit(match self.config.mechanism {
            0 => SubtensorCall::SetWeights { netuid, dests, weights, version_key },
            mecid => SubtensorCall::SetMechanismWeights { netuid, mecid, dests, weights, version_key },
        })
        .await
    }

    async fn commit_weights(&self, netuid: NetUid, commit_hash: [u8; 32]) -> Result<(), ChainError> {
        self.submit(match self.config.mechanism {
            0 => SubtensorCall::CommitWeights { netuid, commit_hash },
            mecid => SubtensorCall::CommitMechanismWeights { netuid, mecid, commit_hash },
        })
        .await
    }

    async fn reveal_weights(
        &self,
        netuid: NetUid,
        uids: &[u16],
        weights: &[u16],
        salt: &[u16],
        version_key: u64,
    ) -> Result<(), ChainError> {
        let (uids, values, salt) = (uids.to_vec(), weights.to_vec(), salt.to_vec());
        self.submit(match self.config.mechanism {
            0 => SubtensorCall::RevealWeights { netuid, uids, values, salt, version_key },
            mecid => SubtensorCall::RevealMechanismWeights { netuid, mecid, uids, values, salt, version_key },
        })
        .await
    }
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubtensorSettings {
    /// local (the embedded chain), finney or test.
    pub network: String,
    /// A node's WebSocket URL; wins over `network` ("" for none).
    pub chain_endpoint: String,
    /// Wait for extrinsics to be "inclusion" in a block or "finalized".
    pub wait_for: WaitFor,
    /// The node's RPC methods to use: "auto", "legacy" or "new".
    pub rpc: RpcMode,
}

impl Default for SubtensorSettings {
    fn default() -> Self {
        Self { network: "local".into(), chain_endpoint: String::new(), wait_for: WaitFor::InBlock, rpc: RpcMode::Auto }
    }
}

impl SubtensorSettings {
    pub fn validate(&self) -> Result<(), String> {
        if !["local", "finney", "test"].contains(&self.network.as_str()) {
            return Err(format!(
                "subtensor.network `{}` is not one of local, finney, test (or set subtensor.chain_endpoint)",
                self.network
            ));
        }
        Ok(())
    }
}
