//! Training and inference throughput of the GPT model on the machine's adapter, and device memory
//! against what training needs. Run: `cargo bench -p neuron-plugin-gpt --bench training [-- PRESET...]`
//! (presets: tiny, nano, gpt2, gpt2-medium; default tiny and nano — the GPT-2 sizes want a real
//! GPU, or `GPT_BENCH_SHAPE=1x64x3` for a small batch on a CPU adapter). `PRESET+f16` runs the
//! preset with `weights_f16 = true` (where the adapter has SHADER_F16), for a ratio in one run.
//! The device is the one the host opens for the plugin (its optional features enabled).

use std::time::Instant;

use gpt::{Gpt, GptConfig};
use neuron_host::data::{BatchSampler, Dataset, Tokenizer};
use neuron_plugin_api::{ModelPlugin, OutputRequest, TokenBatch};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Bytes training needs by the usual accounting: parameters, gradients and both Adam moments
/// (16 bytes per parameter), and the activations the backward pass reads (what llm.c keeps:
/// per block ln1, qkv, attention output, the mid residual, ln2, the MLP's pre- and post-GELU,
/// LayerNorm statistics and the attention logsumexp; the block inputs, ln_f, the logits and the
/// per-position losses), all f32; with `weights_f16`, 2 bytes more per parameter for the f16 copy.
fn needed_bytes(c: &GptConfig, parameters: u64, b: u64, t: u64, f16_copy: bool) -> (u64, u64) {
    let (l, ch, h, v) = (u64::from(c.n_layer), u64::from(c.n_embd), u64::from(c.n_head), u64::from(c.vocab_size));
    let bt = b * t;
    let per_block = 15 * bt * ch + 4 * bt + b * h * t;
    let acts = l * per_block + (l + 1) * bt * ch + bt * ch + 2 * bt + bt * v + bt;
    let copy = if f16_copy { 2 * parameters } else { 0 };
    (16 * parameters + copy, 4 * acts)
}

fn main() {
    let device = neuron_plugin_testkit::device_for(&gpt::plugin());
    println!("adapter: {}", device.describe());
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let presets: Vec<&str> =
        if args.is_empty() { vec!["tiny", "nano"] } else { args.iter().map(String::as_str).collect() };
    println!("| preset | batch x seq | step (median) | train tokens/s | forward tokens/s | device memory live / peak | needed (state + activations) | ratio |");
    println!("|---|---|---|---|---|---|---|---|");
    for label in presets {
        let (preset, f16) = match label.strip_suffix("+f16") {
            Some(p) => (p, true),
            None => (label, false),
        };
        let (b, t, steps) = match preset {
            "tiny" => (8u32, 16u32, 30),
            "nano" => (16, 64, 10),
            _ => (4, 1024, 5),
        };
        // GPT_BENCH_SHAPE=BxT[xSTEPS] overrides the batch, sequence and step count (the GPT-2
        // presets at their GPU shape take minutes a step on a CPU adapter).
        let (b, t, steps) = match std::env::var("GPT_BENCH_SHAPE") {
            Ok(shape) => {
                let n: Vec<u32> =
                    shape.split('x').map(|x| x.parse().expect("GPT_BENCH_SHAPE is BxT[xSTEPS]")).collect();
                (n[0], n[1], n.get(2).map_or(steps, |&s| s as usize))
            }
            Err(_) => (b, t, steps),
        };
        let gpu = device.context(label).into_gpu();
        let mut m = Gpt::new(gpu.clone(), &format!("preset = \"{preset}\"\nweights_f16 = {f16}")).unwrap();
        let cfg = m.config().clone();
        let tokenizer = Tokenizer::from_name(&cfg.tokenizer).unwrap();
        let data = Dataset::builtin(0, 200_000, tokenizer).unwrap();
        let mut sampler = BatchSampler::new(0, b, t);
        let mut times = Vec::new();
        for i in 0..steps + 2 {
            let batch = sampler.next_batch(&data).unwrap();
            let start = Instant::now();
            m.zero_grad().unwrap();
            m.loss(TokenBatch::new(b, t, &batch.tokens), &batch.targets).unwrap();
            m.backward().unwrap();
            m.step(1e-3).unwrap();
            if i >= 2 {
                times.push(start.elapsed().as_secs_f64());
            }
        }
        let step = median(times);
        let live_train = gpu.stats().live_bytes;
        let batch = sampler.next_batch(&data).unwrap();
        let mut ftimes = Vec::new();
        for _ in 0..steps.min(10) + 1 {
            let start = Instant::now();
            m.forward(TokenBatch::new(b, t, &batch.tokens), OutputRequest::top_k(5)).unwrap();
            ftimes.push(start.elapsed().as_secs_f64());
        }
        let forward = median(ftimes[1..].to_vec());
        let stats = gpu.stats();
        let (state, acts) = needed_bytes(&cfg, m.describe().parameters, u64::from(b), u64::from(t), m.weights_f16());
        let mib = |x: u64| x as f64 / (1u64 << 20) as f64;
        let tokens = f64::from(b * t);
        println!(
            "| {label} | {b} x {t} | {:.1} ms | {:.0} | {:.0} | {:.1} MiB (training) / {:.1} MiB (after serving forward passes too) | {:.1} MiB ({:.1} + {:.1}) | {:.2}x |",
            step * 1e3,
            tokens / step,
            tokens / forward,
            mib(live_train),
            mib(stats.peak_bytes),
            mib(state + acts),
            mib(state),
            mib(acts),
            live_train as f64 / (state + acts) as f64
        );
        println!("  ({label}: {} submissions, {} dispatches in all)", stats.submissions, stats.dispatches);
        // One line a script reads (cargo xtask bench-gpu).
        println!(
            "RESULT training preset={preset} weights={} batch={b} seq={t} step_s={step:.6} train_tokens_per_s={:.1} live_bytes={live_train} peak_bytes={}",
            if f16 { "f16" } else { "f32" },
            tokens / step,
            stats.peak_bytes
        );
    }
}
