//! Swapping the scoring policy of a running local subnet (the real binary, the
//! `tiny` GPT model, two miners): the config file is rewritten while the run
//! goes on, and the validator applies it at the next epoch boundary without a
//! restart. A broken config noticed by its file change alone (no signal) is
//! refused in one line and the old scorer stays; a good one announced by
//! SIGHUP alone (the file's size and modification time kept, so only the
//! signal can have triggered it) switches scoring-loss → scoring-shapley.

use std::{
    fs::File,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use neuron_e2e::{subnet_command, TinySubnet, CLEAN_AND_NOISY_MINERS};
use serde_json::Value;

fn config(scorer: &str, validator_extra: &str) -> String {
    let top = format!("scorer = \"{scorer}\"");
    TinySubnet { top: &top, validator: validator_extra, sections: CLEAN_AND_NOISY_MINERS, ..Default::default() }.toml()
}

/// Writes `text` in place of `path` at once (a rename), so the validator never reads half a file.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("JSON lines"))
        .collect()
}

fn wait_for_epochs(child: &mut Child, run: &Path, n: usize, stderr: &Path) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while jsonl(&run.join("epochs.jsonl")).len() < n {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the subnet exited before epoch {n}: {}",
            std::fs::read_to_string(stderr).unwrap_or_default()
        );
        assert!(Instant::now() < deadline, "no epoch {n} within 5 minutes");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_running_subnet_swaps_its_scorer_at_an_epoch_boundary_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("subnet.toml");
    let run = dir.path().join("run");
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child =
        subnet_command(dir.path(), &config("scoring-loss", ""), "run", &["scoring_loss", "scoring_shapley"], 4)
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(File::create(&out_path).unwrap()))
            .stderr(Stdio::from(File::create(&err_path).unwrap()))
            .spawn()
            .unwrap();
    let pid = child.id();

    // After epoch 1: a config with an unknown key, noticed by its file change alone.
    wait_for_epochs(&mut child, &run, 1, &err_path);
    let broken = config("scoring-shapley", "bogus_key = 1");
    replace(&config_path, &broken);
    let broken_stamp = std::fs::metadata(&config_path).unwrap().modified().unwrap();

    // After epoch 2: the good config, same length and modification time, then SIGHUP.
    wait_for_epochs(&mut child, &run, 2, &err_path);
    let mut good = config("scoring-shapley", "");
    assert!(good.len() < broken.len());
    good.push_str(&format!("#{}\n", "-".repeat(broken.len() - good.len() - 2)));
    assert_eq!(good.len(), broken.len());
    replace(&config_path, &good);
    File::options().write(true).open(&config_path).unwrap().set_modified(broken_stamp).unwrap();
    let hup = Command::new("kill").args(["-HUP", &pid.to_string()]).status().unwrap();
    assert!(hup.success());

    let status = child.wait().unwrap();
    let stdout = std::fs::read_to_string(&out_path).unwrap();
    let stderr = std::fs::read_to_string(&err_path).unwrap();
    assert!(status.success(), "the same process ran to the end: {stdout}\n{stderr}");

    let epochs = jsonl(&run.join("epochs.jsonl"));
    assert_eq!(epochs.len(), 4, "{stdout}");
    for (i, e) in epochs.iter().enumerate() {
        assert_eq!(e["epoch"], i as u64 + 1);
        let weights = e["weights"].as_str().unwrap();
        assert!(
            weights.starts_with("committed, timelocked"),
            "weights committed in every epoch, the switch's included: {e}"
        );
    }
    let scorers: Vec<&str> = epochs.iter().map(|e| e["scorer"].as_str().unwrap()).collect();
    assert_eq!(scorers, ["scoring-loss", "scoring-loss", "scoring-loss", "scoring-shapley"]);
    let switches: Vec<u64> = epochs.iter().map(|e| e["scorer_switches"].as_u64().unwrap()).collect();
    assert_eq!(switches, [0, 0, 1, 1]);

    // Epoch 1: nothing asked. Epoch 2: the broken file, refused, the old scorer kept.
    assert!(epochs[0]["config_reload"].is_null() && epochs[0]["scorer_switch"].is_null(), "{}", epochs[0]);
    let refused = epochs[1]["config_reload"].as_str().unwrap();
    assert!(refused.starts_with("refused") && refused.contains("bogus_key"), "{refused}");
    assert!(epochs[1]["scorer_switch"].is_null());
    let refusal: Vec<&str> = stderr.lines().filter(|l| l.contains("re-read at the end of epoch 2")).collect();
    assert_eq!(refusal.len(), 1, "{stderr}");
    assert!(
        refusal[0].contains("(file changed) refused; scorer scoring-loss and settings unchanged")
            && refusal[0].contains("bogus_key"),
        "{}",
        refusal[0]
    );
    // Epoch 3: the switch, triggered by the signal alone, logged in one line.
    assert_eq!(epochs[2]["scorer_switch"], "scoring-loss → scoring-shapley, scores kept", "{}", epochs[2]);
    let switch: Vec<&str> = stderr.lines().filter(|l| l.contains("scorer switch")).collect();
    assert_eq!(switch.len(), 1, "{stderr}");
    assert!(
        switch[0].ends_with(
            "config re-read at the end of epoch 3 (SIGHUP): scorer switch: scoring-loss → scoring-shapley, scores kept"
        ),
        "{}",
        switch[0]
    );
    assert_eq!(epochs[2]["config_reload"], "scorer switch: scoring-loss → scoring-shapley, scores kept");
    assert!(stdout.contains("scorer switched for the next epoch: scoring-loss → scoring-shapley"), "{stdout}");
    assert!(epochs[3]["config_reload"].is_null(), "{}", epochs[3]);
    // One validator start: no restart.
    assert_eq!(stderr.matches("validating subnet").count(), 1, "{stderr}");

    // The validator's steps are consecutive across the switch; the later ones scored by shapley.
    let steps: Vec<Value> =
        jsonl(&run.join("steps.jsonl")).into_iter().filter(|s| s["neuron"] == "validator").collect();
    let numbers: Vec<u64> = steps.iter().map(|s| s["step"].as_u64().unwrap()).collect();
    assert_eq!(numbers, (1..=numbers.len() as u64).collect::<Vec<_>>(), "no step lost or repeated");
    let switched_at = epochs[2]["steps"].as_u64().unwrap();
    assert!(switched_at > 0 && epochs[3]["steps"].as_u64().unwrap() > switched_at, "steps after the switch");
    for s in &steps {
        let want = if s["step"].as_u64().unwrap() <= switched_at { "scoring-loss" } else { "scoring-shapley" };
        assert_eq!(s["scorer"], want, "{s}");
    }
}
