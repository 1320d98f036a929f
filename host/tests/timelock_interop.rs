//! neuron-host's timelock commits (commit-reveal v4) against the Bittensor SDK's
//! own timelock code, run in Python: bittensor-core 0.1.5 (what bittensor 11
//! calls) and bittensor-drand 2.0.0 (the same functions, published before).
//! Ciphertexts go both ways with drand quicknet's real round-123 signature, and
//! the reveal round neuron-host picks equals the SDK's `get_encrypted_commit_v2`
//! on generated chain states. NEURON_TEST_PYTHON is the venv `cargo xtask test`
//! prepares.

use std::{path::PathBuf, process::Command};

use neuron_host::chain::{
    timelock::{self, Beacon, EpochSchedule, LocalBeacon, MAX_TEMPO},
    AccountId,
};
use parity_scale_codec::Decode;
use serde_json::{json, Value};

#[path = "common/rng.rs"]
mod rng;
use rng::Rng;

/// The SDK's two packagings of the same code.
const MODULES: [&str; 2] = ["bittensor_core", "bittensor_drand"];

/// quicknet's real signature of round 123.
const ROUND_123_SIGNATURE: &str =
    "b75c69d0b72a5d906e854e808ba7e2accb1542ac355ae486d591aa9d43765482e26cd02df835d3546d23c4b13e0dfc92";

/// Generated chain states compared with the SDK's reveal round, per module.
const STATES: usize = 300;

fn python() -> String {
    std::env::var("NEURON_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("NEURON_TEST_PYTHON is not set: run the tests with `cargo xtask test`, which installs the Bittensor SDK in a venv and sets it")
    })
}

fn sdk(module: &str, cases: &[Value]) -> Vec<Value> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/python/tlock_interop.py");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cases.json");
    std::fs::write(&path, serde_json::to_vec(cases).unwrap()).unwrap();
    let result = dir.path().join("answers.json");
    let out = Command::new(python()).arg(script).arg(module).arg(&path).arg(&result).output().expect("python runs");
    assert!(out.status.success(), "{module} failed: {}", String::from_utf8_lossy(&out.stderr));
    let answers: Vec<Value> = serde_json::from_slice(&std::fs::read(&result).unwrap()).expect("the helper writes JSON");
    assert_eq!(answers.len(), cases.len());
    answers
}

fn unhex(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap_or_else(|| panic!("not a hex string: {v}"))).unwrap()
}

/// A validator's weights: empty, small, or as wide as a full subnet.
struct Weights {
    hotkey: AccountId,
    uids: Vec<u16>,
    values: Vec<u16>,
    version_key: u64,
}

fn weights(r: &mut Rng, i: usize) -> Weights {
    let n = match i % 4 {
        0 => 0,
        1 => 1 + r.below(8) as usize,
        2 => 64 + r.below(200) as usize,
        _ => 256,
    };
    let mut hotkey = [0u8; 32];
    hotkey.iter_mut().for_each(|b| *b = r.below(256) as u8);
    Weights {
        hotkey: AccountId(hotkey),
        uids: (0..n).map(|_| r.below(65536) as u16).collect(),
        values: (0..n).map(|_| if r.below(5) == 0 { 65535 } else { r.below(65536) as u16 }).collect(),
        version_key: if i.is_multiple_of(2) { r.next() } else { r.below(10_000_000) },
    }
}

fn payload(w: &Weights) -> Vec<u8> {
    timelock::encode_payload(&w.hotkey, &w.uids, &w.values, w.version_key)
}

fn assert_payload_is(bytes: &[u8], w: &Weights, what: &str) {
    let p = timelock::decode_payload(bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(p.hotkey, w.hotkey.0, "{what}: hotkey");
    assert_eq!(p.hotkey_account(), Some(w.hotkey), "{what}: hotkey as the chain reads it");
    assert_eq!(p.uids, w.uids, "{what}: uids");
    assert_eq!(p.values, w.values, "{what}: values");
    assert_eq!(p.version_key, w.version_key, "{what}: version key");
    assert_eq!(bytes, payload(w), "{what}: bytes");
}

#[test]
fn sdk_opens_neuron_host_ciphertexts() {
    let mut r = Rng::new(0x71c0_0001);
    let quicknet = Beacon::quicknet();
    let cases: Vec<Weights> = (0..12).map(|i| weights(&mut r, i)).collect();
    let mut requests: Vec<Value> = cases
        .iter()
        .map(|w| {
            let ct = timelock::encrypt(&quicknet, 123, &payload(w)).unwrap();
            json!({"op": "decrypt", "ciphertext": hex::encode(ct), "round": 123, "signature": ROUND_123_SIGNATURE})
        })
        .collect();
    // Refusals: a ciphertext for round 124, and one for a local beacon's round 123.
    let for_124 = timelock::encrypt(&quicknet, 124, &payload(&cases[1])).unwrap();
    let local = LocalBeacon::from_seed([3; 32]).beacon(0, 3);
    let for_local = timelock::encrypt(&local, 123, &payload(&cases[1])).unwrap();
    for ct in [for_124, for_local] {
        requests.push(
            json!({"op": "decrypt", "ciphertext": hex::encode(ct), "round": 123, "signature": ROUND_123_SIGNATURE}),
        );
    }
    for module in MODULES {
        let answers = sdk(module, &requests);
        for (i, (w, a)) in cases.iter().zip(&answers).enumerate() {
            assert!(a.get("error").is_none(), "{module} refused case {i}: {a}");
            assert_payload_is(&unhex(&a["plaintext"]), w, &format!("{module} case {i}"));
        }
        for a in &answers[cases.len()..] {
            assert!(a["message"].as_str().unwrap().contains("InvalidSignature"), "{module} should refuse: {a}");
        }
    }
}

#[test]
fn neuron_host_opens_sdk_ciphertexts() {
    let mut r = Rng::new(0x71c0_0002);
    let signature = hex::decode(ROUND_123_SIGNATURE).unwrap();
    let cases: Vec<Weights> = (0..8).map(|i| weights(&mut r, i)).collect();
    // Chain states whose reveal is some blocks ahead, for `get_encrypted_commit_v2`.
    let schedule = EpochSchedule {
        current_block: 5_000_123,
        tempo: 360,
        last_epoch_block: 5_000_000,
        pending_epoch_at: 0,
        subnet_epoch_index: 13_888,
        blocks_since_last_step: 123,
    };
    let ingest_blocks = timelock::first_reveal_block(&schedule, 2).unwrap() + 3 - schedule.current_block;
    let mut requests = Vec::new();
    for w in &cases {
        // The plaintext the SDK is given, encrypted by its `encrypt_at_round`.
        requests.push(json!({"op": "encrypt_at_round", "data": hex::encode(payload(w)), "round": 123}));
        // The SDK's own commit, payload encoding included, aimed at round 123.
        requests.push(json!({
            "op": "commit",
            "uids": w.uids,
            "weights": w.values,
            "version_key": w.version_key,
            "last_epoch_block": schedule.last_epoch_block,
            "pending_epoch_at": schedule.pending_epoch_at,
            "subnet_epoch_index": schedule.subnet_epoch_index,
            "tempo": schedule.tempo,
            "blocks_since_last_step": schedule.blocks_since_last_step,
            "current_block": schedule.current_block,
            "subnet_reveal_period_epochs": 2,
            "hotkey": hex::encode(w.hotkey.0),
            "aim_round": 123,
            "ingest_blocks": ingest_blocks,
        }));
    }
    for module in MODULES {
        let answers = sdk(module, &requests);
        for (i, (w, pair)) in cases.iter().zip(answers.chunks(2)).enumerate() {
            let what = format!("{module} case {i}");
            let (envelope, commit) = (&pair[0], &pair[1]);
            assert!(envelope.get("error").is_none() && commit.get("error").is_none(), "{what}: {pair:?}");

            let (ct, round) = <(Vec<u8>, u64)>::decode(&mut &unhex(&envelope["envelope"])[..]).unwrap();
            assert_eq!(round, 123, "{what}: envelope round");
            assert_payload_is(&timelock::decrypt(&ct, &signature).unwrap(), w, &format!("{what} encrypt_at_round"));

            assert_eq!(commit["round"], 123, "{what}: the commit's round");
            let ct = unhex(&commit["commit"]);
            assert_eq!(ct.len(), 244 + payload(w).len(), "{what}: commit length");
            let opened = timelock::decrypt(&ct, &signature).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_payload_is(&opened, w, &format!("{what} get_encrypted_commit_v2"));
            // And a different round's signature does not open it.
            let err = timelock::decrypt(&ct, &LocalBeacon::from_seed([1; 32]).sign_round(123)).unwrap_err();
            assert!(err.contains("another round or beacon"), "{err}");
        }
    }
}

/// Chain states of every kind the SDK's simulation distinguishes: epochs due or
/// not, owner-triggered epochs, stalled subnets, reveal periods 0 to 6, tempos
/// from 1 to above the forced-epoch limit, finney's and fast-block block times.
fn states(r: &mut Rng) -> Vec<(EpochSchedule, u64, f64)> {
    (0..STATES)
        .map(|i| {
            let tempo = match if i % 50 == 7 { 6 } else { r.below(6) } {
                0 => 1 + r.below(10) as u16,
                1 => 360,
                2 => 99 + r.below(3) as u16,
                3 => 1 + r.below(2000) as u16,
                4 => {
                    if r.below(2) == 0 {
                        MAX_TEMPO as u16
                    } else {
                        50_000 + r.below(15_536) as u16
                    }
                }
                5 => 10 + r.below(720) as u16,
                _ => 0, // no epochs: the SDK refuses
            };
            let current_block = r.below(8_000_000) + if r.below(10) == 0 { 0 } else { 200_000 };
            let since = match r.below(5) {
                0 => 0,
                1 => u64::from(tempo),
                2 => u64::from(tempo).saturating_sub(1),
                _ => r.below(2 * u64::from(tempo) + 2),
            }
            .min(current_block);
            let last_epoch_block = current_block - since;
            let pending_epoch_at = match r.below(6) {
                0 => current_block + r.below(u64::from(tempo) + 3),
                1 => current_block.saturating_sub(r.below(3)),
                _ => 0,
            };
            let blocks_since_last_step = match r.below(8) {
                0 => MAX_TEMPO + r.below(3),
                1 => r.below(100_000),
                _ => since,
            };
            let schedule = EpochSchedule {
                current_block,
                tempo,
                last_epoch_block,
                pending_epoch_at,
                subnet_epoch_index: r.below(200_000),
                blocks_since_last_step,
            };
            let reveal_period_epochs = if r.below(10) == 0 { r.below(7) } else { 1 + r.below(3) };
            let block_time = match r.below(5) {
                0 | 1 => 12.0,
                2 => 0.25,
                3 => 6.0,
                _ => 0.1 + 20.0 * r.unit(),
            };
            (schedule, reveal_period_epochs, block_time)
        })
        .collect()
}

#[test]
fn reveal_round_matches_the_sdk() {
    let mut r = Rng::new(0x71c0_0003);
    let states = states(&mut r);
    let requests: Vec<Value> = states
        .iter()
        .map(|(s, rpe, block_time)| {
            json!({
                "op": "commit",
                "uids": [0, 1],
                "weights": [65535, 1],
                "version_key": 1,
                "last_epoch_block": s.last_epoch_block,
                "pending_epoch_at": s.pending_epoch_at,
                "subnet_epoch_index": s.subnet_epoch_index,
                "tempo": s.tempo,
                "blocks_since_last_step": s.blocks_since_last_step,
                "current_block": s.current_block,
                "subnet_reveal_period_epochs": rpe,
                "block_time": block_time,
                "hotkey": hex::encode([7u8; 32]),
            })
        })
        .collect();
    for module in MODULES {
        let answers = sdk(module, &requests);
        let (mut exact, mut refused) = (0, 0);
        let mut mismatches = Vec::new();
        for ((s, rpe, bt), a) in states.iter().zip(&answers) {
            let what = format!("{s:?} reveal period {rpe} block time {bt}");
            // The SDK reads the clock between t0 and t1; the round only grows with time.
            let (Some(t0), Some(t1)) = (a["t0"].as_f64(), a["t1"].as_f64()) else {
                // The SDK refused: so must we.
                let ours = timelock::reveal_round(s, *rpe, *bt, 0.0);
                assert!(ours.is_err(), "{module} refused ({a}) but neuron-host gives {ours:?} for {what}");
                refused += 1;
                continue;
            };
            let sdk_round = a["round"].as_u64().unwrap();
            let lo = timelock::reveal_round(s, *rpe, *bt, t0).unwrap_or_else(|e| panic!("{what}: {e}"));
            let hi = timelock::reveal_round(s, *rpe, *bt, t1).unwrap();
            if !(lo..=hi).contains(&sdk_round) {
                mismatches.push(format!("{what}: sdk {sdk_round}, neuron-host {lo}..={hi}"));
            }
            exact += usize::from(lo == hi);
            // The commit itself is a well-formed ciphertext of the payload's size.
            assert_eq!(unhex(&a["commit"]).len(), 244 + 33 + 5 + 5 + 8, "{what}");
        }
        assert!(mismatches.is_empty(), "{module}: {} of {STATES} differ; first: {}", mismatches.len(), mismatches[0]);
        assert!(refused >= STATES / 50, "{module}: only {refused} refusals (tempo 0) were tried");
        assert!(exact >= 250, "{module}: only {exact} states were pinned to one round");
    }
}
