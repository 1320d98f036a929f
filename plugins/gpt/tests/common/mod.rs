//! Shared by the GPT plugin's tests: one GPU device per test process, seeded random inputs, and
//! plain f64 CPU references of every kernel and of the whole model.

#![allow(dead_code)]

use std::{collections::HashMap, sync::Arc};

use gpt::{Gpt, GptOptions};
use neuron_plugin_api::{shaders::Reduction, Gpu, Tensor};
use neuron_plugin_testkit::GpuDevice;
use rand_core::{Rng as _, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// The device the host would open for the gpt plugin: with `SUBGROUP` where the adapter offers
/// it (lavapipe does), so the model's tests run the subgroup reductions there.
pub fn device() -> Arc<GpuDevice> {
    neuron_plugin_testkit::device_for(&gpt::plugin())
}

/// Whether the test device is Mesa's lavapipe, which offers SUBGROUP and SHADER_F16: the tests
/// assert that the paths behind those features ran there.
pub fn is_lavapipe() -> bool {
    gpu().adapter().name.to_ascii_lowercase().contains("llvmpipe")
}

/// The reductions this device can run: the tree always, subgroups where enabled.
pub fn reductions(gpu: &Gpu) -> Vec<Reduction> {
    let mut all = vec![Reduction::Tree];
    if Reduction::for_gpu(gpu) == Reduction::Subgroup {
        all.push(Reduction::Subgroup);
    }
    all
}

pub fn gpu() -> Gpu {
    device().context("gpt-test").into_gpu()
}

pub fn model(config: &str) -> Gpt {
    Gpt::new(gpu(), config).expect("model builds")
}

pub fn model_with_binding_limit(config: &str, bytes: u64) -> Gpt {
    Gpt::with_options(gpu(), config, GptOptions { max_binding_bytes: Some(bytes) }).expect("model builds")
}

/// Deterministic pseudo-random numbers for test inputs.
pub struct Rand(Xoshiro256PlusPlus);

impl Rand {
    pub fn new(seed: u64) -> Self {
        Self(Xoshiro256PlusPlus::seed_from_u64(seed))
    }
    pub fn next(&mut self) -> u64 {
        self.0.next_u64()
    }
    /// Uniform in [-1, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    pub fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.unit() * scale).collect()
    }
    pub fn below(&mut self, n: u32) -> u32 {
        (self.next() % u64::from(n)) as u32
    }
}

pub fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

/// Largest |got - want| / (atol + rtol |want|); the check passes when it is at most 1.
pub fn assert_close(what: &str, got: &[f32], want: &[f64], atol: f64, rtol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst = (0.0f64, 0usize);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let e = (f64::from(g) - w).abs() / (atol + rtol * w.abs());
        // A NaN counts as the worst error.
        let e = if e.is_nan() { f64::INFINITY } else { e };
        if e > worst.0 {
            worst = (e, i);
        }
    }
    let i = worst.1;
    assert!(
        worst.0 <= 1.0,
        "{what}: element {i} is {} but the reference is {} (tolerance {atol} + {rtol} * |ref|)",
        got[i],
        want[i]
    );
}

// ---- kernel references ---------------------------------------------------------------------

pub fn layernorm(x: &[f64], w: &[f64], b: &[f64], cols: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let rows = x.len() / cols;
    let (mut y, mut means, mut rstds) = (vec![0.0; x.len()], vec![], vec![]);
    for r in 0..rows {
        let row = &x[r * cols..(r + 1) * cols];
        let mean = row.iter().sum::<f64>() / cols as f64;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / cols as f64;
        let rstd = 1.0 / (var + 1e-5).sqrt();
        for c in 0..cols {
            y[r * cols + c] = (row[c] - mean) * rstd * w[c] + b[c];
        }
        means.push(mean);
        rstds.push(rstd);
    }
    (y, means, rstds)
}

pub fn gelu(x: f64) -> f64 {
    let s = (2.0 / std::f64::consts::PI).sqrt();
    0.5 * x * (1.0 + (s * (x + 0.044715 * x * x * x)).tanh())
}

pub fn gelu_grad(x: f64) -> f64 {
    let s = (2.0 / std::f64::consts::PI).sqrt();
    let t = (s * (x + 0.044715 * x * x * x)).tanh();
    0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * s * (1.0 + 3.0 * 0.044715 * x * x)
}

/// Causal attention over qkv [B, T, 3C]: (y [B, T, C], lse [B, H, T]).
pub fn attention(qkv: &[f64], b: usize, t: usize, c: usize, h: usize) -> (Vec<f64>, Vec<f64>) {
    let hs = c / h;
    let scale = 1.0 / (hs as f64).sqrt();
    let (mut y, mut lse) = (vec![0.0; b * t * c], vec![0.0; b * h * t]);
    let at =
        |bb: usize, tt: usize, part: usize, hh: usize, d: usize| qkv[(bb * t + tt) * 3 * c + part * c + hh * hs + d];
    for bb in 0..b {
        for hh in 0..h {
            for tq in 0..t {
                let scores: Vec<f64> = (0..=tq)
                    .map(|s| (0..hs).map(|d| at(bb, tq, 0, hh, d) * at(bb, s, 1, hh, d)).sum::<f64>() * scale)
                    .collect();
                let m = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = scores.iter().map(|s| (s - m).exp()).sum();
                lse[(bb * h + hh) * t + tq] = m + z.ln();
                for d in 0..hs {
                    y[(bb * t + tq) * c + hh * hs + d] =
                        scores.iter().enumerate().map(|(s, sc)| (sc - m).exp() / z * at(bb, s, 2, hh, d)).sum();
                }
            }
        }
    }
    (y, lse)
}

// ---- the whole model -------------------------------------------------------------------------

pub struct Dims {
    pub layers: usize,
    pub heads: usize,
    pub c: usize,
    pub vocab: usize,
}

/// y[rows, out] = x W^T + b with W [out, in].
pub fn linear(x: &[f64], w: &[f64], b: Option<&[f64]>, inp: usize, out: usize) -> Vec<f64> {
    let rows = x.len() / inp;
    let mut y = vec![0.0; rows * out];
    for r in 0..rows {
        let xr = &x[r * inp..(r + 1) * inp];
        for o in 0..out {
            let wr = &w[o * inp..(o + 1) * inp];
            y[r * out + o] = xr.iter().zip(wr).map(|(a, b)| a * b).sum::<f64>() + b.map_or(0.0, |b| b[o]);
        }
    }
    y
}

pub type Params = HashMap<String, Vec<f64>>;

pub fn params_of(tensors: &[Tensor]) -> Params {
    tensors.iter().map(|t| (t.name.to_string(), f64s(&t.to_f32().unwrap()))).collect()
}

/// The model's logits [B * T, V] in f64.
pub fn reference_logits(p: &Params, d: &Dims, tokens: &[u32], b: usize, t: usize) -> Vec<f64> {
    let c = d.c;
    let g = |n: &str| p.get(n).unwrap_or_else(|| panic!("no tensor {n}")).as_slice();
    let (wte, wpe) = (g("transformer.wte.weight"), g("transformer.wpe.weight"));
    let mut x = vec![0.0; b * t * c];
    for (i, &tok) in tokens.iter().enumerate() {
        for j in 0..c {
            x[i * c + j] = wte[tok as usize * c + j] + wpe[(i % t) * c + j];
        }
    }
    for l in 0..d.layers {
        let n = |s: &str| format!("transformer.h.{l}.{s}");
        let (h1, _, _) = layernorm(&x, g(&n("ln_1.weight")), g(&n("ln_1.bias")), c);
        let qkv = linear(&h1, g(&n("attn.c_attn.weight")), Some(g(&n("attn.c_attn.bias"))), c, 3 * c);
        let (att, _) = attention(&qkv, b, t, c, d.heads);
        let proj = linear(&att, g(&n("attn.c_proj.weight")), Some(g(&n("attn.c_proj.bias"))), c, c);
        x.iter_mut().zip(&proj).for_each(|(a, p)| *a += p);
        let (h2, _, _) = layernorm(&x, g(&n("ln_2.weight")), g(&n("ln_2.bias")), c);
        let mut f = linear(&h2, g(&n("mlp.c_fc.weight")), Some(g(&n("mlp.c_fc.bias"))), c, 4 * c);
        f.iter_mut().for_each(|v| *v = gelu(*v));
        let proj = linear(&f, g(&n("mlp.c_proj.weight")), Some(g(&n("mlp.c_proj.bias"))), 4 * c, c);
        x.iter_mut().zip(&proj).for_each(|(a, p)| *a += p);
    }
    let (h, _, _) = layernorm(&x, g("transformer.ln_f.weight"), g("transformer.ln_f.bias"), c);
    linear(&h, wte, None, c, d.vocab)
}

/// Mean next-token cross-entropy of logits [rows, V].
pub fn reference_loss(logits: &[f64], targets: &[u32], vocab: usize) -> f64 {
    let mut total = 0.0;
    for (r, &tgt) in targets.iter().enumerate() {
        let row = &logits[r * vocab..(r + 1) * vocab];
        let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        total += lse - row[tgt as usize];
    }
    total / targets.len() as f64
}

/// A short English text as byte tokens, for training tests.
pub const TEXT: &str = "the quick brown fox jumps over the lazy dog. a stitch in time saves nine. \
    all that glitters is not gold. the early bird catches the worm.";

/// `batch` windows of `seq + 1` bytes of [`TEXT`]: (tokens, targets).
pub fn text_batch(batch: usize, seq: usize) -> (Vec<u32>, Vec<u32>) {
    let bytes: Vec<u32> = TEXT.bytes().map(u32::from).collect();
    let (mut tokens, mut targets) = (vec![], vec![]);
    for b in 0..batch {
        let start = b * 7 % (bytes.len() - seq - 1);
        tokens.extend_from_slice(&bytes[start..start + seq]);
        targets.extend_from_slice(&bytes[start + 1..start + seq + 1]);
    }
    (tokens, targets)
}
