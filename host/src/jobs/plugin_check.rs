//! `neuron-host plugin check`: a plugin author's quick look. Every model
//! plugin given is trained for a few steps on a built-in text and asked for
//! its top predictions; every scorer scores a synthetic set of responses.

use std::sync::Arc;

use neuron_plugin_api::{MinerResponse, OutputRequest, PluginKinds, ResponseStatus, ScoringBatch, TokenBatch};

use crate::{
    config::Config,
    error::{Error, Result},
    gpu::GpuDevice,
    plugins::{load_all, LoadedPlugin},
    runtime::plugin_set::open_gpu,
};

const TEXT: &str = "the miner trains, the validator scores, the chain keeps the weights. ";

pub struct CheckOptions {
    pub steps: u32,
    pub learning_rate: f32,
}

pub fn run(config: &Config, options: &CheckOptions) -> Result<()> {
    if config.plugins.is_empty() {
        return Err(Error::Config(
            "no plugin given: pass --plugin PATH (for example target/release/libtemplate.so), or list `plugins` in the config file".into(),
        ));
    }
    let plugins = load_all(&config.plugins)?;
    let gpu = open_gpu(config, &plugins)?;
    println!("GPU: {}", gpu.describe());
    for plugin in &plugins {
        let info = plugin.info();
        println!("plugin {} {} ({}): {}", info.name, info.version, info.kinds.names().join(" + "), info.description);
        if plugin.provides(PluginKinds::MODEL) {
            check_model(plugin, &gpu, config, options)?;
        }
        if plugin.provides(PluginKinds::SCORER) {
            check_scorer(plugin, &gpu, config)?;
        }
    }
    Ok(())
}

fn check_model(plugin: &LoadedPlugin, gpu: &Arc<GpuDevice>, config: &Config, options: &CheckOptions) -> Result<()> {
    let mut model = plugin.new_model(gpu, &config.plugin_section(plugin.name()))?;
    let d = model.describe()?;
    println!(
        "  model {}: vocab {}, context {}, {} parameters, tokenizer {}",
        d.architecture, d.vocab_size, d.block_size, d.parameters, d.tokenizer
    );
    let seq = (d.block_size.min(32)) as usize;
    let batch = 4usize;
    let bytes: Vec<u32> = TEXT.bytes().cycle().take(batch * (seq + 1) * 3).map(|b| b as u32 % d.vocab_size).collect();
    let mut first = None;
    let mut last = 0.0;
    for step in 0..options.steps {
        let start = (step as usize * 7) % (bytes.len() - batch * (seq + 1));
        let (tokens, targets) = windows(&bytes[start..], batch, seq);
        model.zero_grad()?;
        let loss = model.loss(TokenBatch::new(batch as u32, seq as u32, &tokens), &targets)?;
        model.backward()?;
        model.step(options.learning_rate)?;
        first.get_or_insert(loss);
        last = loss;
        if step % 10 == 0 || step + 1 == options.steps {
            println!("  step {step:>4}  loss {loss:.4}");
        }
    }
    if let Some(first) = first {
        println!("  loss {first:.4} -> {last:.4} over {} steps", options.steps);
    }
    // The prompt's last tokens, as many as the model's context holds.
    let all: Vec<u32> = b"the chain keeps the".iter().map(|&b| b as u32 % d.vocab_size).collect();
    let prompt = all[all.len().saturating_sub(d.block_size as usize)..].to_vec();
    let out = model.forward(TokenBatch::new(1, prompt.len() as u32, &prompt), OutputRequest::top_k(5).last_only())?;
    let guesses: Vec<String> = out
        .ids
        .iter()
        .zip(out.logprobs.iter())
        .map(|(&id, &lp)| format!("{:?} {:.2}", char::from_u32(id).unwrap_or('?'), lp.exp()))
        .collect();
    println!("  after {:?}: {}", "the chain keeps the", guesses.join(", "));
    let stats = model.compute_stats();
    println!(
        "  GPU: {} dispatches in {} submissions, {} kernels compiled, {} KiB in buffers",
        stats.dispatches,
        stats.submissions,
        stats.kernels_compiled,
        stats.live_bytes >> 10
    );
    Ok(())
}

fn windows(data: &[u32], batch: usize, seq: usize) -> (Vec<u32>, Vec<u32>) {
    let mut tokens = Vec::with_capacity(batch * seq);
    let mut targets = Vec::with_capacity(batch * seq);
    for b in 0..batch {
        let s = &data[b * (seq + 1)..(b + 1) * (seq + 1)];
        tokens.extend_from_slice(&s[..seq]);
        targets.extend_from_slice(&s[1..]);
    }
    (tokens, targets)
}

fn check_scorer(plugin: &LoadedPlugin, gpu: &Arc<GpuDevice>, config: &Config) -> Result<()> {
    let mut scorer = plugin.new_scorer(gpu, &config.plugin_section(plugin.name()))?;
    let d = scorer.describe()?;
    println!("  scorer {}", d.policy);
    let (tokens, targets) = windows(&TEXT.bytes().map(u32::from).collect::<Vec<_>>(), 1, 16);
    let exact = MinerResponse {
        uid: 0,
        status: ResponseStatus::OK,
        k: 1,
        ids: targets.iter().copied().collect(),
        logprobs: targets.iter().map(|_| -0.05f32).collect(),
        latency_s: 0.01,
    };
    let timeout = MinerResponse {
        uid: 1,
        status: ResponseStatus::TIMEOUT,
        k: 0,
        ids: Default::default(),
        logprobs: Default::default(),
        latency_s: 1.0,
    };
    let scores = scorer.score(
        ScoringBatch { tokens: TokenBatch::new(1, 16, &tokens), targets: targets.as_slice().into(), vocab_size: 256 },
        &[exact, timeout],
    )?;
    println!("  scores {:?}, losses {:?}", scores.scores.as_slice(), scores.losses.as_slice());
    Ok(())
}
