//! The run log: JSON lines a program can read, and event files TensorBoard's
//! own reader (the `tensorboard` package) finds the scalars in.

use std::{path::PathBuf, process::Command};

use neuron_host::metrics::runlog::RunLog;
use serde_json::{json, Value};

#[test]
fn tensorboard_reads_the_scalars_the_run_logged() {
    let python = std::env::var("NEURON_TEST_PYTHON")
        .unwrap_or_else(|_| panic!("NEURON_TEST_PYTHON is not set: run the tests with `cargo xtask test`"));
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    {
        let mut log = RunLog::open(&run).unwrap();
        for step in 0..50i64 {
            let loss = 5.5 - step as f64 * 0.05;
            log.step(
                &json!({"step": step, "loss": loss}),
                step,
                &[("miner/loss", loss), ("miner/tokens_per_s", 1000.0 + step as f64)],
            );
        }
        log.epoch(
            &json!({"epoch": 1, "weights": [0.25, 0.75]}),
            1,
            &[("validator/weight/uid1", 0.25), ("validator/weight/uid2", 0.75)],
        );
    }
    let out_path = dir.path().join("scalars.json");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/python/tb_scalars.py");
    let out = Command::new(&python).arg(script).arg(&run).arg(&out_path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let scalars: Value = serde_json::from_slice(&std::fs::read(out_path).unwrap()).unwrap();
    let loss = scalars["miner/loss"].as_array().expect("TensorBoard found miner/loss");
    assert_eq!(loss.len(), 50);
    assert_eq!(loss[10][0], 10);
    assert!((loss[10][1].as_f64().unwrap() - 5.0).abs() < 1e-6);
    assert_eq!(scalars["miner/tokens_per_s"].as_array().unwrap().len(), 50);
    assert!((scalars["validator/weight/uid2"][0][1].as_f64().unwrap() - 0.75).abs() < 1e-6);

    let steps = std::fs::read_to_string(run.join("steps.jsonl")).unwrap();
    let lines: Vec<Value> = steps.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 50);
    assert_eq!(lines[49]["step"], 49);
    let epochs = std::fs::read_to_string(run.join("epochs.jsonl")).unwrap();
    assert_eq!(serde_json::from_str::<Value>(epochs.trim()).unwrap()["weights"][1], 0.75);
}
