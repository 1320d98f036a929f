//! Signing with a hotkey. The wallet module turns a Bittensor keyfile into
//! something that implements [`HotkeySigner`]; [`Sr25519Keypair`] is the
//! implementation for an sr25519 key held in memory.

use std::sync::Arc;

use crate::{
    chain::AccountId,
    wallet::{Keypair, Scheme},
};

/// Whatever signs extrinsics for a neuron: its hotkey.
pub trait HotkeySigner: Send + Sync {
    /// The account the signatures verify against (the hotkey's public key).
    fn account(&self) -> AccountId;
    /// An sr25519 signature of `payload` (already hashed by the caller if longer than 256 bytes).
    fn sign(&self, payload: &[u8]) -> [u8; 64];
}

/// A wallet key pair that can sign extrinsics: sr25519 (the only scheme this
/// host encodes into extrinsics' `MultiSignature`).
pub struct Sr25519Keypair(Arc<Keypair>);

impl Sr25519Keypair {
    /// A wallet key, refusing ed25519 ones with the fix.
    pub fn from_keypair(keypair: Keypair) -> Result<Self, String> {
        Self::from_shared(Arc::new(keypair))
    }

    /// A wallet key the neuron also signs its network requests with.
    pub fn from_shared(keypair: Arc<Keypair>) -> Result<Self, String> {
        match keypair.scheme() {
            Scheme::Sr25519 => Ok(Self(keypair)),
            Scheme::Ed25519 => Err(format!(
                "hotkey {} is ed25519; subtensor extrinsics are signed with sr25519 here: create an sr25519 hotkey (`neuron-host wallet new`)",
                keypair.ss58()
            )),
        }
    }

    /// From a 32-byte mini secret (a seed), expanded as Substrate does (ed25519 mode).
    pub fn from_mini_secret(seed: &[u8; 32]) -> Result<Self, String> {
        Keypair::from_seed(seed, Scheme::Sr25519)
            .map(|k| Self(Arc::new(k)))
            .map_err(|e| format!("not an sr25519 seed: {e}"))
    }

    /// From a 64-byte expanded secret key as Bittensor keyfiles store it
    /// (py-sr25519-bindings' form: the 32-byte scalar, then the 32-byte nonce).
    pub fn from_expanded_secret(secret: &[u8; 64]) -> Result<Self, String> {
        Keypair::from_private_key(secret, Scheme::Sr25519)
            .map(|k| Self(Arc::new(k)))
            .map_err(|e| format!("not an sr25519 secret key: {e}"))
    }

    pub fn public(&self) -> [u8; 32] {
        self.0.account().0
    }
}

impl HotkeySigner for Sr25519Keypair {
    fn account(&self) -> AccountId {
        self.0.account()
    }

    fn sign(&self, payload: &[u8]) -> [u8; 64] {
        self.0.sign(payload)
    }
}

/// Whether `signature` is `account`'s sr25519 signature of `payload`.
pub fn verify(account: &AccountId, payload: &[u8], signature: &[u8; 64]) -> bool {
    account.verify(Scheme::Sr25519, payload, signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_secret_forms_give_the_same_key_and_signatures_verify() {
        let seed = [7u8; 32];
        let a = Sr25519Keypair::from_mini_secret(&seed).unwrap();
        let expanded: [u8; 64] =
            Keypair::from_seed(&seed, Scheme::Sr25519).unwrap().private_key().as_slice().try_into().unwrap();
        let b = Sr25519Keypair::from_expanded_secret(&expanded).unwrap();
        assert_eq!(a.account(), b.account());
        let sig = b.sign(b"payload");
        assert!(verify(&a.account(), b"payload", &sig));
        assert!(!verify(&a.account(), b"payloaD", &sig));
        let ed = Keypair::from_seed(&seed, Scheme::Ed25519).unwrap();
        assert!(Sr25519Keypair::from_keypair(ed).err().unwrap().contains("is ed25519"));
    }
}
