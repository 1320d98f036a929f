//! Who may call a neuron, once they have proved who they are.
//!
//! The server asks a [`PeerDirectory`] — the runtime's view of the subnet's
//! metagraph, read from the chain — where a hotkey stands, and checks that
//! against its [`AccessRule`]. A refusal is a 403 whose reason names the
//! requirement, never the caller's stake or anything it sent.

use crate::wallet::AccountId;

/// Where a registered hotkey stands on the subnet.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PeerStanding {
    pub uid: u16,
    pub validator_permit: bool,
    /// Total stake, in rao (1 TAO = 10^9 rao).
    pub stake_rao: u64,
}

/// The subnet as the runtime sees it. Implementations answer from memory
/// (a metagraph snapshot); the server calls this on every signed request.
pub trait PeerDirectory: Send + Sync + 'static {
    /// `None` when the hotkey is not registered on the subnet.
    fn standing(&self, hotkey: &AccountId) -> Option<PeerStanding>;
}

/// A directory with every hotkey registered, permitted and staked: for a
/// neuron that lets anyone who signs call it (with an [`AccessRule`] that
/// requires nothing, the directory is never consulted anyway).
pub struct OpenDirectory;

impl PeerDirectory for OpenDirectory {
    fn standing(&self, _: &AccountId) -> Option<PeerStanding> {
        Some(PeerStanding { uid: 0, validator_permit: true, stake_rao: u64::MAX })
    }
}

/// A fixed directory (a local subnet, tests).
#[derive(Clone, Debug, Default)]
pub struct StaticDirectory {
    pub peers: std::collections::HashMap<AccountId, PeerStanding>,
}

impl PeerDirectory for StaticDirectory {
    fn standing(&self, hotkey: &AccountId) -> Option<PeerStanding> {
        self.peers.get(hotkey).copied()
    }
}

/// What a caller must be to be served.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessRule {
    /// Registered on the subnet.
    pub require_registered: bool,
    /// Holding a validator permit (implies registered).
    pub require_validator_permit: bool,
    /// At least this much stake, in rao (implies registered when > 0).
    pub min_stake_rao: u64,
}

impl AccessRule {
    /// Serve only validators with a permit: what a miner normally wants.
    pub fn validators_only() -> AccessRule {
        AccessRule { require_registered: true, require_validator_permit: true, min_stake_rao: 0 }
    }

    fn needs_directory(&self) -> bool {
        self.require_registered || self.require_validator_permit || self.min_stake_rao > 0
    }

    /// `Ok(standing)` when the caller may be served; `Err(reason)` for a 403.
    pub fn admit(&self, hotkey: &AccountId, peers: &dyn PeerDirectory) -> Result<Option<PeerStanding>, String> {
        if !self.needs_directory() {
            return Ok(None);
        }
        let Some(standing) = peers.standing(hotkey) else {
            return Err("the caller's hotkey is not registered on this subnet".into());
        };
        if self.require_validator_permit && !standing.validator_permit {
            return Err("the caller holds no validator permit on this subnet".into());
        }
        if standing.stake_rao < self.min_stake_rao {
            return Err("the caller's stake is below the minimum this neuron serves".into());
        }
        Ok(Some(standing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_check_registration_permit_and_stake() {
        let (a, b, c) = (AccountId([1; 32]), AccountId([2; 32]), AccountId([3; 32]));
        let mut dir = StaticDirectory::default();
        dir.peers.insert(a, PeerStanding { uid: 1, validator_permit: true, stake_rao: 5_000 });
        dir.peers.insert(b, PeerStanding { uid: 2, validator_permit: false, stake_rao: 50_000 });
        assert_eq!(AccessRule::default().admit(&c, &dir), Ok(None));
        let registered = AccessRule { require_registered: true, ..Default::default() };
        assert!(registered.admit(&b, &dir).is_ok());
        assert!(registered.admit(&c, &dir).unwrap_err().contains("not registered"));
        assert!(AccessRule::validators_only().admit(&b, &dir).unwrap_err().contains("validator permit"));
        assert_eq!(AccessRule::validators_only().admit(&a, &dir).unwrap().unwrap().uid, 1);
        let staked = AccessRule { min_stake_rao: 10_000, ..Default::default() };
        let e = staked.admit(&a, &dir).unwrap_err();
        assert!(e.contains("below the minimum") && !e.contains("5000"), "{e}");
        assert!(staked.admit(&b, &dir).is_ok());
    }
}
