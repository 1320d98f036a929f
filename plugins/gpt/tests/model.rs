//! The whole GPT model on a real GPU context against an f64 CPU reference: forward logits,
//! gradients against central finite differences, training, determinism and state round trips.

mod common;

use common::*;
use neuron_plugin_api::{shaders, ErrorKind, ModelPlugin, OutputRequest, StateGroup, TokenBatch};

const TINY: &str = "preset = \"tiny\"\nseed = 5";

fn tiny_dims() -> Dims {
    Dims { layers: 2, heads: 2, c: 32, vocab: 256 }
}

fn random_tokens(n: usize, seed: u64) -> Vec<u32> {
    let mut r = Rand::new(seed);
    (0..n).map(|_| r.below(256)).collect()
}

#[test]
fn forward_matches_the_f64_reference_whole_and_split() {
    // 2 x 13 positions: ragged against the 64-wide matmul tiles and attention blocks. The second
    // model binds at most 8 KiB at once, so its token embedding is split into pieces and its
    // logits into chunks: both must give the same answer.
    let (b, t) = (2, 13);
    let tokens = random_tokens(b * t, 1);
    for mut m in [model(TINY), model_with_binding_limit(TINY, 8 << 10)] {
        let params = params_of(&m.export_state(StateGroup::MODEL).unwrap());
        let want = reference_logits(&params, &tiny_dims(), &tokens, b, t);
        let out = m.forward(TokenBatch::new(b as u32, t as u32, &tokens), OutputRequest::logits()).unwrap();
        assert_eq!((out.batch, out.positions, out.vocab_size), (2, 13, 256));
        assert_close("logits", &out.logits, &want, 1e-5, 1e-3);
    }
}

#[test]
fn loss_matches_the_reference_and_gradients_match_finite_differences() {
    // Analytic gradients from the GPU (f32) against central differences of the f64 reference
    // model with the same parameters (step 1e-4, truncation error ~1e-9), for every parameter
    // tensor: its four largest-magnitude entries and eight random ones. Each entry must satisfy
    // |g - fd| <= 1e-3 |fd| + 1e-4 max|fd| (max over the tensor's checked entries): what f32
    // accumulation leaves is ~1e-6 relative; a kernel off by 1% in one term fails.
    // The model first takes a few large AdamW steps so that attention is far from uniform (at
    // initialisation the key gradients are too small for errors in them to show), and a 6 KiB
    // binding limit splits the token embedding across shards and the logits into chunks, so the
    // split paths of the LM head, the embedding backward and AdamW are what is checked.
    let (b, t) = (2, 11);
    let tokens = random_tokens(b * t, 2);
    let targets = random_tokens(b * t, 3);
    let mut m = model_with_binding_limit(TINY, 6 << 10);
    train(&mut m, &tokens, &targets, b as u32, 4, 3e-2);
    let d = tiny_dims();
    let mut params = params_of(&m.export_state(StateGroup::MODEL).unwrap());
    let loss_of = |p: &Params| reference_loss(&reference_logits(p, &d, &tokens, b, t), &targets, 256);
    m.zero_grad().unwrap();
    let loss = m.loss(TokenBatch::new(b as u32, t as u32, &tokens), &targets).unwrap();
    let want = loss_of(&params);
    assert!((f64::from(loss) - want).abs() < 1e-5 * want, "loss {loss} vs reference {want}");
    m.backward().unwrap();
    let grads = m.gradients().unwrap();
    assert_eq!(grads.len(), 2 + 12 * 2 + 2, "one gradient per parameter tensor");
    let mut r = Rand::new(9);
    for g in &grads {
        let name = g.name.to_string();
        let analytic = g.to_f32().unwrap();
        let mut order: Vec<usize> = (0..analytic.len()).collect();
        order.sort_by(|&i, &j| analytic[j].abs().total_cmp(&analytic[i].abs()));
        let mut picks = order[..4].to_vec();
        picks.extend((0..8).map(|_| r.below(analytic.len() as u32) as usize));
        let fds: Vec<f64> = picks
            .iter()
            .map(|&i| {
                let h = 1e-4;
                let orig = params[&name][i];
                params.get_mut(&name).unwrap()[i] = orig + h;
                let up = loss_of(&params);
                params.get_mut(&name).unwrap()[i] = orig - h;
                let down = loss_of(&params);
                params.get_mut(&name).unwrap()[i] = orig;
                (up - down) / (2.0 * h)
            })
            .collect();
        let scale = fds.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(scale > 1e-6, "{name}: finite differences all ~0, the check would prove nothing");
        for (&i, &fd) in picks.iter().zip(&fds) {
            let err = (f64::from(analytic[i]) - fd).abs();
            assert!(
                err <= 1e-3 * fd.abs() + 1e-4 * scale,
                "{name}[{i}]: analytic {} vs finite difference {fd:.6e}",
                analytic[i]
            );
        }
    }
}

fn train(m: &mut dyn ModelPlugin, tokens: &[u32], targets: &[u32], b: u32, steps: usize, lr: f32) -> Vec<f32> {
    let t = tokens.len() as u32 / b;
    (0..steps)
        .map(|_| {
            m.zero_grad().unwrap();
            let loss = m.loss(TokenBatch::new(b, t, tokens), targets).unwrap();
            m.backward().unwrap();
            m.step(lr).unwrap();
            loss
        })
        .collect()
}

#[test]
fn one_hundred_adamw_steps_overfit_one_batch() {
    let (tokens, targets) = text_batch(4, 16);
    let mut m = model(TINY);
    let losses = train(&mut m, &tokens, &targets, 4, 100, 1e-2);
    let (first, last) = (losses[0], *losses.last().unwrap());
    assert!((first - 256f32.ln()).abs() < 0.3, "initial loss {first} should be near ln 256");
    assert!(last <= 0.1 * first, "loss {first} -> {last}: less than a 90% cut in 100 steps");
}

#[test]
fn one_seed_gives_identical_losses_and_state_round_trips_bit_identically() {
    let (tokens, targets) = text_batch(2, 16);
    let (mut a, mut b) = (model(TINY), model(TINY));
    let la = train(&mut a, &tokens, &targets, 2, 5, 3e-3);
    let lb = train(&mut b, &tokens, &targets, 2, 5, 3e-3);
    assert_eq!(la, lb, "two runs with one seed");
    assert!(la[4] < la[0]);

    // Export both groups into a fresh model with another seed: identical logits, and training on
    // from there gives the same losses as the original going on.
    let mut fresh = model("preset = \"tiny\"\nseed = 77");
    let batch = TokenBatch::new(2, 16, &tokens);
    let before = fresh.forward(batch, OutputRequest::logits()).unwrap();
    for group in [StateGroup::MODEL, StateGroup::OPTIMIZER] {
        fresh.import_state(group, &a.export_state(group).unwrap()).unwrap();
    }
    let la_out = a.forward(batch, OutputRequest::logits()).unwrap();
    let fresh_out = fresh.forward(batch, OutputRequest::logits()).unwrap();
    assert_ne!(before.logits, la_out.logits, "another seed starts elsewhere");
    assert!(la_out.logits.iter().zip(fresh_out.logits.iter()).all(|(x, y)| x.to_bits() == y.to_bits()));
    assert_eq!(train(&mut a, &tokens, &targets, 2, 3, 3e-3), train(&mut fresh, &tokens, &targets, 2, 3, 3e-3));
    let step = fresh.export_state(StateGroup::OPTIMIZER).unwrap().pop().unwrap();
    assert_eq!((step.name.as_str(), step.to_i64_scalar().unwrap()), ("step", 8));
}

#[test]
fn subgroup_and_tree_reductions_train_alike_and_each_is_deterministic() {
    // Where the device has SUBGROUP (lavapipe does), the model sums over workgroups with subgroup
    // operations; `subgroups = false` keeps the tree. The two add in different orders, so they
    // agree to rounding, and each repeats itself bit for bit.
    let gpu = gpu();
    if !reductions(&gpu).contains(&shaders::Reduction::Subgroup) {
        assert!(!is_lavapipe(), "lavapipe offers SUBGROUP: this test must run there");
        eprintln!("skipped: adapter {} lacks SUBGROUP; only the tree path exists here", gpu.adapter().name);
        return;
    }
    let (tokens, targets) = text_batch(2, 16);
    let tree_cfg = format!("{TINY}\nsubgroups = false");
    let run = |cfg: &str| {
        let mut m = model(cfg);
        let losses = train(&mut m, &tokens, &targets, 2, 8, 3e-3);
        let top = m.forward(TokenBatch::new(2, 16, &tokens), OutputRequest::top_k(4)).unwrap();
        (losses, top)
    };
    let (sub_a, sub_top) = run(TINY);
    let (sub_b, _) = run(TINY);
    let (tree_a, tree_top) = run(&tree_cfg);
    let (tree_b, _) = run(&tree_cfg);
    assert_eq!(sub_a, sub_b, "the subgroup path repeats itself bit for bit");
    assert_eq!(tree_a, tree_b, "the tree path repeats itself bit for bit");
    for (i, (s, t)) in sub_a.iter().zip(&tree_a).enumerate() {
        assert!((s - t).abs() <= 1e-5 * t.abs(), "step {i}: loss {s} with subgroups, {t} with the tree");
    }
    assert!(sub_a[7] < sub_a[0], "it trains: {sub_a:?}");
    let (sl, tl) = (sub_top.logprobs.as_slice(), tree_top.logprobs.as_slice());
    assert!(sl.iter().zip(tl).all(|(a, b)| (a - b).abs() <= 1e-4), "top-k log-probabilities agree");
}

#[test]
fn f16_weights_track_the_f32_model_train_repeatably_and_keep_f32_state() {
    // `weights_f16 = true`: the matmuls read an f16 copy of the weights, refreshed after every
    // step and import; the master weights, the optimizer and the exported state stay f32.
    let gpu = gpu();
    if !gpu.adapter().has_feature("SHADER_F16") {
        assert!(!is_lavapipe(), "lavapipe offers SHADER_F16: this test must run there");
        eprintln!("skipped: adapter {} lacks SHADER_F16; only f32 weights exist here", gpu.adapter().name);
        return;
    }
    let (tokens, targets) = text_batch(4, 16);
    let half_cfg = format!("{TINY}\nweights_f16 = true");
    let (mut h, mut f) = (model(&half_cfg), model(TINY));
    assert_eq!(h.export_state(StateGroup::MODEL).unwrap(), f.export_state(StateGroup::MODEL).unwrap());
    let batch = TokenBatch::new(4, 16, &tokens);
    let (lh, lf) = (
        h.forward(batch, OutputRequest::logits()).unwrap().logits,
        f.forward(batch, OutputRequest::logits()).unwrap().logits,
    );
    let scale = lf.iter().fold(0f32, |m, x| m.max(x.abs()));
    let worst = lh.iter().zip(lf.iter()).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max) / scale;
    assert!(worst > 0.0 && worst < 1e-2, "f16 weights move the logits by {worst} of their scale");

    let half_losses = train(&mut h, &tokens, &targets, 4, 40, 1e-2);
    let full_losses = train(&mut f, &tokens, &targets, 4, 40, 1e-2);
    assert!((half_losses[0] - full_losses[0]).abs() < 1e-3 * full_losses[0], "{half_losses:?} / {full_losses:?}");
    assert!(half_losses[39] < 0.5 * half_losses[0], "it trains: {half_losses:?}");
    // Rounding the weights each step moves the trajectory a little: within 10% (+ 0.01) of the
    // f32 model's loss at every step of 40.
    for (i, (h, f)) in half_losses.iter().zip(&full_losses).enumerate() {
        assert!((h - f).abs() <= 0.1 * f + 0.01, "step {i}: {h} with f16 weights, {f} without");
    }
    let mut again = model(&half_cfg);
    assert_eq!(train(&mut again, &tokens, &targets, 4, 40, 1e-2), half_losses, "bit for bit repeatable");

    // The exported weights are the f32 masters; importing them refreshes the f16 copy.
    let state = h.export_state(StateGroup::MODEL).unwrap();
    assert!(state.iter().all(|t| t.dtype == neuron_plugin_api::DType::F32));
    let mut fresh = model("preset = \"tiny\"\nseed = 9\nweights_f16 = true");
    fresh.import_state(StateGroup::MODEL, &state).unwrap();
    let (a, b) = (
        h.forward(batch, OutputRequest::logits()).unwrap().logits,
        fresh.forward(batch, OutputRequest::logits()).unwrap().logits,
    );
    assert!(a.iter().zip(b.iter()).all(|(x, y)| x.to_bits() == y.to_bits()), "the import refreshed the copy");
}

#[test]
fn top_k_and_last_positions_agree_with_the_logits() {
    let mut m = model(TINY);
    let tokens = random_tokens(3 * 9, 4);
    let batch = TokenBatch::new(3, 9, &tokens);
    let all = m.forward(batch, OutputRequest::logits()).unwrap();
    let top = m.forward(batch, OutputRequest::top_k(5)).unwrap();
    assert_eq!((top.k, top.ids.len()), (5, 27 * 5));
    for r in 0..27 {
        let (ids, lps) = neuron_plugin_api::top_k_logprobs(&all.logits[r * 256..(r + 1) * 256], 5);
        assert_eq!(&top.ids[r * 5..(r + 1) * 5], &ids[..], "row {r}");
        assert_close("logprobs", &top.logprobs[r * 5..(r + 1) * 5], &f64s(&lps), 1e-5, 1e-5);
    }
    let last = m.forward(batch, OutputRequest::logits().last_only()).unwrap();
    assert_eq!(last.positions, 1);
    for s in 0..3 {
        let row = s * 9 + 8;
        assert_eq!(&last.logits[s * 256..(s + 1) * 256], &all.logits[row * 256..(row + 1) * 256]);
    }
    let last_top = m.forward(batch, OutputRequest::top_k(3).last_only()).unwrap();
    assert_eq!(&last_top.ids[..3], &top.ids[8 * 5..8 * 5 + 3]);
}

#[test]
fn a_forward_pass_between_loss_and_backward_changes_nothing() {
    // A miner answers queries between training steps: the gradients must not notice.
    let (tokens, targets) = text_batch(2, 16);
    let batch = TokenBatch::new(2, 16, &tokens);
    let mut a = model(TINY);
    a.loss(batch, &targets).unwrap();
    a.backward().unwrap();
    let want = a.gradients().unwrap();
    let mut b = model(TINY);
    b.loss(batch, &targets).unwrap();
    b.forward(batch, OutputRequest::top_k(2)).unwrap();
    b.forward(TokenBatch::new(1, 5, &tokens[..5]), OutputRequest::logits()).unwrap();
    b.backward().unwrap();
    assert_eq!(b.gradients().unwrap(), want);
}

#[test]
fn bad_input_and_bad_state_are_one_line_errors() {
    let mut m = model(TINY);
    let err = m.forward(TokenBatch::new(1, 2, &[1, 300]), OutputRequest::logits()).unwrap_err();
    assert!(err.message.contains("token id 300 is outside the vocabulary of 256"), "{err}");
    let long = vec![1u32; 17];
    let err = m.forward(TokenBatch::new(1, 17, &long), OutputRequest::logits()).unwrap_err();
    assert!(err.message.contains("sequence length 17 exceeds the model's block_size 16"), "{err}");
    let err = m.backward().unwrap_err();
    assert_eq!(err.kind, ErrorKind::INPUT);
    let err = m.loss(TokenBatch::new(1, 2, &[1, 2]), &[3, 999]).unwrap_err();
    assert!(err.message.contains("target id 999"), "{err}");

    let mut state = m.export_state(StateGroup::MODEL).unwrap();
    let mut other = model("preset = \"tiny\"\nn_embd = 64");
    let err = other.import_state(StateGroup::MODEL, &state).unwrap_err();
    assert!(err.message.contains("has shape [256, 32], expected [256, 64]"), "{err}");
    // A NaN is refused before anything changes.
    let before = m.export_state(StateGroup::MODEL).unwrap();
    let bytes = f32::NAN.to_le_bytes();
    state[3].data.as_mut_slice()[..4].copy_from_slice(&bytes);
    let err = m.import_state(StateGroup::MODEL, &state).unwrap_err();
    assert!(err.message.contains("non-finite"), "{err}");
    assert_eq!(m.export_state(StateGroup::MODEL).unwrap(), before);
    assert!(!err.message.contains('\n'));
}
