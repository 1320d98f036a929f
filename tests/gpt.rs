//! The GPT plugin as the host loads it: `libgpt.so` through the real loader, trained on the
//! host's built-in corpus with the host's sampler and tokenizer.

use neuron_e2e::{gpu, host_command, plugin};
use neuron_host::{
    data::{BatchSampler, Dataset, Tokenizer},
    plugins::LoadedPlugin,
};
use neuron_plugin_api::{OutputRequest, PluginKinds, StateGroup, TokenBatch};

#[test]
fn the_loaded_gpt_plugin_learns_the_builtin_corpus() {
    let gpu = gpu();
    let gpt = LoadedPlugin::load(&plugin("gpt")).unwrap();
    assert_eq!(gpt.name(), "gpt");
    assert!(gpt.provides(PluginKinds::MODEL));
    let mut model = gpt.new_model(&gpu, "preset = \"tiny\"\nn_embd = 64\nseed = 1").unwrap();
    let d = model.describe().unwrap();
    assert_eq!((d.architecture.as_str(), d.vocab_size, d.block_size), ("gpt", 256, 16));
    let tokenizer = Tokenizer::from_name(d.tokenizer.as_str()).unwrap();
    let data = Dataset::builtin(0, 50_000, tokenizer).unwrap();
    data.check_vocab(d.vocab_size).unwrap();
    let mut sampler = BatchSampler::new(0, 8, 16);
    let mut losses = Vec::new();
    for _ in 0..200 {
        let b = sampler.next_batch(&data).unwrap();
        model.zero_grad().unwrap();
        losses.push(model.loss(TokenBatch::new(b.batch, b.seq, &b.tokens), &b.targets).unwrap());
        model.backward().unwrap();
        model.step(3e-3).unwrap();
    }
    let start = losses[0];
    let end = losses[190..].iter().sum::<f32>() / 10.0;
    assert!((start - 256f32.ln()).abs() < 0.3, "starts at the uniform baseline: {start}");
    assert!(end < 2.6, "loss on fresh batches of the corpus fell from {start} to only {end}");

    // It predicts the corpus: on a fresh batch, its top guess is the next byte far more often
    // than chance (1 in 256) or the most common byte (a space, about 1 in 6).
    let b = sampler.next_batch(&data).unwrap();
    let out = model.forward(TokenBatch::new(b.batch, b.seq, &b.tokens), OutputRequest::top_k(1)).unwrap();
    let hits = out.ids.iter().zip(&b.targets).filter(|(a, b)| a == b).count();
    let accuracy = hits as f32 / b.targets.len() as f32;
    assert!(accuracy > 0.25, "top-1 accuracy {accuracy}");
    assert_eq!(model.export_state(StateGroup::OPTIMIZER).unwrap().last().unwrap().to_i64_scalar().unwrap(), 200);
}

#[test]
fn plugin_inspect_describes_the_gpt_plugin_and_refuses_a_bad_config() {
    let out = host_command().args(["plugin", "inspect"]).arg(plugin("gpt")).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("gpt"), "{text}");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("neuron.toml");
    std::fs::write(&config, "[plugin.gpt]\npreset = \"tiny\"\nn_heads = 4\n").unwrap();
    let out =
        host_command().args(["plugin", "inspect"]).arg(plugin("gpt")).arg("--config").arg(&config).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("unknown configuration key `n_heads` (did you mean `n_head`?)"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}

#[test]
fn plugin_check_runs_the_conformance_suite_on_the_gpt_plugins_default_preset() {
    let out = host_command().args(["plugin", "check"]).arg(plugin("gpt")).args(["--steps", "20"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("model builds: gpt: vocabulary 256, context 64"), "the default preset is nano: {text}");
    assert!(text.contains("ok    overfits a tiny batch") && text.contains("passed: 10 checks"), "{text}");
}
