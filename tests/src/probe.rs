//! What the checkpoint tests compare between a model and its restored copy:
//! logits on a fixed batch, then the loss of one training step and of the
//! batch after it (which depends on the optimizer's restored moments and step).

use neuron_host::{
    data::{BatchSampler, Dataset, Tokenizer},
    plugins::PluginModel,
};
use neuron_plugin_api::{OutputRequest, TokenBatch};

/// The tiny GPT config the checkpoint tests train (seeded: two builds start equal).
pub fn tiny_config(seed: u64) -> String {
    format!("preset = \"tiny\"\nseed = {seed}\n")
}

pub fn dataset() -> Dataset {
    Dataset::builtin(0, 50_000, Tokenizer::from_name("bytes").unwrap()).unwrap()
}

/// Trains `steps` steps on the stream of `seed` at learning rate `lr`.
pub fn train(model: &mut PluginModel, data: &Dataset, sampler: &mut BatchSampler, steps: u32, lr: f32) -> f32 {
    let mut loss = f32::NAN;
    for _ in 0..steps {
        let b = sampler.next_batch(data).unwrap();
        model.zero_grad().unwrap();
        loss = model.loss(TokenBatch::new(b.batch, b.seq, &b.tokens), &b.targets).unwrap();
        model.backward().unwrap();
        model.step(lr).unwrap();
    }
    loss
}

/// Bit patterns of: every logit on a fixed batch, the next training step's
/// loss, and the loss on the batch after that step.
pub fn fingerprint(model: &mut PluginModel, data: &Dataset) -> (Vec<u32>, u32, u32) {
    let mut probe = BatchSampler::new(4242, 2, 16);
    let b = probe.next_batch(data).unwrap();
    let out = model.forward(TokenBatch::new(b.batch, b.seq, &b.tokens), OutputRequest::logits()).unwrap();
    let logits = out.logits.iter().map(|l| l.to_bits()).collect();
    let step = train(model, data, &mut probe, 1, 1e-3);
    let b = probe.next_batch(data).unwrap();
    let after = model.loss(TokenBatch::new(b.batch, b.seq, &b.tokens), &b.targets).unwrap();
    (logits, step.to_bits(), after.to_bits())
}
