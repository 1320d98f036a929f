//! A helper process for the checkpoint tests (tests/checkpoints.rs).
//!
//! `checkpoint_probe restore GPT_PLUGIN CKPT`: builds a fresh tiny GPT model
//! (another seed than the one saved), restores the miner checkpoint into it
//! through the runtime's code, and prints the fingerprint of
//! `neuron_e2e::probe::fingerprint` as JSON: the round trip into a fresh process.
//!
//! `checkpoint_probe forward GPT_PLUGIN CKPT TEXT`: restores the miner
//! checkpoint into a fresh tiny GPT model the same way and prints, as JSON,
//! the logits of TEXT's bytes taken as sequences of the model's context.
//!
//! `checkpoint_probe save-loop CKPT INTERVAL STEP_MS`: a stand-in training
//! loop for the SIGKILL test. It resumes from CKPT (the runtime's loader and
//! parser), then "trains" (every model tensor is filled with the step number,
//! so a torn file shows), asks the runtime's `Saver` for a save every INTERVAL
//! steps, and prints `step N` after each step and `saved N` when a save
//! reaches the disk. It needs no GPU, so it can be killed many times a second;
//! the saving code is the runtime's own.

use std::{
    io::Write,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use neuron_e2e::probe;
use neuron_host::{
    checkpoint::writer::load_with_fallback,
    data::SamplerState,
    gpu::{GpuDevice, GpuOptions},
    metrics::prometheus::Metrics,
    plugins::{LoadedPlugin, PluginModel},
    runtime::{
        checkpoints::{DataPosition, MinerCheckpoint, PluginIdentity, Saver},
        schedule::LrSchedule,
    },
};
use neuron_plugin_api::{OutputRequest, Tensor, TokenBatch};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("restore") => restore(&PathBuf::from(&args[2]), &PathBuf::from(&args[3])),
        Some("forward") => forward(&PathBuf::from(&args[2]), &PathBuf::from(&args[3]), &args[4]),
        Some("save-loop") => save_loop(&PathBuf::from(&args[2]), args[3].parse().unwrap(), args[4].parse().unwrap()),
        _ => {
            eprintln!(
                "usage: checkpoint_probe restore GPT_PLUGIN CKPT | forward GPT_PLUGIN CKPT TEXT | save-loop CKPT INTERVAL STEP_MS"
            );
            std::process::exit(2);
        }
    }
}

/// A fresh tiny GPT model (another seed than any saved one) with the miner checkpoint restored
/// into it through the runtime's code.
fn restored(plugin: &Path, ckpt: &Path) -> (PluginModel, MinerCheckpoint) {
    let gpu = Arc::new(GpuDevice::open(&GpuOptions::from_env(), &[]).unwrap());
    let gpt = LoadedPlugin::load(plugin).unwrap();
    let mut model = gpt.new_model(&gpu, &probe::tiny_config(99)).unwrap();
    let live = PluginIdentity::of(&model, &gpt.info().version).unwrap();
    let (value, _) = load_with_fallback(ckpt).unwrap().expect("the checkpoint exists");
    let c = MinerCheckpoint::restore(&mut model, &live, value).unwrap();
    (model, c)
}

fn forward(plugin: &Path, ckpt: &Path, text: &str) {
    let (mut model, _) = restored(plugin, ckpt);
    let seq = model.describe().unwrap().block_size as usize;
    let tokens: Vec<u32> = text.bytes().map(u32::from).collect();
    assert!(!tokens.is_empty() && tokens.len().is_multiple_of(seq), "TEXT must be whole sequences of {seq} bytes");
    let out = model
        .forward(TokenBatch::new((tokens.len() / seq) as u32, seq as u32, &tokens), OutputRequest::logits())
        .unwrap();
    println!("{}", serde_json::json!({ "logits": out.logits.iter().collect::<Vec<_>>() }));
}

fn restore(plugin: &Path, ckpt: &Path) {
    let (mut model, c) = restored(plugin, ckpt);
    let (logits, step, after) = probe::fingerprint(&mut model, &probe::dataset());
    println!(
        "{}",
        serde_json::json!({ "global_step": c.global_step, "logits": logits, "step_loss": step, "after_loss": after })
    );
}

/// About 1 MiB of state in a few tensors, every element equal to `step`.
fn state(step: u64) -> Vec<Tensor> {
    let v = step as f32;
    vec![
        Tensor::f32("transformer.wte.weight", &[256, 512], &vec![v; 256 * 512]),
        Tensor::f32("transformer.h.0.mlp.c_fc.weight", &[512, 256], &vec![v; 512 * 256]),
        Tensor::f32("ln_f.bias", &[512], &vec![v; 512]),
    ]
}

fn save_loop(ckpt: &Path, interval: u64, step_ms: u64) {
    let identity = PluginIdentity {
        name: "probe".into(),
        version: "1".into(),
        architecture: "probe".into(),
        config: "size = 1\n".into(),
    };
    let schedule = LrSchedule { lr: 1e-3, min_lr: 1e-4, warmup_steps: 10, decay_steps: 1000 };
    let mut step = match load_with_fallback(ckpt).unwrap() {
        None => 0,
        Some((value, _)) => {
            let c = MinerCheckpoint::from_value(&value).unwrap();
            // A consistent file: every tensor holds the step it was saved at.
            for t in c.model.iter().chain(&c.optimizer) {
                assert!(t.to_f32().unwrap().iter().all(|&x| x == c.global_step as f32), "torn state in {}", t.name);
            }
            c.global_step
        }
    };
    let mut saver = Saver::new(ckpt.to_path_buf(), 1, Arc::new(Metrics::new()), "probe");
    let (mut written, mut superseded) = (saver.written(), 0);
    let stdout = std::io::stdout();
    loop {
        std::thread::sleep(Duration::from_millis(step_ms));
        step += 1;
        let mut out = stdout.lock();
        writeln!(out, "step {step}").unwrap();
        if step % interval == 0 {
            let c = MinerCheckpoint {
                plugin: identity.clone(),
                model: state(step),
                optimizer: vec![Tensor::f32("transformer.wte.weight.exp_avg", &[64], &[step as f32; 64])],
                schedule,
                global_step: step,
                data: DataPosition { sampler: SamplerState { seed: 1, step }, noise_state: 3 },
            };
            saver.request(Ok(c.to_value()), step);
        }
        if saver.written() != written {
            written = saver.written();
            writeln!(out, "saved {}", written.unwrap()).unwrap();
        }
        if saver.superseded() != superseded {
            superseded = saver.superseded();
            writeln!(out, "superseded {superseded}").unwrap();
        }
        out.flush().unwrap();
    }
}
