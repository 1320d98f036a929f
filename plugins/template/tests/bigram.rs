//! The template model on a real GPU context (the test kit's, the same implementation the host
//! uses), built in-process and checked against CPU references; then the built library through
//! the conformance suite, as `neuron-host plugin check` runs it.

use neuron_plugin_api::{prelude::*, ModelPlugin};
use neuron_plugin_testkit::{
    gradcheck::{check_model_gradients, GradCheck},
    reference::{self, Rng},
    Conformance,
};

fn model(config: &str) -> Box<dyn ModelPlugin> {
    template::plugin().build_model(neuron_plugin_testkit::gpu("template"), config).expect("model builds")
}

#[test]
fn forward_matches_the_table_rows_and_the_loss_its_cross_entropy() {
    let mut m = model("vocab_size = 16\nseed = 3");
    let table = m.export_state(StateGroup::MODEL).unwrap()[0].to_f32().unwrap();
    let tokens = [3u32, 0, 15, 7, 7, 1];
    let out = m.forward(TokenBatch::new(2, 3, &tokens), OutputRequest::logits()).unwrap();
    assert_eq!((out.batch, out.positions, out.vocab_size), (2, 3, 16));
    for (p, &t) in tokens.iter().enumerate() {
        assert_eq!(&out.logits[p * 16..(p + 1) * 16], &table[t as usize * 16..(t as usize + 1) * 16]);
    }
    let targets = Rng::new(1).tokens(6, 16);
    let loss = m.loss(TokenBatch::new(2, 3, &tokens), &targets).unwrap();
    let expected = reference::cross_entropy(&out.logits, &targets, 16);
    assert!((loss as f64 - expected).abs() < 1e-5, "{loss} against {expected}");
}

#[test]
fn gradients_agree_with_finite_differences() {
    let mut m = model("vocab_size = 8\nseed = 5");
    let mut rng = Rng::new(2);
    let (tokens, targets) = (rng.tokens(12, 8), rng.tokens(12, 8));
    let report =
        check_model_gradients(m.as_mut(), TokenBatch::new(2, 6, &tokens), &targets, &GradCheck::default()).unwrap();
    assert!(report.checked >= 8, "{report:?}");
}

#[test]
fn training_learns_a_cycle() {
    // A sequence where every token determines the next: loss should approach 0.
    let mut m = model("vocab_size = 8");
    let seq: Vec<u32> = (0..65).map(|i| (i * 3 % 8) as u32).collect();
    let (tokens, targets) = (&seq[..64], &seq[1..]);
    let batch = TokenBatch::new(4, 16, tokens);
    let first = m.loss(batch, targets).unwrap();
    assert!((first - (8f32).ln()).abs() < 0.05, "initial loss {first} should be near ln 8");
    let mut last = first;
    for _ in 0..60 {
        m.zero_grad().unwrap();
        last = m.loss(batch, targets).unwrap();
        m.backward().unwrap();
        m.step(2.0).unwrap();
    }
    assert!(last < 0.2 * first, "loss {first} -> {last}");
    let out = m.forward(TokenBatch::new(1, 1, &[3]), OutputRequest::top_k(1)).unwrap();
    assert_eq!(out.ids[0], (3 + 3), "in the sequence 3i mod 8, 3 is followed by 6");
}

#[test]
fn bad_config_bad_tokens_and_bad_state_are_errors() {
    let err = template::plugin().build_model(neuron_plugin_testkit::gpu("t"), "vocab = 3").err().unwrap();
    assert!(err.message.contains("unknown configuration key `vocab`"), "{err}");
    let mut m = model("vocab_size = 4");
    let err = m.forward(TokenBatch::new(1, 1, &[9]), OutputRequest::logits()).unwrap_err();
    assert!(err.message.contains("token id 9 is outside the vocabulary of 4"), "{err}");
    let state = model("vocab_size = 8").export_state(StateGroup::MODEL).unwrap();
    let err = m.import_state(StateGroup::MODEL, &state).unwrap_err();
    assert!(err.message.contains("shape [8, 8], expected [4, 4]"), "{err}");
}

/// The built `libtemplate.so`, loaded as the host loads it, through every conformance check.
#[test]
fn the_built_library_passes_the_conformance_suite() {
    let report = Conformance::new(neuron_plugin_testkit::cdylib("template"))
        .model_config("vocab_size = 16")
        // Plain SGD on a bigram table wants a large learning rate.
        .learning_rate(2.0)
        .assert_passes();
    println!("{report}");
}
