//! The embedded chain: a subtensor stand-in inside the process, so a whole
//! subnet runs with no node. It produces blocks at a configurable interval,
//! keeps subnets, registrations, stake, endpoints, weights, bonds and
//! commits, applies subtensor's rules (in subtensor's order, with its error
//! names) to every call, and runs [`yuma`] at each subnet's tempo.
//!
//! Commit-reveal works as on finney today: a timelocked commit (v4) is filed
//! under its epoch and, from its reveal epoch on, decrypted by the chain itself
//! with its beacon's pulse for the commit's round and applied as `set_weights`
//! would be. The beacon is the chain's own ([`LocalBeacon`], a BLS key made at
//! genesis) and publishes one round per block (like drand, round 1 at
//! genesis: round `r` at block `r - 1`), so reveals follow the blocks, not the
//! wall clock; the hash commit/reveal pair is kept too.
//!
//! Simplifications, on purpose: stake is a number per (subnet, hotkey) set by
//! the genesis configuration or [`LocalChain::add_stake`] (no balances, no
//! staking extrinsics); registration burns nothing; each epoch emits
//! `block_emission * tempo` rao, added to the receivers' stake as on the real
//! chain; there is one mechanism per subnet.
//!
//! Its whole state can be saved to a JSON file and resumed.

use std::{
    collections::{BTreeMap, VecDeque},
    path::Path,
    sync::{Arc, Mutex, MutexGuard, Weak},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::{
    commit::commit_hash,
    timelock::{self, EpochSchedule, LocalBeacon},
    yuma::{self, max_upscale_u16, within_max_weight_limit},
    AccountId, AxonInfo, BlockStream, Chain, ChainError, DispatchError, EpochStatus, Hyperparams, Metagraph, NetUid,
    NeuronInfo, StoredCommit, TimelockContext,
};

/// How many reveal blocks the embedded chain keeps per hotkey (its event history).
const MAX_REVEALS_KEPT: usize = 32;
/// At most this many commits wait per hotkey (subtensor's limit).
const MAX_PENDING_COMMITS: usize = 10;
/// The commit-reveal version the embedded chain takes (`CommitRevealWeightsVersion` on finney).
pub const COMMIT_REVEAL_VERSION: u16 = 4;
/// subtensor's `MAX_CRV3_COMMIT_SIZE_BYTES`.
const MAX_TIMELOCKED_COMMIT_BYTES: usize = 5000;
const STATE_VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Neuron {
    hotkey: AccountId,
    coldkey: AccountId,
    registered_at: u64,
    last_update: u64,
    axon: Option<AxonInfo>,
    weights: Vec<(u16, u16)>,
    bonds: Vec<(u16, u16)>,
    validator_permit: bool,
    active: bool,
    consensus: u16,
    incentive: u16,
    dividends: u16,
    validator_trust: u16,
    emission: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Commit {
    hash: [u8; 32],
    epoch: u64,
    block: u64,
}

/// A timelocked commit waiting for its round's pulse.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct TimelockedCommit {
    hotkey: AccountId,
    block: u64,
    commit: Vec<u8>,
    round: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Subnet {
    params: Hyperparams,
    owner_hotkey: Option<AccountId>,
    epoch_index: u64,
    last_epoch_block: u64,
    neurons: Vec<Neuron>,
    /// Stake per hotkey, in rao.
    stake: BTreeMap<AccountId, u64>,
    commits: BTreeMap<AccountId, VecDeque<Commit>>,
    /// Timelocked commits by the epoch they were made in.
    #[serde(default)]
    timelocked: BTreeMap<u64, Vec<TimelockedCommit>>,
    /// The blocks each hotkey's timelocked weights were revealed and applied at (the last
    /// [`MAX_REVEALS_KEPT`]): the embedded chain's `TimelockedWeightsRevealed` events.
    #[serde(default)]
    reveals: BTreeMap<AccountId, VecDeque<u64>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct State {
    version: u32,
    block: u64,
    /// Rao per block; an epoch emits `block_emission * tempo`.
    block_emission: u64,
    subnets: BTreeMap<NetUid, Subnet>,
    /// The seed of the chain's beacon key (made at genesis; kept so commits survive a restart).
    #[serde(default = "fresh_beacon_seed")]
    beacon_seed: [u8; 32],
}

fn fresh_beacon_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    if getrandom::getrandom(&mut seed).is_err() {
        // No randomness: a key from the clock still makes a working beacon for a test chain.
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        seed[..16].copy_from_slice(&nanos.to_le_bytes());
    }
    seed
}

/// How to start an embedded chain.
#[derive(Clone, Debug)]
pub struct LocalChainConfig {
    /// Time between blocks (12 s on the real chain).
    pub block_time: Duration,
    /// Rao per block (1 TAO = 1e9 rao).
    pub block_emission: u64,
    /// Subnets at genesis, each with its owner hotkey (never replaced, self-weight kept).
    pub subnets: Vec<(NetUid, Hyperparams, Option<AccountId>)>,
}

impl Default for LocalChainConfig {
    fn default() -> Self {
        Self {
            block_time: Duration::from_secs(12),
            block_emission: 1_000_000_000,
            subnets: vec![(1, Hyperparams::default(), None)],
        }
    }
}

/// The embedded chain. Cheap to share: hand each neuron a [`LocalChain::client`].
pub struct LocalChain {
    state: Mutex<State>,
    subscribers: Mutex<Vec<mpsc::Sender<Result<u64, ChainError>>>>,
    block_time: Duration,
    /// Held through a whole save, so saves from several threads land in the order they read
    /// the state and an older one never replaces a newer one.
    saving: Mutex<()>,
    /// The chain's drand stand-in (its key from `State::beacon_seed`).
    beacon: LocalBeacon,
}

impl LocalChain {
    pub fn new(config: LocalChainConfig) -> Arc<Self> {
        let subnets = config
            .subnets
            .into_iter()
            .map(|(netuid, params, owner_hotkey)| {
                (
                    netuid,
                    Subnet {
                        params,
                        owner_hotkey,
                        epoch_index: 0,
                        last_epoch_block: 0,
                        neurons: Vec::new(),
                        stake: BTreeMap::new(),
                        commits: BTreeMap::new(),
                        timelocked: BTreeMap::new(),
                        reveals: BTreeMap::new(),
                    },
                )
            })
            .collect();
        Self::from_state(
            State {
                version: STATE_VERSION,
                block: 0,
                block_emission: config.block_emission,
                subnets,
                beacon_seed: fresh_beacon_seed(),
            },
            config.block_time,
        )
    }

    fn from_state(state: State, block_time: Duration) -> Arc<Self> {
        Arc::new(Self {
            beacon: LocalBeacon::from_seed(state.beacon_seed),
            state: Mutex::new(state),
            subscribers: Mutex::new(Vec::new()),
            block_time,
            saving: Mutex::new(()),
        })
    }

    /// Resumes a chain saved with [`LocalChain::save`].
    pub fn load(path: &Path, block_time: Duration) -> Result<Arc<Self>, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read chain state {}: {e}", path.display()))?;
        let state: State = serde_json::from_str(&text).map_err(|e| {
            format!("chain state {} is not valid ({e}); move it away to start a new chain", path.display())
        })?;
        if state.version != STATE_VERSION {
            return Err(format!(
                "chain state {} has format version {}, this host reads {STATE_VERSION}",
                path.display(),
                state.version
            ));
        }
        Ok(Self::from_state(state, block_time))
    }

    /// Writes the whole state to `path` atomically (temp file, fsync, rename) and returns the
    /// block it holds. Blocks on the disk: call it from a blocking thread. Concurrent saves are
    /// serialised, each writing the state as it is when its turn comes.
    pub fn save(&self, path: &Path) -> Result<u64, String> {
        let _turn = self.saving.lock().unwrap_or_else(|p| p.into_inner());
        let (text, block) = {
            let st = self.lock();
            (serde_json::to_string(&*st).map_err(|e| format!("cannot encode chain state: {e}"))?, st.block)
        };
        crate::fsutil::write_atomically(path, text.as_bytes())
            .map_err(|e| format!("cannot write chain state {}: {e}", path.display()))?;
        Ok(block)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A handle that acts as `hotkey` (owned by `coldkey`).
    pub fn client(self: &Arc<Self>, hotkey: AccountId, coldkey: AccountId) -> LocalClient {
        LocalClient { chain: self.clone(), hotkey, coldkey }
    }

    pub fn block_time(&self) -> Duration {
        self.block_time
    }

    /// Produces blocks every `block_time` on the current tokio runtime until
    /// the chain is dropped.
    pub fn start(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Self> = Arc::downgrade(self);
        let interval = self.block_time;
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let Some(chain) = weak.upgrade() else { break };
                chain.produce_block();
            }
        })
    }

    /// Produces one block now: runs the epochs due at it, then tells subscribers.
    pub fn produce_block(&self) -> u64 {
        let block = {
            let mut st = self.lock();
            st.block += 1;
            let block = st.block;
            let emission_per_block = st.block_emission;
            for (netuid, subnet) in st.subnets.iter_mut() {
                // As subtensor's block step: matured timelocked commits first, then the epoch.
                reveal_timelocked(*netuid, subnet, block, &self.beacon);
                if should_run_epoch(subnet, block) {
                    run_epoch(*netuid, subnet, block, emission_per_block);
                }
            }
            block
        };
        let mut subs = self.subscribers.lock().unwrap_or_else(|p| p.into_inner());
        subs.retain(|tx| match tx.try_send(Ok(block)) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(target: "neuron_host::chain", "a block subscriber is {} blocks behind; block {block} not delivered to it", tx.max_capacity());
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
        block
    }

    pub fn current_block(&self) -> u64 {
        self.lock().block
    }

    /// Sets a hotkey's stake on a subnet (genesis and tests; the real chain stakes by extrinsic).
    pub fn add_stake(&self, netuid: NetUid, hotkey: AccountId, rao: u64) -> Result<(), ChainError> {
        let mut st = self.lock();
        let subnet =
            st.subnets.get_mut(&netuid).ok_or(ChainError::dispatch("add_stake", DispatchError::SubnetNotExists))?;
        *subnet.stake.entry(hotkey).or_insert(0) += rao;
        Ok(())
    }

    /// Runs a subnet's epoch at the current block, as if its tempo had come
    /// round. A new local subnet calls it once its neurons are registered and
    /// staked, so the staked validator holds its permit from the first block
    /// (the real chain hands permits out at the first epoch after genesis).
    pub fn run_epoch_now(&self, netuid: NetUid) -> Result<(), ChainError> {
        let mut st = self.lock();
        let block = st.block;
        let subnet =
            st.subnets.get_mut(&netuid).ok_or(ChainError::dispatch("run_epoch", DispatchError::SubnetNotExists))?;
        // No emission: nothing has been earned yet.
        run_epoch(netuid, subnet, block, 0);
        Ok(())
    }

    /// Changes a subnet's hyperparameters (what a subnet owner does with sudo calls).
    pub fn set_hyperparams(&self, netuid: NetUid, params: Hyperparams) -> Result<(), ChainError> {
        let mut st = self.lock();
        let subnet = st
            .subnets
            .get_mut(&netuid)
            .ok_or(ChainError::dispatch("set_hyperparams", DispatchError::SubnetNotExists))?;
        subnet.params = params;
        Ok(())
    }

    fn read_subnet<T>(
        &self,
        call: &'static str,
        netuid: NetUid,
        f: impl FnOnce(u64, &Subnet) -> T,
    ) -> Result<T, ChainError> {
        let st = self.lock();
        let subnet = st.subnets.get(&netuid).ok_or(ChainError::dispatch(call, DispatchError::SubnetNotExists))?;
        Ok(f(st.block, subnet))
    }

    fn with_subnet<T>(
        &self,
        call: &'static str,
        netuid: NetUid,
        f: impl FnOnce(u64, &mut Subnet) -> Result<T, DispatchError>,
    ) -> Result<T, ChainError> {
        let mut st = self.lock();
        let block = st.block;
        let subnet = st.subnets.get_mut(&netuid).ok_or(ChainError::dispatch(call, DispatchError::SubnetNotExists))?;
        // Extrinsics are transactional on subtensor: a refused call changes nothing.
        let before = subnet.clone();
        f(block, subnet).map_err(|e| {
            *subnet = before;
            ChainError::dispatch(call, e)
        })
    }
}

fn should_run_epoch(subnet: &Subnet, block: u64) -> bool {
    let tempo = u64::from(subnet.params.tempo);
    tempo > 0 && block.saturating_sub(subnet.last_epoch_block) >= tempo
}

/// The epoch a commit or reveal made now belongs to (subtensor's look-ahead).
fn epoch_with_lookahead(subnet: &Subnet, block: u64) -> u64 {
    subnet.epoch_index + u64::from(should_run_epoch(subnet, block))
}

/// The embedded chain's beacon as a [`timelock::Beacon`] on a clock that counts blocks: genesis
/// 0, one "second" (block) a round, so round `r` is published at block `r - 1`.
fn local_beacon(beacon: &LocalBeacon) -> timelock::Beacon {
    beacon.beacon(0, 1)
}

/// subtensor's `reveal_crv3_commits_for_subnet`, at the start of `block`: commits of epoch
/// `current - reveal_period` (current with the look-ahead) are decrypted with their round's
/// pulse and applied as `set_weights`; those whose pulse has not come wait (every block of the
/// reveal epoch); older epochs' are dropped; a commit that does not decrypt, decode, name its
/// committer or pass the weight checks is dropped, as on the chain.
fn reveal_timelocked(netuid: NetUid, subnet: &mut Subnet, block: u64, beacon: &LocalBeacon) {
    if subnet.timelocked.is_empty() {
        return;
    }
    let current = epoch_with_lookahead(subnet, block);
    let period = subnet.params.commit_reveal_period;
    let reveal_epoch = current.saturating_sub(period);
    subnet.timelocked.retain(|&epoch, _| epoch >= reveal_epoch);
    if current < period {
        return;
    }
    let Some(entries) = subnet.timelocked.remove(&reveal_epoch) else { return };
    let published = local_beacon(beacon).round_at(block);
    let mut waiting = Vec::new();
    for c in entries {
        if c.round > published {
            waiting.push(c);
            continue;
        }
        let applied = timelock::decrypt(&c.commit, &beacon.sign_round(c.round))
            .and_then(|bytes| timelock::decode_payload(&bytes))
            .and_then(|p| {
                if p.hotkey_account() != Some(c.hotkey) {
                    return Err("the payload names another hotkey".into());
                }
                subnet
                    .internal_set_weights(block, &c.hotkey, &p.uids, &p.values, p.version_key)
                    .map_err(|e| e.to_string())
            });
        match applied {
            Ok(()) => {
                let kept = subnet.reveals.entry(c.hotkey).or_default();
                kept.push_back(block);
                if kept.len() > MAX_REVEALS_KEPT {
                    kept.pop_front();
                }
                tracing::debug!(target: "neuron_host::chain", "subnet {netuid}: timelocked weights of {} revealed at block {block} (round {})", c.hotkey.to_ss58(), c.round);
            }
            Err(e) => {
                tracing::debug!(target: "neuron_host::chain", "subnet {netuid}: a timelocked commit of {} dropped: {e}", c.hotkey.to_ss58())
            }
        }
    }
    if !waiting.is_empty() {
        subnet.timelocked.insert(reveal_epoch, waiting);
    }
}

fn to_proportion(x: u16) -> f64 {
    f64::from(x) / f64::from(u16::MAX)
}

fn run_epoch(netuid: NetUid, subnet: &mut Subnet, block: u64, emission_per_block: u64) {
    let p = &subnet.params;
    let n = subnet.neurons.len();
    let stake: Vec<u64> = subnet.neurons.iter().map(|nr| subnet.stake.get(&nr.hotkey).copied().unwrap_or(0)).collect();
    let last_update: Vec<u64> = subnet.neurons.iter().map(|nr| nr.last_update).collect();
    let registered: Vec<u64> = subnet.neurons.iter().map(|nr| nr.registered_at).collect();
    let permits: Vec<bool> = subnet.neurons.iter().map(|nr| nr.validator_permit).collect();
    let weights: Vec<Vec<(u16, u16)>> = subnet.neurons.iter().map(|nr| nr.weights.clone()).collect();
    let bonds: Vec<Vec<(u16, u16)>> = subnet.neurons.iter().map(|nr| nr.bonds.clone()).collect();
    let owner_uid =
        subnet.owner_hotkey.and_then(|h| subnet.neurons.iter().position(|nr| nr.hotkey == h)).map(|u| u as u16);
    let emission = emission_per_block.saturating_mul(u64::from(p.tempo));
    let out = yuma::epoch(&yuma::EpochInput {
        current_block: block,
        tempo: u64::from(p.tempo),
        last_epoch_block: subnet.last_epoch_block,
        activity_cutoff: p.activity_cutoff,
        last_update: &last_update,
        block_at_registration: &registered,
        stake: &stake,
        min_stake: p.min_stake,
        validator_permit: &permits,
        max_allowed_validators: p.max_allowed_validators,
        weights: &weights,
        bonds: &bonds,
        kappa: p.kappa,
        bonds_penalty: p.bonds_penalty,
        bonds_moving_average: p.bonds_moving_average,
        yuma3: p.yuma3,
        owner_uid,
        emission,
    });
    for (i, nr) in subnet.neurons.iter_mut().enumerate() {
        nr.active = out.active[i];
        nr.consensus = out.consensus[i];
        nr.incentive = out.incentive[i];
        nr.dividends = out.dividends[i];
        nr.validator_trust = out.validator_trust[i];
        nr.validator_permit = out.validator_permit[i];
        nr.emission = out.server_emission[i] + out.validator_emission[i];
        if let Some(b) = &out.bonds[i] {
            nr.bonds.clone_from(b);
        }
        *subnet.stake.entry(nr.hotkey).or_insert(0) += nr.emission;
    }
    subnet.epoch_index += 1;
    subnet.last_epoch_block = block;
    tracing::debug!(target: "neuron_host::chain", "epoch {} of subnet {netuid} at block {block}: {n} neurons", subnet.epoch_index);
}

impl Subnet {
    fn uid_of(&self, hotkey: &AccountId) -> Option<u16> {
        self.neurons.iter().position(|n| n.hotkey == *hotkey).map(|u| u as u16)
    }

    fn rate_limit_ok(&self, uid: u16, block: u64) -> bool {
        let last = self.neurons[uid as usize].last_update;
        last == 0 || block.saturating_sub(last) >= self.params.weights_rate_limit
    }

    fn is_self_weight(uid: u16, uids: &[u16], values: &[u16]) -> bool {
        values.len() == 1 && uids.first() == Some(&uid)
    }

    /// subtensor's weight checks, in subtensor's order; stores the weights.
    fn internal_set_weights(
        &mut self,
        block: u64,
        hotkey: &AccountId,
        uids: &[u16],
        values: &[u16],
        version_key: u64,
    ) -> Result<(), DispatchError> {
        use DispatchError::*;
        let n = self.neurons.len();
        if uids.len() != values.len() {
            return Err(WeightVecNotEqualSize);
        }
        if uids.len() > n {
            return Err(UidsLengthExceedUidsInSubNet);
        }
        let uid = self.uid_of(hotkey).ok_or(HotKeyNotRegisteredInSubNet)?;
        if self.stake.get(hotkey).copied().unwrap_or(0) < self.params.min_stake {
            return Err(NotEnoughStakeToSetWeights);
        }
        if self.params.weights_version_key != 0 && version_key < self.params.weights_version_key {
            return Err(IncorrectWeightVersionKey);
        }
        if !self.params.commit_reveal_enabled && !self.rate_limit_ok(uid, block) {
            return Err(SettingWeightsTooFast);
        }
        let is_owner = self.owner_hotkey.as_ref() == Some(hotkey);
        if !Self::is_self_weight(uid, uids, values) && !is_owner && !self.neurons[uid as usize].validator_permit {
            return Err(NeuronNoValidatorPermit);
        }
        let mut seen = std::collections::HashSet::new();
        if !uids.iter().all(|u| seen.insert(*u)) {
            return Err(DuplicateUids);
        }
        if uids.iter().any(|&u| u as usize >= n) {
            return Err(UidVecContainInvalidOne);
        }
        let min_allowed = n.min(self.params.min_allowed_weights as usize);
        if !Self::is_self_weight(uid, uids, values) && values.len() < min_allowed {
            return Err(WeightVecLengthIsLow);
        }
        let upscaled = max_upscale_u16(values);
        if !Self::is_self_weight(uid, uids, values)
            && self.params.max_weight_limit != u16::MAX
            && !within_max_weight_limit(&upscaled, self.params.max_weight_limit)
        {
            return Err(MaxWeightExceeded);
        }
        let neuron = &mut self.neurons[uid as usize];
        neuron.weights = uids.iter().copied().zip(upscaled).collect();
        if !self.params.commit_reveal_enabled {
            neuron.last_update = block;
        }
        Ok(())
    }

    fn register(&mut self, block: u64, hotkey: AccountId, coldkey: AccountId) -> Result<u16, DispatchError> {
        if self.uid_of(&hotkey).is_some() {
            return Err(DispatchError::HotKeyAlreadyRegisteredInSubNet);
        }
        let fresh = Neuron {
            hotkey,
            coldkey,
            registered_at: block,
            last_update: block,
            axon: None,
            weights: Vec::new(),
            bonds: Vec::new(),
            validator_permit: false,
            active: true,
            consensus: 0,
            incentive: 0,
            dividends: 0,
            validator_trust: 0,
            emission: 0,
        };
        if self.neurons.len() < self.params.max_allowed_uids as usize {
            self.neurons.push(fresh);
            return Ok(self.neurons.len() as u16 - 1);
        }
        // Full: replace the lowest-emission neuron, preferring those past
        // their immunity period, then the oldest registration, then the lowest uid.
        let immunity = self.params.immunity_period;
        let victim = self
            .neurons
            .iter()
            .enumerate()
            .filter(|(_, nr)| self.owner_hotkey != Some(nr.hotkey))
            .min_by_key(|(uid, nr)| {
                (block.saturating_sub(nr.registered_at) < immunity, nr.emission, nr.registered_at, *uid)
            })
            .map(|(uid, _)| uid as u16)
            .ok_or(DispatchError::NoNeuronIdAvailable)?;
        let old = self.neurons[victim as usize].hotkey;
        self.commits.remove(&old);
        self.neurons[victim as usize] = fresh;
        // Weights others set on the replaced neuron go to zero.
        for nr in self.neurons.iter_mut() {
            for (target, w) in nr.weights.iter_mut() {
                if *target == victim {
                    *w = 0;
                }
            }
        }
        Ok(victim)
    }
}

/// One neuron's handle on the embedded chain.
#[derive(Clone)]
pub struct LocalClient {
    chain: Arc<LocalChain>,
    hotkey: AccountId,
    coldkey: AccountId,
}

impl LocalClient {
    pub fn chain(&self) -> &Arc<LocalChain> {
        &self.chain
    }
}

#[async_trait::async_trait]
impl Chain for LocalClient {
    fn describe(&self) -> String {
        "local (embedded chain)".to_string()
    }

    fn hotkey(&self) -> AccountId {
        self.hotkey
    }

    async fn block(&self) -> Result<u64, ChainError> {
        Ok(self.chain.current_block())
    }

    async fn subscribe_blocks(&self) -> Result<BlockStream, ChainError> {
        let (tx, rx) = mpsc::channel(1024);
        self.chain.subscribers.lock().unwrap_or_else(|p| p.into_inner()).push(tx);
        Ok(BlockStream::new(rx))
    }

    async fn metagraph(&self, netuid: NetUid) -> Result<Metagraph, ChainError> {
        self.chain.read_subnet("metagraph", netuid, |block, s| {
            let neurons = s
                .neurons
                .iter()
                .enumerate()
                .map(|(uid, nr)| NeuronInfo {
                    uid: uid as u16,
                    hotkey: nr.hotkey,
                    coldkey: nr.coldkey,
                    stake: s.stake.get(&nr.hotkey).copied().unwrap_or(0),
                    axon: nr.axon,
                    validator_permit: nr.validator_permit,
                    active: nr.active,
                    last_update: nr.last_update,
                    registered_at: nr.registered_at,
                    consensus: to_proportion(nr.consensus),
                    incentive: to_proportion(nr.incentive),
                    dividends: to_proportion(nr.dividends),
                    validator_trust: to_proportion(nr.validator_trust),
                    emission: nr.emission,
                })
                .collect();
            Metagraph { netuid, block, neurons }
        })
    }

    async fn hyperparams(&self, netuid: NetUid) -> Result<Hyperparams, ChainError> {
        self.chain.read_subnet("hyperparams", netuid, |_, s| s.params.clone())
    }

    async fn epoch_status(&self, netuid: NetUid) -> Result<EpochStatus, ChainError> {
        self.chain.read_subnet("epoch_status", netuid, |block, s| EpochStatus {
            block,
            epoch_index: s.epoch_index,
            last_epoch_block: s.last_epoch_block,
            next_epoch_block: s.last_epoch_block + u64::from(s.params.tempo),
        })
    }

    async fn weights(&self, netuid: NetUid) -> Result<Vec<(u16, Vec<(u16, u16)>)>, ChainError> {
        self.chain.read_subnet("weights", netuid, |_, s| {
            s.neurons
                .iter()
                .enumerate()
                .filter(|(_, nr)| !nr.weights.is_empty())
                .map(|(uid, nr)| (uid as u16, nr.weights.clone()))
                .collect()
        })
    }

    async fn register(&self, netuid: NetUid) -> Result<u16, ChainError> {
        let (hotkey, coldkey) = (self.hotkey, self.coldkey);
        self.chain.with_subnet("burned_register", netuid, |block, s| s.register(block, hotkey, coldkey))
    }

    async fn serve_axon(&self, netuid: NetUid, axon: AxonInfo) -> Result<(), ChainError> {
        let hotkey = self.hotkey;
        self.chain.with_subnet("serve_axon", netuid, |_, s| {
            let uid = s.uid_of(&hotkey).ok_or(DispatchError::HotKeyNotRegisteredInSubNet)?;
            if axon.ip_type != 4 && axon.ip_type != 6 {
                return Err(DispatchError::InvalidIpType);
            }
            if axon.port == 0 {
                return Err(DispatchError::InvalidPort);
            }
            s.neurons[uid as usize].axon = Some(axon);
            Ok(())
        })
    }

    async fn set_weights(
        &self,
        netuid: NetUid,
        uids: &[u16],
        weights: &[u16],
        version_key: u64,
    ) -> Result<(), ChainError> {
        let hotkey = self.hotkey;
        self.chain.with_subnet("set_weights", netuid, |block, s| {
            if s.params.commit_reveal_enabled {
                return Err(DispatchError::CommitRevealEnabled);
            }
            s.internal_set_weights(block, &hotkey, uids, weights, version_key)
        })
    }

    async fn commit_weights(&self, netuid: NetUid, commit_hash: [u8; 32]) -> Result<(), ChainError> {
        let hotkey = self.hotkey;
        self.chain.with_subnet("commit_weights", netuid, |block, s| {
            use DispatchError::*;
            if !s.params.commit_reveal_enabled {
                return Err(CommitRevealDisabled);
            }
            let uid = s.uid_of(&hotkey).ok_or(HotKeyNotRegisteredInSubNet)?;
            if !s.rate_limit_ok(uid, block) {
                return Err(CommittingWeightsTooFast);
            }
            let epoch = epoch_with_lookahead(s, block);
            let period = s.params.commit_reveal_period;
            let commits = s.commits.entry(hotkey).or_default();
            while commits.front().is_some_and(|c| epoch > c.epoch + period) {
                commits.pop_front();
            }
            if commits.len() >= MAX_PENDING_COMMITS {
                return Err(TooManyUnrevealedCommits);
            }
            commits.push_back(Commit { hash: commit_hash, epoch, block });
            s.neurons[uid as usize].last_update = block;
            Ok(())
        })
    }

    async fn weight_commits(&self, netuid: NetUid) -> Result<Vec<StoredCommit>, ChainError> {
        let hotkey = self.hotkey;
        self.chain.read_subnet("weight_commits", netuid, |_, s| {
            let period = s.params.commit_reveal_period;
            s.commits.get(&hotkey).map_or_else(Vec::new, |q| {
                q.iter()
                    .map(|c| StoredCommit { hash: c.hash, commit_block: c.block, reveal_epoch: c.epoch + period })
                    .collect()
            })
        })
    }

    async fn timelocked_revealed_in(
        &self,
        netuid: NetUid,
        from_block: u64,
        to_block: u64,
    ) -> Result<Option<u64>, ChainError> {
        let hotkey = self.hotkey;
        self.chain.read_subnet("timelocked_revealed_in", netuid, |_, s| {
            s.reveals.get(&hotkey).and_then(|r| r.iter().copied().find(|b| (from_block..=to_block).contains(b)))
        })
    }

    async fn timelock_context(&self, netuid: NetUid) -> Result<TimelockContext, ChainError> {
        let beacon = local_beacon(&self.chain.beacon);
        self.chain.read_subnet("timelock_context", netuid, |block, s| TimelockContext {
            beacon,
            schedule: EpochSchedule {
                current_block: block,
                tempo: s.params.tempo,
                last_epoch_block: s.last_epoch_block,
                pending_epoch_at: 0,
                subnet_epoch_index: s.epoch_index,
                blocks_since_last_step: block.saturating_sub(s.last_epoch_block),
            },
            reveal_period_epochs: s.params.commit_reveal_period,
            block_time_secs: 1.0,
            now_secs: block as f64,
            commit_reveal_version: COMMIT_REVEAL_VERSION,
        })
    }

    async fn commit_timelocked_weights(
        &self,
        netuid: NetUid,
        mecid: u8,
        commit: &[u8],
        reveal_round: u64,
        commit_reveal_version: u16,
    ) -> Result<(), ChainError> {
        let hotkey = self.hotkey;
        let published = local_beacon(&self.chain.beacon);
        self.chain.with_subnet("commit_timelocked_weights", netuid, |block, s| {
            use DispatchError::*;
            if mecid != 0 {
                return Err(MechanismDoesNotExist);
            }
            if !s.params.commit_reveal_enabled {
                return Err(CommitRevealDisabled);
            }
            if commit_reveal_version != COMMIT_REVEAL_VERSION {
                return Err(IncorrectCommitRevealVersion);
            }
            // A round already published would be readable by anyone at once (the pool refuses it).
            if reveal_round <= published.round_at(block) || commit.len() > MAX_TIMELOCKED_COMMIT_BYTES {
                return Err(InvalidRevealRound);
            }
            let uid = s.uid_of(&hotkey).ok_or(HotKeyNotRegisteredInSubNet)?;
            if !s.rate_limit_ok(uid, block) {
                return Err(CommittingWeightsTooFast);
            }
            let epoch = epoch_with_lookahead(s, block);
            let filed = s.timelocked.entry(epoch).or_default();
            if filed.iter().filter(|c| c.hotkey == hotkey).count() >= MAX_PENDING_COMMITS {
                return Err(TooManyUnrevealedCommits);
            }
            filed.push(TimelockedCommit { hotkey, block, commit: commit.to_vec(), round: reveal_round });
            s.neurons[uid as usize].last_update = block;
            Ok(())
        })
    }

    async fn reveal_weights(
        &self,
        netuid: NetUid,
        uids: &[u16],
        weights: &[u16],
        salt: &[u16],
        version_key: u64,
    ) -> Result<(), ChainError> {
        let hotkey = self.hotkey;
        self.chain.with_subnet("reveal_weights", netuid, |block, s| {
            use DispatchError::*;
            if !s.params.commit_reveal_enabled {
                return Err(CommitRevealDisabled);
            }
            let current = epoch_with_lookahead(s, block);
            let period = s.params.commit_reveal_period;
            let commits = s.commits.get_mut(&hotkey).ok_or(NoWeightsCommitFound)?;
            let mut expired = Vec::new();
            while commits.front().is_some_and(|c| current > c.epoch + period) {
                expired.push(commits.pop_front().expect("front exists").hash);
            }
            let hash = commit_hash(&hotkey, netuid, uids, weights, salt, version_key);
            if commits.is_empty() {
                s.commits.remove(&hotkey);
                return Err(if expired.contains(&hash) { ExpiredWeightCommit } else { NoWeightsCommitFound });
            }
            let Some(position) = commits.iter().position(|c| c.hash == hash) else {
                return Err(if expired.contains(&hash) {
                    ExpiredWeightCommit
                } else {
                    InvalidRevealCommitHashNotMatch
                });
            };
            if current != commits[position].epoch + period {
                return Err(RevealTooEarly);
            }
            commits.drain(..=position);
            if commits.is_empty() {
                s.commits.remove(&hotkey);
            }
            // If the weights are refused, the whole call is undone (commit kept).
            s.internal_set_weights(block, &hotkey, uids, weights, version_key)
        })
    }
}

/// The embedded chain (`subtensor.network = "local"`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalChainSettings {
    /// Seconds between blocks (12 on the real chain).
    pub block_time: f64,
    /// Rao emitted per block.
    pub block_emission: u64,
    /// Save the chain's state here and resume from it ("" keeps it in memory).
    pub state: String,
    /// Save the state every this many blocks while the chain runs (and always on a clean stop),
    /// so a killed run loses at most this many blocks (0: only on a clean stop).
    pub save_every_blocks: u64,
    /// The subnet's hyperparameters on the embedded chain.
    pub hyperparams: Hyperparams,
}

impl Default for LocalChainSettings {
    fn default() -> Self {
        Self {
            block_time: 1.0,
            block_emission: 1_000_000_000,
            state: String::new(),
            save_every_blocks: 5,
            // Commit-reveal on, as on every finney subnet: the validator's weights are
            // timelocked and revealed by the chain one epoch later.
            hyperparams: Hyperparams {
                tempo: 20,
                weights_rate_limit: 0,
                immunity_period: 100,
                activity_cutoff: 5000,
                commit_reveal_enabled: true,
                commit_reveal_period: 1,
                ..Hyperparams::default()
            },
        }
    }
}

impl LocalChainSettings {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.block_time > 0.0 && self.block_time.is_finite()) {
            return Err(format!("chain.block_time must be a positive number of seconds, got {}", self.block_time));
        }
        if self.hyperparams.tempo == 0 {
            return Err("chain.hyperparams.tempo must be at least 1 block".into());
        }
        Ok(())
    }
}
