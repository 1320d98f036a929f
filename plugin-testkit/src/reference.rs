//! Seeded inputs and plain f64 CPU references to check GPU kernels against.
//!
//! Every reference takes and returns row-major `f32` slices and computes in `f64`, so a kernel's
//! own rounding is the only difference [`assert_close`] sees.

use neuron_plugin_api::rand::SplitMix64;

/// Seeded inputs (plugin-api's SplitMix64): the same on every run and machine.
#[derive(Clone, Debug)]
pub struct Rng(SplitMix64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(SplitMix64::new(seed))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        self.0.unit()
    }
    /// A standard normal draw.
    pub fn normal(&mut self) -> f32 {
        self.0.normal()
    }
    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit() as f32
    }
    /// `n` values uniform in `[lo, hi)`.
    pub fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
    /// `n` token ids below `vocab`.
    pub fn tokens(&mut self, n: usize, vocab: u32) -> Vec<u32> {
        (0..n).map(|_| self.below(vocab)).collect()
    }
    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u32) -> u32 {
        (self.unit() * n as f64) as u32 % n.max(1)
    }
}

/// `c[m][n] = sum_k a[m][k] * b[k][n]`.
pub fn matmul(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    assert_eq!(a.len(), m * k, "a is not {m} x {k}");
    assert_eq!(b.len(), k * n, "b is not {k} x {n}");
    let mut c = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            c[i * n + j] = (0..k).map(|p| a[i * k + p] as f64 * b[p * n + j] as f64).sum::<f64>() as f32;
        }
    }
    c
}

/// Log-softmax of each row of `cols` values.
pub fn log_softmax(x: &[f32], cols: usize) -> Vec<f32> {
    x.chunks(cols)
        .flat_map(|row| {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let log_z = max + row.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln();
            row.iter().map(move |&v| (v as f64 - log_z) as f32)
        })
        .collect()
}

/// Softmax of each row of `cols` values.
pub fn softmax(x: &[f32], cols: usize) -> Vec<f32> {
    log_softmax(x, cols).into_iter().map(|v| (v as f64).exp() as f32).collect()
}

/// Mean next-token cross-entropy (nats) of `logits` (`targets.len()` rows of `vocab`).
pub fn cross_entropy(logits: &[f32], targets: &[u32], vocab: usize) -> f64 {
    assert_eq!(
        logits.len(),
        targets.len() * vocab,
        "{} logits for {} targets of vocabulary {vocab}",
        logits.len(),
        targets.len()
    );
    let lp = log_softmax(logits, vocab);
    -targets.iter().enumerate().map(|(r, &t)| lp[r * vocab + t as usize] as f64).sum::<f64>() / targets.len() as f64
}

/// LayerNorm of each row: `(x - mean) / sqrt(var + eps) * weight + bias` (biased variance).
pub fn layer_norm(x: &[f32], weight: &[f32], bias: &[f32], eps: f64) -> Vec<f32> {
    let cols = weight.len();
    x.chunks(cols)
        .flat_map(|row| {
            let mean = row.iter().map(|&v| v as f64).sum::<f64>() / cols as f64;
            let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / cols as f64;
            let rstd = 1.0 / (var + eps).sqrt();
            row.iter()
                .enumerate()
                .map(move |(i, &v)| ((v as f64 - mean) * rstd * weight[i] as f64 + bias[i] as f64) as f32)
        })
        .collect()
}

/// GELU with the tanh approximation (GPT-2's).
pub fn gelu(x: &[f32]) -> Vec<f32> {
    let c = (2.0 / std::f64::consts::PI).sqrt();
    x.iter()
        .map(|&v| {
            let v = v as f64;
            (0.5 * v * (1.0 + (c * (v + 0.044715 * v * v * v)).tanh())) as f32
        })
        .collect()
}

/// Where two arrays differ most, relative to `atol + rtol * |expected|`; `None` when every
/// element is within it (NaN anywhere is a difference).
pub fn worst_difference(actual: &[f32], expected: &[f32], rtol: f64, atol: f64) -> Option<String> {
    if actual.len() != expected.len() {
        return Some(format!("{} values, expected {}", actual.len(), expected.len()));
    }
    let mut worst: Option<(usize, f64)> = None;
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let (a, e) = (a as f64, e as f64);
        let excess = if a.is_nan() || e.is_nan() { f64::INFINITY } else { (a - e).abs() / (atol + rtol * e.abs()) };
        if excess > 1.0 && worst.is_none_or(|(_, w)| excess > w) {
            worst = Some((i, excess));
        }
    }
    worst.map(|(i, _)| {
        format!(
            "element {i} is {} where {} was expected (tolerance {atol} + {rtol} x |expected|)",
            actual[i], expected[i]
        )
    })
}

/// Panics naming the worst element unless every element is within `atol + rtol * |expected|`.
#[track_caller]
pub fn assert_close(actual: &[f32], expected: &[f32], rtol: f64, atol: f64) {
    if let Some(d) = worst_difference(actual, expected, rtol, atol) {
        panic!("{d}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_agree_with_hand_computed_values() {
        assert_eq!(matmul(&[1., 2., 3., 4.], &[5., 6., 7., 8.], 2, 2, 2), [19., 22., 43., 50.]);
        let p = softmax(&[0.0, (3f32).ln()], 2);
        assert_close(&p, &[0.25, 0.75], 1e-6, 0.0);
        let ce = cross_entropy(&[0.0, (3f32).ln()], &[1], 2);
        assert!((ce - (4f64 / 3.0).ln()).abs() < 1e-6, "{ce}");
        let ln = layer_norm(&[1.0, 3.0], &[1.0, 1.0], &[0.0, 0.5], 0.0);
        assert_close(&ln, &[-1.0, 1.5], 1e-6, 1e-6);
        assert_close(&gelu(&[0.0, 1.0]), &[0.0, 0.841_192], 1e-5, 0.0);
    }

    #[test]
    fn a_difference_is_named_and_nan_is_never_close() {
        assert!(worst_difference(&[1.0, 2.0], &[1.0, 2.0001], 1e-3, 0.0).is_none());
        let d = worst_difference(&[1.0, 2.5], &[1.0, 2.0], 1e-3, 0.0).unwrap();
        assert!(d.starts_with("element 1 is 2.5 where 2 was expected"), "{d}");
        assert!(worst_difference(&[f32::NAN], &[f32::NAN], 1.0, 1.0).is_some());
    }

    #[test]
    fn the_generator_is_seeded() {
        assert_eq!(Rng::new(3).vec(4, -1.0, 1.0), Rng::new(3).vec(4, -1.0, 1.0));
        assert_ne!(Rng::new(3).next_u64(), Rng::new(4).next_u64());
        assert!(Rng::new(5).tokens(100, 7).iter().all(|&t| t < 7));
    }
}
