//! Helpers for the end-to-end tests: where the workspace is, building the
//! plugin libraries and the binary (through cargo, so they are never stale),
//! and one shared GPU device per test process.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Command,
    sync::{Arc, OnceLock},
};

use neuron_host::gpu::GpuDevice;

pub mod net;
pub mod probe;

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is inside the workspace").to_path_buf()
}

pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

struct Artifacts {
    libraries: HashMap<String, PathBuf>,
    examples: HashMap<String, PathBuf>,
    binary: PathBuf,
}

static ARTIFACTS: OnceLock<Artifacts> = OnceLock::new();

/// Builds the workspace the way `cargo test --workspace` does (the same targets,
/// same features, so nothing rebuilds when it already ran) and records where
/// cargo put each shared library and the `neuron-host` binary. Benchmarks
/// (release) build only libraries and binaries: test targets in release would
/// be minutes of work nobody runs.
fn artifacts() -> &'static Artifacts {
    ARTIFACTS.get_or_init(|| {
        let mut cmd = Command::new(cargo());
        cmd.current_dir(workspace_root()).args([
            "build",
            "--workspace",
            "--lib",
            "--bins",
            "--message-format=json-render-diagnostics",
        ]);
        if cfg!(debug_assertions) {
            cmd.args(["--tests", "--examples"]);
        } else {
            cmd.arg("--release");
        }
        let out = cmd.output().expect("cargo runs");
        assert!(out.status.success(), "cargo build failed:\n{}", String::from_utf8_lossy(&out.stderr));
        let mut libraries = HashMap::new();
        let mut binary = None;
        let mut examples = HashMap::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else { continue };
            if msg["reason"] != "compiler-artifact" {
                continue;
            }
            let kinds: Vec<&str> =
                msg["target"]["kind"].as_array().into_iter().flatten().filter_map(|k| k.as_str()).collect();
            let name = msg["target"]["name"].as_str().unwrap_or_default().replace('-', "_");
            let files: Vec<PathBuf> = msg["filenames"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f.as_str())
                .map(PathBuf::from)
                .collect();
            if kinds.contains(&"cdylib") {
                if let Some(so) = files
                    .iter()
                    .find(|f| f.extension().and_then(|e| e.to_str()) == Some(std::env::consts::DLL_EXTENSION))
                {
                    libraries.insert(name.clone(), so.clone());
                }
            }
            if kinds.contains(&"example") && msg["profile"]["test"] != true {
                if let Some(exe) = msg["executable"].as_str() {
                    examples.insert(name.clone(), PathBuf::from(exe));
                }
            }
            // `--tests` also builds the binary's unit-test harness (kind "bin" too): skip it.
            if kinds.contains(&"bin") && name == "neuron_host" && msg["profile"]["test"] != true {
                binary = msg["executable"].as_str().map(PathBuf::from);
            }
        }
        Artifacts { libraries, examples, binary: binary.expect("cargo reported the neuron-host binary") }
    })
}

/// Path of the shared library whose crate library name is `lib_name`
/// (e.g. "template", "fixture_model").
pub fn plugin(lib_name: &str) -> PathBuf {
    artifacts()
        .libraries
        .get(lib_name)
        .unwrap_or_else(|| panic!("no shared library `{lib_name}` in the workspace build"))
        .clone()
}

/// Path of an example program of the workspace (e.g. "checkpoint_probe").
pub fn example(name: &str) -> PathBuf {
    artifacts().examples.get(name).unwrap_or_else(|| panic!("no example `{name}` in the workspace build")).clone()
}

/// Path of the `neuron-host` binary.
pub fn host_binary() -> PathBuf {
    artifacts().binary.clone()
}

/// The process's GPU device (tests in one binary share it, as neurons do).
pub fn gpu() -> Arc<GpuDevice> {
    neuron_plugin_testkit::device()
}

/// The configuration of the local subnets the tests run: the `tiny` GPT,
/// miners that learn quickly, blocks of one second, epochs of ten blocks.
/// Each field is TOML added where it belongs: `top` (top-level keys) first,
/// `miner` and `validator` inside those sections, `sections` (more tables,
/// `[[subnet.miners]]` entries) last.
#[derive(Clone, Copy, Default)]
pub struct TinySubnet<'a> {
    pub top: &'a str,
    pub miner: &'a str,
    pub validator: &'a str,
    pub sections: &'a str,
}

impl TinySubnet<'_> {
    pub fn toml(&self) -> String {
        let TinySubnet { top, miner, validator, sections } = self;
        format!(
            "{top}\n[plugin.gpt]\npreset = \"tiny\"\n\n[miner]\nlr = 3e-3\nwarmup_steps = 5\nbatch_size = 8\n\
             sequence_length = 16\n{miner}\n\n[validator]\nsequence_length = 16\n{validator}\n\n[chain]\n\
             block_time = 1.0\n\n[chain.hyperparams]\ntempo = 10\n\n{sections}\n"
        )
    }
}

/// Two miners for `TinySubnet::sections`: one trained on clean data, one on
/// data with 60% of its targets replaced by noise.
pub const CLEAN_AND_NOISY_MINERS: &str =
    "[[subnet.miners]]\nseed = 11\nnoise = 0.0\n\n[[subnet.miners]]\nseed = 12\nnoise = 0.6\n";

/// The real binary running a local subnet of the GPT plugin: `config` written
/// to `dir/subnet.toml`, the scorers named (library names, e.g. "scoring_loss"),
/// `epochs` epochs, the run log in `dir/<run>`, and checkpoints in
/// `dir/checkpoints` — never the default ~/.neuron-host/local, where runs of
/// different tests would resume each other.
pub fn subnet_command(dir: &Path, config: &str, run: &str, scorers: &[&str], epochs: u64) -> Command {
    let path = dir.join("subnet.toml");
    std::fs::write(&path, config).expect("the subnet's config file is written");
    let mut cmd = host_command();
    cmd.arg("--plugin").arg(plugin("gpt"));
    for scorer in scorers {
        cmd.arg("--scoring").arg(plugin(scorer));
    }
    cmd.arg("--config")
        .arg(&path)
        .args(["--epochs", &epochs.to_string()])
        .arg("--run_dir")
        .arg(dir.join(run))
        .arg("--checkpoint_path")
        .arg(dir.join("checkpoints"));
    cmd
}

/// The binary as a command, with a quiet default log level.
pub fn host_command() -> Command {
    let mut cmd = Command::new(host_binary());
    cmd.env("RUST_LOG", "warn");
    cmd
}
