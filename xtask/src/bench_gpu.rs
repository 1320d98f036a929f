//! `cargo xtask bench-gpu`: the GPU figures of BENCHMARKS.md in one run, on whatever adapter the
//! machine has (meant for a machine with a real GPU; on lavapipe it works, slowly).
//!
//! 1. Matmul GFLOP/s at n = 1024..8192 (the plugin's kernels and a one-output-per-thread
//!    baseline in the same run), as a fraction of the adapter's fp32 peak where it is known
//!    (`GPU_FP32_PEAK_TFLOPS` sets it for an adapter not in [`FP32_PEAK_TFLOPS`]).
//!    Then the kernels that sum over a workgroup on each reduction prelude the device runs
//!    (subgroup operations against the tree), as times and ratios.
//!    And the forward and input-gradient matmuls with f16 weights against f32 weights.
//! 2. GPT-2 124M training tokens/s and device memory at the largest batch of 1024-token
//!    sequences that fits (from `BENCH_GPU_BATCH`, default 16, halving on failure).
//! 3. The same model, batch and sequence in PyTorch eager, fp32 with TF32 off and bf16 autocast
//!    (tests/python/torch_gpt2_bench.py), in `NEURON_BENCH_PYTHON`, else the test venv
//!    `target/python/hf`, made from tests/python/requirements-hf.txt when PyPI can be reached;
//!    without torch and a CUDA device that part says why it did not run.
//! 4. A summary: neuron-host's tokens/s against PyTorch's, as ratios.
//!
//! `BENCH_GPU_MATMUL_SIZES`, `BENCH_GPU_BATCH`, `BENCH_GPU_SEQ`, `BENCH_GPU_STEPS` and
//! `BENCH_GPU_TORCH_DEVICE=cpu`
//! shrink it to a smoke run on a machine without a GPU.

use std::{env, path::PathBuf, process::Command};

use crate::{cargo, ensure_system, fail, python_env};

/// fp32 (non-tensor-core) peaks, TFLOP/s, by a part of the adapter's name. The SXM parts; a PCIe
/// H100 (51.2) is told apart by its name.
const FP32_PEAK_TFLOPS: &[(&str, f64)] = &[
    ("H100 PCIe", 51.2),
    ("H100", 66.9),
    ("H200", 66.9),
    ("A100", 19.5),
    ("L40S", 91.6),
    ("L4", 30.3),
    ("RTX 4090", 82.6),
    ("A10", 31.2),
];

/// Runs a bench target of the GPT plugin in release with `envs`; its stdout, or why it failed.
fn bench(target: &str, filter: &[&str], envs: &[(&str, String)]) -> Result<String, String> {
    let mut cmd = cargo();
    cmd.args(["bench", "-p", "neuron-plugin-gpt", "--bench", target, "--"]).args(filter);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    eprintln!("xtask: {}cargo bench -p neuron-plugin-gpt --bench {target} -- {}", env_text(envs), filter.join(" "));
    let out = cmd.output().map_err(|e| format!("cannot run cargo bench: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    print!("{stdout}");
    if out.status.success() {
        Ok(stdout)
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("failed").to_string())
    }
}

fn env_text(envs: &[(&str, String)]) -> String {
    envs.iter().map(|(k, v)| format!("{k}={v} ")).collect()
}

/// `key=value` of a `RESULT` line.
fn field(line: &str, key: &str) -> Option<f64> {
    line.split_whitespace().find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('='))?.parse().ok())
}

fn adapter(stdout: &str) -> String {
    stdout.lines().find_map(|l| l.strip_prefix("adapter: ")).unwrap_or("unknown adapter").to_string()
}

fn fp32_peak(adapter: &str) -> Option<f64> {
    if let Some(v) = env::var("GPU_FP32_PEAK_TFLOPS").ok().and_then(|v| v.parse().ok()) {
        return Some(v);
    }
    FP32_PEAK_TFLOPS.iter().find(|(name, _)| adapter.contains(name)).map(|(_, p)| *p)
}

/// A Python with torch and transformers, and whether it sees a CUDA device: (python, why not).
fn torch_python() -> Result<PathBuf, String> {
    let python = match env::var_os("NEURON_BENCH_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => {
            let venv = PathBuf::from("target/python/hf/bin/python");
            if venv.exists() {
                std::path::absolute(&venv).unwrap_or(venv)
            } else {
                python_env("hf", "tests/python/requirements-hf.txt")
            }
        }
    };
    let probe = Command::new(&python)
        .args(["-c", "import torch, transformers; print(torch.cuda.is_available())"])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    let said = String::from_utf8_lossy(&probe.stdout);
    if !probe.status.success() {
        return Err(format!(
            "{} has no torch/transformers (set NEURON_BENCH_PYTHON to one that has)",
            python.display()
        ));
    }
    if said.trim() != "True" && torch_device() == "cuda" {
        return Err(format!("torch in {} sees no CUDA device", python.display()));
    }
    Ok(python)
}

/// Where PyTorch runs: `cuda`, or `BENCH_GPU_TORCH_DEVICE` (`cpu` to try the command on a machine
/// without a GPU).
fn torch_device() -> String {
    env::var("BENCH_GPU_TORCH_DEVICE").unwrap_or_else(|_| "cuda".into())
}

pub fn bench_gpu() {
    ensure_system(false);
    println!("## Matmul, n x n x n, GFLOP/s");
    let sizes = env::var("BENCH_GPU_MATMUL_SIZES").unwrap_or_else(|_| "1024,2048,4096,8192".into());
    let matmul = bench("kernels", &["matmul"], &[("MATMUL_SIZES", sizes)])
        .unwrap_or_else(|e| fail(&format!("the matmul bench failed: {e}")));
    let adapter = adapter(&matmul);
    let peak = fp32_peak(&adapter);
    for line in matmul.lines().filter(|l| l.starts_with("RESULT matmul")) {
        let n = field(line, "n").unwrap_or(0.0);
        let best = ["nt", "nn", "tn", "tiled"].iter().filter_map(|k| field(line, k)).fold(0.0, f64::max);
        match peak {
            Some(p) => println!(
                "n={n}: best {best:.1} GFLOP/s = {:.1}% of {adapter}'s fp32 peak ({p} TFLOP/s)",
                best / (p * 10.0)
            ),
            None => {
                println!("n={n}: best {best:.1} GFLOP/s (fp32 peak of {adapter} unknown: set GPU_FP32_PEAK_TFLOPS)")
            }
        }
    }

    println!("\n## Workgroup reductions: the subgroup prelude against the tree, in one run");
    // The gradient norm, the loss and top-k over GPT-2's vocabulary on each prelude the device
    // runs; a failure here is reported and the rest goes on.
    if let Err(e) = bench("kernels", &["reduce"], &[]) {
        println!("the reduction bench failed: {e}");
    }

    println!("\n## Matmul with f16 weights (`weights_f16`) against f32 weights, in one run");
    let f16_sizes = env::var("BENCH_GPU_MATMUL_SIZES").unwrap_or_else(|_| "1024,4096".into());
    if let Err(e) = bench("kernels", &["f16"], &[("MATMUL_SIZES", f16_sizes)]) {
        println!("the f16-weights bench failed: {e}");
    }

    let mut batch: u32 = env::var("BENCH_GPU_BATCH").ok().and_then(|b| b.parse().ok()).unwrap_or(16);
    let seq: u32 = env::var("BENCH_GPU_SEQ").ok().and_then(|s| s.parse().ok()).unwrap_or(1024);
    println!("\n## GPT-2 124M training, {seq}-token sequences");
    let steps: u32 = env::var("BENCH_GPU_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let ours = loop {
        match bench("training", &["gpt2"], &[("GPT_BENCH_SHAPE", format!("{batch}x{seq}x{steps}"))]) {
            Ok(out) => break out.lines().find(|l| l.starts_with("RESULT training")).map(str::to_string),
            Err(e) if batch > 1 => {
                eprintln!("xtask: batch {batch} did not run ({e}); trying {}", batch / 2);
                batch /= 2;
            }
            Err(e) => fail(&format!("GPT-2 training did not run even at batch 1: {e}")),
        }
    };
    let ours_tps = ours.as_deref().and_then(|l| field(l, "train_tokens_per_s"));
    // The same batch with the f16 copy of the weights; a failure (memory: 2 bytes more per
    // parameter) is reported, not fatal.
    let half_tps = match bench("training", &["gpt2+f16"], &[("GPT_BENCH_SHAPE", format!("{batch}x{seq}x{steps}"))]) {
        Ok(out) => out
            .lines()
            .find(|l| l.starts_with("RESULT training") && l.contains("weights=f16"))
            .and_then(|l| field(l, "train_tokens_per_s")),
        Err(e) => {
            println!("GPT-2 with f16 weights did not run at batch {batch}: {e}");
            None
        }
    };

    println!("\n## The same in PyTorch eager (batch {batch} x {seq})");
    let mut torch = Vec::new();
    match torch_python() {
        Err(why) => println!("PyTorch baseline not run: {why}"),
        Ok(python) => {
            let out = Command::new(&python)
                .arg("tests/python/torch_gpt2_bench.py")
                .args(["--batch", &batch.to_string(), "--seq", &seq.to_string(), "--steps", &steps.to_string()])
                .args(["--device", &torch_device()])
                .output()
                .unwrap_or_else(|e| fail(&format!("cannot run {}: {e}", python.display())));
            let text = String::from_utf8_lossy(&out.stdout);
            print!("{text}");
            if !out.status.success() {
                println!(
                    "PyTorch baseline failed: {}",
                    String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")
                );
            }
            for line in text.lines() {
                if let (Some(p), Some(t)) = (
                    line.split("\"precision\": \"").nth(1).and_then(|r| r.split('"').next()),
                    line.split("\"tokens_per_s\": ")
                        .nth(1)
                        .and_then(|r| r.split([',', '}']).next()?.trim().parse::<f64>().ok()),
                ) {
                    torch.push((p.to_string(), t));
                }
            }
        }
    }

    println!("\n## Summary ({adapter})");
    match ours_tps {
        Some(t) => println!("neuron-host (WGSL, fp32): {t:.0} tokens/s at batch {batch} x {seq}"),
        None => println!("neuron-host: no result line from the training bench"),
    }
    if let (Some(h), Some(t)) = (half_tps, ours_tps) {
        println!("neuron-host with f16 weights: {h:.0} tokens/s, {:.2}x the fp32 weights", h / t);
    }
    for (precision, t) in &torch {
        match ours_tps {
            Some(o) => println!("PyTorch eager {precision}: {t:.0} tokens/s; neuron-host / PyTorch = {:.2}x", o / t),
            None => println!("PyTorch eager {precision}: {t:.0} tokens/s"),
        }
    }
}
