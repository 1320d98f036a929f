//! Who may call a neuron, answered from the latest metagraph.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use crate::{
    chain::{AccountId, Metagraph},
    net::{PeerDirectory, PeerStanding},
};

/// A [`PeerDirectory`] refreshed from each metagraph the neuron reads.
#[derive(Default)]
pub struct MetagraphDirectory {
    peers: RwLock<HashMap<AccountId, PeerStanding>>,
}

impl MetagraphDirectory {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn update(&self, mg: &Metagraph) {
        let peers = mg
            .neurons
            .iter()
            .map(|n| (n.hotkey, PeerStanding { uid: n.uid, validator_permit: n.validator_permit, stake_rao: n.stake }))
            .collect();
        *self.peers.write().unwrap_or_else(|p| p.into_inner()) = peers;
    }
}

impl PeerDirectory for MetagraphDirectory {
    fn standing(&self, hotkey: &AccountId) -> Option<PeerStanding> {
        self.peers.read().unwrap_or_else(|p| p.into_inner()).get(hotkey).copied()
    }
}
