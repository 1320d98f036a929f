//! The extrinsics a neuron sends, as subxt dynamic payloads (encoded against
//! whatever metadata the connected runtime has), and [`OfflineRuntime`] to
//! build and sign them with no node (tests, cross-checks, air-gapped signing).

use std::net::IpAddr;

use subxt::{
    client::OfflineClient,
    ext::scale_value::{Composite, Value},
    metadata::Metadata,
    tx::{DynamicPayload, Signer},
    utils::{AccountId32, MultiSignature},
};

use super::{
    runtime::{ExtensionParams, Subtensor},
    signer::HotkeySigner,
};
use crate::chain::{AccountId, AxonInfo, ChainError, NetUid};

/// The pallet every neuron extrinsic belongs to.
pub const PALLET: &str = "SubtensorModule";

/// One neuron extrinsic, with subtensor's argument names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubtensorCall {
    SetWeights {
        netuid: NetUid,
        dests: Vec<u16>,
        weights: Vec<u16>,
        version_key: u64,
    },
    CommitWeights {
        netuid: NetUid,
        commit_hash: [u8; 32],
    },
    RevealWeights {
        netuid: NetUid,
        uids: Vec<u16>,
        values: Vec<u16>,
        salt: Vec<u16>,
        version_key: u64,
    },
    ServeAxon {
        netuid: NetUid,
        axon: AxonInfo,
    },
    BurnedRegister {
        netuid: NetUid,
        hotkey: AccountId,
    },
    SetMechanismWeights {
        netuid: NetUid,
        mecid: u8,
        dests: Vec<u16>,
        weights: Vec<u16>,
        version_key: u64,
    },
    CommitMechanismWeights {
        netuid: NetUid,
        mecid: u8,
        commit_hash: [u8; 32],
    },
    RevealMechanismWeights {
        netuid: NetUid,
        mecid: u8,
        uids: Vec<u16>,
        values: Vec<u16>,
        salt: Vec<u16>,
        version_key: u64,
    },
    /// Commit-reveal v4 on runtimes without mechanisms (mechanism 0).
    CommitTimelockedWeights {
        netuid: NetUid,
        commit: Vec<u8>,
        reveal_round: u64,
        commit_reveal_version: u16,
    },
    CommitTimelockedMechanismWeights {
        netuid: NetUid,
        mecid: u8,
        commit: Vec<u8>,
        reveal_round: u64,
        commit_reveal_version: u16,
    },
}

fn uint(x: impl Into<u128>) -> Value {
    Value::u128(x.into())
}

fn u16s(v: &[u16]) -> Value {
    Value::unnamed_composite(v.iter().map(|x| uint(*x)))
}

/// An IP address as subtensor stores it: the address's bits in a u128.
pub fn ip_to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

impl SubtensorCall {
    /// The call's name in the pallet.
    pub fn name(&self) -> &'static str {
        match self {
            Self::SetWeights { .. } => "set_weights",
            Self::CommitWeights { .. } => "commit_weights",
            Self::RevealWeights { .. } => "reveal_weights",
            Self::ServeAxon { .. } => "serve_axon",
            Self::BurnedRegister { .. } => "burned_register",
            Self::SetMechanismWeights { .. } => "set_mechanism_weights",
            Self::CommitMechanismWeights { .. } => "commit_mechanism_weights",
            Self::RevealMechanismWeights { .. } => "reveal_mechanism_weights",
            Self::CommitTimelockedWeights { .. } => "commit_timelocked_weights",
            Self::CommitTimelockedMechanismWeights { .. } => "commit_timelocked_mechanism_weights",
        }
    }

    /// Named fields: encoding fails (rather than misplacing an argument) if
    /// the runtime renames or reorders them.
    fn fields(&self) -> Composite<()> {
        match self {
            Self::SetWeights { netuid, dests, weights, version_key } => Composite::named([
                ("netuid".to_string(), uint(*netuid)),
                ("dests".to_string(), u16s(dests)),
                ("weights".to_string(), u16s(weights)),
                ("version_key".to_string(), uint(*version_key)),
            ]),
            Self::CommitWeights { netuid, commit_hash } => Composite::named([
                ("netuid".to_string(), uint(*netuid)),
                ("commit_hash".to_string(), Value::from_bytes(commit_hash)),
            ]),
            Self::RevealWeights { netuid, uids, values, salt, version_key } => Composite::named([
                ("netuid".to_string(), uint(*netuid)),
                ("uids".to_string(), u16s(uids)),
                ("values".to_string(), u16s(values)),
                ("salt".to_string(), u16s(salt)),
                ("version_key".to_string(), uint(*version_key)),
            ]),
            Self::ServeAxon { netuid, axon } => Composite::named([
                ("netuid".to_string(), uint(*netuid)),
                ("version".to_string(), uint(axon.version)),
                ("ip".to_string(), Value::u128(ip_to_u128(axon.ip))),
                ("port".to_string(), uint(axon.port)),
                ("ip_type".to_string(), uint(axon.ip_type)),
                ("protocol".to_string(), uint(axon.protocol)),
                ("placeholder1".to_string(), uint(0u8)),
                ("placeholder2".to_string(), uint(0u8)),
            ]),
            Self::BurnedRegister { netuid, hotkey } => Composite::named([
                ("netuid".to_string(), uint(*netuid)),
                ("hotkey".to_string(), Value::from_bytes(hotkey.0)),
            ]),
            Self::SetMechanismWeights { netuid, mecid, dests, weights, version_key } => Composite::named([
                ("netuid".to_string(), uint(*netuid)),
                ("mecid".to_string(), uint(*mecid)),
                ("dests".to_string(), u16s(dests)),
                ("weights".to_string(), u16s(weights)),
                ("version_key".to_string(), uint(*version_key)),
            ]),
            Self::CommitMechanismWeights { netuid, mecid, commit_hash } => Composite::named([
                ("netuid".to_string(), uint(*netuid)),
                ("mecid".to_string(), uint(*mecid)),
                ("commit_hash".to_string(), Value::from_bytes(commit_hash)),
            ]),
            Self::RevealMechanismWeights { netuid, mecid, uids, values, salt, version_key } => Composite::named([
                ("netuid".to_string(), uint(*netuid)),
                ("mecid".to_string(), uint(*mecid)),
                ("uids".to_string(), u16s(uids)),
                ("values".to_string(), u16s(values)),
                ("salt".to_string(), u16s(salt)),
                ("version_key".to_string(), uint(*version_key)),
            ]),
            Self::CommitTimelockedWeights { netuid, commit, reveal_round, commit_reveal_version } => {
                Composite::named([
                    ("netuid".to_string(), uint(*netuid)),
                    ("commit".to_string(), Value::from_bytes(commit)),
                    ("reveal_round".to_string(), uint(*reveal_round)),
                    ("commit_reveal_version".to_string(), uint(*commit_reveal_version)),
                ])
            }
            Self::CommitTimelockedMechanismWeights { netuid, mecid, commit, reveal_round, commit_reveal_version } => {
                Composite::named([
                    ("netuid".to_string(), uint(*netuid)),
                    ("mecid".to_string(), uint(*mecid)),
                    ("commit".to_string(), Value::from_bytes(commit)),
                    ("reveal_round".to_string(), uint(*reveal_round)),
                    ("commit_reveal_version".to_string(), uint(*commit_reveal_version)),
                ])
            }
        }
    }

    pub fn payload(&self) -> DynamicPayload<Composite<()>> {
        subxt::tx::dynamic(PALLET, self.name(), self.fields())
    }
}

/// A [`HotkeySigner`] as subxt's signer.
pub(crate) struct SubxtSigner<'a>(pub &'a dyn HotkeySigner);

impl Signer<Subtensor> for SubxtSigner<'_> {
    fn account_id(&self) -> AccountId32 {
        AccountId32(self.0.account().0)
    }
    fn sign(&self, signer_payload: &[u8]) -> MultiSignature {
        MultiSignature::Sr25519(self.0.sign(signer_payload))
    }
}

/// A signed extrinsic and what was signed.
#[derive(Clone, Debug)]
pub struct SignedExtrinsic {
    /// The extrinsic as submitted (with its compact length prefix).
    pub bytes: Vec<u8>,
    /// The signed bytes: call, extension values, implicit data (hashed if over 256 bytes).
    pub signer_payload: Vec<u8>,
}

/// One runtime known from its metadata, with no node.
pub struct OfflineRuntime {
    client: OfflineClient<Subtensor>,
}

impl OfflineRuntime {
    /// From SCALE metadata as `state_getMetadata` returns it (`meta` magic, version, body).
    pub fn new(
        metadata: &[u8],
        spec_version: u32,
        transaction_version: u32,
        genesis_hash: [u8; 32],
    ) -> Result<Self, ChainError> {
        let metadata = Metadata::decode_from(metadata)
            .map_err(|e| ChainError::Other(format!("cannot decode the metadata: {e}")))?;
        let config = Subtensor::offline(metadata.arc(), spec_version, transaction_version, genesis_hash);
        Ok(Self { client: OfflineClient::new_with_config(config) })
    }

    fn at(
        &self,
    ) -> Result<subxt::client::ClientAtBlock<Subtensor, subxt::client::OfflineClientAtBlockImpl<Subtensor>>, ChainError>
    {
        self.client.at_block(0u64).map_err(|e| ChainError::Other(e.to_string()))
    }

    /// The call's SCALE bytes: pallet index, call index, arguments.
    pub fn call_data(&self, call: &SubtensorCall) -> Result<Vec<u8>, ChainError> {
        self.at()?.tx().call_data(&call.payload()).map_err(|e| encode_error(call.name(), e))
    }

    /// A signed extrinsic (nonce and mortality as given; immortal when none is).
    pub fn sign(
        &self,
        call: &SubtensorCall,
        signer: &dyn HotkeySigner,
        params: ExtensionParams,
    ) -> Result<SignedExtrinsic, ChainError> {
        let payload = call.payload();
        let at = self.at()?;
        let mut signable =
            at.tx().create_v4_signable_offline(&payload, params).map_err(|e| encode_error(call.name(), e))?;
        let signer_payload = signable.signer_payload().map_err(|e| encode_error(call.name(), e))?;
        let signed = signable.sign(&SubxtSigner(signer)).map_err(|e| encode_error(call.name(), e))?;
        Ok(SignedExtrinsic { bytes: signed.into_encoded(), signer_payload })
    }
}

pub(crate) fn encode_error(call: &str, e: impl std::fmt::Display) -> ChainError {
    ChainError::Other(format!("cannot encode {call} for this runtime: {e}"))
}
