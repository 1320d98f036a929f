//! A token embedding larger than a storage binding: GPT-2's vocabulary x width (154 MB) with the
//! binding limit at lavapipe's 128 MiB, so the table is split into pieces in two buffers.

mod common;

use common::*;
use neuron_plugin_api::{ModelPlugin, OutputRequest, StateGroup, TokenBatch};

#[test]
fn an_embedding_over_the_binding_limit_matches_the_reference_and_trains() {
    let limit = 128u64 << 20;
    let (vocab, c) = (50257usize, 768usize);
    assert!((vocab * c * 4) as u64 > limit, "the table must not fit one binding");
    let cfg = "preset = \"gpt2\"\nn_layer = 1\nblock_size = 8\nseed = 3";
    let mut m = model_with_binding_limit(cfg, limit);
    // Tokens on both sides of the split (the first piece holds 43690 rows).
    let tokens: Vec<u32> = vec![5, 50000, 43689, 43690, 220, 50256, 13, 43000];
    let targets: Vec<u32> = vec![50000, 43689, 43690, 220, 50256, 13, 43000, 1];
    let batch = TokenBatch::new(1, 8, &tokens);
    let params = params_of(&m.export_state(StateGroup::MODEL).unwrap());
    let dims = Dims { layers: 1, heads: 12, c, vocab };
    let want = reference_logits(&params, &dims, &tokens, 1, 8);
    let out = m.forward(batch, OutputRequest::logits()).unwrap();
    // Tolerance 1e-5 + 1e-3 |ref|: sums over 768 and 3072 products in f32.
    assert_close("logits", &out.logits, &want, 1e-5, 1e-3);
    let ref_loss = reference_loss(&want, &targets, vocab);
    let before = m.loss(batch, &targets).unwrap();
    assert!((f64::from(before) - ref_loss).abs() < 1e-4 * ref_loss, "loss {before} vs {ref_loss}");
    m.backward().unwrap();
    let stats = m.step(1e-3).unwrap();
    assert!(stats.grad_norm.is_finite() && stats.grad_norm > 0.0);
    let after = m.loss(batch, &targets).unwrap();
    assert!(after < before, "a step across the split lowers the loss: {before} -> {after}");
    // Both pieces moved: rows of tokens seen in each half changed.
    let after = m.export_state(StateGroup::MODEL).unwrap();
    let wte_after = after.iter().find(|t| t.name.as_str() == "transformer.wte.weight").unwrap().to_f32().unwrap();
    let wte_before = &params["transformer.wte.weight"];
    for row in [5usize, 50000] {
        assert!((0..c).any(|j| f64::from(wte_after[row * c + j]) != wte_before[row * c + j]), "row {row} unchanged");
    }
}
