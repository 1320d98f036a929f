//! The subtensor backend's bytes, with no node: every extrinsic's call data,
//! signed extrinsics and the commit hash, built from the real finney
//! metadata and checked against an independent implementation (polkascan's
//! scalecodec reading the V14 metadata, hashlib's BLAKE2b, py-sr25519-bindings),
//! run here, each time. See subtensor_support for where the metadata and the
//! Python come from.

mod subtensor_support;

use neuron_host::chain::{
    commit::{commit_hash, commit_preimage},
    subtensor::{
        calls::{OfflineRuntime, SubtensorCall},
        runtime::{ExtensionParams, Mortality},
        signer::{HotkeySigner, Sr25519Keypair},
    },
    AccountId, AxonInfo,
};
use serde_json::json;
use subtensor_support::*;
use subxt::ext::{
    codec::{Decode, Encode},
    frame_metadata::{RuntimeMetadata, RuntimeMetadataPrefixed},
};

fn runtime_v14() -> OfflineRuntime {
    OfflineRuntime::new(&metadata_v14(), 343, 1, genesis()).unwrap()
}

fn key() -> Sr25519Keypair {
    Sr25519Keypair::from_mini_secret(&[1; 32]).unwrap()
}

/// Each call with the arguments Python is given for it.
fn calls() -> Vec<(SubtensorCall, serde_json::Value)> {
    let hotkey = key().account();
    vec![
        (
            SubtensorCall::SetWeights { netuid: 2, dests: vec![0], weights: vec![30000], version_key: 0 },
            json!({"function": "set_weights", "args": {"netuid": 2, "dests": [0], "weights": [30000], "version_key": 0}}),
        ),
        (
            SubtensorCall::SetWeights {
                netuid: 7,
                dests: vec![0, 3, 70],
                weights: vec![1, 65535, 300],
                version_key: 123_456_789,
            },
            json!({"function": "set_weights", "args": {"netuid": 7, "dests": [0, 3, 70], "weights": [1, 65535, 300], "version_key": 123_456_789}}),
        ),
        (
            SubtensorCall::CommitWeights { netuid: 3, commit_hash: [0xab; 32] },
            json!({"function": "commit_weights", "args": {"netuid": 3, "commit_hash": hex(&[0xab; 32])}}),
        ),
        (
            SubtensorCall::RevealWeights {
                netuid: 3,
                uids: vec![1, 2],
                values: vec![10, 20],
                salt: vec![5, 6, 7],
                version_key: 9,
            },
            json!({"function": "reveal_weights", "args": {"netuid": 3, "uids": [1, 2], "values": [10, 20], "salt": [5, 6, 7], "version_key": 9}}),
        ),
        (
            SubtensorCall::ServeAxon { netuid: 1, axon: AxonInfo::new("10.1.2.3".parse().unwrap(), 8091, 42) },
            json!({"function": "serve_axon", "args": {"netuid": 1, "version": 42, "ip": 167_838_211u32, "port": 8091,
                   "ip_type": 4, "protocol": 0, "placeholder1": 0, "placeholder2": 0}}),
        ),
        (
            SubtensorCall::ServeAxon { netuid: 1, axon: AxonInfo::new("2001:db8::1".parse().unwrap(), 9000, 1) },
            json!({"function": "serve_axon", "args": {"netuid": 1, "version": 1,
                   "ip": 0x2001_0db8_0000_0000_0000_0000_0000_0001u128.to_string(), "port": 9000,
                   "ip_type": 6, "protocol": 0, "placeholder1": 0, "placeholder2": 0}}),
        ),
        (
            SubtensorCall::BurnedRegister { netuid: 12, hotkey },
            json!({"function": "burned_register", "args": {"netuid": 12, "hotkey": hex(&hotkey.0)}}),
        ),
        // Mechanisms (validator.mechanism): the weight calls of mechanism 1.
        (
            SubtensorCall::SetMechanismWeights {
                netuid: 7,
                mecid: 1,
                dests: vec![0, 3],
                weights: vec![1, 65535],
                version_key: 2,
            },
            json!({"function": "set_mechanism_weights", "args": {"netuid": 7, "mecid": 1, "dests": [0, 3],
                   "weights": [1, 65535], "version_key": 2}}),
        ),
        (
            SubtensorCall::CommitMechanismWeights { netuid: 7, mecid: 1, commit_hash: [0x5a; 32] },
            json!({"function": "commit_mechanism_weights", "args": {"netuid": 7, "mecid": 1, "commit_hash": hex(&[0x5a; 32])}}),
        ),
        (
            SubtensorCall::RevealMechanismWeights {
                netuid: 7,
                mecid: 1,
                uids: vec![1],
                values: vec![9],
                salt: vec![4, 4],
                version_key: 0,
            },
            json!({"function": "reveal_mechanism_weights", "args": {"netuid": 7, "mecid": 1, "uids": [1], "values": [9],
                   "salt": [4, 4], "version_key": 0}}),
        ),
        // Commit-reveal v4: a real ciphertext's size (244 bytes plus the payload).
        (
            SubtensorCall::CommitTimelockedWeights {
                netuid: 5,
                commit: (0..300u16).map(|i| i as u8).collect(),
                reveal_round: 23_456_789,
                commit_reveal_version: 4,
            },
            json!({"function": "commit_timelocked_weights", "args": {"netuid": 5,
                   "commit": hex(&(0..300u16).map(|i| i as u8).collect::<Vec<_>>()), "reveal_round": 23_456_789,
                   "commit_reveal_version": 4}}),
        ),
        (
            SubtensorCall::CommitTimelockedMechanismWeights {
                netuid: 64,
                mecid: 1,
                commit: vec![0xcd; 277],
                reveal_round: 1,
                commit_reveal_version: 4,
            },
            json!({"function": "commit_timelocked_mechanism_weights", "args": {"netuid": 64, "mecid": 1,
                   "commit": hex(&[0xcd; 277]), "reveal_round": 1, "commit_reveal_version": 4}}),
        ),
    ]
}

#[test]
fn set_weights_call_data_is_the_known_finney_vector() {
    let call = SubtensorCall::SetWeights { netuid: 2, dests: vec![0], weights: vec![30000], version_key: 0 };
    for runtime in [runtime_v14(), OfflineRuntime::new(&metadata_v16(), 393, 1, genesis()).unwrap()] {
        assert_eq!(hex(&runtime.call_data(&call).unwrap()), "0x070002000400000430750000000000000000");
    }
}

#[test]
fn call_data_of_every_extrinsic_matches_scalecodec() {
    let runtime = runtime_v14();
    let cases = calls();
    // JSON has no u128: an IPv6 address goes as a decimal string (the Python side reads such strings as integers).
    let request: Vec<serde_json::Value> = cases.iter().map(|(_, py)| py.clone()).collect();
    let answer = crosscheck(json!({ "calls": request }));
    for (i, (call, _)) in cases.iter().enumerate() {
        let ours = hex(&runtime.call_data(call).unwrap());
        assert_eq!(ours, answer["calls"][i].as_str().unwrap(), "{call:?}");
    }
    assert_eq!(answer["calls"][0], "0x070002000400000430750000000000000000");
}

#[test]
fn the_timelocked_and_mechanism_calls_encode_alike_in_the_v14_and_v16_metadata() {
    // scalecodec reads V14 only; the 393 runtime (V16) is checked against the same bytes.
    let v16 = OfflineRuntime::new(&metadata_v16(), 393, 1, genesis()).unwrap();
    for (call, _) in calls().iter().filter(|(c, _)| c.name().contains("timelocked") || c.name().contains("mechanism")) {
        assert_eq!(hex(&v16.call_data(call).unwrap()), hex(&runtime_v14().call_data(call).unwrap()), "{call:?}");
    }
}

#[test]
fn signed_extrinsics_decode_with_scalecodec_and_their_signatures_verify() {
    let runtime = runtime_v14();
    let signer = key();
    let birth_hash = [9u8; 32];
    let long =
        SubtensorCall::SetWeights { netuid: 2, dests: (0..200).collect(), weights: vec![7; 200], version_key: 1 };
    let cases = [
        (
            calls()[0].0.clone(),
            ExtensionParams {
                nonce: Some(5),
                tip: 0,
                mortal_period: 64,
                mortality: Some(Mortality::Mortal { period: 64, birth_block: 1000, birth_hash }),
            },
        ),
        (
            calls()[6].0.clone(),
            ExtensionParams { nonce: Some(0), tip: 1_000, mortal_period: 0, mortality: Some(Mortality::Immortal) },
        ),
        // Over 256 bytes: the signed payload is its BLAKE2b-256 hash.
        (
            long,
            ExtensionParams {
                nonce: Some(70_000),
                tip: 0,
                mortal_period: 4096,
                mortality: Some(Mortality::Mortal { period: 4096, birth_block: 5_000_123, birth_hash }),
            },
        ),
    ];
    let built: Vec<_> =
        cases.iter().map(|(call, params)| runtime.sign(call, &signer, params.clone()).unwrap()).collect();
    let request: Vec<_> = cases
        .iter()
        .zip(&built)
        .map(|((_, params), ext)| {
            let birth = match params.mortality {
                Some(Mortality::Mortal { birth_hash, .. }) => birth_hash,
                _ => genesis(),
            };
            json!({"hex": hex(&ext.bytes), "spec_version": 343, "transaction_version": 1,
                   "genesis_hash": hex(&genesis()), "birth_hash": hex(&birth)})
        })
        .collect();
    let answer = crosscheck(json!({ "signed": request }));
    for (i, ((call, params), ext)) in cases.iter().zip(&built).enumerate() {
        let got = &answer["signed"][i];
        assert_eq!(got["signature_ok"], true, "case {i}: signature over scalecodec's payload");
        assert_eq!(got["payload"].as_str().unwrap(), hex(&ext.signer_payload), "case {i}: signed payload");
        assert_eq!(got["signer"].as_str().unwrap(), hex(&signer.account().0));
        assert_eq!(got["nonce"], params.nonce.unwrap());
        assert_eq!(got["tip"], params.tip as u64);
        assert_eq!(got["call_module"], "SubtensorModule");
        assert_eq!(got["call_function"], call.name());
        match params.mortality.unwrap() {
            Mortality::Immortal => assert_eq!(got["era"], "00"),
            Mortality::Mortal { period, birth_block, .. } => {
                assert_eq!(got["era"], json!([period, birth_block % period]), "case {i}: era")
            }
        }
    }
    assert_eq!(answer["signed"][2]["payload"].as_str().unwrap().len(), 2 + 64, "hashed payload");
}

#[test]
fn commit_hash_matches_scalecodec_and_blake2b() {
    let cases = [
        (AccountId([7; 32]), 2u16, vec![0u16, 1], vec![30000u16, 35535], vec![9u16], 5u64),
        (key().account(), 65535, (0..100).collect(), vec![1; 100], (0..8).collect(), u64::MAX),
        (AccountId([0; 32]), 0, vec![], vec![], vec![], 0),
    ];
    let request: Vec<_> = cases
        .iter()
        .map(|(h, n, u, v, s, k)| {
            json!({"hotkey": hex(&h.0), "netuid": n, "uids": u, "values": v, "salt": s, "version_key": k.to_string()})
        })
        .collect();
    let mut request = json!({ "commits": request });
    for c in request["commits"].as_array_mut().unwrap() {
        c["version_key"] = serde_json::Value::from(c["version_key"].as_str().unwrap().parse::<u64>().unwrap());
    }
    let answer = crosscheck(request);
    for (i, (h, n, u, v, s, k)) in cases.iter().enumerate() {
        assert_eq!(answer["commits"][i]["preimage"].as_str().unwrap(), hex(&commit_preimage(h, *n, u, v, s, *k)));
        assert_eq!(answer["commits"][i]["hash"].as_str().unwrap(), hex(&commit_hash(h, *n, u, v, s, *k)));
    }
}

#[test]
fn keys_from_a_seed_and_from_an_expanded_secret_match_sr25519_bindings() {
    let answer = crosscheck(json!({ "keypairs": [{"seed": hex(&[1; 32])}, {"seed": hex(&[0xfe; 32])}] }));
    for (i, seed) in [[1u8; 32], [0xfe; 32]].iter().enumerate() {
        let from_seed = Sr25519Keypair::from_mini_secret(seed).unwrap();
        let secret: [u8; 64] = unhex(answer["keypairs"][i]["secret"].as_str().unwrap()).try_into().unwrap();
        let from_secret = Sr25519Keypair::from_expanded_secret(&secret).unwrap();
        let public = answer["keypairs"][i]["public"].as_str().unwrap();
        assert_eq!(hex(&from_seed.public()), public);
        assert_eq!(hex(&from_secret.public()), public);
    }
}

/// The 393 runtime's extension list (with SudoTransactionExtension,
/// CheckShieldedTxValidity, ...) is followed: only the ones with data add bytes.
#[test]
fn the_393_runtime_extensions_are_encoded_as_its_metadata_describes() {
    let runtime = OfflineRuntime::new(&metadata_v16(), 393, 1, genesis()).unwrap();
    let signer = key();
    let call = calls()[0].0.clone();
    let params = ExtensionParams {
        nonce: Some(5),
        tip: 0,
        mortal_period: 64,
        mortality: Some(Mortality::Mortal { period: 64, birth_block: 1000, birth_hash: [9; 32] }),
    };
    let ext = runtime.sign(&call, &signer, params).unwrap();
    let call_data = runtime.call_data(&call).unwrap();
    // length, 0x84, MultiAddress::Id, MultiSignature::Sr25519, then the extensions, then the call.
    let body = &ext.bytes[2..];
    assert_eq!(body[0], 0x84);
    assert_eq!(&body[1..34], [&[0u8][..], &signer.account().0].concat().as_slice());
    assert_eq!(body[34], 1);
    let extensions = &body[99..body.len() - call_data.len()];
    assert_eq!(extensions, [0x85, 0x02, 0x14, 0x00, 0x00], "era, nonce 5, tip 0, metadata mode Disabled");
    let mut implicit = 393u32.encode();
    implicit.extend(1u32.encode());
    implicit.extend(genesis());
    implicit.extend([9u8; 32]);
    implicit.push(0);
    assert_eq!(ext.signer_payload, [call_data.as_slice(), extensions, &implicit].concat());
}

/// The 393 metadata with one extension renamed: how a runtime that wraps or
/// adds an extension looks to the encoder.
fn v14_with_extension_renamed(from: &str, to: &str) -> Vec<u8> {
    let mut prefixed = RuntimeMetadataPrefixed::decode(&mut &metadata_v14()[..]).unwrap();
    let RuntimeMetadata::V14(m) = &mut prefixed.1 else { panic!("V14") };
    let e = m.extrinsic.signed_extensions.iter_mut().find(|e| e.identifier == from).unwrap();
    e.identifier = to.to_string();
    prefixed.encode()
}

#[test]
fn a_renamed_payment_extension_is_filled_by_its_wrapper_name() {
    let plain = runtime_v14();
    let wrapped = OfflineRuntime::new(
        &v14_with_extension_renamed("ChargeTransactionPayment", "ChargeTransactionPaymentWrapper"),
        343,
        1,
        genesis(),
    )
    .unwrap();
    let params = ExtensionParams { nonce: Some(1), tip: 77, mortal_period: 0, mortality: Some(Mortality::Immortal) };
    let call = calls()[0].0.clone();
    let a = plain.sign(&call, &key(), params.clone()).unwrap();
    let b = wrapped.sign(&call, &key(), params).unwrap();
    assert_eq!(a.signer_payload, b.signer_payload);
}

#[test]
fn an_unknown_extension_that_carries_data_is_refused_by_name() {
    let runtime =
        OfflineRuntime::new(&v14_with_extension_renamed("CheckNonce", "CheckNonceV2"), 343, 1, genesis()).unwrap();
    let err = runtime.sign(&calls()[0].0, &key(), ExtensionParams::default()).unwrap_err().to_string();
    assert!(err.contains("CheckNonceV2"), "{err}");
}
