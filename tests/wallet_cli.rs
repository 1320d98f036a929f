//! `neuron-host wallet new|show|list` as a user runs them: files owner-only,
//! addresses printed, a warning for a private keyfile others can read, and
//! one-line errors.

use std::os::unix::fs::PermissionsExt;

use neuron_e2e::host_command;
use neuron_host::wallet::Wallet;

fn run(args: &[&str], root: &std::path::Path) -> (bool, String, String) {
    let out = host_command().args(args).arg("--wallet.path").arg(root).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn wallets_are_created_shown_listed_and_guarded() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (ok, out, err) = run(&["wallet", "new", "--wallet.name", "w", "--wallet.hotkey", "m", "--no-password"], root);
    assert!(ok, "{err}");
    let w = Wallet::new(root, "w", "m").unwrap();
    for p in [w.coldkey_path(), w.coldkeypub_path(), w.hotkey_path(), w.hotkeypub_path()] {
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600, "{}", p.display());
    }
    let (cold, hot) = (w.coldkey_account().unwrap().to_ss58(), w.hotkey_account().unwrap().to_ss58());
    assert!(out.contains(&cold) && out.contains(&hot), "{out}");

    let (ok, out, err) = run(&["wallet", "show", "--wallet.name", "w", "--wallet.hotkey", "m"], root);
    assert!(ok && out.contains(&cold) && out.contains(&hot) && out.contains("unencrypted"), "{out}{err}");
    assert!(!err.contains("readable by other users"), "{err}");

    std::fs::set_permissions(w.hotkey_path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, _, err) = run(&["wallet", "show", "--wallet.name", "w", "--wallet.hotkey", "m"], root);
    assert!(ok && err.contains("readable by other users") && err.contains("chmod 600"), "{err}");

    let (ok, out, _) = run(&["wallet", "list"], root);
    assert!(ok && out.contains(&format!("w  {cold}")) && out.contains(&format!("  m  {hot}")), "{out}");

    let (ok, _, err) = run(&["wallet", "new", "--wallet.name", "w", "--wallet.hotkey", "m", "--no-password"], root);
    assert!(!ok && err.trim().lines().count() == 1 && err.contains("--overwrite"), "{err}");
    let (ok, _, err) = run(&["wallet", "show", "--wallet.name", "nope"], root);
    assert!(!ok && err.starts_with("error: wallet: no wallet `nope`") && err.trim().lines().count() == 1, "{err}");

    // Encrypting needs a password; with no terminal and no variable, say how to give one.
    let out = host_command()
        .args(["wallet", "new", "--wallet.name", "locked", "--wallet.path"])
        .arg(root)
        .env_remove("NEURON_WALLET_PASSWORD")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("NEURON_WALLET_PASSWORD"), "{err}");
}
