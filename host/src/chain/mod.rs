//! The chain: what neurons read from and write to subtensor.
//!
//! [`Chain`] is the chain as one neuron sees it: bound to that neuron's
//! hotkey, it reads blocks, the metagraph and hyperparameters of a subnet, and
//! signs registration, endpoint and weight extrinsics. Backends:
//!
//! - [`local`]: an embedded chain in the process (the default), with
//!   subtensor's `set_weights` rules, commit-reveal and [`yuma`] consensus;
//! - [`subtensor`]: a real subtensor node through subxt (finney, test, any
//!   `ws://`/`wss://` endpoint), selected with [`subtensor::ChainSelection`].
//!
//! Everything above this trait (scheduler, roles) is backend-agnostic.

pub mod commit;
pub mod commits;
pub mod local;
pub mod policy;
pub mod subtensor;
pub mod timelock;
pub mod yuma;

use std::{fmt, net::IpAddr};

use serde::{Deserialize, Serialize};

pub use crate::wallet::AccountId;

/// A subnet's identifier.
pub type NetUid = u16;

/// Where a neuron serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AxonInfo {
    pub ip: IpAddr,
    pub port: u16,
    /// 4 for IPv4, 6 for IPv6, as subtensor records it.
    pub ip_type: u8,
    /// Transport protocol code (0: TCP/HTTP).
    pub protocol: u8,
    /// The neuron software's version.
    pub version: u32,
}

impl AxonInfo {
    pub fn new(ip: IpAddr, port: u16, version: u32) -> Self {
        Self { ip, port, ip_type: if ip.is_ipv4() { 4 } else { 6 }, protocol: 0, version }
    }
}

/// One neuron of a subnet, as the metagraph shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NeuronInfo {
    pub uid: u16,
    pub hotkey: AccountId,
    pub coldkey: AccountId,
    /// Stake in rao (1 TAO = 1e9 rao).
    pub stake: u64,
    pub axon: Option<AxonInfo>,
    pub validator_permit: bool,
    pub active: bool,
    /// Block of its last weights (or commit).
    pub last_update: u64,
    pub registered_at: u64,
    /// Proportions in [0, 1] (stored on chain as u16).
    pub consensus: f64,
    pub incentive: f64,
    pub dividends: f64,
    pub validator_trust: f64,
    /// Rao emitted to it at the last epoch.
    pub emission: u64,
}

impl NeuronInfo {
    /// A registered neuron and nothing more known of it: no stake, axon or
    /// permit, active, never set weights, all consensus values zero.
    pub fn bare(uid: u16, hotkey: AccountId, coldkey: AccountId) -> Self {
        NeuronInfo {
            uid,
            hotkey,
            coldkey,
            stake: 0,
            axon: None,
            validator_permit: false,
            active: true,
            last_update: 0,
            registered_at: 0,
            consensus: 0.0,
            incentive: 0.0,
            dividends: 0.0,
            validator_trust: 0.0,
            emission: 0,
        }
    }
}

/// A subnet's neurons, indexed by uid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metagraph {
    pub netuid: NetUid,
    /// The block this was read at.
    pub block: u64,
    pub neurons: Vec<NeuronInfo>,
}

impl Metagraph {
    pub fn len(&self) -> usize {
        self.neurons.len()
    }
    pub fn is_empty(&self) -> bool {
        self.neurons.is_empty()
    }
    pub fn uid_of(&self, hotkey: &AccountId) -> Option<u16> {
        self.neurons.iter().find(|n| n.hotkey == *hotkey).map(|n| n.uid)
    }
}

/// A subnet's hyperparameters, with subtensor's names and units.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Hyperparams {
    /// Blocks between epochs.
    pub tempo: u16,
    pub min_allowed_weights: u16,
    /// Largest share one weight may take, as a u16 proportion (65535 = no limit).
    pub max_weight_limit: u16,
    /// Blocks between two weight settings of one neuron.
    pub weights_rate_limit: u64,
    /// Lowest version key accepted with weights (0: any).
    pub weights_version_key: u64,
    pub commit_reveal_enabled: bool,
    /// Epochs between a commit and its reveal.
    pub commit_reveal_period: u64,
    /// Blocks without weights after which a validator counts as inactive.
    pub activity_cutoff: u64,
    /// Consensus quantile as a u16 proportion (32767 ≈ 0.5).
    pub kappa: u16,
    /// Bonds moving average in millionths (900000: each epoch adds 10%).
    pub bonds_moving_average: u64,
    /// u16 proportion: how much bonds follow clipped rather than raw weights.
    pub bonds_penalty: u16,
    /// Blocks after registration during which a neuron cannot be replaced.
    pub immunity_period: u64,
    pub max_allowed_uids: u16,
    pub max_allowed_validators: u16,
    /// Yuma 3 bonds (absolute, fixed-proportion) instead of classic Yuma.
    pub yuma3: bool,
    /// Rao of stake below which stake counts for nothing in consensus.
    pub min_stake: u64,
}

impl Default for Hyperparams {
    /// subtensor's defaults for a new subnet, except the tempo (360 on finney).
    fn default() -> Self {
        Self {
            tempo: 360,
            min_allowed_weights: 1,
            max_weight_limit: u16::MAX,
            weights_rate_limit: 100,
            weights_version_key: 0,
            commit_reveal_enabled: false,
            commit_reveal_period: 1,
            activity_cutoff: 5000,
            kappa: 32_767,
            bonds_moving_average: 900_000,
            bonds_penalty: u16::MAX,
            immunity_period: 4096,
            max_allowed_uids: 256,
            max_allowed_validators: 64,
            yuma3: false,
            min_stake: 0,
        }
    }
}

/// Where a subnet stands in its epoch cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochStatus {
    pub block: u64,
    /// Epochs run so far (subtensor's per-subnet epoch counter).
    pub epoch_index: u64,
    pub last_epoch_block: u64,
    pub next_epoch_block: u64,
}

/// What a timelocked weights commit (commit-reveal v4) needs from the chain it goes to.
#[derive(Clone, Debug, PartialEq)]
pub struct TimelockContext {
    /// The drand beacon whose pulses the chain decrypts with: quicknet on finney, the
    /// embedded chain's own.
    pub beacon: timelock::Beacon,
    /// The subnet's epoch state at the chain head.
    pub schedule: timelock::EpochSchedule,
    /// `RevealPeriodEpochs`.
    pub reveal_period_epochs: u64,
    /// Seconds per block, on the clock `now_secs` is read from.
    pub block_time_secs: f64,
    /// The time now on the beacon's clock: Unix time for a real chain; the embedded chain's
    /// beacon counts blocks (one round per block), so there it is the block number.
    pub now_secs: f64,
    /// `CommitRevealWeightsVersion`: the version a commit must name.
    pub commit_reveal_version: u16,
}

impl TimelockContext {
    /// The drand round a commit sent now is encrypted to (the SDK's computation).
    pub fn reveal_round(&self) -> Result<u64, String> {
        self.beacon.reveal_round(&self.schedule, self.reveal_period_epochs, self.block_time_secs, self.now_secs)
    }
}

/// A hash commit (commit-reveal v2) as the chain stores it (`WeightCommits`), with the epoch it
/// must be revealed in by the chain's own rule for that runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCommit {
    pub hash: [u8; 32],
    pub commit_block: u64,
    /// The epoch (the subnet's epoch index) in which the chain accepts its reveal: the epoch it
    /// was included in plus the reveal period; before it, `RevealTooEarly`; after, expired.
    pub reveal_epoch: u64,
}

/// A refusal by the chain's runtime, named as subtensor names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DispatchError {
    SubnetNotExists,
    WeightVecNotEqualSize,
    UidsLengthExceedUidsInSubNet,
    HotKeyNotRegisteredInSubNet,
    NotEnoughStakeToSetWeights,
    IncorrectWeightVersionKey,
    SettingWeightsTooFast,
    NeuronNoValidatorPermit,
    DuplicateUids,
    UidVecContainInvalidOne,
    WeightVecLengthIsLow,
    MaxWeightExceeded,
    CommitRevealEnabled,
    CommitRevealDisabled,
    CommittingWeightsTooFast,
    TooManyUnrevealedCommits,
    NoWeightsCommitFound,
    ExpiredWeightCommit,
    RevealTooEarly,
    InvalidRevealCommitHashNotMatch,
    HotKeyAlreadyRegisteredInSubNet,
    NoNeuronIdAvailable,
    InvalidIpType,
    InvalidPort,
    ServingRateLimitExceeded,
    TooManyRegistrationsThisBlock,
    TooManyRegistrationsThisInterval,
    NotEnoughBalanceToStake,
    IncorrectCommitRevealVersion,
    MechanismDoesNotExist,
    /// Pool refusal only (custom code 15): a timelocked commit's drand round is not usable.
    InvalidRevealRound,
    /// Pool refusal only (custom code 17): a reveal outside its commit's reveal epoch.
    CommitBlockNotInRevealRange,
}

impl DispatchError {
    pub fn name(self) -> &'static str {
        match self {
            Self::SubnetNotExists => "SubnetNotExists",
            Self::WeightVecNotEqualSize => "WeightVecNotEqualSize",
            Self::UidsLengthExceedUidsInSubNet => "UidsLengthExceedUidsInSubNet",
            Self::HotKeyNotRegisteredInSubNet => "HotKeyNotRegisteredInSubNet",
            Self::NotEnoughStakeToSetWeights => "NotEnoughStakeToSetWeights",
            Self::IncorrectWeightVersionKey => "IncorrectWeightVersionKey",
            Self::SettingWeightsTooFast => "SettingWeightsTooFast",
            Self::NeuronNoValidatorPermit => "NeuronNoValidatorPermit",
            Self::DuplicateUids => "DuplicateUids",
            Self::UidVecContainInvalidOne => "UidVecContainInvalidOne",
            Self::WeightVecLengthIsLow => "WeightVecLengthIsLow",
            Self::MaxWeightExceeded => "MaxWeightExceeded",
            Self::CommitRevealEnabled => "CommitRevealEnabled",
            Self::CommitRevealDisabled => "CommitRevealDisabled",
            Self::CommittingWeightsTooFast => "CommittingWeightsTooFast",
            Self::TooManyUnrevealedCommits => "TooManyUnrevealedCommits",
            Self::NoWeightsCommitFound => "NoWeightsCommitFound",
            Self::ExpiredWeightCommit => "ExpiredWeightCommit",
            Self::RevealTooEarly => "RevealTooEarly",
            Self::InvalidRevealCommitHashNotMatch => "InvalidRevealCommitHashNotMatch",
            Self::HotKeyAlreadyRegisteredInSubNet => "HotKeyAlreadyRegisteredInSubNet",
            Self::NoNeuronIdAvailable => "NoNeuronIdAvailable",
            Self::InvalidIpType => "InvalidIpType",
            Self::InvalidPort => "InvalidPort",
            Self::ServingRateLimitExceeded => "ServingRateLimitExceeded",
            Self::TooManyRegistrationsThisBlock => "TooManyRegistrationsThisBlock",
            Self::TooManyRegistrationsThisInterval => "TooManyRegistrationsThisInterval",
            Self::NotEnoughBalanceToStake => "NotEnoughBalanceToStake",
            Self::IncorrectCommitRevealVersion => "IncorrectCommitRevealVersion",
            Self::MechanismDoesNotExist => "MechanismDoesNotExist",
            Self::InvalidRevealRound => "InvalidRevealRound",
            Self::CommitBlockNotInRevealRange => "CommitBlockNotInRevealRange",
        }
    }

    /// What it means, in a few words.
    pub fn docs(self) -> &'static str {
        match self {
            Self::SubnetNotExists => "the subnet does not exist",
            Self::WeightVecNotEqualSize => "uids and weights have different lengths",
            Self::UidsLengthExceedUidsInSubNet => "more uids than the subnet has neurons",
            Self::HotKeyNotRegisteredInSubNet => "the hotkey is not registered on the subnet",
            Self::NotEnoughStakeToSetWeights => "the hotkey's stake is below the subnet's minimum for setting weights",
            Self::IncorrectWeightVersionKey => "the version key is below the subnet's weights_version_key",
            Self::SettingWeightsTooFast => "weights were set less than weights_rate_limit blocks ago",
            Self::NeuronNoValidatorPermit => "only neurons with a validator permit may set weights on others",
            Self::DuplicateUids => "a uid appears twice",
            Self::UidVecContainInvalidOne => "a uid is not in the subnet",
            Self::WeightVecLengthIsLow => "fewer weights than min(subnet size, min_allowed_weights)",
            Self::MaxWeightExceeded => "one weight exceeds the subnet's max_weight_limit share",
            Self::CommitRevealEnabled => "the subnet uses commit-reveal: commit the weights' hash, reveal later",
            Self::CommitRevealDisabled => "the subnet does not use commit-reveal: set weights directly",
            Self::CommittingWeightsTooFast => "committed less than weights_rate_limit blocks ago",
            Self::TooManyUnrevealedCommits => "ten commits are waiting to be revealed",
            Self::NoWeightsCommitFound => "no commit waits to be revealed",
            Self::ExpiredWeightCommit => "the commit's reveal epoch has passed",
            Self::RevealTooEarly => "the commit's reveal epoch has not come yet",
            Self::InvalidRevealCommitHashNotMatch => "the revealed weights do not match any commit",
            Self::HotKeyAlreadyRegisteredInSubNet => "the hotkey is already registered on the subnet",
            Self::NoNeuronIdAvailable => "the subnet is full and every neuron is still immune",
            Self::InvalidIpType => "the IP type must be 4 or 6",
            Self::InvalidPort => "the port must not be 0",
            Self::ServingRateLimitExceeded => "the axon was served less than serving_rate_limit blocks ago",
            Self::TooManyRegistrationsThisBlock => "the subnet's registrations for this block are used up",
            Self::TooManyRegistrationsThisInterval => "the subnet's registrations for this interval are used up",
            Self::NotEnoughBalanceToStake => "the coldkey's balance does not cover the registration burn",
            Self::IncorrectCommitRevealVersion => {
                "the commit-reveal version differs from the chain's CommitRevealWeightsVersion"
            }
            Self::MechanismDoesNotExist => "the subnet has no mechanism with this id (validator.mechanism)",
            Self::InvalidRevealRound => "the drand round the weights are encrypted to is not one the chain accepts",
            Self::CommitBlockNotInRevealRange => {
                "the reveal is outside its commit's reveal epoch (too early or expired)"
            }
        }
    }

    /// The error with this subtensor name, if it is one this host acts on.
    pub fn from_name(name: &str) -> Option<Self> {
        ALL_DISPATCH_ERRORS.iter().copied().find(|e| e.name() == name)
    }
}

const ALL_DISPATCH_ERRORS: &[DispatchError] = &[
    DispatchError::SubnetNotExists,
    DispatchError::WeightVecNotEqualSize,
    DispatchError::UidsLengthExceedUidsInSubNet,
    DispatchError::HotKeyNotRegisteredInSubNet,
    DispatchError::NotEnoughStakeToSetWeights,
    DispatchError::IncorrectWeightVersionKey,
    DispatchError::SettingWeightsTooFast,
    DispatchError::NeuronNoValidatorPermit,
    DispatchError::DuplicateUids,
    DispatchError::UidVecContainInvalidOne,
    DispatchError::WeightVecLengthIsLow,
    DispatchError::MaxWeightExceeded,
    DispatchError::CommitRevealEnabled,
    DispatchError::CommitRevealDisabled,
    DispatchError::CommittingWeightsTooFast,
    DispatchError::TooManyUnrevealedCommits,
    DispatchError::NoWeightsCommitFound,
    DispatchError::ExpiredWeightCommit,
    DispatchError::RevealTooEarly,
    DispatchError::InvalidRevealCommitHashNotMatch,
    DispatchError::HotKeyAlreadyRegisteredInSubNet,
    DispatchError::NoNeuronIdAvailable,
    DispatchError::InvalidIpType,
    DispatchError::InvalidPort,
    DispatchError::ServingRateLimitExceeded,
    DispatchError::TooManyRegistrationsThisBlock,
    DispatchError::TooManyRegistrationsThisInterval,
    DispatchError::NotEnoughBalanceToStake,
    DispatchError::IncorrectCommitRevealVersion,
    DispatchError::MechanismDoesNotExist,
    DispatchError::InvalidRevealRound,
    DispatchError::CommitBlockNotInRevealRange,
];

/// subtensor's `GLOBAL_MAX_SUBNET_COUNT`: a mechanism's storage index is `mecid * this + netuid`.
pub const GLOBAL_MAX_SUBNET_COUNT: u16 = 4096;

/// The index subtensor keys a mechanism's weights, commits and commit hashes by.
pub fn mechanism_storage_index(netuid: NetUid, mecid: u8) -> u16 {
    u16::from(mecid).saturating_mul(GLOBAL_MAX_SUBNET_COUNT).saturating_add(netuid)
}

/// Every error this host names (tests check each against subtensor's lists).
pub fn all_dispatch_errors() -> &'static [DispatchError] {
    ALL_DISPATCH_ERRORS
}

impl fmt::Display for DispatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.docs())
    }
}

/// Why a chain call failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ChainError {
    /// The runtime refused the call with an error this host knows.
    #[error("the chain refused {call}: {error}")]
    Dispatch { call: &'static str, error: DispatchError },
    /// The runtime refused the call with an error this host does not act on.
    #[error("the chain refused {call}: {pallet}::{name} ({docs})")]
    OtherDispatch { call: &'static str, pallet: String, name: String, docs: String },
    /// The node could not be reached or dropped the connection.
    #[error("cannot reach the chain at {endpoint}: {reason}")]
    Connection { endpoint: String, reason: String },
    /// Anything else (decoding, unexpected answers).
    #[error("chain: {0}")]
    Other(String),
}

impl ChainError {
    pub fn dispatch(call: &'static str, error: DispatchError) -> Self {
        Self::Dispatch { call, error }
    }
    /// The known dispatch error, if this is one.
    pub fn dispatch_error(&self) -> Option<DispatchError> {
        match self {
            Self::Dispatch { error, .. } => Some(*error),
            _ => None,
        }
    }
}

/// New block numbers, as the chain produces (or finalises) them.
pub struct BlockStream {
    rx: tokio::sync::mpsc::Receiver<Result<u64, ChainError>>,
}

impl BlockStream {
    pub fn new(rx: tokio::sync::mpsc::Receiver<Result<u64, ChainError>>) -> Self {
        Self { rx }
    }
    /// The next block, or `None` once the chain has stopped.
    pub async fn next(&mut self) -> Option<Result<u64, ChainError>> {
        self.rx.recv().await
    }
}

/// The chain as one neuron sees it: reads, and extrinsics signed by its hotkey.
#[async_trait::async_trait]
pub trait Chain: Send + Sync {
    /// What this is connected to, for logs ("local", "finney", a URL).
    fn describe(&self) -> String;
    /// The hotkey this handle signs with.
    fn hotkey(&self) -> AccountId;
    /// The subnet mechanism (weight vector) this handle reads and sets weights for: the
    /// metagraph, `set_weights`, commits and reveals are that mechanism's (0: the main one).
    fn mechanism(&self) -> u8 {
        0
    }

    async fn block(&self) -> Result<u64, ChainError>;
    async fn subscribe_blocks(&self) -> Result<BlockStream, ChainError>;
    async fn metagraph(&self, netuid: NetUid) -> Result<Metagraph, ChainError>;
    async fn hyperparams(&self, netuid: NetUid) -> Result<Hyperparams, ChainError>;
    async fn epoch_status(&self, netuid: NetUid) -> Result<EpochStatus, ChainError>;
    /// The weights each uid has set, as (target uid, u16 value).
    async fn weights(&self, netuid: NetUid) -> Result<Vec<(u16, Vec<(u16, u16)>)>, ChainError>;

    /// Registers this hotkey (by burning), returning its uid.
    async fn register(&self, netuid: NetUid) -> Result<u16, ChainError>;
    async fn serve_axon(&self, netuid: NetUid, axon: AxonInfo) -> Result<(), ChainError>;
    async fn set_weights(
        &self,
        netuid: NetUid,
        uids: &[u16],
        weights: &[u16],
        version_key: u64,
    ) -> Result<(), ChainError>;
    async fn commit_weights(&self, netuid: NetUid, commit_hash: [u8; 32]) -> Result<(), ChainError>;
    async fn reveal_weights(
        &self,
        netuid: NetUid,
        uids: &[u16],
        weights: &[u16],
        salt: &[u16],
        version_key: u64,
    ) -> Result<(), ChainError>;

    /// What a timelocked commit on `netuid` needs (see [`TimelockContext`]).
    async fn timelock_context(&self, netuid: NetUid) -> Result<TimelockContext, ChainError> {
        let _ = netuid;
        Err(ChainError::Other(format!("{} has no timelocked commit-reveal", self.describe())))
    }

    /// This hotkey's hash commits on `netuid` (for its [`Chain::mechanism`]) that the chain holds,
    /// oldest first: the reveal epochs a validator follows, read back rather than predicted.
    async fn weight_commits(&self, netuid: NetUid) -> Result<Vec<StoredCommit>, ChainError>;

    /// The first block in `from_block..=to_block` (up to the head) in which the chain revealed
    /// and applied this hotkey's timelocked weights on `netuid` for its mechanism (subtensor's
    /// `TimelockedWeightsRevealed` event), or `None` if it has not (yet). The chain drops a commit
    /// that fails to decrypt, decode or pass the weight checks without an event, so only this
    /// says the weights were applied.
    async fn timelocked_revealed_in(
        &self,
        netuid: NetUid,
        from_block: u64,
        to_block: u64,
    ) -> Result<Option<u64>, ChainError>;

    /// Commits weights encrypted to drand round `reveal_round` (`commit`: the serialized
    /// ciphertext of a [`timelock::WeightsTlockPayload`]) for mechanism `mecid` (the handle's
    /// [`Chain::mechanism`]); the chain
    /// decrypts and applies them itself when that round's pulse arrives.
    async fn commit_timelocked_weights(
        &self,
        netuid: NetUid,
        mecid: u8,
        commit: &[u8],
        reveal_round: u64,
        commit_reveal_version: u16,
    ) -> Result<(), ChainError> {
        let _ = (netuid, mecid, commit, reveal_round, commit_reveal_version);
        Err(ChainError::Other(format!("{} has no timelocked commit-reveal", self.describe())))
    }
}
