//! The loss scorer's kernel against an f64 CPU reference, and its ranking.

use neuron_plugin_api::{MinerResponse, ResponseStatus, ScorerPlugin, ScoringBatch, TokenBatch};
use rand_core::{Rng as _, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

fn scorer(config: &str) -> Box<dyn ScorerPlugin> {
    scoring_loss::plugin().build_scorer(neuron_plugin_testkit::gpu("test"), config).expect("scorer builds")
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
    fn below(&mut self, n: usize) -> u32 {
        (self.0.next_u64() % n as u64) as u32
    }
}

/// A plausible top-k answer: a random distribution over the vocabulary, its k best entries.
fn response(
    uid: u16,
    r: &mut Rng,
    positions: usize,
    k: usize,
    vocab: usize,
    targets: &[u32],
    skill: f64,
) -> MinerResponse {
    let mut ids = Vec::new();
    let mut lps = Vec::new();
    for &t in targets.iter().take(positions) {
        let mut logits: Vec<f64> = (0..vocab).map(|_| r.unit() * 2.0).collect();
        logits[t as usize] += skill;
        let z = logits.iter().map(|l| l.exp()).sum::<f64>().ln();
        let mut order: Vec<usize> = (0..vocab).collect();
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
        for &i in order.iter().take(k) {
            ids.push(i as u32);
            lps.push((logits[i] - z) as f32);
        }
    }
    MinerResponse {
        uid,
        status: ResponseStatus::OK,
        k: k as u32,
        ids: ids.into(),
        logprobs: lps.into(),
        latency_s: 0.1,
    }
}

fn reference_loss(r: &MinerResponse, targets: &[u32], vocab: usize, floor: f64) -> f64 {
    let k = r.k as usize;
    let mut total = 0.0;
    for (p, &t) in targets.iter().enumerate() {
        let ids = &r.ids[p * k..(p + 1) * k];
        let lps = &r.logprobs[p * k..(p + 1) * k];
        let mass: f64 = lps.iter().map(|&l| f64::from(l).exp()).sum();
        let logp = match ids.iter().position(|&i| i == t) {
            Some(j) => f64::from(lps[j]),
            None => ((1.0 - mass).max(floor) / (vocab - k) as f64).ln(),
        };
        total -= logp;
    }
    total / targets.len() as f64
}

#[test]
fn kernel_matches_the_cpu_reference_on_ragged_shapes() {
    // On each path the adapter can run: the tree reductions, and the subgroup ones where it offers
    // SUBGROUP (lavapipe does).
    for gpu in neuron_plugin_testkit::gpus_for(&scoring_loss::plugin(), "test") {
        let mut s = scoring_loss::plugin().build_scorer(gpu, "").expect("scorer builds");
        let mut r = Rng::new(42);
        for (batch, seq, vocab) in [(1usize, 1usize, 17usize), (3, 37, 256), (2, 300, 101)] {
            let positions = batch * seq;
            let tokens: Vec<u32> = (0..positions).map(|_| r.below(vocab)).collect();
            let targets: Vec<u32> = (0..positions).map(|_| r.below(vocab)).collect();
            // Different k per miner: the kernel pads to the largest.
            let responses: Vec<MinerResponse> = (0..5u16)
                .map(|uid| response(uid, &mut r, positions, 1 + (uid as usize * 3) % 9, vocab, &targets, uid as f64))
                .collect();
            let out = s
                .score(
                    ScoringBatch {
                        tokens: TokenBatch::new(batch as u32, seq as u32, &tokens),
                        targets: targets.as_slice().into(),
                        vocab_size: vocab as u32,
                    },
                    &responses,
                )
                .unwrap();
            for (resp, (&loss, &score)) in responses.iter().zip(out.losses.iter().zip(out.scores.iter())) {
                let want = reference_loss(resp, &targets, vocab, 1e-6);
                assert!(
                    (f64::from(loss) - want).abs() <= 1e-4 * (1.0 + want),
                    "{batch}x{seq} vocab {vocab} uid {}: {loss} vs {want}",
                    resp.uid
                );
                assert!((f64::from(score) - (-want).exp()).abs() <= 1e-4);
            }
        }
    }
}

#[test]
fn a_miner_that_knows_the_next_token_outranks_noise_and_failures_score_zero() {
    let mut s = scorer("");
    let mut r = Rng::new(7);
    let (positions, vocab) = (64usize, 256usize);
    let tokens = vec![1u32; positions];
    let targets: Vec<u32> = (0..positions).map(|i| (i * 37 % vocab) as u32).collect();
    let good = response(0, &mut r, positions, 8, vocab, &targets, 12.0);
    let noise = response(1, &mut r, positions, 8, vocab, &targets, 0.0);
    let timeout = MinerResponse {
        uid: 2,
        status: ResponseStatus::TIMEOUT,
        k: 0,
        ids: Default::default(),
        logprobs: Default::default(),
        latency_s: 12.0,
    };
    let mut malformed = good.clone();
    malformed.uid = 3;
    malformed.ids[0] = vocab as u32 + 5;
    let mut overconfident = good.clone();
    overconfident.uid = 4;
    for lp in overconfident.logprobs.iter_mut() {
        *lp = 0.0;
    }
    let out = s
        .score(
            ScoringBatch {
                tokens: TokenBatch::new(1, positions as u32, &tokens),
                targets: targets.as_slice().into(),
                vocab_size: vocab as u32,
            },
            &[good, noise, timeout, malformed, overconfident],
        )
        .unwrap();
    assert!(out.scores[0] > 0.9, "{:?}", out.scores);
    assert!(out.scores[1] < 0.05 && out.scores[1] > 0.0, "{:?}", out.scores);
    assert_eq!(&out.scores[2..], &[0.0, 0.0, 0.0], "timeout, out-of-vocabulary id, more than all the mass");
    assert!(out.losses[2].is_nan() && out.losses[3].is_nan());
}

#[test]
fn bad_config_is_refused() {
    let err = scoring_loss::plugin().build_scorer(neuron_plugin_testkit::gpu("t"), "floor = 0").err().unwrap();
    assert!(err.message.contains("floor must be in (0, 1)"), "{err}");
    let err = scoring_loss::plugin().build_scorer(neuron_plugin_testkit::gpu("t"), "flor = 0.1").err().unwrap();
    assert!(err.message.contains("did you mean `floor`"), "{err}");
}
