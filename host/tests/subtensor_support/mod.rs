//! What the subtensor tests share: the real finney metadata, the independent
//! Python encoder, hex helpers.
#![allow(dead_code)]

pub mod mock_node;

use std::{
    io::Write,
    path::PathBuf,
    process::{Command, Stdio},
};

/// The finney genesis hash (shared/chain/README.md).
pub const FINNEY_GENESIS: &str = "2f0555cc76fc2840a25a6ea3b9637146806f1f44b090c175ffde2a7e5ab36c03";

/// `shared/chain/` beside the checkout (as CI lays it out), or `NEURON_SHARED_CHAIN`.
pub fn shared_chain_dir() -> PathBuf {
    let dir = match std::env::var_os("NEURON_SHARED_CHAIN") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/chain"),
    };
    assert!(
        dir.join("finney-metadata-v14-spec343.scale").is_file(),
        "the real finney metadata is not at {}: these tests need the shared folder beside the checkout \
         (<repo>/../shared/chain), or NEURON_SHARED_CHAIN pointing at a copy of it",
        dir.display()
    );
    dir
}

pub fn metadata_v14_path() -> PathBuf {
    shared_chain_dir().join("finney-metadata-v14-spec343.scale")
}

pub fn metadata_v14() -> Vec<u8> {
    std::fs::read(metadata_v14_path()).expect("read the V14 metadata")
}

pub fn metadata_v16() -> Vec<u8> {
    std::fs::read(shared_chain_dir().join("finney-metadata-v16-spec393.scale")).expect("read the V16 metadata")
}

pub fn hex(bytes: &[u8]) -> String {
    format!("0x{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

pub fn unhex(text: &str) -> Vec<u8> {
    let t = text.trim_start_matches("0x");
    (0..t.len()).step_by(2).map(|i| u8::from_str_radix(&t[i..i + 2], 16).expect("hex")).collect()
}

pub fn genesis() -> [u8; 32] {
    unhex(FINNEY_GENESIS).try_into().unwrap()
}

/// The Python interpreter with the test packages: never skipped, a clear failure when absent.
pub fn python() -> PathBuf {
    match std::env::var_os("NEURON_TEST_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => panic!(
            "NEURON_TEST_PYTHON is not set: this test checks bytes against an independent Python encoder. \
             Run the suite with `cargo xtask test` (it creates a venv from tests/python/requirements.txt and sets it), \
             or point NEURON_TEST_PYTHON at a python with those packages installed"
        ),
    }
}

/// Runs host/tests/python/scale_crosscheck.py on `request`, returning its JSON answer.
pub fn crosscheck(mut request: serde_json::Value) -> serde_json::Value {
    request["metadata"] = metadata_v14_path().display().to_string().into();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/scale_crosscheck.py");
    let python = python();
    let mut child = Command::new(&python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run NEURON_TEST_PYTHON={}: {e}", python.display()));
    child.stdin.take().unwrap().write_all(request.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Python encoder failed (are tests/python/requirements.txt's packages installed in {}?): {}",
        python.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the Python encoder answers JSON")
}
