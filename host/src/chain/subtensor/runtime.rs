//! subxt's view of subtensor: the [`Subtensor`] `Config` (account, address,
//! signature and header types, a metadata cache per runtime version) and
//! [`Extensions`], which fills every transaction extension the connected
//! runtime declares, by its name and with the type its metadata gives.
//!
//! Extensions are driven by the metadata, not by a list compiled in: the
//! runtime's order is kept, extensions whose data is empty (`CheckWeight`,
//! `SudoTransactionExtension`, `CheckShieldedTxValidity`, ...) encode to
//! nothing, and the ones that carry data are filled by name. An extension
//! that carries data this host does not know refuses to encode, naming it,
//! rather than sending a transaction the node would reject.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use subxt::{
    config::{
        substrate::{BlakeTwo256, SubstrateHeader, H256},
        transaction_extensions::Params,
        ClientState, Config, TransactionExtensions,
    },
    error::TransactionExtensionError,
    ext::{
        frame_decode::extrinsics::{TransactionExtensions as EncodeExtensions, TransactionExtensionsError},
        scale_encode::EncodeAsType,
        scale_value::Value,
    },
    metadata::ArcMetadata,
    utils::{AccountId32, MultiAddress, MultiSignature},
};

type Registry = scale_info::PortableRegistry;

/// subxt's configuration for a subtensor node.
#[derive(Clone, Debug, Default)]
pub struct Subtensor {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    metadata: RwLock<HashMap<u32, ArcMetadata>>,
    /// Offline use only: the runtime version to assume at every block.
    fixed_version: Option<(u32, u32)>,
    genesis_hash: Option<H256>,
}

impl Subtensor {
    /// For a node: versions and metadata are read from it, block by block.
    pub fn online() -> Self {
        Self::default()
    }

    /// Without a node: one runtime (its metadata and versions) and the chain's genesis hash.
    pub fn offline(metadata: ArcMetadata, spec_version: u32, transaction_version: u32, genesis_hash: [u8; 32]) -> Self {
        let inner = Inner {
            metadata: RwLock::new(HashMap::from([(spec_version, metadata)])),
            fixed_version: Some((spec_version, transaction_version)),
            genesis_hash: Some(H256(genesis_hash)),
        };
        Self { inner: Arc::new(inner) }
    }

    /// The runtime versions whose metadata has been read so far.
    pub fn known_spec_versions(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.inner.metadata.read().unwrap_or_else(|p| p.into_inner()).keys().copied().collect();
        v.sort_unstable();
        v
    }
}

impl Config for Subtensor {
    type AccountId = AccountId32;
    type Address = MultiAddress<AccountId32, ()>;
    type Signature = MultiSignature;
    type Hasher = BlakeTwo256;
    type Header = SubstrateHeader<H256>;
    type TransactionExtensions = Extensions;
    type AssetId = u32;

    fn genesis_hash(&self) -> Option<H256> {
        self.inner.genesis_hash
    }

    fn spec_and_transaction_version_for_block_number(&self, _block_number: u64) -> Option<(u32, u32)> {
        self.inner.fixed_version
    }

    fn metadata_for_spec_version(&self, spec_version: u32) -> Option<ArcMetadata> {
        self.inner.metadata.read().unwrap_or_else(|p| p.into_inner()).get(&spec_version).cloned()
    }

    /// subxt reads the runtime version at every block it works at and asks
    /// for metadata here; a version not seen before is a runtime upgrade
    /// (or the first connection), and subxt has just fetched its metadata.
    fn set_metadata_for_spec_version(&self, spec_version: u32, metadata: ArcMetadata) {
        let mut known = self.inner.metadata.write().unwrap_or_else(|p| p.into_inner());
        if !known.is_empty() {
            tracing::info!(target: "neuron_host::chain", "runtime upgraded to spec version {spec_version}: metadata refreshed from the node");
        }
        known.insert(spec_version, metadata);
    }
}

/// How long a transaction stays valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mortality {
    Immortal,
    /// Valid for about `period` blocks (rounded up to a power of two, 4..=65536) from `birth_block`.
    Mortal {
        period: u64,
        birth_block: u64,
        birth_hash: [u8; 32],
    },
}

/// An era's SCALE bytes, as `sp_runtime::generic::Era` encodes it.
pub fn era_bytes(mortality: Mortality) -> Vec<u8> {
    match mortality {
        Mortality::Immortal => vec![0],
        Mortality::Mortal { period, birth_block, .. } => {
            let period = period.checked_next_power_of_two().unwrap_or(1 << 16).clamp(4, 1 << 16);
            let phase = birth_block % period;
            let quantize_factor = (period >> 12).max(1);
            let quantized_phase = phase / quantize_factor * quantize_factor;
            let encoded =
                (period.trailing_zeros() - 1).clamp(1, 15) as u16 | ((quantized_phase / quantize_factor) << 4) as u16;
            encoded.to_le_bytes().to_vec()
        }
    }
}

/// What the extensions are filled with: [`Params`] for subxt.
#[derive(Clone, Debug)]
pub struct ExtensionParams {
    pub nonce: Option<u64>,
    pub tip: u128,
    /// Blocks the transaction stays valid for; 0 = immortal. The birth block is
    /// the block subxt builds at (injected), unless `mortality` is set.
    pub mortal_period: u64,
    pub mortality: Option<Mortality>,
}

impl Default for ExtensionParams {
    fn default() -> Self {
        Self { nonce: None, tip: 0, mortal_period: 64, mortality: None }
    }
}

impl Params<Subtensor> for ExtensionParams {
    fn inject_account_nonce(&mut self, nonce: u64) {
        // A nonce chosen by the caller (several transactions in flight) wins.
        self.nonce.get_or_insert(nonce);
    }

    fn inject_block(&mut self, number: u64, hash: H256) {
        if self.mortality.is_none() && self.mortal_period > 0 {
            self.mortality =
                Some(Mortality::Mortal { period: self.mortal_period, birth_block: number, birth_hash: hash.0 });
        }
    }
}

/// The filled extensions of one transaction.
pub struct Extensions {
    spec_version: u32,
    transaction_version: u32,
    genesis_hash: [u8; 32],
    nonce: u64,
    tip: u128,
    mortality: Mortality,
}

/// The extensions this host fills by name; every other one must be empty.
const KNOWN: &[&str] = &[
    "CheckSpecVersion",
    "CheckTxVersion",
    "CheckGenesis",
    "CheckMortality",
    "CheckEra",
    "CheckNonce",
    "ChargeTransactionPayment",
    "ChargeTransactionPaymentWrapper",
    "ChargeAssetTxPayment",
    "CheckMetadataHash",
];

impl TransactionExtensions<Subtensor> for Extensions {
    type Params = ExtensionParams;

    fn new(client: &ClientState<Subtensor>, params: ExtensionParams) -> Result<Self, TransactionExtensionError> {
        Ok(Self {
            spec_version: client.spec_version,
            transaction_version: client.transaction_version,
            genesis_hash: client.genesis_hash.0,
            nonce: params.nonce.unwrap_or(0),
            tip: params.tip,
            mortality: params.mortality.unwrap_or(Mortality::Immortal),
        })
    }

    fn inject_signature(&mut self, _account_id: &AccountId32, _signature: &MultiSignature) {}
}

fn other(name: &str, error: impl std::fmt::Display) -> TransactionExtensionsError {
    TransactionExtensionsError::Other { extension_name: name.to_string(), error: error.to_string().into() }
}

fn encode_as<V: EncodeAsType + ?Sized>(
    name: &str,
    value: &V,
    type_id: u32,
    types: &Registry,
    out: &mut Vec<u8>,
) -> Result<(), TransactionExtensionsError> {
    value.encode_as_type_to(type_id, types, out).map_err(|e| other(name, e))
}

impl EncodeExtensions<Registry> for Extensions {
    fn contains_extension(&self, name: &str) -> bool {
        KNOWN.contains(&name)
    }

    fn encode_extension_value_to(
        &self,
        name: &str,
        type_id: u32,
        types: &Registry,
        out: &mut Vec<u8>,
    ) -> Result<(), TransactionExtensionsError> {
        match name {
            "CheckMortality" | "CheckEra" => {
                // The era is an enum of 256 variants whose SCALE bytes are the era itself.
                let bytes = era_bytes(self.mortality);
                out.extend_from_slice(&bytes);
                check_encodes_as_era(name, type_id, types, &bytes)
            }
            "CheckNonce" => {
                let nonce = u32::try_from(self.nonce).map_err(|_| other(name, "nonce beyond u32"))?;
                encode_as(name, &nonce, type_id, types, out)
            }
            "ChargeTransactionPayment" | "ChargeTransactionPaymentWrapper" => {
                encode_as(name, &self.tip, type_id, types, out)
            }
            "ChargeAssetTxPayment" => {
                let value = Value::named_composite([
                    ("tip", Value::u128(self.tip)),
                    ("asset_id", Value::unnamed_variant("None", [])),
                ]);
                encode_as(name, &value, type_id, types, out)
            }
            "CheckMetadataHash" => {
                let value = Value::named_composite([("mode", Value::unnamed_variant("Disabled", []))]);
                encode_as(name, &value, type_id, types, out)
            }
            // Their data is implicit only (or empty): nothing goes into the transaction.
            "CheckSpecVersion" | "CheckTxVersion" | "CheckGenesis" => {
                encode_as(name, &Value::unnamed_composite([]), type_id, types, out)
            }
            _ => Err(TransactionExtensionsError::NotFound(name.to_string())),
        }
    }

    fn encode_extension_implicit_to(
        &self,
        name: &str,
        type_id: u32,
        types: &Registry,
        out: &mut Vec<u8>,
    ) -> Result<(), TransactionExtensionsError> {
        match name {
            "CheckSpecVersion" => encode_as(name, &self.spec_version, type_id, types, out),
            "CheckTxVersion" => encode_as(name, &self.transaction_version, type_id, types, out),
            "CheckGenesis" => encode_as(name, &self.genesis_hash, type_id, types, out),
            "CheckMortality" | "CheckEra" => {
                let hash = match self.mortality {
                    Mortality::Immortal => self.genesis_hash,
                    Mortality::Mortal { birth_hash, .. } => birth_hash,
                };
                encode_as(name, &hash, type_id, types, out)
            }
            // No metadata hash is claimed (mode Disabled), so none is signed.
            "CheckMetadataHash" => encode_as(name, &Value::unnamed_variant("None", []), type_id, types, out),
            _ => Err(TransactionExtensionsError::NotFound(name.to_string())),
        }
    }
}

/// The bytes written for an era must be what the runtime's era type decodes.
fn check_encodes_as_era(
    name: &str,
    type_id: u32,
    types: &Registry,
    bytes: &[u8],
) -> Result<(), TransactionExtensionsError> {
    let mut cursor = bytes;
    subxt::ext::scale_value::scale::decode_as_type(&mut cursor, type_id, types).map_err(|e| other(name, e))?;
    if !cursor.is_empty() {
        return Err(other(name, "the runtime's era type is not the standard Era"));
    }
    Ok(())
}
