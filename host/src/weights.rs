//! From scores to the u16 weights a validator sends to the chain, exactly as
//! the Bittensor SDK computes them, so a validator on neuron-host emits the
//! same vector a Python validator would.
//!
//! Two pipelines, because the SDK changed:
//!
//! - [`WeightsPipeline::Legacy`]: bittensor ≤ 10's `process_weights_for_netuid`
//!   followed by `convert_weights_and_uids_for_emit` — drop non-positive
//!   weights; with none left (or a subnet smaller than `min_allowed_weights`)
//!   fall back to uniform weights over every uid; with fewer than
//!   `min_allowed_weights`, pad every uid with 1e-5; otherwise drop the lowest
//!   `exclude_quantile` (never below `min_allowed_weights` entries); clip to
//!   `max_weight_limit` with redistribution (`normalize_max_weight`); then
//!   max-upscale to 65535, round half to even, drop zeros. The arithmetic is
//!   numpy's: float32 arrays (pairwise summation, NEP 50 promotion of Python
//!   scalars) except on the padding path, which numpy runs in float64.
//! - [`WeightsPipeline::Sdk11`]: bittensor 11's `SetWeights` intent — clip to
//!   `max_weight_limit` (unless a single self-weight), max-upscale, round,
//!   drop zeros, and refuse (rather than pad) fewer than
//!   `min_allowed_weights` non-zero weights. Python floats (float64).
//!
//! The tests check both against the SDKs' own functions on random inputs.

use serde::{Deserialize, Serialize};

const U16_MAX: f64 = 65535.0;

/// Which SDK behaviour to reproduce.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WeightsPipeline {
    /// bittensor ≤ 10: `process_weights_for_netuid` + `convert_weights_and_uids_for_emit`.
    #[default]
    Legacy,
    /// bittensor 11: the `SetWeights` intent's conform step.
    Sdk11,
}

/// The subnet's rules the pipeline needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WeightLimits {
    /// Neurons in the subnet (`metagraph.n`).
    pub num_neurons: usize,
    pub min_allowed_weights: u16,
    /// u16 proportion; 65535 means no limit.
    pub max_weight_limit: u16,
    /// Legacy only: lowest quantile (u16 proportion) of weights to drop; 0 keeps all.
    pub exclude_quantile: u16,
}

/// Why weights cannot be emitted (the SDK 11 pipeline refuses instead of padding).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WeightsError {
    #[error("all weights are zero; nothing to set")]
    AllZero,
    #[error("the subnet requires at least {required} weights; only {got} are non-zero after normalisation")]
    TooFew { required: u16, got: usize },
    #[error("weights must be finite and non-negative")]
    Invalid,
}

/// Runs the pipeline: `uids[i]` carries `weights[i]`; `self_uid` is the
/// validator's own uid (a lone self-weight is exempt from the limits in SDK 11).
pub fn emit(
    pipeline: WeightsPipeline,
    uids: &[u16],
    weights: &[f32],
    limits: WeightLimits,
    self_uid: Option<u16>,
) -> Result<(Vec<u16>, Vec<u16>), WeightsError> {
    assert_eq!(uids.len(), weights.len(), "uids and weights are parallel");
    match pipeline {
        WeightsPipeline::Legacy => {
            let (uids, weights) = process_weights(uids, weights, limits);
            Ok(convert_for_emit(&uids, &weights))
        }
        WeightsPipeline::Sdk11 => conform_sdk11(uids, weights, limits, self_uid),
    }
}

// ---------------------------------------------------------------- numpy arithmetic

/// numpy's float32 `sum`: pairwise summation with 8 accumulators over blocks
/// of at most 128, split recursively above that.
fn np_sum_f32(a: &[f32]) -> f32 {
    const BLOCK: usize = 128;
    let n = a.len();
    if n < 8 {
        let mut s = -0.0f32;
        for &x in a {
            s += x;
        }
        // numpy starts from the first element; -0.0 + x == x keeps that exact.
        return s;
    }
    if n <= BLOCK {
        let mut r = [a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]];
        let mut i = 8;
        while i < n - n % 8 {
            for k in 0..8 {
                r[k] += a[i + k];
            }
            i += 8;
        }
        let mut s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            s += a[i];
            i += 1;
        }
        return s;
    }
    let mut half = n / 2;
    half -= half % 8;
    np_sum_f32(&a[..half]) + np_sum_f32(&a[half..])
}

/// The same pairwise scheme in float64 (numpy uses it for every float dtype).
fn np_sum_f64(a: &[f64]) -> f64 {
    const BLOCK: usize = 128;
    let n = a.len();
    if n < 8 {
        let mut s = -0.0f64;
        for &x in a {
            s += x;
        }
        return s;
    }
    if n <= BLOCK {
        let mut r = [a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]];
        let mut i = 8;
        while i < n - n % 8 {
            for k in 0..8 {
                r[k] += a[i + k];
            }
            i += 8;
        }
        let mut s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            s += a[i];
            i += 1;
        }
        return s;
    }
    let mut half = n / 2;
    half -= half % 8;
    np_sum_f64(&a[..half]) + np_sum_f64(&a[half..])
}

/// `np.quantile(a, q)` (default linear method) of a float32 array.
fn np_quantile_f32(a: &[f32], q: f64) -> f32 {
    let mut s = a.to_vec();
    s.sort_by(|x, y| x.total_cmp(y));
    let n = s.len();
    let virtual_index = q * (n - 1) as f64;
    let lo = virtual_index.floor();
    let gamma = virtual_index - lo;
    let lo = lo as usize;
    let hi = (lo + 1).min(n - 1);
    let (a, b) = (f64::from(s[lo]), f64::from(s[hi]));
    let diff = b - a;
    let v = if gamma >= 0.5 { b - diff * (1.0 - gamma) } else { a + diff * gamma };
    v as f32
}

// ---------------------------------------------------------------- legacy pipeline

/// A weights array as numpy holds it in `process_weights`: float32 normally,
/// float64 on the padding path.
enum Array {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl Array {
    fn to_f64(&self) -> Vec<f64> {
        match self {
            Array::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            Array::F64(v) => v.clone(),
        }
    }
}

/// `normalize_max_weight` on a float32 array.
fn normalize_max_weight_f32(x: &[f32], limit: f64) -> Vec<f32> {
    let eps32 = 1e-7f32;
    let limit32 = limit as f32;
    let n = x.len();
    let mut values = x.to_vec();
    values.sort_by(|a, b| a.total_cmp(b));
    if np_sum_f32(x) == 0.0 || (n as f64) * limit <= 1.0 {
        return vec![1.0f32 / n as f32; n];
    }
    let vsum = np_sum_f32(&values);
    let estimation: Vec<f32> = values.iter().map(|&v| v / vsum).collect();
    let est_max = estimation.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if est_max <= limit32 {
        let s = np_sum_f32(x);
        return x.iter().map(|&w| w / s).collect();
    }
    let mut cumsum = Vec::with_capacity(n);
    let mut acc = 0.0f32;
    for &e in &estimation {
        acc += e;
        cumsum.push(acc);
    }
    let n_values = (0..n)
        .filter(|&i| {
            let estimation_sum = ((n - i - 1) as f32) * estimation[i];
            estimation[i] / (estimation_sum + cumsum[i] + eps32) < limit32
        })
        .count();
    // numpy: float32 numerator, float64 denominator (limit * int64), float64 result.
    let numerator = f64::from(limit32 * cumsum[n_values - 1] - eps32);
    let denominator = 1.0 - limit * (n - n_values) as f64;
    let cutoff = numerator / denominator * f64::from(vsum);
    let clipped: Vec<f32> = x.iter().map(|&w| if f64::from(w) > cutoff { cutoff as f32 } else { w }).collect();
    let s = np_sum_f32(&clipped);
    clipped.iter().map(|&w| w / s).collect()
}

/// `normalize_max_weight` on a float64 array.
fn normalize_max_weight_f64(x: &[f64], limit: f64) -> Vec<f64> {
    let eps = 1e-7f64;
    let n = x.len();
    let mut values = x.to_vec();
    values.sort_by(|a, b| a.total_cmp(b));
    if np_sum_f64(x) == 0.0 || (n as f64) * limit <= 1.0 {
        return vec![1.0 / n as f64; n];
    }
    let vsum = np_sum_f64(&values);
    let estimation: Vec<f64> = values.iter().map(|&v| v / vsum).collect();
    let est_max = estimation.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if est_max <= limit {
        let s = np_sum_f64(x);
        return x.iter().map(|&w| w / s).collect();
    }
    let mut cumsum = Vec::with_capacity(n);
    let mut acc = 0.0f64;
    for &e in &estimation {
        acc += e;
        cumsum.push(acc);
    }
    let n_values = (0..n)
        .filter(|&i| {
            let estimation_sum = ((n - i - 1) as f64) * estimation[i];
            estimation[i] / (estimation_sum + cumsum[i] + eps) < limit
        })
        .count();
    let cutoff = (limit * cumsum[n_values - 1] - eps) / (1.0 - limit * (n - n_values) as f64) * vsum;
    let clipped: Vec<f64> = x.iter().map(|&w| if w > cutoff { cutoff } else { w }).collect();
    let s = np_sum_f64(&clipped);
    clipped.iter().map(|&w| w / s).collect()
}

/// bittensor ≤ 10's `process_weights` (what `process_weights_for_netuid` calls).
fn process_weights(uids: &[u16], weights: &[f32], limits: WeightLimits) -> (Vec<u16>, Array) {
    let n = limits.num_neurons;
    let min_allowed = usize::from(limits.min_allowed_weights);
    let limit = f64::from(limits.max_weight_limit) / U16_MAX;
    let quantile = f64::from(limits.exclude_quantile) / U16_MAX;
    let nonzero: Vec<usize> = (0..weights.len()).filter(|&i| weights[i] > 0.0).collect();
    if nonzero.is_empty() || n < min_allowed {
        return ((0..n as u16).collect(), Array::F64(vec![1.0 / n as f64; n]));
    }
    if nonzero.len() < min_allowed {
        // Every position gets 1e-5, the non-zero ones their weight on top
        // (positions of the input array, as numpy indexes them).
        let mut padded = vec![1e-5f64; n];
        for &i in &nonzero {
            if i < n {
                padded[i] += f64::from(weights[i]);
            }
        }
        return ((0..n as u16).collect(), Array::F64(normalize_max_weight_f64(&padded, limit)));
    }
    let nz_weights: Vec<f32> = nonzero.iter().map(|&i| weights[i]).collect();
    let nz_uids: Vec<u16> = nonzero.iter().map(|&i| uids[i]).collect();
    let max_exclude = (nz_weights.len().saturating_sub(min_allowed)) as f64 / nz_weights.len() as f64;
    let q = quantile.min(max_exclude);
    let lowest = np_quantile_f32(&nz_weights, q);
    let keep: Vec<usize> = (0..nz_weights.len()).filter(|&i| lowest <= nz_weights[i]).collect();
    let kept_uids = keep.iter().map(|&i| nz_uids[i]).collect();
    let kept: Vec<f32> = keep.iter().map(|&i| nz_weights[i]).collect();
    (kept_uids, Array::F32(normalize_max_weight_f32(&kept, limit)))
}

/// bittensor ≤ 10's `convert_weights_and_uids_for_emit`.
fn convert_for_emit(uids: &[u16], weights: &Array) -> (Vec<u16>, Vec<u16>) {
    let w = weights.to_f64();
    if w.iter().sum::<f64>() == 0.0 {
        return (Vec::new(), Vec::new());
    }
    let max = w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut out_uids = Vec::new();
    let mut out_vals = Vec::new();
    for (&uid, &x) in uids.iter().zip(&w) {
        let v = ((x / max) * U16_MAX).round_ties_even() as u16;
        if v != 0 {
            out_uids.push(uid);
            out_vals.push(v);
        }
    }
    (out_uids, out_vals)
}

// ---------------------------------------------------------------- SDK 11 pipeline

/// bittensor 11's `clip_to_max_weight`: normalise, and if the largest share
/// exceeds `limit`, clip at a cutoff that lands it exactly on the limit.
fn clip_to_max_weight(weights: &[f64], limit: f64) -> Result<Vec<f64>, WeightsError> {
    let n = weights.len();
    let total: f64 = weights.iter().sum();
    if n == 0 || total <= 0.0 {
        return Err(WeightsError::AllZero);
    }
    if n as f64 * limit <= 1.0 {
        return Ok(vec![1.0 / n as f64; n]);
    }
    let mut estimation: Vec<f64> = weights.iter().map(|w| w / total).collect();
    estimation.sort_by(|a, b| a.total_cmp(b));
    if *estimation.last().expect("non-empty") <= limit {
        return Ok(weights.iter().map(|w| w / total).collect());
    }
    let eps = 1e-7;
    let mut cumsum = Vec::with_capacity(n);
    let mut acc = 0.0;
    for &e in &estimation {
        acc += e;
        cumsum.push(acc);
    }
    let n_values =
        (0..n).filter(|&i| estimation[i] / ((n - i - 1) as f64 * estimation[i] + cumsum[i] + eps) < limit).count();
    let cutoff = (limit * cumsum[n_values - 1] - eps) / (1.0 - limit * (n - n_values) as f64) * total;
    let clipped: Vec<f64> = weights.iter().map(|&w| w.min(cutoff)).collect();
    let clipped_total: f64 = clipped.iter().sum();
    Ok(clipped.iter().map(|w| w / clipped_total).collect())
}

fn conform_sdk11(
    uids: &[u16],
    weights: &[f32],
    limits: WeightLimits,
    self_uid: Option<u16>,
) -> Result<(Vec<u16>, Vec<u16>), WeightsError> {
    if weights.iter().any(|w| !w.is_finite() || *w < 0.0) {
        return Err(WeightsError::Invalid);
    }
    let is_self_weight = self_uid.is_some() && uids == [self_uid.expect("checked")];
    let mut floats: Vec<f64> = weights.iter().map(|&w| f64::from(w)).collect();
    if !is_self_weight && limits.max_weight_limit < u16::MAX {
        floats = clip_to_max_weight(&floats, f64::from(limits.max_weight_limit) / U16_MAX)?;
    }
    let top = floats.iter().copied().fold(0.0f64, f64::max);
    if top == 0.0 {
        return Err(WeightsError::AllZero);
    }
    let mut out_uids = Vec::new();
    let mut out_vals = Vec::new();
    for (&uid, &w) in uids.iter().zip(&floats) {
        let v = ((w / top) * U16_MAX).round_ties_even() as u16;
        if v != 0 {
            out_uids.push(uid);
            out_vals.push(v);
        }
    }
    if out_uids.is_empty() {
        return Err(WeightsError::AllZero);
    }
    if !is_self_weight && out_uids.len() < usize::from(limits.min_allowed_weights) {
        return Err(WeightsError::TooFew { required: limits.min_allowed_weights, got: out_uids.len() });
    }
    Ok((out_uids, out_vals))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(n: usize, min: u16, max: u16) -> WeightLimits {
        WeightLimits { num_neurons: n, min_allowed_weights: min, max_weight_limit: max, exclude_quantile: 0 }
    }

    #[test]
    fn pairwise_sum_matches_sequential_for_small_arrays() {
        let a = [0.1f32, 0.2, 0.3];
        assert_eq!(np_sum_f32(&a), 0.1f32 + 0.2 + 0.3);
    }

    #[test]
    fn legacy_falls_back_to_uniform_without_positive_weights() {
        let (u, v) = emit(WeightsPipeline::Legacy, &[0, 1, 2], &[0.0, 0.0, 0.0], limits(3, 1, 65535), None).unwrap();
        assert_eq!((u, v), (vec![0, 1, 2], vec![65535, 65535, 65535]));
    }

    #[test]
    fn legacy_max_upscales_and_drops_zeros() {
        let (u, v) =
            emit(WeightsPipeline::Legacy, &[0, 1, 2, 3], &[0.5, 0.25, 0.0, 1.0], limits(4, 1, 65535), None).unwrap();
        assert_eq!((u, v), (vec![0, 1, 3], vec![32768, 16384, 65535]));
    }

    #[test]
    fn sdk11_refuses_too_few_weights_but_allows_a_self_weight() {
        let e = emit(WeightsPipeline::Sdk11, &[3], &[1.0], limits(8, 2, 65535), Some(0)).unwrap_err();
        assert_eq!(e, WeightsError::TooFew { required: 2, got: 1 });
        let ok = emit(WeightsPipeline::Sdk11, &[0], &[1.0], limits(8, 2, 65535), Some(0)).unwrap();
        assert_eq!(ok, (vec![0], vec![65535]));
    }
}
