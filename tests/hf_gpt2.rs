//! GPT-2 weights in and out in Hugging Face's layout, checked against `transformers` itself:
//! a `GPT2LMHeadModel` built by transformers from a `GPT2Config` (random weights, nothing
//! downloaded) and saved with `save_pretrained` is imported with `checkpoint import-hf`; the
//! host's logits and loss on the same token windows agree with transformers'; the checkpoint
//! exported with `checkpoint export-hf` loads back in transformers with the same outputs; the
//! miner's training loop resumes from the imported file. And the 124M shape: a synthetic
//! safetensors file of GPT-2 small's tensors (half precision, the hub's names) is imported and
//! trained for a step.
//!
//! The Python side (tests/python/hf_gpt2.py) runs in the venv `cargo xtask test` makes from
//! tests/python/requirements-hf.txt (torch, transformers), named by NEURON_TEST_PYTHON_HF.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use neuron_e2e::{example, host_command, plugin, workspace_root};

/// Two windows of the tiny model's context (16 byte tokens each).
const TEXT: &str = "The miner trains; the validator ";

fn python() -> PathBuf {
    match std::env::var_os("NEURON_TEST_PYTHON_HF") {
        Some(p) => PathBuf::from(p),
        None => panic!(
            "NEURON_TEST_PYTHON_HF is not set: this test checks the host against transformers and torch. \
             Run the suite with `cargo xtask test` (it makes the venv from tests/python/requirements-hf.txt), \
             or point NEURON_TEST_PYTHON_HF at a python with those packages"
        ),
    }
}

fn transformers(args: &[&str]) -> serde_json::Value {
    let script = workspace_root().join("tests/python/hf_gpt2.py");
    let out = Command::new(python()).arg(script).args(args).output().expect("python runs");
    assert!(out.status.success(), "hf_gpt2.py {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("hf_gpt2.py prints JSON")
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    serde_json::from_value(v.clone()).unwrap()
}

/// The host's logits for TEXT from a miner checkpoint (the runtime's restore, the tiny model).
fn host_logits(checkpoint: &Path) -> Vec<f64> {
    let out = Command::new(example("checkpoint_probe"))
        .arg("forward")
        .arg(plugin("gpt"))
        .arg(checkpoint)
        .arg(TEXT)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    floats(&v["logits"])
}

/// transformers' loss: the mean cross-entropy of each position's logits against the next token,
/// within each window.
fn next_token_loss(logits: &[f64], tokens: &[u8], vocab: usize, window: usize) -> f64 {
    let (mut total, mut count) = (0.0, 0);
    for (i, row) in logits.chunks(vocab).enumerate() {
        if (i + 1) % window == 0 {
            continue;
        }
        let max = row.iter().cloned().fold(f64::MIN, f64::max);
        let log_sum = row.iter().map(|x| (x - max).exp()).sum::<f64>().ln() + max;
        total += log_sum - row[tokens[i + 1] as usize];
        count += 1;
    }
    total / count as f64
}

/// `neuron-host checkpoint import-hf SRC --plugin libgpt.so --out OUT`.
fn import_hf(src: &Path, out: &Path) -> std::process::Output {
    host_command()
        .args(["checkpoint", "import-hf"])
        .arg(src)
        .arg("--plugin")
        .arg(plugin("gpt"))
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

/// `neuron-host train` on `checkpoint` with `args`: its JSON events, once it has succeeded.
fn train(checkpoint: &Path, args: &[&str]) -> Vec<serde_json::Value> {
    let out = host_command()
        .arg("train")
        .arg("--plugin")
        .arg(plugin("gpt"))
        .args(args)
        .args(["--eval-every", "0", "--eval-batches", "1", "--log-every", "1", "--json", "--checkpoint"])
        .arg(checkpoint)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn worst_relative(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f64, |m, x| m.max(x.abs()));
    got.iter().zip(want).map(|(g, w)| (g - w).abs()).fold(0.0, f64::max) / scale
}

#[test]
fn a_transformers_gpt2_imports_with_its_logits_and_loss_and_exports_back() {
    let dir = tempfile::tempdir().unwrap();
    let hf = dir.path().join("hf");
    let made = transformers(&["make", hf.to_str().unwrap(), "5", TEXT]);
    let (want, want_loss) = (floats(&made["logits"]), made["loss"].as_f64().unwrap());

    let ckpt = dir.path().join("miner_checkpoint.pth");
    let out = import_hf(&hf, &ckpt);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("preset = \"tiny\""), "it names the section to run with: {said}");

    let got = host_logits(&ckpt);
    let worst = worst_relative(&got, &want);
    assert!(worst < 1e-4, "the host's logits differ from transformers' by {worst} (relative)");
    let loss = next_token_loss(&got, TEXT.as_bytes(), 256, 16);
    assert!((loss - want_loss).abs() / want_loss < 1e-4, "loss {loss} here, {want_loss} in transformers");
    eprintln!("logits agree with transformers' to {worst:.1e} relative; loss {loss:.7} here, {want_loss:.7} there");

    // Out again: transformers loads it and gives the same outputs.
    let exported = dir.path().join("exported");
    let out = host_command().args(["checkpoint", "export-hf"]).arg(&ckpt).arg("--out").arg(&exported).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let back = transformers(&["check", exported.to_str().unwrap(), TEXT]);
    let worst = worst_relative(&floats(&back["logits"]), &want);
    assert!(worst < 1e-6, "the exported model's logits differ by {worst}");
    assert!((back["loss"].as_f64().unwrap() - want_loss).abs() < 1e-6);

    // A second import over the checkpoint is refused: nothing is replaced.
    let again = import_hf(&hf, &ckpt);
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success() && err.contains("already exists"), "{err}");

    // The miner's training loop resumes from it (step 0) and trains on.
    let events = train(&ckpt, &["--preset", "tiny", "--steps", "2", "--batch-size", "2"]);
    let resumed = events.iter().find(|e| e["event"] == "resumed").expect("it resumed from the imported file");
    assert_eq!(resumed["step"], 0);
    let first = events.iter().find(|e| e["event"] == "train").expect("a training step");
    assert!((first["loss"].as_f64().unwrap() - want_loss).abs() < 1.0, "{first}");
}

/// GPT-2 small's tensors as the hub's `gpt2` file names them (no `transformer.` prefix, the
/// causal-mask buffers included), in bfloat16, with deterministic pseudo-random values.
fn write_gpt2_small(dir: &Path) {
    let (layers, c, v, t) = (12usize, 768usize, 50257usize, 1024usize);
    let mut shapes: Vec<(String, Vec<usize>)> =
        vec![("wte.weight".into(), vec![v, c]), ("wpe.weight".into(), vec![t, c])];
    for l in 0..layers {
        for (name, shape) in [
            ("ln_1.weight", vec![c]),
            ("ln_1.bias", vec![c]),
            ("attn.bias", vec![1, 1, t, t]),
            ("attn.c_attn.weight", vec![c, 3 * c]),
            ("attn.c_attn.bias", vec![3 * c]),
            ("attn.c_proj.weight", vec![c, c]),
            ("attn.c_proj.bias", vec![c]),
            ("ln_2.weight", vec![c]),
            ("ln_2.bias", vec![c]),
            ("mlp.c_fc.weight", vec![c, 4 * c]),
            ("mlp.c_fc.bias", vec![4 * c]),
            ("mlp.c_proj.weight", vec![4 * c, c]),
            ("mlp.c_proj.bias", vec![c]),
        ] {
            shapes.push((format!("h.{l}.{name}"), shape));
        }
    }
    shapes.push(("ln_f.weight".into(), vec![c]));
    shapes.push(("ln_f.bias".into(), vec![c]));
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let data: Vec<Vec<u8>> = shapes
        .iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let gain = name.contains("ln_") && name.ends_with("weight");
            (0..n)
                .flat_map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let u = (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
                    let x = if gain { 1.0 + 0.1 * u } else { 0.04 * u };
                    ((x.to_bits() >> 16) as u16).to_le_bytes()
                })
                .collect()
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = shapes
        .iter()
        .zip(&data)
        .map(|((name, shape), bytes)| {
            (
                name.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::BF16, shape.clone(), bytes).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
    let config = serde_json::json!({
        "model_type": "gpt2", "n_layer": 12, "n_head": 12, "n_embd": 768, "n_positions": 1024, "n_ctx": 1024,
        "vocab_size": 50257, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
}

#[test]
fn gpt2_small_imports_from_half_precision_hub_names_and_trains_a_step() {
    let dir = tempfile::tempdir().unwrap();
    let hf = dir.path().join("gpt2");
    std::fs::create_dir_all(&hf).unwrap();
    write_gpt2_small(&hf);
    let ckpt = dir.path().join("miner_checkpoint.pth");
    let out = import_hf(&hf.join("model.safetensors"), &ckpt);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("preset = \"gpt2\"") && said.contains("124"), "{said}");
    let events = train(&ckpt, &["--preset", "gpt2", "--steps", "1", "--batch-size", "1", "--seq-len", "32"]);
    assert!(events.iter().any(|e| e["event"] == "resumed" && e["step"] == 0), "{events:?}");
    let step = events.iter().find(|e| e["event"] == "train").expect("one training step");
    let loss = step["loss"].as_f64().unwrap();
    // Near-uniform predictions over 50257 tokens: about ln(50257) = 10.8.
    assert!(loss.is_finite() && (loss - 10.8).abs() < 1.5, "{step}");
}

#[test]
fn a_gpt2_vocabulary_model_exports_with_gpt2s_tokenizer_and_transformers_encodes_as_the_host_does() {
    let dir = tempfile::tempdir().unwrap();
    let hf = dir.path().join("hf");
    // The tiny shape with GPT-2's vocabulary: the import makes it a `tokenizer = "gpt2"` model.
    transformers(&["make", hf.to_str().unwrap(), "6", TEXT, "50257"]);
    let ckpt = dir.path().join("miner_checkpoint.pth");
    let out = import_hf(&hf, &ckpt);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains("tokenizer = \"gpt2\""),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let exported = dir.path().join("exported");
    let out = host_command().args(["checkpoint", "export-hf"]).arg(&ckpt).arg("--out").arg(&exported).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("GPT-2's tokenizer"), "it says what it wrote: {said}");
    for f in ["model.safetensors", "config.json", "vocab.json", "merges.txt", "tokenizer_config.json"] {
        assert!(exported.join(f).is_file(), "{f} is written");
    }

    // Text that exercises the pre-tokenizer and the merges: contractions, numbers, runs of
    // spaces and newlines, punctuation, accents, CJK and an emoji (bytes split across tokens),
    // then the built-in corpus for length.
    let mut text = String::from(
        "Hello world! It's 2026; we'll train 124M-parameter models.\n\n  Indented   spaces\tand tabs\n\
         naïve café — “quotes” 東京 🚀 x=3.14159, y=-42 ... ?!\n",
    );
    text.push_str(&neuron_host::data::corpus::generate(7, 20_000));
    let sample = dir.path().join("sample.txt");
    std::fs::write(&sample, &text).unwrap();
    let host: Vec<u64> = neuron_host::data::Tokenizer::Gpt2.encode(&text).into_iter().map(u64::from).collect();
    let theirs = transformers(&["tokenize", exported.to_str().unwrap(), sample.to_str().unwrap()]);
    let fast: Vec<u64> = serde_json::from_value(theirs["fast"].clone()).unwrap();
    let slow: Vec<u64> = serde_json::from_value(theirs["slow"].clone()).unwrap();
    let first_difference = |ids: &[u64]| ids.iter().zip(&host).position(|(a, b)| a != b);
    assert_eq!(fast.len(), host.len(), "fast tokenizer: first difference at {:?}", first_difference(&fast));
    assert_eq!(fast, host, "transformers' fast tokenizer from the exported files encodes as the host does");
    assert_eq!(slow, host, "and so does the slow GPT2Tokenizer");
    assert_eq!(theirs["decoded"].as_str(), Some(text.as_str()), "decoding gives the text back");
    assert_eq!(theirs["eos_token_id"], 50256);
    assert_eq!(theirs["model_max_length"], 16, "the model's context");
    eprintln!("{} tokens encoded identically by the host and by transformers ({})", host.len(), theirs["fast_class"]);
}
