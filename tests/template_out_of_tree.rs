//! What a third-party author does: copy plugins/template out of the tree,
//! point it at plugin-api by path, build it there, load it and run it.

use std::{path::Path, process::Command};

use neuron_e2e::{cargo, gpu, workspace_root};
use neuron_host::plugins::LoadedPlugin;
use neuron_plugin_api::{OutputRequest, StateGroup, TokenBatch};

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

#[test]
fn the_template_builds_out_of_tree_and_runs() {
    let root = workspace_root();
    let dir = tempfile::tempdir().unwrap();
    let crate_dir = dir.path().join("my-plugin");
    copy_dir(&root.join("plugins/template"), &crate_dir);

    let manifest_path = crate_dir.join("Cargo.toml");
    let manifest = std::fs::read_to_string(&manifest_path).unwrap();
    // The template's only runtime dependency is plugin-api.
    let deps = manifest.split("[dependencies]").nth(1).unwrap().split("\n[").next().unwrap();
    let names: Vec<&str> = deps
        .lines()
        .filter(|l| l.contains('=') && !l.trim_start().starts_with('#'))
        .map(|l| l.split('=').next().unwrap().trim())
        .collect();
    assert_eq!(names, ["neuron-plugin-api"], "{deps}");
    let manifest = manifest
        .replace("path = \"../../plugin-api\"", &format!("path = {:?}", root.join("plugin-api")))
        .replace("path = \"../../host\"", &format!("path = {:?}", root.join("host")))
        + "\n[workspace]\n";
    std::fs::write(&manifest_path, manifest).unwrap();
    std::fs::copy(root.join("Cargo.lock"), crate_dir.join("Cargo.lock")).unwrap();

    // A target directory that survives the test keeps later runs incremental.
    let target = root.join("target").join("out-of-tree-template");
    let out = Command::new(cargo())
        .current_dir(&crate_dir)
        .env("CARGO_TARGET_DIR", &target)
        .args(["build", "--offline", "--lib"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let library = target.join("debug").join(format!(
        "{}template.{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_EXTENSION
    ));

    let plugin = LoadedPlugin::load(&library).unwrap();
    assert_eq!(plugin.name(), "template");
    let mut model = plugin.new_model(&gpu(), "vocab_size = 32\nseed = 7").unwrap();
    let table = model.export_state(StateGroup::MODEL).unwrap()[0].to_f32().unwrap();
    let tokens = [5u32, 31, 0];
    let out = model.forward(TokenBatch::new(1, 3, &tokens), OutputRequest::logits()).unwrap();
    for (p, &t) in tokens.iter().enumerate() {
        assert_eq!(
            &out.logits[p * 32..(p + 1) * 32],
            &table[t as usize * 32..(t as usize + 1) * 32],
            "row of token {t}"
        );
    }
    let targets = [31u32, 0, 5];
    let before = model.loss(TokenBatch::new(1, 3, &tokens), &targets).unwrap();
    for _ in 0..20 {
        model.zero_grad().unwrap();
        model.loss(TokenBatch::new(1, 3, &tokens), &targets).unwrap();
        model.backward().unwrap();
        model.step(5.0).unwrap();
    }
    let after = model.loss(TokenBatch::new(1, 3, &tokens), &targets).unwrap();
    assert!(after < before * 0.5, "trains: {before} -> {after}");
}
