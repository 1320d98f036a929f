//! Timelock encryption to drand rounds, as subtensor's commit-reveal v4 uses it.
//!
//! A validator on a commit-reveal subnet does not send its weights in the clear:
//! it encrypts a SCALE [`WeightsTlockPayload`] to a future round of drand's
//! quicknet beacon and calls `commit_timelocked_mechanism_weights(netuid, mecid,
//! commit, reveal_round, commit_reveal_version)`. When the round's pulse reaches
//! the chain (pallet_drand), the chain decrypts the commit with the pulse's BLS
//! signature and sets the weights. Nobody, the validator included, can open the
//! commit earlier.
//!
//! The scheme is Boneh–Franklin identity-based encryption on BLS12-381 with the
//! round as identity (drand "bls-unchained-g1-rfc9380": signatures on G1, the
//! group key on G2, the identity `sha256(round as u64 big-endian)` hashed to G1
//! with DST `BLS_SIG_BLS12381G1_XMD:SHA-256_SSWU_RO_NUL_`). A round's signature
//! is the IBE secret key of that identity. The ciphertext bytes are ideal-lab5's
//! `TLECiphertext`, compressed with ark-serialize, which is what subtensor's
//! `reveal_crv3_commits_for_subnet` deserializes and the SDK (bittensor-core,
//! bittensor-drand) produces; this module builds them with crates.io `timelock`
//! 0.0.1, the release of that code whose format matches (0.3 does not).
//!
//! Layout of a ciphertext (every `Vec<u8>` is a u64 little-endian length, then
//! the bytes):
//!
//! | field | bytes |
//! |---|---|
//! | `header.u`: r·G2, compressed | 96 |
//! | `header.v`: σ ⊕ H2(e(r·P, H1(id))) | 8 + 32 |
//! | `header.w`: key ⊕ H4(σ) | 8 + 32 |
//! | `body`: AES-256-GCM output (`ciphertext` Vec: data + 16-byte tag, then `nonce` Vec: 12 bytes) | 8 + (8 + n + 16) + (8 + 12) |
//! | `cipher_suite`: `AES_GCM_` | 8 + 8 |
//!
//! 244 + n bytes for an n-byte plaintext.
//!
//! [`LocalBeacon`] is a beacon of one's own (a BLS keypair signing rounds the
//! way quicknet does) for the embedded chain, and [`reveal_round`] is the SDK's
//! choice of round for a commit, so a commit made here reveals when the SDK's would.

use ark_bls12_381::{Bls12_381, Fr, G1Affine, G1Projective, G2Affine, G2Projective};
use ark_ec::{
    hashing::{curve_maps::wb::WBMap, map_to_curve_hasher::MapToCurveBasedHasher, HashToCurve},
    pairing::Pairing,
    AffineRepr, CurveGroup, Group,
};
use ark_ff::{field_hashers::DefaultFieldHasher, PrimeField, Zero};
use ark_serialize::{CanonicalDeserialize, CanonicalSerialize};
use ark_std::rand::{rngs::StdRng, SeedableRng};
use parity_scale_codec::{Decode, Encode};
use sha2::{Digest, Sha256, Sha512};
use timelock::{
    curves::drand::TinyBLS381,
    ibe::fullident::Identity,
    stream_ciphers::AESGCMStreamCipherProvider,
    tlock::{tld, tle, Error as TlockError, TLECiphertext},
};

use super::AccountId;

/// The domain separation tag drand's unchained G1 scheme hashes round messages with.
pub const DRAND_G1_DST: &[u8] = b"BLS_SIG_BLS12381G1_XMD:SHA-256_SSWU_RO_NUL_";

/// drand quicknet's chain hash (hex): `sha256` of its chain info.
pub const QUICKNET_CHAIN_HASH: &str = "52db9ba70e0cc0f6eaf7803dd07447a1f5477735fd3f661792ba94600c84e971";
/// drand quicknet's group public key, a compressed G2 point (hex).
pub const QUICKNET_PUBLIC_KEY: &str = "83cf0f2896adee7eb8b5f01fcad3912212c437e0073e911fb90022d3e760183c8c4b450b6a0a6c3ac6a5776a2d1064510d1fec758c921cc22b0e17e63aaf4bcb5ed66304de9cf809bd274ca73bab4af5a6e9c76a4bc09e76eae8991ef5ece45a";
/// Unix time of quicknet's round 1.
pub const QUICKNET_GENESIS_TIME: u64 = 1_692_803_367;
/// Seconds between quicknet rounds.
pub const QUICKNET_PERIOD: u64 = 3;

/// Size of a compressed G2 public key.
pub const PUBLIC_KEY_LEN: usize = 96;
/// Size of a compressed G1 round signature.
pub const SIGNATURE_LEN: usize = 48;

/// The SDK's largest tempo (≈ 7 days of 12 s blocks): an epoch is forced after
/// this many blocks without one, and it bounds the reveal-block search.
pub const MAX_TEMPO: u64 = 50_400;
/// Blocks the SDK adds to the predicted reveal block, so that the round it
/// targets has reached the chain (pallet_drand) by then.
pub const SECURITY_BLOCK_OFFSET: u64 = 3;
/// The SDK assumes its commit lands in the block after the head it read.
pub const COMMIT_INCLUSION_BLOCK_OFFSET: u64 = 1;

/// A drand beacon: whose signatures open ciphertexts, and when its rounds come.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Beacon {
    /// drand's chain hash (for a [`LocalBeacon`], a hash of its key and clock).
    pub chain_hash: [u8; 32],
    /// The group public key, a compressed G2 point.
    pub public_key: [u8; PUBLIC_KEY_LEN],
    /// Unix time of round 1.
    pub genesis_time: u64,
    /// Seconds between rounds.
    pub period: u64,
}

impl Beacon {
    /// drand's quicknet, the beacon subtensor's pallet_drand follows.
    pub fn quicknet() -> Self {
        Self {
            chain_hash: hex_array(QUICKNET_CHAIN_HASH),
            public_key: hex_array(QUICKNET_PUBLIC_KEY),
            genesis_time: QUICKNET_GENESIS_TIME,
            period: QUICKNET_PERIOD,
        }
    }

    /// The latest round published at `unix_secs` (drand's current round):
    /// round 1 at genesis, one more every period; 0 before genesis.
    pub fn round_at(&self, unix_secs: u64) -> u64 {
        if unix_secs < self.genesis_time {
            return 0;
        }
        (unix_secs - self.genesis_time) / self.period.max(1) + 1
    }

    /// The Unix time at which `round` is published (round 0 and 1: genesis).
    pub fn round_time(&self, round: u64) -> u64 {
        self.genesis_time.saturating_add(round.saturating_sub(1).saturating_mul(self.period))
    }

    /// The round the SDK encrypts a weights commit to, for this beacon's clock
    /// (for quicknet, exactly the SDK's): see [`reveal_round`].
    pub fn reveal_round(
        &self,
        schedule: &EpochSchedule,
        reveal_period_epochs: u64,
        block_time_secs: f64,
        now_unix_secs: f64,
    ) -> Result<u64, String> {
        let first = first_reveal_block(schedule, reveal_period_epochs)?;
        let blocks_until_ingest = first.saturating_add(SECURITY_BLOCK_OFFSET).saturating_sub(schedule.current_block);
        let target_secs = now_unix_secs + blocks_until_ingest as f64 * block_time_secs;
        // `as` saturates: a target before genesis gives 0, then the floor of 1.
        let round = ((target_secs - self.genesis_time as f64) / self.period as f64).floor() as u64;
        Ok(round.max(1))
    }

    fn key_point(&self) -> Result<G2Projective, String> {
        G2Affine::deserialize_compressed(&self.public_key[..])
            .map(Into::into)
            .map_err(|e| format!("the beacon's public key is not a compressed G2 point: {e}"))
    }
}

/// The round a weights commit is encrypted to, computed as the Bittensor SDK v11
/// computes it (bittensor-core 0.1.5 `get_encrypted_commit_v2`, bittensor-drand
/// 2.x the same): the first block at which the chain will reveal a commit sent
/// now ([`first_reveal_block`]), plus [`SECURITY_BLOCK_OFFSET`] blocks, turned
/// into wall-clock time at `block_time_secs` a block from `now_unix_secs`, and
/// that time into a quicknet round as `max(1, floor((t - genesis) / period))`.
///
/// - `schedule`: the subnet's epoch state at the chain head (see [`EpochSchedule`]);
/// - `reveal_period_epochs`: the subnet's `RevealPeriodEpochs`;
/// - `block_time_secs`: seconds per block as the SDK detects it (12 on finney,
///   0.25 on fast-block local chains);
/// - `now_unix_secs`: the wall clock when the commit is made (the SDK reads
///   the system clock; it does not ask drand for its latest round).
///
/// The subnet's netuid is not an input: the v2 computation reads the epoch
/// state instead (the SDK's v1 `get_encrypted_commit` derived epochs from
/// `(block + netuid + 1) / (tempo + 1)`).
pub fn reveal_round(
    schedule: &EpochSchedule,
    reveal_period_epochs: u64,
    block_time_secs: f64,
    now_unix_secs: f64,
) -> Result<u64, String> {
    Beacon::quicknet().reveal_round(schedule, reveal_period_epochs, block_time_secs, now_unix_secs)
}

/// A subnet's epoch state as the SDK reads it from `SubtensorModule` storage,
/// all at the same block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochSchedule {
    /// The chain head the state was read at.
    pub current_block: u64,
    /// `Tempo`: blocks between epochs (0: the subnet runs none).
    pub tempo: u16,
    /// `LastEpochBlock`: the block of the subnet's last epoch.
    pub last_epoch_block: u64,
    /// `PendingEpochAt`: a block at which the owner asked for an epoch (0: none).
    pub pending_epoch_at: u64,
    /// `SubnetEpochIndex`: epochs run so far.
    pub subnet_epoch_index: u64,
    /// `BlocksSinceLastStep`.
    pub blocks_since_last_step: u64,
}

impl EpochSchedule {
    /// Where the subnet stands at `current_block`: the epoch index a commit made there is filed
    /// under (the counter, plus one when an epoch runs at this block: subtensor's look-ahead), the
    /// last epoch's block and the next one's (an owner's pending trigger can bring it forward).
    pub fn status(&self) -> super::EpochStatus {
        let block = self.current_block;
        if self.tempo == 0 {
            let last_epoch_block = self.last_epoch_block;
            return super::EpochStatus {
                block,
                epoch_index: self.subnet_epoch_index,
                last_epoch_block,
                next_epoch_block: u64::MAX,
            };
        }
        let auto_next = self.last_epoch_block.saturating_add(u64::from(self.tempo));
        let next = if self.pending_epoch_at > 0 { auto_next.min(self.pending_epoch_at) } else { auto_next };
        let runs_now = self.epoch_due(block);
        super::EpochStatus {
            block,
            epoch_index: self.index_seen_in(block),
            last_epoch_block: if runs_now { block } else { self.last_epoch_block },
            next_epoch_block: if runs_now { block } else { next },
        }
    }

    /// Whether the subnet's epoch runs in `block` (subtensor's `run_coinbase`).
    fn epoch_due(&self, block: u64) -> bool {
        self.tempo != 0
            && ((self.pending_epoch_at > 0 && block >= self.pending_epoch_at)
                || self.blocks_since_last_step > MAX_TEMPO
                || block.saturating_sub(self.last_epoch_block) >= u64::from(self.tempo))
    }

    /// The epoch index that reveals in `block` see: they run before the
    /// block's epoch, counting it if it is due.
    fn index_seen_in(&self, block: u64) -> u64 {
        self.subnet_epoch_index.saturating_add(u64::from(self.epoch_due(block)))
    }

    /// The state after `block`'s coinbase.
    fn after(mut self, block: u64) -> Self {
        self.blocks_since_last_step = self.blocks_since_last_step.saturating_add(1);
        self.current_block = block;
        if self.epoch_due(block) {
            self.last_epoch_block = block;
            self.pending_epoch_at = 0;
            self.subnet_epoch_index = self.subnet_epoch_index.saturating_add(1);
            self.blocks_since_last_step = 0;
        }
        self
    }
}

/// The first block at which the chain reveals a commit sent against `schedule`'s
/// head, as the SDK predicts it: the commit lands in the next block, belongs to
/// the epoch index reveals see there, and is revealed in the first later block
/// whose reveals see that index plus `reveal_period_epochs`.
pub fn first_reveal_block(schedule: &EpochSchedule, reveal_period_epochs: u64) -> Result<u64, String> {
    if schedule.tempo == 0 {
        return Err("the subnet's tempo is 0: it runs no epochs, so no commit would be revealed".into());
    }
    let commit_block = schedule.current_block.saturating_add(COMMIT_INCLUSION_BLOCK_OFFSET);
    let target = schedule.index_seen_in(commit_block).saturating_add(reveal_period_epochs);
    let last = commit_block.saturating_add(reveal_period_epochs.saturating_mul(MAX_TEMPO).saturating_add(MAX_TEMPO));
    let mut state = *schedule;
    for block in commit_block..=last {
        if state.index_seen_in(block) == target {
            return Ok(block);
        }
        state = state.after(block);
    }
    Err(format!("no reveal block within {} blocks of block {commit_block}", last - commit_block))
}

/// What a timelocked weights commit carries, as subtensor decodes it
/// (`pallets/subtensor/src/coinbase/reveal_commits.rs`):
/// `struct WeightsTlockPayload { hotkey: Vec<u8>, uids: Vec<u16>, values: Vec<u16>, version_key: u64 }`,
/// SCALE-encoded. `hotkey` holds the SCALE encoding of the committer's
/// AccountId32 (its 32 bytes); the chain drops the commit unless it decodes
/// to the account that committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeightsTlockPayload {
    pub hotkey: Vec<u8>,
    pub uids: Vec<u16>,
    pub values: Vec<u16>,
    pub version_key: u64,
}

impl WeightsTlockPayload {
    /// The hotkey as the chain reads it (the first 32 bytes), if there are 32.
    pub fn hotkey_account(&self) -> Option<AccountId> {
        self.hotkey.get(..32).map(|b| AccountId(b.try_into().expect("32 bytes")))
    }
}

/// The plaintext of a timelocked weights commit.
pub fn encode_payload(hotkey: &AccountId, uids: &[u16], values: &[u16], version_key: u64) -> Vec<u8> {
    // A tuple of references encodes as the struct of values: `&[u8]` and
    // `&[u16]` as vectors (compact length first), the u64 little-endian.
    (&hotkey.0[..], uids, values, version_key).encode()
}

/// Decodes a payload as the chain does (bytes after it are ignored, as there).
pub fn decode_payload(bytes: &[u8]) -> Result<WeightsTlockPayload, String> {
    let (hotkey, uids, values, version_key) = <(Vec<u8>, Vec<u16>, Vec<u16>, u64)>::decode(&mut &bytes[..])
        .map_err(|e| format!("not a timelocked weights payload: {e}"))?;
    Ok(WeightsTlockPayload { hotkey, uids, values, version_key })
}

/// Encrypts `plaintext` so that `beacon`'s signature of `round` opens it: the
/// compressed `TLECiphertext` the chain takes as a commit. The ephemeral key,
/// the IBE randomness and the AES-GCM nonce come from the system's randomness.
pub fn encrypt(beacon: &Beacon, round: u64, plaintext: &[u8]) -> Result<Vec<u8>, String> {
    let key = beacon.key_point()?;
    let mut ephemeral = [0u8; 32];
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut ephemeral)
        .and_then(|()| getrandom::getrandom(&mut seed))
        .map_err(|e| format!("no randomness from the system for timelock encryption: {e}"))?;
    let identity = Identity::new(b"", vec![round_message(round).to_vec()]);
    let ciphertext =
        tle::<TinyBLS381, AESGCMStreamCipherProvider, _>(key, ephemeral, plaintext, identity, StdRng::from_seed(seed))
            .map_err(|e| format!("timelock encryption failed: {e:?}"))?;
    let mut bytes = Vec::with_capacity(244 + plaintext.len());
    ciphertext.serialize_compressed(&mut bytes).map_err(|e| format!("timelock ciphertext did not serialize: {e}"))?;
    Ok(bytes)
}

/// Opens a ciphertext with the signature of the round it was encrypted to, as
/// the chain does when the round's pulse arrives (bytes after the ciphertext
/// are ignored, as there).
pub fn decrypt(ciphertext: &[u8], round_signature: &[u8]) -> Result<Vec<u8>, String> {
    let ciphertext = TLECiphertext::<TinyBLS381>::deserialize_compressed(&mut &ciphertext[..])
        .map_err(|e| format!("not a timelock ciphertext: {e}"))?;
    let signature = signature_point(round_signature)?;
    tld::<TinyBLS381, AESGCMStreamCipherProvider>(ciphertext, signature.into()).map_err(|e| match e {
        TlockError::InvalidSignature => {
            "the round signature does not open this ciphertext: it was encrypted to another round or beacon".into()
        }
        TlockError::DecryptionError => "the timelock ciphertext's body fails authentication: it is corrupt".into(),
        other => format!("timelock decryption failed: {other:?}"),
    })
}

/// Checks a round signature against a beacon's public key (drand's unchained
/// scheme: `e(signature, G2) == e(H(sha256(round)), public_key)`).
pub fn verify(public_key: &[u8], round: u64, signature: &[u8]) -> Result<(), String> {
    let key = G2Affine::deserialize_compressed(public_key)
        .map_err(|e| format!("the beacon's public key is not a compressed G2 point: {e}"))?;
    let signature = signature_point(signature)?;
    let message = hash_round(round);
    let product = Bls12_381::multi_pairing([signature, -message], [G2Affine::generator(), key]);
    if product.is_zero() {
        Ok(())
    } else {
        Err(format!("the signature is not the beacon's signature of round {round}"))
    }
}

/// A beacon of one's own for the embedded chain: a BLS12-381 keypair that signs
/// rounds as drand's unchained G1 scheme does, so ciphertexts encrypted to its
/// [`Beacon`] open with [`LocalBeacon::sign_round`].
pub struct LocalBeacon {
    secret: Fr,
    public_key: [u8; PUBLIC_KEY_LEN],
}

impl std::fmt::Debug for LocalBeacon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalBeacon").field("public_key", &hex::encode(self.public_key)).finish_non_exhaustive()
    }
}

impl LocalBeacon {
    /// The keypair of `seed`: the secret is SHA-512 of a label and the seed,
    /// reduced modulo the group order.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let wide = Sha512::new().chain_update(b"neuron-host local drand beacon").chain_update(seed).finalize();
        let secret = Fr::from_le_bytes_mod_order(&wide);
        let mut public_key = [0u8; PUBLIC_KEY_LEN];
        (G2Projective::generator() * secret)
            .into_affine()
            .serialize_compressed(&mut public_key[..])
            .expect("a G2 point fits 96 bytes");
        Self { secret, public_key }
    }

    /// The public key, a compressed G2 point.
    pub fn public_key(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.public_key
    }

    /// The signature of `round` (a compressed G1 point), as quicknet would publish it.
    pub fn sign_round(&self, round: u64) -> Vec<u8> {
        let mut signature = Vec::with_capacity(SIGNATURE_LEN);
        (G1Projective::from(hash_round(round)) * self.secret)
            .into_affine()
            .serialize_compressed(&mut signature)
            .expect("a G1 point serializes");
        signature
    }

    /// A beacon with this key, round 1 at `genesis_time`, one round every
    /// `period` seconds. Its chain hash is SHA-256 over the key, the clock and
    /// the scheme's name: an identifier, not drand's chain-info hash.
    pub fn beacon(&self, genesis_time: u64, period: u64) -> Beacon {
        let chain_hash = Sha256::new()
            .chain_update(self.public_key)
            .chain_update(genesis_time.to_be_bytes())
            .chain_update(period.to_be_bytes())
            .chain_update(b"bls-unchained-g1-rfc9380")
            .finalize()
            .into();
        Beacon { chain_hash, public_key: self.public_key, genesis_time, period }
    }
}

/// The message drand's unchained schemes sign for a round.
fn round_message(round: u64) -> [u8; 32] {
    Sha256::digest(round.to_be_bytes()).into()
}

/// The round's message hashed to G1 (RFC 9380, SSWU, drand's DST).
fn hash_round(round: u64) -> G1Affine {
    MapToCurveBasedHasher::<G1Projective, DefaultFieldHasher<Sha256, 128>, WBMap<ark_bls12_381::g1::Config>>::new(
        DRAND_G1_DST,
    )
    .and_then(|hasher| hasher.hash(&round_message(round)))
    .expect("hashing to G1 cannot fail with a short DST")
}

fn signature_point(bytes: &[u8]) -> Result<G1Affine, String> {
    if bytes.len() != SIGNATURE_LEN {
        return Err(format!("a round signature is {SIGNATURE_LEN} bytes (compressed G1), not {}", bytes.len()));
    }
    G1Affine::deserialize_compressed(bytes).map_err(|e| format!("the round signature is not a G1 point: {e}"))
}

fn hex_array<const N: usize>(hex_str: &str) -> [u8; N] {
    let mut out = [0u8; N];
    hex::decode_to_slice(hex_str, &mut out).expect("a valid constant");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stateful_scheduler_counts_from_the_last_epoch_block() {
        let at = |block, stored: EpochSchedule| EpochSchedule { current_block: block, ..stored }.status();
        let stored = EpochSchedule {
            current_block: 0,
            tempo: 360,
            last_epoch_block: 1000,
            pending_epoch_at: 0,
            subnet_epoch_index: 41,
            blocks_since_last_step: 0,
        };
        let mid = at(1200, stored);
        assert_eq!((mid.epoch_index, mid.last_epoch_block, mid.next_epoch_block), (41, 1000, 1360));
        // At the block the epoch runs, a commit belongs to the next epoch (subtensor's look-ahead).
        let due = at(1360, stored);
        assert_eq!((due.epoch_index, due.next_epoch_block), (42, 1360));
        // An owner's trigger brings the next epoch forward.
        let triggered = at(1200, EpochSchedule { pending_epoch_at: 1250, ..stored });
        assert_eq!(triggered.next_epoch_block, 1250);
        assert_eq!(at(1250, EpochSchedule { pending_epoch_at: 1250, ..stored }).epoch_index, 42);
        // A subnet that has not stepped for longer than MAX_TEMPO runs at once.
        let stalled = at(1200, EpochSchedule { blocks_since_last_step: 50_401, ..stored });
        assert_eq!(stalled.epoch_index, 42);
        // Unlike the old rule, the phase does not depend on the netuid or the block number's residue.
        let short = EpochSchedule { tempo: 10, ..stored };
        assert_eq!(at(1005, short).next_epoch_block, 1010);
    }

    /// quicknet's real signature of round 123.
    const ROUND_123_SIGNATURE: &str =
        "b75c69d0b72a5d906e854e808ba7e2accb1542ac355ae486d591aa9d43765482e26cd02df835d3546d23c4b13e0dfc92";

    fn sig123() -> Vec<u8> {
        hex::decode(ROUND_123_SIGNATURE).unwrap()
    }

    #[test]
    fn quicknet_round_123_signature_verifies() {
        let quicknet = Beacon::quicknet();
        verify(&quicknet.public_key, 123, &sig123()).unwrap();
        let err = verify(&quicknet.public_key, 124, &sig123()).unwrap_err();
        assert_eq!(err, "the signature is not the beacon's signature of round 124");
        // A local beacon's key does not verify quicknet's signature.
        assert!(verify(&LocalBeacon::from_seed([1; 32]).public_key(), 123, &sig123()).is_err());
    }

    #[test]
    fn quicknet_round_123_opens_its_ciphertext_only() {
        let quicknet = Beacon::quicknet();
        let payload = encode_payload(&AccountId([9; 32]), &[0, 5, 7], &[65535, 3, 0], 42);
        let ct = encrypt(&quicknet, 123, &payload).unwrap();
        assert_eq!(ct.len(), 244 + payload.len());
        assert_eq!(decrypt(&ct, &sig123()).unwrap(), payload);

        let other = encrypt(&quicknet, 124, &payload).unwrap();
        let err = decrypt(&other, &sig123()).unwrap_err();
        assert!(!err.contains('\n'));
        assert_eq!(
            err,
            "the round signature does not open this ciphertext: it was encrypted to another round or beacon"
        );
    }

    #[test]
    fn ciphertext_layout() {
        let plaintext = b"weights";
        let ct = encrypt(&Beacon::quicknet(), 1000, plaintext).unwrap();
        let len_at = |at: usize| u64::from_le_bytes(ct[at..at + 8].try_into().unwrap());
        assert_eq!(len_at(96), 32); // v
        assert_eq!(len_at(136), 32); // w
        assert_eq!(len_at(176), 8 + 7 + 16 + 8 + 12); // body
        assert_eq!(len_at(184), 7 + 16); // AES-GCM ciphertext and tag
        assert_eq!(len_at(184 + 8 + 23), 12); // nonce
        assert_eq!(len_at(235), 8); // cipher suite
        assert_eq!(&ct[243..], b"AES_GCM_");
        assert_eq!(ct.len(), 244 + plaintext.len());
        // Fresh randomness each time.
        assert_ne!(ct, encrypt(&Beacon::quicknet(), 1000, plaintext).unwrap());
    }

    #[test]
    fn malformed_inputs_are_refused_in_one_line() {
        let ct = encrypt(&Beacon::quicknet(), 123, b"x").unwrap();
        for err in [
            decrypt(&ct[..100], &sig123()).unwrap_err(),
            decrypt(&ct, &sig123()[..47]).unwrap_err(),
            decrypt(&ct, &[0xff; 48]).unwrap_err(),
            verify(&[0; 96], 123, &sig123()).unwrap_err(),
        ] {
            assert!(!err.contains('\n') && !err.is_empty(), "{err}");
        }
        let mut corrupt = ct.clone();
        let n = corrupt.len();
        corrupt[n - 40] ^= 1; // inside the AES-GCM ciphertext
        assert_eq!(
            decrypt(&corrupt, &sig123()).unwrap_err(),
            "the timelock ciphertext's body fails authentication: it is corrupt"
        );
    }

    #[test]
    fn local_beacon_round_trip() {
        let local = LocalBeacon::from_seed([7; 32]);
        assert_eq!(local.public_key(), LocalBeacon::from_seed([7; 32]).public_key());
        assert_ne!(local.public_key(), LocalBeacon::from_seed([8; 32]).public_key());
        let beacon = local.beacon(1_700_000_000, 2);
        assert_eq!(beacon.public_key, local.public_key());
        for round in [1u64, 77, 1 << 40] {
            let sig = local.sign_round(round);
            assert_eq!(sig.len(), SIGNATURE_LEN);
            verify(&local.public_key(), round, &sig).unwrap();
            assert!(verify(&local.public_key(), round + 1, &sig).is_err());
            let ct = encrypt(&beacon, round, b"secret weights").unwrap();
            assert_eq!(decrypt(&ct, &sig).unwrap(), b"secret weights");
            assert!(decrypt(&ct, &local.sign_round(round + 1)).is_err());
            // Quicknet's key cannot open it, nor another local key.
            assert!(decrypt(&ct, &LocalBeacon::from_seed([8; 32]).sign_round(round)).is_err());
        }
        // quicknet ciphertexts do not open with a local signature of the same round.
        let ct = encrypt(&Beacon::quicknet(), 123, b"x").unwrap();
        assert!(decrypt(&ct, &local.sign_round(123)).is_err());
    }

    #[test]
    fn rounds_and_times() {
        let q = Beacon::quicknet();
        assert_eq!(hex::encode(q.chain_hash), QUICKNET_CHAIN_HASH);
        assert_eq!(q.round_at(QUICKNET_GENESIS_TIME - 1), 0);
        assert_eq!(q.round_at(QUICKNET_GENESIS_TIME), 1);
        assert_eq!(q.round_at(QUICKNET_GENESIS_TIME + 2), 1);
        assert_eq!(q.round_at(QUICKNET_GENESIS_TIME + 3), 2);
        assert_eq!(q.round_time(1), QUICKNET_GENESIS_TIME);
        assert_eq!(q.round_time(123), QUICKNET_GENESIS_TIME + 366);
        for r in [1u64, 2, 123, 20_000_000] {
            assert_eq!(q.round_at(q.round_time(r)), r);
            assert_eq!(q.round_at(q.round_time(r) + 2), r);
        }
    }

    #[test]
    fn payload_bytes() {
        // From subtensor's definition: Vec<u8> hotkey (compact 32 = 0x80, then
        // the key), Vec<u16> uids and values (compact count, u16 LE each),
        // version_key u64 LE.
        let hotkey = AccountId(core::array::from_fn(|i| i as u8));
        let bytes = encode_payload(&hotkey, &[0, 1, 300], &[65535, 0, 4660], 0x0102_0304_0506_0708);
        let mut want = vec![0x80];
        want.extend(0..32u8);
        want.extend([0x0c, 0x00, 0x00, 0x01, 0x00, 0x2c, 0x01]);
        want.extend([0x0c, 0xff, 0xff, 0x00, 0x00, 0x34, 0x12]);
        want.extend([0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01]);
        assert_eq!(bytes, want);

        let decoded = decode_payload(&bytes).unwrap();
        assert_eq!(decoded.hotkey_account(), Some(hotkey));
        assert_eq!(decoded.uids, [0, 1, 300]);
        assert_eq!(decoded.values, [65535, 0, 4660]);
        assert_eq!(decoded.version_key, 0x0102_0304_0506_0708);

        // 64 uids take a two-byte compact count.
        let long = encode_payload(&hotkey, &[1; 64], &[2; 64], 0);
        assert_eq!(long[33..35], [0x01, 0x01]);
        assert_eq!(long.len(), 33 + 2 + 128 + 2 + 128 + 8);

        assert!(decode_payload(&bytes[..bytes.len() - 1]).unwrap_err().starts_with("not a timelocked weights payload"));
    }

    fn schedule(current_block: u64, tempo: u16, last_epoch_block: u64) -> EpochSchedule {
        EpochSchedule {
            current_block,
            tempo,
            last_epoch_block,
            pending_epoch_at: 0,
            subnet_epoch_index: 0,
            blocks_since_last_step: current_block - last_epoch_block,
        }
    }

    #[test]
    fn reveal_blocks() {
        // Epochs at 10, 60, 110, ...: a commit landing in 11 is revealed by
        // the epoch after the next one's reveal step, at 60.
        assert_eq!(first_reveal_block(&schedule(10, 50, 10), 1), Ok(60));
        assert_eq!(first_reveal_block(&schedule(10, 50, 10), 2), Ok(110));
        // Landing in the epoch's own block counts for the new epoch.
        assert_eq!(first_reveal_block(&schedule(59, 50, 10), 1), Ok(110));
        assert_eq!(first_reveal_block(&schedule(58, 50, 10), 1), Ok(60));
        // No reveal period: revealed in the block it lands in.
        assert_eq!(first_reveal_block(&schedule(58, 50, 10), 0), Ok(59));
        // An owner-triggered epoch comes early.
        let pending = EpochSchedule { pending_epoch_at: 95, ..schedule(91, 20, 80) };
        assert_eq!(first_reveal_block(&pending, 1), Ok(95));
        // Too long without a step forces an epoch.
        let stalled = EpochSchedule { blocks_since_last_step: MAX_TEMPO + 1, ..schedule(100, 360, 90) };
        assert_eq!(first_reveal_block(&stalled, 1), Ok(101 + 360));
        assert!(first_reveal_block(&schedule(10, 0, 10), 1).unwrap_err().contains("tempo is 0"));
    }

    #[test]
    fn reveal_rounds() {
        let now = 1_700_000_000.0;
        // Reveal at 60, ingest at 63: 53 blocks of 12 s from block 10.
        let want = ((now + 53.0 * 12.0 - QUICKNET_GENESIS_TIME as f64) / 3.0).floor() as u64;
        assert_eq!(reveal_round(&schedule(10, 50, 10), 1, 12.0, now), Ok(want));
        assert_eq!(want, 2_399_089);
        // Fast blocks.
        let fast = ((now + 53.0 * 0.25 - QUICKNET_GENESIS_TIME as f64) / 3.0).floor() as u64;
        assert_eq!(reveal_round(&schedule(10, 50, 10), 1, 0.25, now), Ok(fast));
        // Before genesis the SDK still names round 1.
        assert_eq!(reveal_round(&schedule(10, 50, 10), 1, 12.0, 0.0), Ok(1));
        // A local beacon's clock.
        let local = LocalBeacon::from_seed([1; 32]).beacon(1_000, 1);
        assert_eq!(local.reveal_round(&schedule(10, 50, 10), 1, 1.0, 2_000.0), Ok(1_053));
    }
}
