//! The Shapley scorer's kernels against plain f64 references, and the
//! behaviour the README promises: knowledge outranks noise, copies gain
//! nothing, far-off answers are penalised, prune_len keeps n miners.

use neuron_plugin_api::{top_k_logprobs, Gpu, MinerResponse, ResponseStatus, ScorerPlugin, ScoringBatch, TokenBatch};
use rand_core::{Rng as _, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use scoring_shapley::{Evaluation, ShapleyScorer};

fn scorer(config: &str) -> ShapleyScorer {
    ShapleyScorer::new(neuron_plugin_testkit::gpu("test"), config).expect("scorer builds")
}

/// A context for each path the adapter can run: the tree reductions, and the subgroup ones where
/// the adapter offers SUBGROUP (lavapipe does). The reference checks run on both.
fn gpus() -> Vec<Gpu> {
    neuron_plugin_testkit::gpus_for(&scoring_shapley::plugin(), "test")
}

fn scorers(config: &str) -> Vec<ShapleyScorer> {
    gpus().into_iter().map(|gpu| ShapleyScorer::new(gpu, config).expect("scorer builds")).collect()
}

/// Seeded draws: the same inputs on every run, so a failure reproduces.
struct Rng(Xoshiro256PlusPlus);
impl Rng {
    fn new(seed: u64) -> Self {
        Self(Xoshiro256PlusPlus::seed_from_u64(seed))
    }
    fn unit(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize % n
    }
}

/// A step: `positions` tokens in one sequence over `vocab`, with random targets.
struct Step {
    tokens: Vec<u32>,
    targets: Vec<u32>,
    vocab: usize,
}

impl Step {
    fn new(r: &mut Rng, positions: usize, vocab: usize) -> Self {
        Self {
            tokens: (0..positions).map(|_| r.below(vocab) as u32).collect(),
            targets: (0..positions).map(|_| r.below(vocab) as u32).collect(),
            vocab,
        }
    }
    fn batch(&self) -> ScoringBatch<'_> {
        ScoringBatch {
            tokens: TokenBatch::new(1, self.tokens.len() as u32, &self.tokens),
            targets: self.targets.as_slice().into(),
            vocab_size: self.vocab as u32,
        }
    }
    /// Logits: noise of amplitude `spread`, plus `skill` on the true token.
    fn logits(&self, r: &mut Rng, spread: f64, skill: f64) -> Vec<Vec<f64>> {
        self.targets
            .iter()
            .map(|&t| {
                let mut row: Vec<f64> = (0..self.vocab).map(|_| r.unit() * spread).collect();
                row[t as usize] += skill;
                row
            })
            .collect()
    }
}

/// The top-k answer a model with these logits sends (best first).
fn answer(uid: u16, logits: &[Vec<f64>], k: usize) -> MinerResponse {
    let (mut ids, mut logprobs) = (Vec::new(), Vec::new());
    for row in logits {
        let row: Vec<f32> = row.iter().map(|&l| l as f32).collect();
        let (i, l) = top_k_logprobs(&row, k);
        ids.extend(i);
        logprobs.extend(l);
    }
    MinerResponse {
        uid,
        status: ResponseStatus::OK,
        k: k as u32,
        ids: ids.into(),
        logprobs: logprobs.into(),
        latency_s: 0.1,
    }
}

fn failed(uid: u16, status: ResponseStatus) -> MinerResponse {
    MinerResponse { uid, status, k: 0, ids: Default::default(), logprobs: Default::default(), latency_s: 12.0 }
}

// ---- f64 references ----------------------------------------------------------

const FLOOR: f64 = 1e-6;

/// The distribution an answer stands for at position p over the whole vocabulary,
/// and the probability it spreads over each token outside its top k.
fn distribution(r: &MinerResponse, p: usize, vocab: usize) -> (Vec<f64>, f64) {
    let k = r.k as usize;
    let lps = &r.logprobs[p * k..(p + 1) * k];
    let mass: f64 = lps.iter().map(|&l| f64::from(l).exp()).sum();
    let rest = (1.0 - mass).max(FLOOR) / (vocab - k) as f64;
    let mut q = vec![rest; vocab];
    for (j, &id) in r.ids[p * k..(p + 1) * k].iter().enumerate() {
        q[id as usize] = f64::from(lps[j]).exp(); // the last entry wins when an id repeats
    }
    (q, rest)
}

/// log of the probability an answer gave the true token, and its rest probability.
fn target_logp(r: &MinerResponse, p: usize, target: u32, vocab: usize) -> (f64, f64) {
    let k = r.k as usize;
    let (_, rest) = distribution(r, p, vocab);
    let hit = r.ids[p * k..(p + 1) * k].iter().rposition(|&id| id == target);
    (hit.map_or(rest.ln(), |j| f64::from(r.logprobs[p * k + j])), rest)
}

fn hellinger(answers: &[&MinerResponse], p: usize, vocab: usize) -> Vec<f64> {
    let qs: Vec<Vec<f64>> = answers.iter().map(|r| distribution(r, p, vocab).0).collect();
    let avg: Vec<f64> = (0..vocab).map(|v| qs.iter().map(|q| q[v]).sum::<f64>() / qs.len() as f64).collect();
    qs.iter()
        .map(|q| {
            let s: f64 = q.iter().zip(&avg).map(|(a, b)| (a.sqrt() - b.sqrt()).powi(2)).sum();
            (0.5 * s).min(1.0).sqrt()
        })
        .collect()
}

/// Excess of each miner from distances `[miner][position]`, as the README states it.
fn excess(distances: &[f64], miners: usize, positions: usize) -> Vec<f64> {
    if miners < 2 {
        return vec![0.0; miners];
    }
    let mut total = vec![0.0; miners];
    for p in 0..positions {
        let d: Vec<f64> = (0..miners).map(|m| distances[m * positions + p]).collect();
        let mean = d.iter().sum::<f64>() / miners as f64;
        let std = (d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (miners - 1) as f64).sqrt();
        for m in 0..miners {
            let over = (d[m] - (mean + std) - 1e-4).max(0.0) / (std + 1e-9);
            total[m] += over.powi(3).min(10.0);
        }
    }
    total.iter().map(|t| t / positions as f64).collect()
}

fn scaled(loss: f64, power: f64, min_loss: f64) -> f64 {
    (power * (8.8e13f64.ln() - loss.max(min_loss).ln() / 0.076)).exp()
}

fn close(got: f32, want: f64, tol: f64) -> bool {
    (f64::from(got) - want).abs() <= tol * (1.0 + want.abs())
}

/// Ragged answers: k from 1 to 9 per miner, positions not a multiple of any
/// workgroup, and one row whose last entry repeats its first id.
fn ragged(r: &mut Rng, step: &Step, miners: u16) -> Vec<MinerResponse> {
    (0..miners)
        .map(|uid| {
            let k = (1 + (uid as usize * 3) % 9).min(step.vocab - 1);
            let mut a = answer(uid, &step.logits(r, 2.0, f64::from(uid)), k);
            if k > 1 && uid == 2 {
                a.ids[k - 1] = a.ids[0];
            }
            a
        })
        .collect()
}

// ---- kernels against the references --------------------------------------------

#[test]
fn cross_entropy_and_position_kernels_match_the_cpu_reference() {
    for mut s in scorers("") {
        let mut r = Rng::new(42);
        for (positions, vocab) in [(1usize, 17usize), (37, 256), (300, 101)] {
            let step = Step::new(&mut r, positions, vocab);
            let responses = ragged(&mut r, &step, 5);
            let e = s.evaluate(step.batch(), &responses, true).unwrap();
            let t = e.trace.as_ref().unwrap();
            assert_eq!(e.rows, vec![0, 1, 2, 3, 4]);
            for (m, resp) in responses.iter().enumerate() {
                let mut loss = 0.0;
                for p in 0..positions {
                    let (logp, rest) = target_logp(resp, p, step.targets[p], vocab);
                    loss -= logp;
                    let i = m * positions + p;
                    assert!(
                        close(t.position_logp[i], logp, 1e-5),
                        "{positions}x{vocab} m{m} p{p}: {} vs {logp}",
                        t.position_logp[i]
                    );
                    assert!((f64::from(t.position_rest[i]) - rest).abs() <= 1e-5 * rest, "rest m{m} p{p}");
                }
                loss /= positions as f64;
                assert!(close(e.losses[m], loss, 1e-4), "{positions}x{vocab} loss m{m}: {} vs {loss}", e.losses[m]);
            }
        }
    }
}

#[test]
fn divergence_kernels_match_the_cpu_reference() {
    for gpu in gpus() {
        let mut r = Rng::new(7);
        // Scratch for 64 positions at a time: the last shape runs in 5 chunks, the last one ragged.
        for (positions, vocab, config, chunk) in [
            (37usize, 50usize, "logits_divergence = 0.5", 64u64),
            (1, 4099, "logits_divergence = 0.5", 64),
            (300, 101, "", 64),
        ] {
            let mut s = ShapleyScorer::new(gpu.clone(), config).expect("scorer builds");
            s.set_scratch_bytes(chunk * vocab as u64 * 4);
            let step = Step::new(&mut r, positions, vocab);
            let mut responses = ragged(&mut r, &step, 4);
            // One miner far from the rest, so that some excess is not zero.
            responses.push(answer(9, &step.logits(&mut r, 12.0, 0.0), 3));
            let miners = responses.len();
            let e = s.evaluate(step.batch(), &responses, true).unwrap();
            let t = e.trace.as_ref().unwrap();
            let refs: Vec<&MinerResponse> = responses.iter().collect();
            for p in 0..positions {
                for (m, want) in hellinger(&refs, p, vocab).into_iter().enumerate() {
                    let got = t.distances[m * positions + p];
                    assert!((f64::from(got) - want).abs() <= 2e-4, "{positions}x{vocab} m{m} p{p}: {got} vs {want}");
                }
            }
            // The spread and excess kernels, from the kernel's own distances.
            let d: Vec<f64> = t.distances.iter().map(|&x| f64::from(x)).collect();
            for p in 0..positions {
                let col: Vec<f64> = (0..miners).map(|m| d[m * positions + p]).collect();
                let mean = col.iter().sum::<f64>() / miners as f64;
                let std = (col.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (miners - 1) as f64).sqrt();
                assert!(close(t.spread[2 * p], mean, 1e-5) && close(t.spread[2 * p + 1], std, 1e-4), "spread p{p}");
            }
            let want = excess(&d, miners, positions);
            for (m, (&got, &want)) in t.excess.iter().zip(&want).enumerate() {
                assert!(close(got, want, 1e-3), "{positions}x{vocab} excess m{m}: {got} vs {want}");
            }
            assert!(want[miners - 1] > 0.01, "the far miner has an excess: {want:?}");
        }
    }
}

#[test]
fn pair_and_value_kernels_match_the_cpu_reference() {
    for gpu in gpus() {
        let mut r = Rng::new(3);
        for (positions, vocab, miners, config) in [
            (1usize, 17usize, 3u16, "min_loss = 0.5"),
            (37, 256, 6, "scaling_law_power = 0.7\nsynergy_scaling_law_power = 0.3\nlogits_divergence = 0.3"),
            (300, 101, 5, "min_loss = 1.0\nprune_len = 4"),
        ] {
            let mut s = ShapleyScorer::new(gpu.clone(), config).expect("scorer builds");
            let cfg = s.config().clone();
            let step = Step::new(&mut r, positions, vocab);
            let mut responses = ragged(&mut r, &step, miners);
            // And two miners that know different halves of the positions: synergy.
            let (a, b) = complementary(&mut r, &step);
            responses.extend([a, b]);
            let e = s.evaluate(step.batch(), &responses, true).unwrap();
            let t = e.trace.as_ref().unwrap();
            let n = e.kept.len();
            let logp = |m: usize, p: usize| target_logp(&responses[e.rows[m]], p, step.targets[p], vocab).0;
            for a in 0..n {
                for b in 0..n {
                    let (ma, mb) = (e.kept[a], e.kept[b]);
                    let want =
                        -(0..positions).map(|p| ((logp(ma, p).exp() + logp(mb, p).exp()) / 2.0).ln()).sum::<f64>()
                            / positions as f64;
                    let got = t.pair_loss[a * n + b];
                    assert!(close(got, want, 1e-4), "{positions}x{vocab} pair {a},{b}: {got} vs {want}");
                }
            }
            // Values from the kernel's own pair losses and excess.
            let l = |a: usize, b: usize| f64::from(t.pair_loss[a * n + b]);
            let (sp, ssp, min_loss) =
                (f64::from(cfg.scaling_law_power), f64::from(cfg.synergy_scaling_law_power), f64::from(cfg.min_loss));
            for a in 0..n {
                let base = scaled(l(a, a), sp, min_loss);
                let (mut synergy, mut scale) = (0.0, 0.0);
                for b in (0..n).filter(|&b| b != a) {
                    let (measured, expected) = (l(a, b), l(a, a).min(l(b, b)));
                    synergy += (scaled(measured, ssp, min_loss) - scaled(expected, ssp, min_loss)).max(0.0);
                    // f32 carries ~1e-7 of the larger term of each difference.
                    scale += scaled(measured.min(expected), ssp, min_loss);
                }
                synergy /= 2.0 * n as f64;
                let tol = 1e-5 * (scale / (2.0 * n as f64) + f64::MIN_POSITIVE);
                let value =
                    (base + synergy) / (1.0 + f64::from(cfg.logits_divergence) * f64::from(t.excess[e.kept[a]]));
                assert!(close(e.base[a], base, 1e-5), "base {a}: {} vs {base}", e.base[a]);
                assert!((f64::from(e.synergy[a]) - synergy).abs() <= tol, "synergy {a}: {} vs {synergy}", e.synergy[a]);
                assert!(
                    (f64::from(e.values[a]) - value).abs() <= 1e-5 * value + tol,
                    "value {a}: {} vs {value}",
                    e.values[a]
                );
            }
            if positions > 1 {
                assert!(e.synergy.iter().any(|&x| x > 0.0), "{positions}x{vocab}: some pair has synergy");
            }
        }
    }
}

// ---- behaviour ------------------------------------------------------------------

#[test]
fn a_miner_that_knows_the_next_token_outranks_noise_and_failures_score_zero() {
    let mut s = scorer("");
    let mut r = Rng::new(11);
    let step = Step::new(&mut r, 64, 256);
    let good = answer(0, &step.logits(&mut r, 2.0, 12.0), 8);
    let noise = answer(1, &step.logits(&mut r, 2.0, 0.0), 8);
    let mut malformed = good.clone();
    malformed.uid = 3;
    malformed.ids[5] = 256 + 7;
    let mut short = good.clone();
    short.uid = 4;
    short.logprobs.pop();
    let responses =
        [good, noise, failed(2, ResponseStatus::TIMEOUT), malformed, short, failed(5, ResponseStatus::MALFORMED)];
    let out = s.score(step.batch(), &responses).unwrap();
    assert!(out.scores[0] > 10.0 * out.scores[1], "{:?}", out.scores);
    assert!(out.scores[1] > 0.0, "{:?}", out.scores);
    assert_eq!(&out.scores[2..], &[0.0; 4], "timeout, out-of-vocabulary id, wrong length, malformed");
    assert!(out.losses[..2].iter().all(|l| l.is_finite()) && out.losses[2..].iter().all(|l| l.is_nan()));
    assert!(out.scores.iter().all(|s| s.is_finite() && *s >= 0.0));
    // Nothing usable at all: zeros, NaN losses, no error.
    let none = s.score(step.batch(), &responses[2..]).unwrap();
    assert!(none.scores.iter().all(|&s| s == 0.0) && none.losses.iter().all(|l| l.is_nan()));
}

/// Two miners that each know half of the positions: each alone is mediocre, their mixture is good.
fn complementary(r: &mut Rng, step: &Step) -> (MinerResponse, MinerResponse) {
    let half = step.targets.len() / 2;
    let mut a = step.logits(r, 1.0, 0.0);
    let mut b = step.logits(r, 1.0, 0.0);
    for (p, &t) in step.targets.iter().enumerate() {
        let knows = if p < half { &mut a } else { &mut b };
        knows[p][t as usize] += 9.0;
    }
    (answer(0, &a, 4), answer(1, &b, 4))
}

#[test]
fn a_copy_gains_nothing_from_synergy() {
    let mut r = Rng::new(5);
    let step = Step::new(&mut r, 90, 64);
    let (a, b) = complementary(&mut r, &step);
    let mut copy = a.clone();
    copy.uid = 2;

    let mut s = scorer("");
    let alone = s.evaluate(step.batch(), std::slice::from_ref(&a), false).unwrap();
    let twins = s.evaluate(step.batch(), &[a.clone(), copy.clone()], false).unwrap();
    assert_eq!(twins.synergy, vec![0.0, 0.0], "identical answers have no synergy");
    assert_eq!(twins.values, vec![alone.values[0]; 2], "a copy does not raise either's value");

    let mut s = scorer("logits_divergence = 0");
    let pair = s.evaluate(step.batch(), &[a.clone(), b.clone()], false).unwrap();
    let three = s.evaluate(step.batch(), &[a, b, copy], false).unwrap();
    assert!(pair.synergy[0] > 0.01 * pair.base[0], "complementary miners do have synergy: {pair:?}");
    // A's only synergy is with B, shared over 3 instead of 2: the copy adds nothing.
    assert!(close(three.synergy[0], f64::from(pair.synergy[0]) * 2.0 / 3.0, 1e-5), "{three:?} vs {pair:?}");
    assert!(three.values[0] < pair.values[0] && three.values[2] == three.values[0], "{three:?}");
}

#[test]
fn a_miner_far_from_the_others_is_penalised() {
    let mut r = Rng::new(9);
    let step = Step::new(&mut r, 48, 128);
    // Five miners around one shared model, and one with a model of its own.
    let shared = step.logits(&mut r, 3.0, 6.0);
    let mut responses: Vec<MinerResponse> = (0..5u16)
        .map(|uid| {
            let own: Vec<Vec<f64>> =
                shared.iter().map(|row| row.iter().map(|l| l + 0.2 * r.unit()).collect()).collect();
            answer(uid, &own, 8)
        })
        .collect();
    responses.push(answer(5, &step.logits(&mut r, 8.0, 6.0), 8));

    let off = scorer("logits_divergence = 0").evaluate(step.batch(), &responses, false).unwrap();
    let mut on = scorer("logits_divergence = 0.5");
    let e = on.evaluate(step.batch(), &responses, true).unwrap();
    let excess = &e.trace.as_ref().unwrap().excess;
    assert!(excess[5] > 1.0, "the far miner exceeds mean + std: {excess:?}");
    assert!(excess[..5].iter().all(|&x| x < 0.1 * excess[5]), "{excess:?}");
    for (m, (&x, &unpenalised)) in excess.iter().zip(&off.values).enumerate() {
        let want = f64::from(unpenalised) / (1.0 + 0.5 * f64::from(x));
        assert!(close(e.values[m], want, 1e-5), "miner {m}: {} vs {want}", e.values[m]);
    }
    assert!(e.values[5] < 0.7 * off.values[5], "penalised: {} vs {}", e.values[5], off.values[5]);
}

#[test]
fn prune_len_keeps_the_best_n_miners() {
    let mut r = Rng::new(13);
    let step = Step::new(&mut r, 40, 128);
    let skills = [2.0, 9.0, 0.0, 6.0, 4.0];
    let mut responses: Vec<MinerResponse> =
        skills.iter().enumerate().map(|(uid, &k)| answer(uid as u16, &step.logits(&mut r, 2.0, k), 6)).collect();
    responses.insert(2, failed(7, ResponseStatus::ERROR));
    for (prune_len, kept) in
        [(2, vec![1usize, 4]), (3, vec![1, 4, 5]), (0, vec![0, 1, 3, 4, 5]), (9, vec![0, 1, 3, 4, 5])]
    {
        let out = scorer(&format!("prune_len = {prune_len}")).score(step.batch(), &responses).unwrap();
        let nonzero: Vec<usize> = (0..responses.len()).filter(|&i| out.scores[i] > 0.0).collect();
        assert_eq!(nonzero, kept, "prune_len = {prune_len}: {:?}", out.scores);
        // Pruned miners still report their loss; the failed one does not.
        assert!(out.losses.iter().enumerate().all(|(i, l)| l.is_nan() == (i == 2)), "{:?}", out.losses);
    }
}

#[test]
fn evaluation_is_deterministic() {
    let mut r = Rng::new(17);
    let step = Step::new(&mut r, 333, 97);
    let responses = ragged(&mut r, &step, 7);
    for mut s in scorers("logits_divergence = 1") {
        let first: Evaluation = s.evaluate(step.batch(), &responses, true).unwrap();
        for _ in 0..2 {
            assert_eq!(s.evaluate(step.batch(), &responses, true).unwrap(), first);
        }
    }
}

#[test]
fn bad_config_is_refused_with_one_line_naming_the_key() {
    let build =
        |text: &str| scoring_shapley::plugin().build_scorer(neuron_plugin_testkit::gpu("t"), text).err().unwrap();
    let err = build("scaling_law_power = -0.5");
    assert_eq!(err.message.as_str(), "plugin scoring-shapley: scaling_law_power must be positive, got -0.5");
    let err = build("prune_lenn = 4");
    assert_eq!(
        err.message.as_str(),
        "plugin scoring-shapley: unknown configuration key `prune_lenn` (did you mean `prune_len`?)"
    );
    let s = scoring_shapley::plugin().build_scorer(neuron_plugin_testkit::gpu("t"), "prune_len = 3").unwrap();
    assert!(s.describe().config.contains("prune_len = 3\n"));
}
