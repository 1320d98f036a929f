//! The template model on a real GPU context (the host's), built in-process.

use neuron_host::gpu::{GpuDevice, GpuOptions};
use neuron_plugin_api::{ModelPlugin, OutputRequest, StateGroup, TokenBatch};

fn model(config: &str) -> Box<dyn ModelPlugin> {
    let gpu = GpuDevice::open(&GpuOptions::from_env(), &[]).expect("a GPU adapter (lavapipe will do)");
    template::plugin().build_model(gpu.context("test").into_gpu(), config).expect("model builds")
}

#[test]
fn forward_matches_the_table_rows() {
    let mut m = model("vocab_size = 16\nseed = 3");
    let table = m.export_state(StateGroup::MODEL).unwrap()[0].to_f32().unwrap();
    let tokens = [3u32, 0, 15, 7, 7, 1];
    let out = m.forward(TokenBatch::new(2, 3, &tokens), OutputRequest::logits()).unwrap();
    assert_eq!((out.batch, out.positions, out.vocab_size), (2, 3, 16));
    for (p, &t) in tokens.iter().enumerate() {
        assert_eq!(&out.logits[p * 16..(p + 1) * 16], &table[t as usize * 16..(t as usize + 1) * 16]);
    }
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
fn state_round_trips_and_bad_state_is_refused() {
    let mut a = model("vocab_size = 8\nseed = 1");
    let mut b = model("vocab_size = 8\nseed = 2");
    let state = a.export_state(StateGroup::MODEL).unwrap();
    b.import_state(StateGroup::MODEL, &state).unwrap();
    let tokens = [1u32, 2, 3];
    let la = a.forward(TokenBatch::new(1, 3, &tokens), OutputRequest::logits()).unwrap();
    let lb = b.forward(TokenBatch::new(1, 3, &tokens), OutputRequest::logits()).unwrap();
    assert_eq!(la.logits, lb.logits);
    let mut c = model("vocab_size = 4");
    let err = c.import_state(StateGroup::MODEL, &state).unwrap_err();
    assert!(err.message.contains("shape [8, 8], expected [4, 4]"), "{err}");
}

#[test]
fn bad_config_and_bad_tokens_are_errors() {
    let gpu = GpuDevice::open(&GpuOptions::from_env(), &[]).unwrap();
    let err = template::plugin().build_model(gpu.context("t").into_gpu(), "vocab = 3").err().unwrap();
    assert!(err.message.contains("unknown configuration key `vocab`"), "{err}");
    let mut m = model("vocab_size = 4");
    let err = m.forward(TokenBatch::new(1, 1, &[9]), OutputRequest::logits()).unwrap_err();
    assert!(err.message.contains("token id 9 is outside the vocabulary of 4"), "{err}");
}
