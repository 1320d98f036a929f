//! What a third-party author does: copy a template out of the tree, point its two dependencies
//! (neuron-plugin-api, and neuron-plugin-testkit for tests) at this checkout, and run
//! `cargo test --release` there. That builds the library, runs its tests on the test kit's GPU
//! context, and runs the conformance suite on the built `.so`; then the host loads the result and
//! `neuron-host plugin check` passes it. Neither template may depend on the `neuron-host` crate.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use neuron_e2e::{cargo, host_command, workspace_root};
use neuron_host::plugins::LoadedPlugin;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The dependency names a manifest section lists.
fn names(manifest: &str, section: &str) -> Vec<String> {
    let Some(body) = manifest.split(&format!("\n{section}\n")).nth(1) else { return Vec::new() };
    let body = body.split("\n[").next().unwrap();
    body.lines()
        .filter(|l| l.contains('=') && !l.trim_start().starts_with('#'))
        .map(|l| l.split('=').next().unwrap().trim().to_string())
        .collect()
}

/// Copies `plugins/<template>` to `<dir>/<name>`, points it at this checkout, and returns the folder.
fn copy_out(template: &str, dir: &Path, name: &str) -> PathBuf {
    let root = workspace_root();
    let crate_dir = dir.join(name);
    copy_dir(&root.join("plugins").join(template), &crate_dir);
    let manifest_path = crate_dir.join("Cargo.toml");
    let manifest = std::fs::read_to_string(&manifest_path).unwrap();
    assert_eq!(names(&manifest, "[dependencies]"), ["neuron-plugin-api"], "{template}: {manifest}");
    assert_eq!(names(&manifest, "[dev-dependencies]"), ["neuron-plugin-testkit"], "{template}: {manifest}");
    assert!(!manifest.contains("neuron-host\""), "{template} must not depend on the host: {manifest}");
    assert!(!manifest.contains(".workspace = true"), "{template} must not inherit from this workspace: {manifest}");
    let manifest = manifest
        .replace("path = \"../../plugin-api\"", &format!("path = {:?}", root.join("plugin-api")))
        .replace("path = \"../../plugin-testkit\"", &format!("path = {:?}", root.join("plugin-testkit")))
        + "\n[workspace]\n";
    assert!(!manifest.contains("\"../"), "every relative path was rewritten: {manifest}");
    std::fs::write(&manifest_path, manifest).unwrap();
    // The workspace's lock file pins the same versions, so the build needs no network.
    std::fs::copy(root.join("Cargo.lock"), crate_dir.join("Cargo.lock")).unwrap();
    crate_dir
}

#[test]
fn both_templates_copied_out_of_the_tree_pass_their_tests_and_the_conformance_suite() {
    let root = workspace_root();
    let dir = tempfile::tempdir().unwrap();
    // One target directory for both, kept between runs, so later runs are incremental.
    let target = root.join("target").join("out-of-tree");
    for (template, name, lib, flags) in [
        ("template", "my-model", "template", &["--lr", "2"][..]),
        ("scorer-template", "my-scorer", "scorer_template", &[][..]),
    ] {
        let crate_dir = copy_out(template, dir.path(), name);
        let out = Command::new(cargo())
            .current_dir(&crate_dir)
            .env("CARGO_TARGET_DIR", &target)
            .args(["test", "--release", "--offline"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{template}: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("test the_built_library_passes_the_conformance_suite ... ok"), "{template}: {stdout}");
        // Every test of every target ran: a template's test ignored here would prove nothing.
        for line in stdout.lines().filter(|l| l.starts_with("test result:")) {
            assert!(line.contains(" 0 ignored;"), "{template}: {line}");
        }

        // What an author publishes: `cargo build --release` puts the library in target/release/.
        let out = Command::new(cargo())
            .current_dir(&crate_dir)
            .env("CARGO_TARGET_DIR", &target)
            .args(["build", "--release", "--offline", "--lib"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{template}: {}", String::from_utf8_lossy(&out.stderr));
        let library = target.join("release").join(format!(
            "{}{lib}{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        ));
        let plugin = LoadedPlugin::load(&library).unwrap();
        assert_eq!(plugin.name(), template);
        let out = host_command().args(["plugin", "check"]).arg(&library).args(flags).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{template}: {text}{}", String::from_utf8_lossy(&out.stderr));
        assert!(text.contains("  passed: ") && !text.contains("FAIL"), "{template}: {text}");
    }
}
