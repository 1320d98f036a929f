//! Keys as the Bittensor SDK derives them: sr25519 (the default) and ed25519
//! keypairs from a BIP39 phrase, a 32-byte seed or a private key; SS58
//! addresses (format 42); signatures in the "substrate" signing context.
//!
//! Phrase to key, as substrate-bip39 does it: the phrase's BIP39 *entropy*
//! (not the BIP39 seed) goes through PBKDF2-HMAC-SHA512 with salt
//! `"mnemonic" + password` for 2048 rounds; the first 32 bytes are the seed.
//! For sr25519 that seed is a mini secret key expanded in Ed25519 mode; for
//! ed25519 it is the secret key itself.

use std::fmt;

use blake2::{Blake2b512, Digest};
use ed25519_dalek::{Signer as _, Verifier as _};
use zeroize::Zeroizing;

/// The SS58 address format of Bittensor (the generic Substrate one).
pub const SS58_FORMAT: u8 = 42;

/// sr25519 signatures are made in this signing context, as sp-core makes them.
const SIGNING_CONTEXT: &[u8] = b"substrate";

/// A signature scheme, with the codes the SDK writes as `cryptoType`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    Ed25519,
    Sr25519,
}

impl Scheme {
    /// The keyfile `cryptoType` code.
    pub fn code(self) -> u8 {
        match self {
            Scheme::Ed25519 => 0,
            Scheme::Sr25519 => 1,
        }
    }
    pub fn from_code(code: u8) -> Option<Scheme> {
        match code {
            0 => Some(Scheme::Ed25519),
            1 => Some(Scheme::Sr25519),
            _ => None,
        }
    }
    /// The name btauth puts in payloads and `X-Bittensor-Crypto`.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Ed25519 => "ed25519",
            Scheme::Sr25519 => "sr25519",
        }
    }
    /// Parses a name or a code (`sr25519`, `ED25519`, `1`), as the SDK accepts them.
    pub fn parse(text: &str) -> Option<Scheme> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("sr25519") {
            Some(Scheme::Sr25519)
        } else if t.eq_ignore_ascii_case("ed25519") {
            Some(Scheme::Ed25519)
        } else if !t.is_empty() && t.len() <= 3 && t.bytes().all(|b| b.is_ascii_digit()) {
            t.parse().ok().and_then(Scheme::from_code)
        } else {
            None
        }
    }
    pub fn other(self) -> Scheme {
        match self {
            Scheme::Ed25519 => Scheme::Sr25519,
            Scheme::Sr25519 => Scheme::Ed25519,
        }
    }
}

/// Why a key, address or signature could not be used. Messages never contain
/// secret material.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(pub String);

fn key_error(message: impl Into<String>) -> KeyError {
    KeyError(message.into())
}

/// A 32-byte public key: a hotkey's or coldkey's account id. The one account
/// type of the host (chain, network and wallets all use it); it serialises as
/// its SS58 address.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct AccountId(pub [u8; 32]);

impl AccountId {
    /// A deterministic id derived from a name: for local chains and tests,
    /// never a key anyone holds.
    pub fn from_name(name: &str) -> AccountId {
        let digest = Blake2b512::digest(name.as_bytes());
        let mut id = [0u8; 32];
        id.copy_from_slice(&digest[..32]);
        AccountId(id)
    }

    /// The SS58 address in format 42: base58 of prefix, key and the first two
    /// bytes of blake2b-512 over `"SS58PRE" || prefix || key`.
    pub fn to_ss58(&self) -> String {
        let mut body = Vec::with_capacity(35);
        body.push(SS58_FORMAT);
        body.extend_from_slice(&self.0);
        let checksum = ss58_checksum(&body);
        body.extend_from_slice(&checksum[..2]);
        bs58::encode(body).into_string()
    }

    /// Parses an SS58 address of format 42.
    pub fn from_ss58(address: &str) -> Result<AccountId, KeyError> {
        let bad = || key_error("not an SS58 address of format 42");
        // 35 bytes encode to at most 48 base58 characters; refuse long input before decoding it.
        if address.is_empty() || address.len() > 64 {
            return Err(bad());
        }
        let bytes = bs58::decode(address).into_vec().map_err(|_| bad())?;
        if bytes.len() != 35 || bytes[0] != SS58_FORMAT {
            return Err(bad());
        }
        let checksum = ss58_checksum(&bytes[..33]);
        if bytes[33..] != checksum[..2] {
            return Err(key_error("SS58 address checksum does not match"));
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(&bytes[1..33]);
        Ok(AccountId(key))
    }

    /// `0x`-prefixed lowercase hex, as keyfiles write `publicKey` and `accountId`.
    pub fn to_hex(&self) -> String {
        format!("0x{}", hex::encode(self.0))
    }

    /// Verifies `signature` over `message` under `scheme`.
    pub fn verify(&self, scheme: Scheme, message: &[u8], signature: &[u8]) -> bool {
        match scheme {
            Scheme::Sr25519 => {
                let (Ok(public), Ok(signature)) =
                    (schnorrkel::PublicKey::from_bytes(&self.0), schnorrkel::Signature::from_bytes(signature))
                else {
                    return false;
                };
                public.verify_simple(SIGNING_CONTEXT, message, &signature).is_ok()
            }
            Scheme::Ed25519 => {
                let Ok(public) = ed25519_dalek::VerifyingKey::from_bytes(&self.0) else { return false };
                let Ok(signature) = ed25519_dalek::Signature::from_slice(signature) else { return false };
                public.verify(message, &signature).is_ok()
            }
        }
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_ss58())
    }
}

impl std::str::FromStr for AccountId {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<AccountId, KeyError> {
        AccountId::from_ss58(s)
    }
}

impl serde::Serialize for AccountId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_ss58())
    }
}

impl<'de> serde::Deserialize<'de> for AccountId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<AccountId, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        AccountId::from_ss58(&text).map_err(serde::de::Error::custom)
    }
}

impl fmt::Debug for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountId({})", self.to_ss58())
    }
}

fn ss58_checksum(body: &[u8]) -> [u8; 64] {
    let mut h = Blake2b512::new();
    h.update(b"SS58PRE");
    h.update(body);
    h.finalize().into()
}

enum Secret {
    Sr25519(schnorrkel::Keypair),
    Ed25519(ed25519_dalek::SigningKey),
}

/// A keypair that can sign, with the phrase and seed it came from when known
/// (keyfiles carry them as `secretPhrase` and `secretSeed`).
pub struct Keypair {
    secret: Secret,
    account: AccountId,
    phrase: Option<Zeroizing<String>>,
    seed: Option<Zeroizing<[u8; 32]>>,
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair({} {})", self.scheme().name(), self.account)
    }
}

impl Keypair {
    /// A new random keypair and the 12-word phrase it derives from.
    pub fn generate(scheme: Scheme, words: usize) -> Result<Keypair, KeyError> {
        let phrase = generate_phrase(words)?;
        Keypair::from_phrase(&phrase, None, scheme)
    }

    /// Derives the keypair of a BIP39 phrase (English words), with an optional
    /// derivation password, exactly as the SDK's `create_from_mnemonic` does.
    pub fn from_phrase(phrase: &str, password: Option<&str>, scheme: Scheme) -> Result<Keypair, KeyError> {
        let seed = seed_from_phrase(phrase, password.unwrap_or(""))?;
        let mut keypair = Keypair::from_seed(seed.as_ref(), scheme)?;
        // With a derivation password the phrase alone does not re-derive the key,
        // so (as the SDK does) only a password-less phrase is kept.
        if password.is_none() {
            keypair.phrase = Some(Zeroizing::new(normalize_phrase(phrase)));
        }
        Ok(keypair)
    }

    /// A keypair from a 32-byte seed (sr25519: a mini secret key, expanded in
    /// Ed25519 mode; ed25519: the secret key).
    pub fn from_seed(seed: &[u8], scheme: Scheme) -> Result<Keypair, KeyError> {
        let seed: [u8; 32] = seed.try_into().map_err(|_| key_error("a seed must be 32 bytes"))?;
        let secret = match scheme {
            Scheme::Sr25519 => {
                let mini = schnorrkel::MiniSecretKey::from_bytes(&seed).map_err(|_| key_error("invalid seed"))?;
                Secret::Sr25519(mini.expand_to_keypair(schnorrkel::ExpansionMode::Ed25519))
            }
            Scheme::Ed25519 => Secret::Ed25519(ed25519_dalek::SigningKey::from_bytes(&seed)),
        };
        let mut keypair = Keypair::from_secret(secret);
        keypair.seed = Some(Zeroizing::new(seed));
        Ok(keypair)
    }

    /// A keypair from private key bytes as keyfiles write `privateKey`:
    /// sr25519 takes the 64-byte secret key (scalar and nonce) or a 32-byte
    /// seed; ed25519 takes the 32-byte seed (or the first 32 of 64 bytes).
    pub fn from_private_key(bytes: &[u8], scheme: Scheme) -> Result<Keypair, KeyError> {
        match (scheme, bytes.len()) {
            (Scheme::Sr25519, 64) => {
                let secret =
                    schnorrkel::SecretKey::from_bytes(bytes).map_err(|_| key_error("invalid sr25519 private key"))?;
                Ok(Keypair::from_secret(Secret::Sr25519(secret.to_keypair())))
            }
            (Scheme::Sr25519, 32) | (Scheme::Ed25519, 32) => {
                let mut keypair = Keypair::from_seed(bytes, scheme)?;
                keypair.seed = None;
                Ok(keypair)
            }
            (Scheme::Ed25519, 64) => Keypair::from_private_key(&bytes[..32], scheme),
            _ => Err(key_error(format!("a {} private key must be 32 or 64 bytes", scheme.name()))),
        }
    }

    fn from_secret(secret: Secret) -> Keypair {
        let account = match &secret {
            Secret::Sr25519(k) => AccountId(k.public.to_bytes()),
            Secret::Ed25519(k) => AccountId(k.verifying_key().to_bytes()),
        };
        Keypair { secret, account, phrase: None, seed: None }
    }

    pub fn scheme(&self) -> Scheme {
        match self.secret {
            Secret::Sr25519(_) => Scheme::Sr25519,
            Secret::Ed25519(_) => Scheme::Ed25519,
        }
    }

    pub fn account(&self) -> AccountId {
        self.account
    }

    pub fn ss58(&self) -> String {
        self.account.to_ss58()
    }

    /// The phrase this keypair was derived from (without a password), when known.
    pub fn phrase(&self) -> Option<&str> {
        self.phrase.as_deref().map(String::as_str)
    }

    /// The 32-byte seed this keypair was derived from, when known.
    pub fn seed(&self) -> Option<&[u8; 32]> {
        self.seed.as_deref()
    }

    /// The private key as keyfiles write it (sr25519: 64 bytes; ed25519: the 32-byte seed).
    pub fn private_key(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(match &self.secret {
            Secret::Sr25519(k) => k.secret.to_bytes().to_vec(),
            Secret::Ed25519(k) => k.to_bytes().to_vec(),
        })
    }

    /// A 64-byte signature over `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        match &self.secret {
            Secret::Sr25519(k) => k.sign_simple(SIGNING_CONTEXT, message).to_bytes(),
            Secret::Ed25519(k) => k.sign(message).to_bytes(),
        }
    }
}

/// Collapses runs of whitespace, as BIP39 phrases are compared.
fn normalize_phrase(phrase: &str) -> String {
    phrase.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The substrate-bip39 seed of a phrase: PBKDF2-HMAC-SHA512 over the phrase's
/// entropy, salt `"mnemonic" + password`, 2048 rounds, first 32 bytes.
pub fn seed_from_phrase(phrase: &str, password: &str) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    let mnemonic = bip39::Mnemonic::parse_in_normalized(bip39::Language::English, &normalize_phrase(phrase))
        .map_err(|e| key_error(format!("invalid mnemonic phrase: {}", describe_bip39_error(&e))))?;
    let entropy = Zeroizing::new(mnemonic.to_entropy());
    let salt = Zeroizing::new(format!("mnemonic{password}"));
    let mut full = Zeroizing::new([0u8; 64]);
    pbkdf2::pbkdf2_hmac::<sha2::Sha512>(&entropy, salt.as_bytes(), 2048, full.as_mut());
    let mut seed = Zeroizing::new([0u8; 32]);
    seed.copy_from_slice(&full[..32]);
    Ok(seed)
}

/// Error text that never repeats the phrase's words.
fn describe_bip39_error(e: &bip39::Error) -> &'static str {
    match e {
        bip39::Error::BadWordCount(_) => "it must have 12, 15, 18, 21 or 24 words",
        bip39::Error::UnknownWord(_) => "a word is not in the English BIP39 list",
        bip39::Error::InvalidChecksum => "its checksum does not match",
        _ => "not a BIP39 phrase",
    }
}

/// A new random English phrase of `words` words (12, 15, 18, 21 or 24).
pub fn generate_phrase(words: usize) -> Result<String, KeyError> {
    if !matches!(words, 12 | 15 | 18 | 21 | 24) {
        return Err(key_error(format!("a phrase has 12, 15, 18, 21 or 24 words, not {words}")));
    }
    let mut entropy = Zeroizing::new(vec![0u8; words / 3 * 4]);
    getrandom::getrandom(&mut entropy).map_err(|e| key_error(format!("no randomness from the system: {e}")))?;
    let mnemonic = bip39::Mnemonic::from_entropy_in(bip39::Language::English, &entropy)
        .map_err(|_| key_error("cannot build a phrase"))?;
    Ok(mnemonic.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ss58_of_a_well_known_key() {
        // Alice's sr25519 public key and its generic-substrate address, a widely published vector.
        let alice = AccountId(
            hex::decode("d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d")
                .unwrap()
                .try_into()
                .unwrap(),
        );
        assert_eq!(alice.to_ss58(), "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY");
        assert_eq!(AccountId::from_ss58(&alice.to_ss58()).unwrap(), alice);
        let json = serde_json::to_string(&alice).unwrap();
        assert_eq!(serde_json::from_str::<AccountId>(&json).unwrap(), alice);
    }

    const ABANDON: &str =
        "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";

    #[test]
    fn a_known_phrase_derives_the_sdks_address() {
        // The SDK's `Keypair.create_from_mnemonic(ABANDON, 1).ss58_address`
        // (checked against bittensor 11.3.0; the interop tests check more).
        let k = Keypair::from_phrase(ABANDON, None, Scheme::Sr25519).unwrap();
        assert_eq!(k.ss58(), "5EPCUjPxiHAcNooYipQFWr9NmmXJKpNG5RhcntXwbtUySrgH");
        assert_eq!(k.phrase(), Some(ABANDON));
    }

    #[test]
    fn ss58_round_trips_and_rejects_corruption() {
        let k = Keypair::generate(Scheme::Sr25519, 12).unwrap();
        let address = k.ss58();
        assert_eq!(AccountId::from_ss58(&address).unwrap(), k.account());
        let mut chars: Vec<char> = address.chars().collect();
        chars[10] = if chars[10] == 'a' { 'b' } else { 'a' };
        let corrupted: String = chars.into_iter().collect();
        assert!(AccountId::from_ss58(&corrupted).is_err());
        assert!(AccountId::from_ss58("").is_err());
        assert!(AccountId::from_ss58("0OIl").is_err());
    }

    #[test]
    fn signatures_verify_only_for_their_message_and_key() {
        for scheme in [Scheme::Sr25519, Scheme::Ed25519] {
            let a = Keypair::generate(scheme, 12).unwrap();
            let b = Keypair::generate(scheme, 12).unwrap();
            let sig = a.sign(b"hello");
            assert!(a.account().verify(scheme, b"hello", &sig));
            assert!(!a.account().verify(scheme, b"hellO", &sig));
            assert!(!b.account().verify(scheme, b"hello", &sig));
            assert!(!a.account().verify(scheme.other(), b"hello", &sig));
            assert!(!a.account().verify(scheme, b"hello", &sig[..63]));
        }
    }

    #[test]
    fn private_keys_and_seeds_rebuild_the_same_keypair() {
        for scheme in [Scheme::Sr25519, Scheme::Ed25519] {
            let k = Keypair::generate(scheme, 24).unwrap();
            let from_seed = Keypair::from_seed(k.seed().unwrap(), scheme).unwrap();
            let from_private = Keypair::from_private_key(&k.private_key(), scheme).unwrap();
            assert_eq!(from_seed.account(), k.account());
            assert_eq!(from_private.account(), k.account());
        }
    }

    #[test]
    fn bad_phrases_are_refused_without_echoing_them() {
        let e = Keypair::from_phrase("abandon abandon zebrafish", None, Scheme::Sr25519).unwrap_err();
        assert!(!e.0.contains("zebrafish"), "{e}");
        assert!(generate_phrase(13).is_err());
    }
}
