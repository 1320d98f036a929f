//! Yuma consensus, as subtensor's epoch runs it.
//!
//! A pure function from a subnet's state at an epoch (stake, weights, bonds,
//! activity, registration blocks, hyperparameters) to what the epoch writes
//! back (consensus, incentive, dividends, validator trust, permits, bonds,
//! emission). It uses subtensor's own fixed-point types (`substrate-fixed`'s
//! I32F32/I64F64) and the same order of operations, so the u16 values it
//! produces are the values the chain would store: the tests check it against
//! subtensor's own epoch test vectors.
//!
//! The steps (dense form):
//! 1. activity: a neuron is inactive when `last_update + activity_cutoff < block`;
//!    weights set before a target's registration are outdated; bonds to
//!    neurons registered since the last epoch are dropped;
//! 2. stake below the subnet's minimum is ignored; the rest is normalised;
//!    validator permits go to the `max_allowed_validators` largest non-zero stakes;
//! 3. active stake = stake of active permitted validators, normalised;
//! 4. weights: rows of validators without a permit are dropped, self-weights
//!    removed (the subnet owner's kept), outdated weights removed, rows normalised;
//! 5. consensus per miner = stake-weighted median of its weights at quantile
//!    `kappa`; weights clipped at consensus; validator trust = row sums of
//!    clipped weights; incentive = normalised stake-weighted sum of clipped weights;
//! 6. bonds: classic Yuma keeps column-normalised bonds and an exponential
//!    moving average with `ΔB = W∘S` (alpha = 1 - bonds_moving_average/1e6);
//!    Yuma 3 keeps bonds as fixed proportions and averages them against the
//!    weights directly; `bonds_penalty` interpolates which weights feed bonds
//!    (0: raw, 1: clipped); dividends follow bonds and incentive;
//! 7. emission splits the epoch's amount between incentive (miners) and
//!    dividends (validators); with no weights at all it follows active stake.

use substrate_fixed::types::{I32F32, I64F64, I96F32};

type F = I32F32;

fn zero() -> F {
    F::from_num(0)
}

fn one() -> F {
    F::from_num(1)
}

/// Division that yields 0 where subtensor's `safe_div` does (division by zero, overflow).
fn div(a: F, b: F) -> F {
    a.checked_div(b).unwrap_or_default()
}

fn div64(a: I64F64, b: I64F64) -> I64F64 {
    a.checked_div(b).unwrap_or_default()
}

/// A proportion in [0, 1] as the u16 subtensor stores.
fn proportion_to_u16(x: F) -> u16 {
    x.saturating_mul(F::saturating_from_num(u16::MAX)).saturating_to_num::<u16>()
}

/// A stored u16 proportion as a fixed-point value in [0, 1].
pub fn u16_proportion(x: u16) -> F {
    div(F::saturating_from_num(x), F::saturating_from_num(u16::MAX))
}

fn sum(v: &[F]) -> F {
    v.iter().fold(zero(), |a, &b| a.saturating_add(b))
}

fn normalize(v: &mut [F]) {
    let s = sum(v);
    if s != zero() {
        v.iter_mut().for_each(|x| *x = div(*x, s));
    }
}

fn row_normalize(m: &mut [Vec<F>]) {
    for row in m {
        let s = sum(row);
        if s > zero() {
            row.iter_mut().for_each(|x| *x = div(*x, s));
        }
    }
}

fn col_normalize(m: &mut [Vec<F>]) {
    let cols = m.iter().map(Vec::len).max().unwrap_or(0);
    let mut sums = vec![zero(); cols];
    for row in m.iter() {
        for (s, v) in sums.iter_mut().zip(row) {
            *s = s.saturating_add(*v);
        }
    }
    for row in m.iter_mut() {
        for (v, s) in row.iter_mut().zip(&sums) {
            if *s != zero() {
                *v = div(*v, *s);
            }
        }
    }
}

fn col_max_upscale(m: &mut [Vec<F>]) {
    let cols = m.iter().map(Vec::len).max().unwrap_or(0);
    let mut maxes = vec![zero(); cols];
    for row in m.iter() {
        for (mx, v) in maxes.iter_mut().zip(row) {
            if *mx < *v {
                *mx = *v;
            }
        }
    }
    for row in m.iter_mut() {
        for (v, mx) in row.iter_mut().zip(&maxes) {
            if *mx != zero() {
                *v = div(*v, *mx);
            }
        }
    }
}

/// `true` for the `k` largest non-zero entries (stable: among equals, later
/// indices win, as a stable ascending sort that drops the first `n - k` does).
fn top_k_nonzero(v: &[F], k: usize) -> Vec<bool> {
    let n = v.len();
    let mut out: Vec<bool> = v.iter().map(|&x| x != zero()).collect();
    if n < k {
        return out;
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| v[i]);
    for &i in order.iter().take(n - k) {
        out[i] = false;
    }
    out
}

/// Stake-weighted median by mid-pivot partitioning, exactly as subtensor
/// searches it (deterministic pivot, same tie handling).
fn weighted_median(stake: &[F], score: &[F], minority: F, mut lo: F, mut hi: F) -> F {
    let mut part: Vec<usize> = (0..stake.len()).collect();
    let limit = part.len();
    for _ in 0..=limit {
        match part.len() {
            0 => return zero(),
            1 => return score[part[0]],
            _ => {}
        }
        let pivot = score[part[part.len() / 2]];
        let (mut lo_stake, mut hi_stake) = (zero(), zero());
        let (mut lower, mut upper) = (Vec::new(), Vec::new());
        for &i in &part {
            if score[i] == pivot {
                continue;
            }
            if score[i] < pivot {
                lo_stake = lo_stake.saturating_add(stake[i]);
                lower.push(i);
            } else {
                hi_stake = hi_stake.saturating_add(stake[i]);
                upper.push(i);
            }
        }
        if minority < lo.saturating_add(lo_stake) && !lower.is_empty() {
            hi = lo.saturating_add(lo_stake);
            part = lower;
        } else if hi.saturating_sub(hi_stake) <= minority && !upper.is_empty() {
            lo = hi.saturating_sub(hi_stake);
            part = upper;
        } else {
            return pivot;
        }
    }
    zero()
}

/// Per column: the median of the rows' scores weighted by the rows' (non-zero) stake, at `majority`.
fn weighted_median_col(stake: &[F], score: &[Vec<F>], majority: F) -> Vec<F> {
    let cols = score.first().map(Vec::len).unwrap_or(0);
    (0..cols)
        .map(|c| {
            let mut use_stake = Vec::new();
            let mut use_score = Vec::new();
            for (r, &s) in stake.iter().enumerate() {
                if s > zero() {
                    use_stake.push(s);
                    use_score.push(score[r][c]);
                }
            }
            if use_stake.is_empty() {
                return zero();
            }
            normalize(&mut use_stake);
            let total = sum(&use_stake);
            let minority = total.saturating_sub(majority);
            weighted_median(&use_stake, &use_score, minority, zero(), total)
        })
        .collect()
}

/// `result_j = sum_i vector_i * matrix_ij`.
fn matmul(m: &[Vec<F>], v: &[F]) -> Vec<F> {
    let cols = m.first().map(Vec::len).unwrap_or(0);
    let mut acc = vec![zero(); cols];
    for (row, &s) in m.iter().zip(v) {
        for (a, &x) in acc.iter_mut().zip(row) {
            *a = a.saturating_add(s.saturating_mul(x));
        }
    }
    acc
}

/// `result_i = sum_j matrix_ij * vector_j`.
fn matmul_transpose(m: &[Vec<F>], v: &[F]) -> Vec<F> {
    m.iter().map(|row| row.iter().zip(v).fold(zero(), |a, (&x, &y)| a.saturating_add(x.saturating_mul(y)))).collect()
}

/// `mat1 + ratio * (mat2 - mat1)`.
fn interpolate(a: &[Vec<F>], b: &[Vec<F>], ratio: F) -> Vec<Vec<F>> {
    if ratio == zero() {
        return a.to_vec();
    }
    if ratio == one() {
        return b.to_vec();
    }
    a.iter()
        .zip(b)
        .map(|(ra, rb)| {
            ra.iter().zip(rb).map(|(&x, &y)| x.saturating_add(ratio.saturating_mul(y.saturating_sub(x)))).collect()
        })
        .collect()
}

/// `alpha * new + (1 - alpha) * old`.
fn mat_ema(new: &[Vec<F>], old: &[Vec<F>], alpha: F) -> Vec<Vec<F>> {
    let keep = one().saturating_sub(alpha);
    new.iter()
        .zip(old)
        .map(|(rn, ro)| {
            rn.iter().zip(ro).map(|(&n, &o)| alpha.saturating_mul(n).saturating_add(keep.saturating_mul(o))).collect()
        })
        .collect()
}

/// Scales u16 weights so the largest becomes 65535, rounding as subtensor
/// does before storing weights.
pub fn max_upscale_u16(values: &[u16]) -> Vec<u16> {
    let v: Vec<F> = values.iter().map(|&x| F::saturating_from_num(x)).collect();
    let u16_max = F::saturating_from_num(u16::MAX);
    let Some(&max) = v.iter().max() else { return Vec::new() };
    if max == zero() {
        return v.iter().map(|x| x.saturating_mul(u16_max).saturating_to_num::<u16>()).collect();
    }
    if max > F::saturating_from_num(32768) {
        let scale = div(u16_max, max);
        return v.iter().map(|x| x.saturating_mul(scale).round().saturating_to_num::<u16>()).collect();
    }
    v.iter().map(|x| div(x.saturating_mul(u16_max), max).round().saturating_to_num::<u16>()).collect()
}

/// Whether the largest of `values`, as a share of their sum, is at most
/// `max_limit / 65535` (subtensor's max-weight check).
pub fn within_max_weight_limit(values: &[u16], max_limit: u16) -> bool {
    let limit = div(F::saturating_from_num(max_limit), F::saturating_from_num(u16::MAX));
    let mut v: Vec<F> = values.iter().map(|&x| F::saturating_from_num(x)).collect();
    normalize(&mut v);
    v.iter().max().is_none_or(|&m| m <= limit)
}

/// What an epoch reads.
#[derive(Clone, Debug)]
pub struct EpochInput<'a> {
    pub current_block: u64,
    pub tempo: u64,
    /// Block at which this subnet's previous epoch ran; 0 if it never ran.
    pub last_epoch_block: u64,
    pub activity_cutoff: u64,
    /// Per uid: block of its last weights (or commit).
    pub last_update: &'a [u64],
    /// Per uid: block at which its current hotkey registered.
    pub block_at_registration: &'a [u64],
    /// Per uid: stake in rao.
    pub stake: &'a [u64],
    /// Stake below this (rao) counts as none.
    pub min_stake: u64,
    /// Per uid: permits from the previous epoch.
    pub validator_permit: &'a [bool],
    pub max_allowed_validators: u16,
    /// Per uid: the weights it set, as (target uid, u16 value).
    pub weights: &'a [Vec<(u16, u16)>],
    /// Per uid: its stored bonds, as (target uid, u16 value).
    pub bonds: &'a [Vec<(u16, u16)>],
    /// Consensus quantile, u16 proportion (32767 ≈ 0.5).
    pub kappa: u16,
    /// u16 proportion: 0 bonds follow raw weights, 65535 clipped weights.
    pub bonds_penalty: u16,
    /// Bonds EMA memory in millionths (900_000: alpha = 0.1).
    pub bonds_moving_average: u64,
    pub yuma3: bool,
    /// The subnet owner's uid: its self-weight is kept.
    pub owner_uid: Option<u16>,
    /// Rao to distribute this epoch.
    pub emission: u64,
}

/// What an epoch writes back, in the units subtensor stores.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochOutput {
    pub active: Vec<bool>,
    pub stake_weight: Vec<u16>,
    pub consensus: Vec<u16>,
    pub incentive: Vec<u16>,
    pub dividends: Vec<u16>,
    pub validator_trust: Vec<u16>,
    pub validator_permit: Vec<bool>,
    /// New bonds rows; `None` leaves a row as it was (no permit before or after).
    pub bonds: Vec<Option<Vec<(u16, u16)>>>,
    /// Rao to each uid for serving (incentive share).
    pub server_emission: Vec<u64>,
    /// Rao to each uid for validating (dividend share).
    pub validator_emission: Vec<u64>,
    /// Combined emission as stored (normalised combined share of the epoch's rao).
    pub emission: Vec<u64>,
}

fn dense(n: usize, rows: &[Vec<(u16, u16)>], f: impl Fn(u16) -> F) -> Vec<Vec<F>> {
    let mut m = vec![vec![zero(); n]; n];
    for (i, row) in rows.iter().enumerate().take(n) {
        for &(j, v) in row {
            if (j as usize) < n {
                m[i][j as usize] = f(v);
            }
        }
    }
    m
}

/// Runs one epoch. All per-uid slices must have the subnet's length.
pub fn epoch(inp: &EpochInput<'_>) -> EpochOutput {
    let n = inp.stake.len();
    let block = inp.current_block;

    let inactive: Vec<bool> = inp.last_update.iter().map(|&u| u.saturating_add(inp.activity_cutoff) < block).collect();
    let active: Vec<bool> = inactive.iter().map(|&b| !b).collect();
    let outdated: Vec<Vec<bool>> =
        inp.last_update.iter().map(|&u| inp.block_at_registration.iter().map(|&r| u <= r).collect()).collect();
    let last_tempo = if inp.last_epoch_block == 0 { block.saturating_sub(inp.tempo) } else { inp.last_epoch_block + 1 };
    let recently_registered: Vec<bool> = inp.block_at_registration.iter().map(|&r| last_tempo <= r).collect();

    // Stake.
    let mut stake64: Vec<I64F64> = inp
        .stake
        .iter()
        .map(|&s| if s < inp.min_stake { I64F64::from_num(0) } else { I64F64::saturating_from_num(s) })
        .collect();
    let total = stake64.iter().fold(I64F64::from_num(0), |a, &b| a.saturating_add(b));
    if total != I64F64::from_num(0) {
        stake64.iter_mut().for_each(|s| *s = div64(*s, total));
    }
    let stake: Vec<F> = stake64.iter().map(|&s| F::saturating_from_num(s)).collect();

    // Validator permits.
    let forbids: Vec<bool> = inp.validator_permit.iter().map(|&p| !p).collect();
    let new_permits = top_k_nonzero(&stake, inp.max_allowed_validators as usize);

    // Active stake.
    let mut active_stake = stake.clone();
    for i in 0..n {
        if inactive[i] || forbids[i] {
            active_stake[i] = zero();
        }
    }
    normalize(&mut active_stake);

    // Weights.
    let mut weights = dense(n, inp.weights, F::saturating_from_num);
    for i in 0..n {
        if forbids[i] {
            weights[i].iter_mut().for_each(|w| *w = zero());
        }
        if inp.owner_uid != Some(i as u16) {
            weights[i][i] = zero();
        }
        for j in 0..n {
            if outdated[i][j] {
                weights[i][j] = zero();
            }
        }
    }
    // subtensor masks the diagonal a second time, owner included.
    for (i, row) in weights.iter_mut().enumerate() {
        row[i] = zero();
    }
    row_normalize(&mut weights);

    // Consensus, clipping, validator trust, incentive.
    let kappa = div(F::saturating_from_num(inp.kappa), F::saturating_from_num(u16::MAX));
    let consensus = weighted_median_col(&active_stake, &weights, kappa);
    let clipped: Vec<Vec<F>> = weights
        .iter()
        .map(|row| row.iter().zip(&consensus).map(|(&w, &c)| if c < w { c } else { w }).collect())
        .collect();
    let validator_trust: Vec<F> = clipped.iter().map(|r| sum(r)).collect();
    let mut incentive = matmul(&clipped, &active_stake);
    normalize(&mut incentive);

    // Bonds and dividends.
    let penalty = div(F::saturating_from_num(inp.bonds_penalty), F::saturating_from_num(u16::MAX));
    let weights_for_bonds = interpolate(&weights, &clipped, penalty);
    let alpha = one().saturating_sub(F::saturating_from_num(div64(
        I64F64::saturating_from_num(inp.bonds_moving_average),
        I64F64::from_num(1_000_000),
    )));
    let (dividends, ema_bonds) = if inp.yuma3 {
        let mut bonds = dense(n, inp.bonds, u16_proportion);
        for row in bonds.iter_mut() {
            for (j, b) in row.iter_mut().enumerate() {
                if recently_registered[j] {
                    *b = zero();
                }
            }
        }
        let ema = mat_ema(&weights_for_bonds, &bonds, alpha);
        let mut ema_norm = ema.clone();
        col_normalize(&mut ema_norm);
        let per_validator: Vec<F> = ema_norm
            .iter()
            .map(|row| {
                row.iter()
                    .zip(&incentive)
                    .fold(zero(), |a, (&b, &i)| a.saturating_add(b.checked_mul(i).unwrap_or_default()))
            })
            .collect();
        let mut d: Vec<F> =
            per_validator.iter().zip(&active_stake).map(|(&t, &s)| t.checked_mul(s).unwrap_or_default()).collect();
        normalize(&mut d);
        (d, ema)
    } else {
        let mut bonds = dense(n, inp.bonds, F::saturating_from_num);
        for row in bonds.iter_mut() {
            for (j, b) in row.iter_mut().enumerate() {
                if recently_registered[j] {
                    *b = zero();
                }
            }
        }
        col_normalize(&mut bonds);
        let mut delta: Vec<Vec<F>> = weights_for_bonds
            .iter()
            .zip(&active_stake)
            .map(|(row, &s)| row.iter().map(|&w| s.saturating_mul(w)).collect())
            .collect();
        col_normalize(&mut delta);
        let mut ema = mat_ema(&delta, &bonds, alpha);
        col_normalize(&mut ema);
        let mut d = matmul_transpose(&ema, &incentive);
        normalize(&mut d);
        col_max_upscale(&mut ema);
        (d, ema)
    };

    // Emission.
    let combined: Vec<F> = incentive.iter().zip(&dividends).map(|(&i, &d)| i.saturating_add(d)).collect();
    let emission_sum = sum(&combined);
    let mut server = incentive.clone();
    let mut validator = dividends.clone();
    let mut combined_norm = combined.clone();
    if emission_sum != zero() {
        server.iter_mut().for_each(|x| *x = div(*x, emission_sum));
        validator.iter_mut().for_each(|x| *x = div(*x, emission_sum));
    }
    normalize(&mut combined_norm);
    if emission_sum == zero() {
        let fallback = if active_stake.iter().all(|&s| s == zero()) { stake.clone() } else { active_stake.clone() };
        validator.clone_from(&fallback);
        combined_norm = fallback;
    }
    let rao = I96F32::saturating_from_num(inp.emission);
    let to_rao = |v: &[F]| -> Vec<u64> {
        v.iter().map(|&x| I96F32::saturating_from_num(x).saturating_mul(rao).saturating_to_num::<u64>()).collect()
    };

    let bonds_out = (0..n)
        .map(|i| {
            if new_permits[i] {
                Some((0..n as u16).zip(ema_bonds[i].iter().map(|&b| proportion_to_u16(b))).collect())
            } else if inp.validator_permit[i] {
                Some(Vec::new())
            } else {
                None
            }
        })
        .collect();

    EpochOutput {
        active,
        stake_weight: stake.iter().map(|&s| proportion_to_u16(s)).collect(),
        consensus: consensus.iter().map(|&c| proportion_to_u16(c)).collect(),
        incentive: incentive.iter().map(|&i| proportion_to_u16(i)).collect(),
        dividends: dividends.iter().map(|&d| proportion_to_u16(d)).collect(),
        validator_trust: validator_trust.iter().map(|&t| proportion_to_u16(t)).collect(),
        validator_permit: new_permits,
        bonds: bonds_out,
        server_emission: to_rao(&server),
        validator_emission: to_rao(&validator),
        emission: to_rao(&combined_norm),
    }
}
