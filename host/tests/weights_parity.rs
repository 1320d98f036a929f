//! The weights a validator emits equal what the Bittensor SDK computes, on
//! random inputs: bittensor 10's `process_weights_for_netuid` +
//! `convert_weights_and_uids_for_emit` (the legacy pipeline) and bittensor
//! 11's `SetWeights` conform step. The reference is the SDK itself, run in
//! Python (`cargo xtask test` prepares the interpreters): NEURON_TEST_PYTHON
//! has bittensor 11, NEURON_TEST_PYTHON_SDK10 has bittensor 10.

use std::{path::PathBuf, process::Command};

use neuron_host::weights::{emit, WeightLimits, WeightsPipeline};
use serde_json::{json, Value};

#[path = "common/rng.rs"]
mod rng;
use rng::Rng;

const CASES: usize = 1500;

fn python(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run the tests with `cargo xtask test`, which installs the Bittensor SDK in a venv and sets it")
    })
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/python/weights_parity.py")
}

struct Case {
    uids: Vec<u16>,
    weights: Vec<f32>,
    limits: WeightLimits,
    self_uid: u16,
}

/// Random scores shaped like a validator's: dense or sparse, with zeros,
/// ties, tiny and dominant entries; random subnet rules.
fn cases(seed: u64) -> Vec<Case> {
    let mut r = Rng::new(seed);
    (0..CASES)
        .map(|i| {
            let n = 1 + r.below(if i % 5 == 0 { 300 } else { 40 }) as usize;
            let shape = r.below(6);
            let weights: Vec<f32> = (0..n)
                .map(|_| {
                    let x = match shape {
                        0 => r.unit(),
                        1 => (-r.unit().max(1e-12).ln()) * 0.3,
                        2 => (r.below(4) as f64) / 3.0,
                        3 => r.unit().powi(8),
                        4 => r.unit() * 1e-6,
                        _ => {
                            if r.below(10) == 0 {
                                50.0 * r.unit()
                            } else {
                                r.unit() * 0.1
                            }
                        }
                    };
                    if r.below(4) == 0 {
                        0.0
                    } else {
                        x as f32
                    }
                })
                .collect();
            let mut uids: Vec<u16> = (0..n as u16).collect();
            if r.below(3) == 0 {
                for k in (1..n).rev() {
                    uids.swap(k, r.below(k as u64 + 1) as usize);
                }
            }
            let num_neurons = n + r.below(3) as usize;
            let min_allowed = match r.below(4) {
                0 => 0,
                1 => 1,
                2 => r.below(n as u64 + 4) as u16,
                _ => 8,
            };
            let max_weight_limit = match r.below(4) {
                0 => 65535,
                1 => 1000 + r.below(64535) as u16,
                2 => r.below(6000) as u16,
                _ => (65535 / (1 + r.below(10))) as u16,
            };
            let exclude_quantile = if r.below(3) == 0 { r.below(65536) as u16 } else { 0 };
            Case {
                uids,
                weights,
                limits: WeightLimits {
                    num_neurons,
                    min_allowed_weights: min_allowed,
                    max_weight_limit,
                    exclude_quantile,
                },
                self_uid: r.below(n as u64 + 1) as u16,
            }
        })
        .collect()
}

fn reference(var: &str, mode: &str, cases: &[Case]) -> Vec<Value> {
    let json_cases: Vec<Value> = cases
        .iter()
        .map(|c| {
            json!({
                "uids": c.uids,
                // f64 of each f32 is exact, so Python's float32 cast gives back the same f32.
                "weights": c.weights.iter().map(|&w| f64::from(w)).collect::<Vec<_>>(),
                "n": c.limits.num_neurons,
                "min_allowed": c.limits.min_allowed_weights,
                "max_limit": c.limits.max_weight_limit,
                "exclude_quantile": c.limits.exclude_quantile,
                "self_uid": c.self_uid,
            })
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cases.json");
    std::fs::write(&path, serde_json::to_vec(&json_cases).unwrap()).unwrap();
    let result = dir.path().join("reference.json");
    let out = Command::new(python(var)).arg(script()).arg(mode).arg(&path).arg(&result).output().expect("python runs");
    assert!(out.status.success(), "reference failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&std::fs::read(&result).unwrap()).expect("reference writes JSON")
}

fn describe(c: &Case) -> String {
    format!("uids {:?} weights {:?} limits {:?} self {}", c.uids, c.weights, c.limits, c.self_uid)
}

#[test]
fn legacy_pipeline_matches_bittensor_10() {
    let cases = cases(0x5eed_0001);
    let reference = reference("NEURON_TEST_PYTHON_SDK10", "legacy", &cases);
    let mut mismatches = Vec::new();
    for (c, want) in cases.iter().zip(&reference) {
        let (u, v) = emit(WeightsPipeline::Legacy, &c.uids, &c.weights, c.limits, None).unwrap();
        let want_u: Vec<u16> = serde_json::from_value(want[0].clone()).unwrap();
        let want_v: Vec<u16> = serde_json::from_value(want[1].clone()).unwrap();
        if (u.clone(), v.clone()) != (want_u.clone(), want_v.clone()) {
            mismatches.push(format!("{}\n  ours {:?} {:?}\n  sdk  {:?} {:?}", describe(c), u, v, want_u, want_v));
        }
    }
    assert!(mismatches.is_empty(), "{} of {CASES} differ; first:\n{}", mismatches.len(), mismatches[0]);
}

#[test]
fn sdk11_pipeline_matches_bittensor_11() {
    let cases = cases(0x5eed_0002);
    let reference = reference("NEURON_TEST_PYTHON", "sdk11", &cases);
    let mut mismatches = Vec::new();
    for (c, want) in cases.iter().zip(&reference) {
        let ours = emit(WeightsPipeline::Sdk11, &c.uids, &c.weights, c.limits, Some(c.self_uid));
        let same = match (&ours, want) {
            (Ok((u, v)), Value::Array(pair)) => {
                serde_json::from_value::<Vec<u16>>(pair[0].clone()).unwrap() == *u
                    && serde_json::from_value::<Vec<u16>>(pair[1].clone()).unwrap() == *v
            }
            (Err(_), Value::Object(_)) => true,
            _ => false,
        };
        if !same {
            mismatches.push(format!("{}\n  ours {:?}\n  sdk  {}", describe(c), ours, want));
        }
    }
    assert!(mismatches.is_empty(), "{} of {CASES} differ; first:\n{}", mismatches.len(), mismatches[0]);
}
