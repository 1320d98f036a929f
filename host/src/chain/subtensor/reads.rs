//! What the subtensor runtime APIs answer, decoded by field name (fields this
//! host does not use are skipped, so new fields in a runtime upgrade do not
//! break it), and turned into the `Chain` trait's types.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use scale_decode::DecodeAsType;

use crate::chain::{AccountId, AxonInfo, EpochStatus, Hyperparams, Metagraph, NetUid, NeuronInfo, StoredCommit};

#[derive(Debug, DecodeAsType)]
#[decode_as_type(crate_path = "scale_decode")]
pub struct RawAxon {
    pub version: u32,
    pub ip: u128,
    pub port: u16,
    pub ip_type: u8,
    pub protocol: u8,
}

/// `SubnetInfoRuntimeApi::get_metagraph`: the whole subnet in one call.
#[derive(Debug, DecodeAsType)]
#[decode_as_type(crate_path = "scale_decode")]
pub struct RawMetagraph {
    pub block: u64,
    pub tempo: u16,
    pub hotkeys: Vec<[u8; 32]>,
    pub coldkeys: Vec<[u8; 32]>,
    pub axons: Vec<RawAxon>,
    pub active: Vec<bool>,
    pub validator_permit: Vec<bool>,
    pub last_update: Vec<u64>,
    pub emission: Vec<u64>,
    pub dividends: Vec<u16>,
    pub incentives: Vec<u16>,
    pub consensus: Vec<u16>,
    pub block_at_registration: Vec<u64>,
    pub total_stake: Vec<u64>,
}

/// `NeuronInfoRuntimeApi::get_neurons_lite`: one neuron (runtimes without `get_metagraph`).
#[derive(Debug, DecodeAsType)]
#[decode_as_type(crate_path = "scale_decode")]
pub struct RawNeuronLite {
    pub hotkey: [u8; 32],
    pub coldkey: [u8; 32],
    pub uid: u16,
    pub active: bool,
    pub axon_info: RawAxon,
    pub stake: Vec<([u8; 32], u64)>,
    pub emission: u64,
    pub incentive: u16,
    pub consensus: u16,
    pub validator_trust: u16,
    pub dividends: u16,
    pub last_update: u64,
    pub validator_permit: bool,
}

/// `SubnetInfoRuntimeApi::get_subnet_hyperparams(_v2)`: the fields both versions share.
#[derive(Debug, DecodeAsType)]
#[decode_as_type(crate_path = "scale_decode")]
pub struct RawHyperparams {
    pub kappa: u16,
    pub immunity_period: u16,
    pub min_allowed_weights: u16,
    pub max_weights_limit: u16,
    pub tempo: u16,
    pub weights_version: u64,
    pub weights_rate_limit: u64,
    pub activity_cutoff: u16,
    pub bonds_moving_avg: u64,
    pub max_validators: u16,
    pub commit_reveal_period: u64,
    pub commit_reveal_weights_enabled: bool,
}

/// Storage values the hyperparameter APIs leave out.
#[derive(Debug, Default)]
pub struct ExtraParams {
    pub max_allowed_uids: u16,
    pub bonds_penalty: u16,
    pub yuma3: bool,
    pub min_stake: u64,
}

pub fn hyperparams(raw: RawHyperparams, extra: ExtraParams) -> Hyperparams {
    Hyperparams {
        tempo: raw.tempo,
        min_allowed_weights: raw.min_allowed_weights,
        max_weight_limit: raw.max_weights_limit,
        weights_rate_limit: raw.weights_rate_limit,
        weights_version_key: raw.weights_version,
        commit_reveal_enabled: raw.commit_reveal_weights_enabled,
        commit_reveal_period: raw.commit_reveal_period,
        activity_cutoff: u64::from(raw.activity_cutoff),
        kappa: raw.kappa,
        bonds_moving_average: raw.bonds_moving_avg,
        bonds_penalty: extra.bonds_penalty,
        immunity_period: u64::from(raw.immunity_period),
        max_allowed_uids: extra.max_allowed_uids,
        max_allowed_validators: raw.max_validators,
        yuma3: extra.yuma3,
        min_stake: extra.min_stake,
    }
}

/// An axon as subtensor stores it; `None` for a neuron that never served (ip 0).
pub fn axon(raw: &RawAxon) -> Option<AxonInfo> {
    if raw.ip == 0 || raw.port == 0 {
        return None;
    }
    let ip = match raw.ip_type {
        4 => IpAddr::V4(Ipv4Addr::from(u32::try_from(raw.ip).ok()?)),
        6 => IpAddr::V6(Ipv6Addr::from(raw.ip)),
        _ => return None,
    };
    Some(AxonInfo { ip, port: raw.port, ip_type: raw.ip_type, protocol: raw.protocol, version: raw.version })
}

fn proportion(x: u16) -> f64 {
    f64::from(x) / f64::from(u16::MAX)
}

fn at<T: Copy + Default>(v: &[T], i: usize) -> T {
    v.get(i).copied().unwrap_or_default()
}

/// The metagraph from `get_metagraph`, with validator trust read from storage beside it.
pub fn metagraph(netuid: NetUid, raw: RawMetagraph, validator_trust: &[u16]) -> Metagraph {
    let neurons = raw
        .hotkeys
        .iter()
        .enumerate()
        .map(|(i, hotkey)| NeuronInfo {
            uid: i as u16,
            hotkey: AccountId(*hotkey),
            coldkey: AccountId(raw.coldkeys.get(i).copied().unwrap_or_default()),
            stake: at(&raw.total_stake, i),
            axon: raw.axons.get(i).and_then(axon),
            validator_permit: at(&raw.validator_permit, i),
            active: at(&raw.active, i),
            last_update: at(&raw.last_update, i),
            registered_at: at(&raw.block_at_registration, i),
            consensus: proportion(at(&raw.consensus, i)),
            incentive: proportion(at(&raw.incentives, i)),
            dividends: proportion(at(&raw.dividends, i)),
            validator_trust: proportion(at(validator_trust, i)),
            emission: at(&raw.emission, i),
        })
        .collect();
    Metagraph { netuid, block: raw.block, neurons }
}

/// The metagraph from `get_neurons_lite`, with registration blocks read from storage beside it.
pub fn metagraph_from_neurons(
    netuid: NetUid,
    block: u64,
    raw: Vec<RawNeuronLite>,
    registered_at: &[(u16, u64)],
) -> Metagraph {
    let mut neurons: Vec<NeuronInfo> = raw
        .into_iter()
        .map(|n| NeuronInfo {
            uid: n.uid,
            hotkey: AccountId(n.hotkey),
            coldkey: AccountId(n.coldkey),
            stake: n.stake.iter().map(|(_, s)| *s).fold(0u64, u64::saturating_add),
            axon: axon(&n.axon_info),
            validator_permit: n.validator_permit,
            active: n.active,
            last_update: n.last_update,
            registered_at: registered_at.iter().find(|(u, _)| *u == n.uid).map(|(_, b)| *b).unwrap_or_default(),
            consensus: proportion(n.consensus),
            incentive: proportion(n.incentive),
            dividends: proportion(n.dividends),
            validator_trust: proportion(n.validator_trust),
            emission: n.emission,
        })
        .collect();
    neurons.sort_by_key(|n| n.uid);
    Metagraph { netuid, block, neurons }
}

/// Where a subnet stands in its epoch cycle on runtimes without the stateful scheduler:
/// subnet `netuid` runs its epoch in the blocks where
/// `(block + netuid + 1) % (tempo + 1) == 0`, and the epoch index used by
/// commit-reveal is `(block + netuid + 1) / (tempo + 1)`.
pub fn epoch_status(netuid: NetUid, tempo: u16, block: u64) -> EpochStatus {
    if tempo == 0 {
        // Such a subnet never runs an epoch.
        return EpochStatus { block, epoch_index: 0, last_epoch_block: 0, next_epoch_block: u64::MAX };
    }
    let interval = u64::from(tempo) + 1;
    let shifted = block + u64::from(netuid) + 1;
    let until_next = u64::from(tempo) - shifted % interval;
    let next_epoch_block = block + until_next;
    let last_epoch_block = if until_next == 0 { block } else { next_epoch_block.saturating_sub(interval) };
    EpochStatus { block, epoch_index: shifted / interval, last_epoch_block, next_epoch_block }
}

/// Which layout a runtime's `WeightCommits` tuples have: both are `(H256, u64, u64, u64)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitLayout {
    /// Runtimes before the stateful epoch scheduler: `(hash, commit_block, first_reveal_block,
    /// last_reveal_block)`; the reveal epoch is the commit block's epoch by the block rule plus
    /// the reveal period.
    BlockRule,
    /// Runtimes with the stateful scheduler (`SubnetEpochIndex` in the metadata):
    /// `(hash, commit_epoch, commit_block, 0)`; the reveal epoch is `commit_epoch` plus the
    /// reveal period.
    Stateful,
}

/// The stored commits of one hotkey, with their reveal epochs as that runtime judges them.
pub fn stored_commits(
    netuid: NetUid,
    tempo: u16,
    reveal_period: u64,
    layout: CommitLayout,
    raw: &[([u8; 32], u64, u64, u64)],
) -> Vec<StoredCommit> {
    raw.iter()
        .map(|&(hash, a, b, _)| match layout {
            CommitLayout::BlockRule => StoredCommit {
                hash,
                commit_block: a,
                reveal_epoch: epoch_status(netuid, tempo, a).epoch_index + reveal_period,
            },
            CommitLayout::Stateful => StoredCommit { hash, commit_block: b, reveal_epoch: a + reveal_period },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_follow_subtensors_schedule() {
        // subtensor's own table: tempo 100, netuid 0 -> first epoch at block 99; netuid 1 -> 98.
        assert_eq!(epoch_status(0, 100, 0).next_epoch_block, 99);
        assert_eq!(epoch_status(1, 100, 0).next_epoch_block, 98);
        let at_epoch = epoch_status(1, 100, 98);
        assert_eq!((at_epoch.last_epoch_block, at_epoch.next_epoch_block), (98, 98));
        let after = epoch_status(1, 100, 99);
        assert_eq!((after.last_epoch_block, after.next_epoch_block), (98, 199));
        assert_eq!(after.epoch_index, 1);
        assert_eq!(epoch_status(1, 100, 97).epoch_index, 0);
    }

    #[test]
    fn stored_commits_are_read_in_the_runtimes_own_layout() {
        // Block rule, tempo 100, netuid 1: block 150 is in epoch 1 (epochs run at 98, 199...),
        // so with a period of 1 its reveal epoch is 2, which begins at block 200, the first
        // reveal block subtensor stores: 2 * (tempo + 1) - (netuid + 1).
        let raw = [([7; 32], 150, 200, 300)];
        let old = stored_commits(1, 100, 1, CommitLayout::BlockRule, &raw);
        assert_eq!(old, vec![StoredCommit { hash: [7; 32], commit_block: 150, reveal_epoch: 2 }]);
        assert_eq!(epoch_status(1, 100, 200).epoch_index, 2, "the stored first reveal block is in that epoch");
        assert_eq!(epoch_status(1, 100, 199).epoch_index, 1);
        // Stateful: the epoch is stored as it was counted when the commit was included.
        let raw = [([8; 32], 41, 5000, 0)];
        let new = stored_commits(1, 100, 3, CommitLayout::Stateful, &raw);
        assert_eq!(new, vec![StoredCommit { hash: [8; 32], commit_block: 5000, reveal_epoch: 44 }]);
    }

    #[test]
    fn axons_decode_both_address_families_and_skip_the_unserved() {
        let v4 = RawAxon { version: 3, ip: 0x0a01_0203, port: 8091, ip_type: 4, protocol: 4 };
        assert_eq!(axon(&v4).unwrap().ip, "10.1.2.3".parse::<IpAddr>().unwrap());
        let v6 = RawAxon { version: 3, ip: 1, port: 1, ip_type: 6, protocol: 0 };
        assert_eq!(axon(&v6).unwrap().ip, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(axon(&RawAxon { version: 0, ip: 0, port: 0, ip_type: 0, protocol: 0 }), None);
    }
}
