//! `report` on a run directory: PNGs of the stated size with content, and an
//! HTML page that shows them with the run's configuration.

use neuron_host::report::{render, Size};
use serde_json::json;

/// Width and height from a PNG's IHDR chunk.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG file");
    (u32::from_be_bytes(bytes[16..20].try_into().unwrap()), u32::from_be_bytes(bytes[20..24].try_into().unwrap()))
}

fn write_run(dir: &std::path::Path) {
    let mut steps = String::new();
    for step in 0..200u64 {
        for (i, neuron) in ["miner-1", "miner-2", "validator"].iter().enumerate() {
            let loss = 5.5 * (-(step as f64) / (80.0 + 40.0 * i as f64)).exp() + 1.0;
            steps.push_str(&json!({"neuron": neuron, "step": step, "loss": loss, "lr": 1e-3}).to_string());
            steps.push('\n');
        }
    }
    steps.push_str("{\"neuron\": \"miner-1\", \"st"); // a run killed mid-write
    std::fs::write(dir.join("steps.jsonl"), steps).unwrap();
    let mut epochs = String::new();
    for epoch in 1..=5u64 {
        let uids: Vec<_> = (0..4u16)
            .map(|uid| json!({"uid": uid, "hotkey": format!("5Hot{uid}"), "score": 0.2 * uid as f64, "weight": uid as f64 / 6.0, "incentive": uid as f64 / 6.0, "dividends": if uid == 0 { 1.0 } else { 0.0 }, "loss": 3.0 - uid as f64 * 0.5}))
            .collect();
        epochs.push_str(&json!({"neuron": "validator", "epoch": epoch, "block": epoch * 20, "uids": uids}).to_string());
        epochs.push('\n');
    }
    std::fs::write(dir.join("epochs.jsonl"), epochs).unwrap();
    std::fs::write(dir.join("config.toml"), "netuid = 1\n[validator]\nbatch_size = 8 # <b>\n").unwrap();
}

#[test]
fn renders_pngs_of_the_stated_size_and_a_page() {
    let dir = tempfile::tempdir().unwrap();
    write_run(dir.path());
    let out = render(dir.path(), Size { width: 900, height: 500 }).unwrap();
    let names: Vec<String> = out.images.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["loss.png", "scores.png", "weights.png", "incentive.png", "dividends.png"]);
    for img in &out.images {
        let bytes = std::fs::read(img).unwrap();
        assert_eq!(png_size(&bytes), (900, 500), "{}", img.display());
        assert!(bytes.len() > 10_000, "{} has drawn content ({} bytes)", img.display(), bytes.len());
    }
    let html = std::fs::read_to_string(&out.html).unwrap();
    for img in &names {
        assert!(html.contains(&format!("src=\"{img}\"")), "{img}");
    }
    assert!(html.contains("batch_size = 8 # &lt;b&gt;"), "the config, escaped");
    assert!(html.contains("<h2>Epoch 5 (last)</h2>"));
}

#[test]
fn an_empty_or_missing_run_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let e = render(dir.path(), Size::default()).unwrap_err().to_string();
    assert!(e.contains("nothing to report") && !e.contains('\n'), "{e}");
    let e = render(&dir.path().join("nope"), Size::default()).unwrap_err().to_string();
    assert!(e.contains("is not a run directory"), "{e}");
    std::fs::write(dir.path().join("steps.jsonl"), "{\"neuron\": 3}\n{}\n").unwrap();
    let e = render(dir.path(), Size::default()).unwrap_err().to_string();
    assert!(e.contains("steps.jsonl line 1"), "{e}");
}
