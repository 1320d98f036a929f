//! The scorer template on a real GPU context (the test kit's), against a CPU reference; then the
//! built library through the conformance suite, as `neuron-host plugin check` runs it.

use neuron_plugin_api::{prelude::*, top_k_logprobs};
use neuron_plugin_testkit::{
    reference::{self, Rng},
    Conformance,
};

fn scorer(config: &str) -> Box<dyn ScorerPlugin> {
    scorer_template::plugin()
        .build_scorer(neuron_plugin_testkit::gpu("scorer-template"), config)
        .expect("scorer builds")
}

/// A miner whose answers are the top k of random logits: (response, its logits).
fn miner(rng: &mut Rng, uid: u16, positions: usize, vocab: u32, k: u32) -> (MinerResponse, Vec<f32>) {
    let logits = rng.vec(positions * vocab as usize, -3.0, 3.0);
    let (mut ids, mut logprobs) = (Vec::new(), Vec::new());
    for row in logits.chunks(vocab as usize) {
        let (i, l) = top_k_logprobs(row, k as usize);
        ids.extend(i);
        logprobs.extend(l);
    }
    let r = MinerResponse {
        uid,
        status: ResponseStatus::OK,
        k,
        ids: ids.into(),
        logprobs: logprobs.into(),
        latency_s: 0.1,
    };
    (r, logits)
}

#[test]
fn hit_rate_and_loss_match_a_cpu_reference() {
    let (vocab, positions) = (32u32, 24usize);
    let mut rng = Rng::new(4);
    let tokens = rng.tokens(positions, vocab);
    let targets = rng.tokens(positions, vocab);
    let miners: Vec<(MinerResponse, Vec<f32>)> =
        (0..5).map(|u| miner(&mut rng, u, positions, vocab, 3 + u as u32)).collect();
    let responses: Vec<MinerResponse> = miners.iter().map(|(r, _)| r.clone()).collect();
    let batch =
        ScoringBatch { tokens: TokenBatch::new(2, 12, &tokens), targets: targets.as_slice().into(), vocab_size: vocab };
    let got = scorer("").score(batch, &responses).unwrap();
    for (r, _) in &miners {
        let k = r.k as usize;
        let hits = (0..positions).filter(|&p| r.ids[p * k..(p + 1) * k].contains(&targets[p])).count();
        let expected_rate = hits as f32 / positions as f32;
        assert_eq!(got.scores[r.uid as usize], expected_rate, "uid {}", r.uid);
        // Cross-entropy of the truth under the answer: its log-probability when in the top k,
        // else the mass left outside the top k spread over the other tokens.
        let expected_loss = -(0..positions)
            .map(|p| {
                let row = &r.ids[p * k..(p + 1) * k];
                match row.iter().position(|&id| id == targets[p]) {
                    Some(j) => f64::from(r.logprobs[p * k + j]),
                    None => {
                        let inside: f64 = r.logprobs[p * k..(p + 1) * k].iter().map(|&l| f64::from(l).exp()).sum();
                        ((1.0 - inside).max(1e-6) / f64::from(vocab - r.k)).ln()
                    }
                }
            })
            .sum::<f64>()
            / positions as f64;
        reference::assert_close(&[got.losses[r.uid as usize]], &[expected_loss as f32], 1e-5, 1e-6);
    }
}

#[test]
fn bad_config_is_refused_and_unusable_answers_score_zero() {
    let err = scorer_template::plugin().build_scorer(neuron_plugin_testkit::gpu("t"), "floor = 2").err().unwrap();
    assert!(err.message.contains("floor must be in (0, 1), got 2"), "{err}");
    let targets = [1u32, 2, 3, 4];
    let batch =
        ScoringBatch { tokens: TokenBatch::new(1, 4, &targets), targets: targets.as_slice().into(), vocab_size: 8 };
    let timeout = MinerResponse {
        uid: 0,
        status: ResponseStatus::TIMEOUT,
        k: 0,
        ids: Default::default(),
        logprobs: Default::default(),
        latency_s: 1.0,
    };
    let s = scorer("").score(batch, &[timeout]).unwrap();
    assert_eq!(s.scores[0], 0.0);
    assert!(s.losses[0].is_nan());
}

/// The built `libscorer_template.so`, loaded as the host loads it, through every conformance check.
#[test]
fn the_built_library_passes_the_conformance_suite() {
    let report = Conformance::new(neuron_plugin_testkit::cdylib("scorer_template")).assert_passes();
    println!("{report}");
}
