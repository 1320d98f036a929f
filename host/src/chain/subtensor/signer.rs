//! Signing with a hotkey. The wallet module turns a Bittensor keyfile into
//! something that implements [`HotkeySigner`]; [`Sr25519Keypair`] is the
//! implementation for an sr25519 key held in memory.

use schnorrkel::{ExpansionMode, Keypair, MiniSecretKey, PublicKey, SecretKey, Signature};

use crate::chain::AccountId;

/// Substrate signs every extrinsic payload in this schnorrkel context.
const SIGNING_CONTEXT: &[u8] = b"substrate";

/// Whatever signs extrinsics for a neuron: its hotkey.
pub trait HotkeySigner: Send + Sync {
    /// The account the signatures verify against (the hotkey's public key).
    fn account(&self) -> AccountId;
    /// An sr25519 signature of `payload` (already hashed by the caller if longer than 256 bytes).
    fn sign(&self, payload: &[u8]) -> [u8; 64];
}

/// An sr25519 key pair in memory.
pub struct Sr25519Keypair(Keypair);

impl Sr25519Keypair {
    /// From a 32-byte mini secret (a seed), expanded as Substrate does (ed25519 mode).
    pub fn from_mini_secret(seed: &[u8; 32]) -> Result<Self, String> {
        let mini = MiniSecretKey::from_bytes(seed).map_err(|e| format!("not an sr25519 seed: {e}"))?;
        Ok(Self(mini.expand_to_keypair(ExpansionMode::Ed25519)))
    }

    /// From a 64-byte expanded secret key as Bittensor keyfiles store it
    /// (py-sr25519-bindings' form: the 32-byte scalar, then the 32-byte nonce).
    pub fn from_expanded_secret(secret: &[u8; 64]) -> Result<Self, String> {
        let secret = SecretKey::from_bytes(secret).map_err(|e| format!("not an sr25519 secret key: {e}"))?;
        Ok(Self(secret.to_keypair()))
    }

    pub fn public(&self) -> [u8; 32] {
        self.0.public.to_bytes()
    }
}

impl HotkeySigner for Sr25519Keypair {
    fn account(&self) -> AccountId {
        AccountId(self.public())
    }

    fn sign(&self, payload: &[u8]) -> [u8; 64] {
        let context = schnorrkel::signing_context(SIGNING_CONTEXT);
        self.0.sign(context.bytes(payload)).to_bytes()
    }
}

/// Whether `signature` is `account`'s sr25519 signature of `payload`.
pub fn verify(account: &AccountId, payload: &[u8], signature: &[u8; 64]) -> bool {
    let (Ok(public), Ok(signature)) = (PublicKey::from_bytes(&account.0), Signature::from_bytes(signature)) else {
        return false;
    };
    public.verify(schnorrkel::signing_context(SIGNING_CONTEXT).bytes(payload), &signature).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_secret_forms_give_the_same_key_and_signatures_verify() {
        let seed = [7u8; 32];
        let a = Sr25519Keypair::from_mini_secret(&seed).unwrap();
        let expanded: [u8; 64] = MiniSecretKey::from_bytes(&seed).unwrap().expand(ExpansionMode::Ed25519).to_bytes();
        let b = Sr25519Keypair::from_expanded_secret(&expanded).unwrap();
        assert_eq!(a.account(), b.account());
        let sig = b.sign(b"payload");
        assert!(verify(&a.account(), b"payload", &sig));
        assert!(!verify(&a.account(), b"payloaD", &sig));
    }
}
