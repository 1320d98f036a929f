//! Recording and re-scoring: a local subnet (the real binary, the `tiny` GPT
//! model, two miners) records two epochs with `[validator.record]`; then
//! `neuron-host rescore` replays the record through the policy the validator
//! ran (scoring-loss) and another one (scoring-shapley). The first gives back
//! the exact u16 weights that were set; the second valid, different ones.
//! A corrupted, a truncated and an unknown-version record are refused in one line.

use std::{
    path::{Path, PathBuf},
    process::Output,
};

use neuron_e2e::{host_command, plugin, subnet_command, TinySubnet, CLEAN_AND_NOISY_MINERS};
use serde_json::Value;

fn config(record: &Path) -> String {
    let sections = format!("[validator.record]\ndir = \"{}\"\n\n{CLEAN_AND_NOISY_MINERS}", record.display());
    TinySubnet { sections: &sections, ..Default::default() }.toml()
}

fn rescore(record: &Path, extra: &[&str]) -> Output {
    host_command()
        .arg("rescore")
        .arg("--record")
        .arg(record)
        .arg("--scoring")
        .arg(plugin("scoring_loss"))
        .arg("--scoring")
        .arg(plugin("scoring_shapley"))
        .args(extra)
        .output()
        .unwrap()
}

fn u16s(v: &Value) -> Vec<u16> {
    v.as_array().unwrap_or_else(|| panic!("not an array: {v}")).iter().map(|x| x.as_u64().unwrap() as u16).collect()
}

/// Refused with one line on stderr and a non-zero exit.
fn refused(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "refused: {stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    errors[0].to_string()
}

fn copy_record(from: &Path, to: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(to).unwrap();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        std::fs::copy(entry.path(), &dest).unwrap();
        files.push(dest);
    }
    files.sort();
    files
}

#[test]
fn rescoring_a_recorded_subnet_with_its_own_policy_gives_back_the_weights_it_set() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record");
    let run = dir.path().join("run");
    let out = subnet_command(dir.path(), &config(&record), "run", &["scoring_loss"], 2)
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}\n{stderr}", String::from_utf8_lossy(&out.stdout));
    assert!(stderr.contains("recording steps and epochs to"), "{stderr}");
    let epochs: Vec<Value> = std::fs::read_to_string(run.join("epochs.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(epochs.len(), 2);

    let out = rescore(&record, &["--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let replay: Value = serde_json::from_slice(&out.stdout).expect("rescore --json prints JSON");
    let names: Vec<&str> = replay["policies"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["scoring-loss", "scoring-shapley"]);
    assert_eq!(replay["policies"][0]["config_source"], "recorded with the live scorer");
    assert_eq!(replay["policies"][1]["config_source"], "plugin defaults");
    assert!(replay["steps"].as_u64().unwrap() >= 2, "{replay}");
    let replayed = replay["epochs"].as_array().unwrap();
    assert_eq!(replayed.len(), 2, "{replay}");

    let mut differs = false;
    for (e, live) in replayed.iter().zip(&epochs) {
        assert_eq!(e["epoch"], live["epoch"]);
        let rec = &e["recorded"];
        assert_eq!(rec["scorer"], "scoring-loss");
        // Commit-reveal is on in the local subnet: the weights recorded are the ones committed.
        assert_eq!(rec["outcome"], "committed");
        let (rec_uids, rec_weights) = (u16s(&rec["uids"]), u16s(&rec["weights"]));
        assert!(!rec_uids.is_empty());
        // The record holds the weights the validator set (its run log has them as shares).
        let total: f64 = rec_weights.iter().map(|&w| f64::from(w)).sum();
        for row in live["uids"].as_array().unwrap() {
            let uid = row["uid"].as_u64().unwrap() as u16;
            let w = rec_uids.iter().position(|&u| u == uid).map_or(0.0, |i| f64::from(rec_weights[i]) / total);
            assert!((w - row["weight"].as_f64().unwrap()).abs() < 1e-6, "uid {uid}: {w} vs {row}");
        }

        // The same policy gives back exactly the same u16 weights.
        let same = &e["policies"][0];
        assert!(same["error"].is_null(), "{same}");
        assert_eq!((u16s(&same["uids"]), u16s(&same["weights"])), (rec_uids.clone(), rec_weights.clone()), "{e}");

        // The other policy: valid weights (the validator left out, the largest at u16::MAX).
        let other = &e["policies"][1];
        assert!(other["error"].is_null(), "{other}");
        let (uids, weights) = (u16s(&other["uids"]), u16s(&other["weights"]));
        let own = e["own_uid"].as_u64().unwrap() as u16;
        assert!(!uids.is_empty() && uids.len() == weights.len() && !uids.contains(&own), "{other}");
        assert_eq!(weights.iter().max(), Some(&u16::MAX), "{other}");
        differs |= weights != rec_weights || uids != rec_uids;

        for p in e["policies"].as_array().unwrap() {
            let incentive: Vec<f64> = p["incentive"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
            assert!(incentive.iter().all(|x| (0.0..=1.0).contains(x)), "{p}");
            let sum: f64 = incentive.iter().sum();
            assert!((sum - 1.0).abs() < 1e-3, "incentive shares add up to one: {p}");
            assert_eq!(incentive[own as usize], 0.0, "the validator earns no incentive from its own weights");
        }
    }
    assert!(differs, "scoring-shapley weighs the miners differently from scoring-loss: {replay}");

    // The table shows the policies side by side.
    let out = rescore(&record, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("A = scoring-loss") && table.contains("B = scoring-shapley"), "{table}");
    assert_eq!(table.matches("weight A weight B | incentive A incentive B").count(), 2, "{table}");

    // A flipped byte anywhere in a frame: refused in one line naming the file.
    let files = copy_record(&record, &dir.path().join("corrupt"));
    let last = files.last().unwrap();
    let mut bytes = std::fs::read(last).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(last, &bytes).unwrap();
    let line = refused(&rescore(&dir.path().join("corrupt"), &["--json"]));
    assert!(line.contains(&last.file_name().unwrap().to_string_lossy().to_string()) && line.contains("byte"), "{line}");

    // Cut short at the end (a validator killed while writing): refused, or replayed up to it with --allow-partial.
    let files = copy_record(&record, &dir.path().join("truncated"));
    let last = files.last().unwrap();
    let bytes = std::fs::read(last).unwrap();
    std::fs::write(last, &bytes[..bytes.len() - 7]).unwrap();
    let line = refused(&rescore(&dir.path().join("truncated"), &["--json"]));
    assert!(line.contains("truncated") && line.contains("--allow-partial"), "{line}");
    let out = rescore(&dir.path().join("truncated"), &["--json", "--allow-partial"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let partial: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(partial["partial_tail"].as_str().unwrap().contains("truncated"), "{partial}");
    assert_eq!(partial["epochs"].as_array().unwrap().len(), 1, "the last epoch frame was cut");

    // A record of another format version.
    let files = copy_record(&record, &dir.path().join("future"));
    let mut bytes = std::fs::read(&files[0]).unwrap();
    bytes[4..6].copy_from_slice(&99u16.to_le_bytes());
    std::fs::write(&files[0], &bytes).unwrap();
    let line = refused(&rescore(&dir.path().join("future"), &["--json"]));
    assert!(line.contains("version 99"), "{line}");
}
