//! A whole local subnet, run as the real binary on the `tiny` GPT model: the
//! embedded chain, one validator and three miners talking signed HTTP over
//! loopback. Miner 1 trains on clean data, miner 2 on data with 60% of the
//! targets replaced by noise, miner 3 on clean data but stops answering after
//! the first epoch.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use neuron_e2e::TinySubnet;
use serde_json::Value;

/// Two miners on clean data (the second stops answering after epoch 1) and
/// one on noisy data.
const MINERS: &str = r#"
[[subnet.miners]]
seed = 11
noise = 0.0

[[subnet.miners]]
seed = 12
noise = 0.6

[[subnet.miners]]
seed = 13
noise = 0.0
stop_answering_after = 1
"#;

fn subnet_command(dir: &Path, epochs: u64) -> Command {
    // A silent uid is zeroed after 3 failed queries in a row, not the default 8: on a loaded
    // machine an epoch of 10 one-second blocks can hold fewer than 8 validator steps, and the
    // silent miner would keep a small weight into epoch 2 (seen with a parallel cold build).
    let config = TinySubnet { validator: "zero_after_misses = 3", sections: MINERS, ..Default::default() }.toml();
    neuron_e2e::subnet_command(dir, &config, "run", &["scoring_loss"], epochs)
}

fn epochs(run: &Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("epochs.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("epochs.jsonl holds JSON lines"))
        .collect()
}

fn row<'a>(epoch: &'a Value, name: &str) -> &'a Value {
    epoch["uids"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {epoch}"))
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn four_epochs_pay_the_miner_on_clean_data_and_drop_the_silent_one() {
    // Four: with commit-reveal on, an epoch's weights count in the chain's epoch after the next.
    let dir = tempfile::tempdir().unwrap();
    let out = subnet_command(dir.path(), 4).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));

    let run = dir.path().join("run");
    let epochs = epochs(&run);
    assert_eq!(epochs.len(), 4, "{stdout}");
    // Commit-reveal is on, as on finney: each epoch's weights are timelocked to a drand round of
    // the next epoch, and the chain reveals them itself (the next epoch's report says so).
    // (The validator checks at its next epoch's end, or the one after when that came before the
    // round's pulse: its epochs need not line up with the chain's.)
    let lines: Vec<&str> = epochs.iter().map(|e| e["weights"].as_str().unwrap()).collect();
    for (i, e) in epochs.iter().enumerate() {
        assert_eq!(e["epoch"], i as u64 + 1);
        assert!(lines[i].starts_with("committed, timelocked to drand round"), "epoch {} weights: {}", i + 1, lines[i]);
        assert!(!lines[i].contains("NOT revealed"), "epoch {}: {}", i + 1, lines[i]);
    }
    for k in 1..=2 {
        let said = format!("epoch {k}'s weights revealed by the chain");
        assert!(lines[k..(k + 2).min(4)].iter().any(|l| l.contains(&said)), "{said}: {lines:?}");
    }
    assert!(stdout.contains("validator (uid 0):") && stdout.contains("4 epochs, weights accepted in 4"), "{stdout}");
    assert!(stdout.contains("highest incentive: miner1 (uid 1) "), "the clean miner, by name: {stdout}");
    // The console shows a table per epoch.
    assert_eq!(stdout.matches("uid  name").count(), 4, "{stdout}");

    let last = &epochs[3];
    let (clean, noisy, silent) = (row(last, "miner1"), row(last, "miner2"), row(last, "miner3"));
    assert!(f(&clean["weight"]) > f(&noisy["weight"]), "clean data earns the larger weight: {last}");
    assert!(f(&clean["incentive"]) > f(&noisy["incentive"]), "and the larger incentive: {last}");
    assert!(f(&clean["loss"]) < f(&noisy["loss"]), "because its loss is lower: {last}");
    // Silent from epoch 2: its weight is zero from then on, and once those weights are revealed
    // (in the next epoch) the chain's Yuma epoch pays it nothing.
    assert_eq!(f(&row(&epochs[1], "miner3")["weight"]), 0.0, "{}", epochs[1]);
    assert_eq!(f(&silent["weight"]), 0.0, "{last}");
    assert_eq!(f(&silent["score"]), 0.0, "{last}");
    assert_eq!(f(&silent["incentive"]), 0.0, "{last}");
    assert!(f(&row(&epochs[0], "miner3")["weight"]) > 0.0, "it earned while it answered: {}", epochs[0]);
    assert!(f(&row(&epochs[0], "miner3")["answered"]) > 0.0);

    // The run log has training steps of every neuron, and the config it ran with.
    let steps = std::fs::read_to_string(run.join("steps.jsonl")).unwrap();
    for name in ["validator", "miner1", "miner2", "miner3"] {
        assert!(steps.contains(&format!("\"neuron\":\"{name}\"")), "no steps of {name}");
    }
    assert!(std::fs::read_to_string(run.join("config.toml")).unwrap().contains("stop_answering_after = 1"));
}

#[test]
fn interrupt_stops_cleanly_with_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = subnet_command(dir.path(), 100).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let run = dir.path().join("run");
    let deadline = Instant::now() + Duration::from_secs(240);
    while epochs(&run).is_empty() {
        assert!(Instant::now() < deadline, "no epoch within 4 minutes");
        assert!(child.try_wait().unwrap().is_none(), "the subnet exited early");
        std::thread::sleep(Duration::from_millis(200));
    }
    let kill = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "Ctrl-C is a clean stop: {stdout}\n{stderr}");
    assert!(stderr.contains("stopping after the current step"), "{stderr}");
    assert!(
        stdout.contains("stopped after 1 of 100 epochs") || stdout.contains("stopped after 2 of 100 epochs"),
        "{stdout}"
    );
    for name in ["miner1", "miner2", "miner3"] {
        assert!(stdout.contains(&format!("{name} (uid ")), "{name} summarised: {stdout}");
    }
    assert!(stdout.contains("run log in"), "{stdout}");
    if stdout.contains("stopped after 1 of 100 epochs") {
        // Epoch 1's weights are revealed only in epoch 2: nobody has earned anything yet, and the
        // summary says so rather than naming a "highest" of all zeros.
        assert!(stdout.contains("no incentive yet: no miner had earned any by the last epoch"), "{stdout}");
        assert!(!stdout.contains("highest incentive"), "{stdout}");
    }
}
