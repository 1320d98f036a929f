//! The scorer template: the smallest complete neuron-host scoring plugin.
//!
//! A miner's score is its top-k hit rate: the fraction of the batch's positions whose next token
//! is among the k tokens it answered. Its loss is its next-token cross-entropy. Both are computed
//! on the GPU in one submission: the hit rate by this crate's own kernel (`src/hits.wgsl`), the
//! loss by the top-k cross-entropy kernel that `neuron-plugin-api` carries for every scorer
//! (`shaders::miner_loss`). Copy this crate to start a scoring policy of your own.
//!
//! What it shows: [`TopKAnswers`] to check and pack the answers (unusable ones score 0 with a NaN
//! loss, as the contract asks), [`KernelDecl`] so each kernel's bindings and uniform struct are
//! checked against the WGSL when the scorer is built, and the default state methods of a
//! stateless scorer.

use neuron_plugin_api::prelude::*;

const HITS: &str = include_str!("hits.wgsl");
const WORKGROUP: u32 = 64;

pub fn plugin() -> Plugin {
    Plugin::new("scorer-template", "Scores miners by top-k hit rate: the smallest complete scoring plugin")
        .scorer(HitRate::new)
}

export_plugin!(plugin);

/// The uniform block of `hits.wgsl`, byte for byte.
#[repr(C)]
#[derive(Copy, Clone, Pod, Zeroable)]
#[bytemuck(crate = "neuron_plugin_api::bytemuck")]
struct HitParams {
    miners: u32,
    positions: u32,
    k: u32,
    _pad: u32,
}
uniform_layout!(HitParams { miners, positions, k, _pad });

pub struct HitRate {
    gpu: Gpu,
    hits: Kernel,
    loss: Kernel,
    floor: f32,
}

impl HitRate {
    pub fn new(gpu: Gpu, config: &str) -> Result<Self> {
        let mut cfg = PluginConfig::parse("scorer-template", config)?;
        // The probability mass assumed outside a miner's top k, at least (for the loss).
        let floor: f32 = cfg.get("floor", 1e-6)?;
        cfg.finish()?;
        if !(floor > 0.0 && floor < 1.0) {
            return Err(PluginError::config(format!("plugin scorer-template: floor must be in (0, 1), got {floor}")));
        }
        let hits = gpu.kernel(
            KernelDecl::new(HITS, "hits").read("ids").read("targets").write("hit_rate").uniform::<HitParams>(),
        )?;
        // The tree prelude everywhere, or subgroup sums where the device has SUBGROUP enabled
        // (declare `use_feature_if_available("SUBGROUP")` in `plugin()` to ask for it).
        let loss = gpu.kernel(shaders::miner_loss(shaders::Reduction::for_gpu(&gpu)))?;
        Ok(Self { gpu, hits, loss, floor })
    }
}

impl ScorerPlugin for HitRate {
    fn describe(&self) -> ScorerDescription {
        ScorerDescription::new("hit-rate", &format!("floor = {}\n", self.floor))
    }

    fn score(&mut self, batch: ScoringBatch<'_>, responses: &[MinerResponse]) -> Result<Scores> {
        // Checks the batch and keeps only usable answers, padded to one width.
        let answers = TopKAnswers::pack(&batch, responses)?;
        let mut scores = Scores::unscored(responses.len());
        if answers.rows.is_empty() {
            return Ok(scores);
        }
        let miners = answers.miners() as u32;
        let ids = self.gpu.buffer_from(&answers.ids, "ids")?;
        let logprobs = self.gpu.buffer_from(&answers.logprobs, "logprobs")?;
        let ks = self.gpu.buffer_from(&answers.ks, "k per miner")?;
        let targets = self.gpu.buffer_from(batch.targets.as_slice(), "targets")?;
        let hit_rate = self.gpu.zeros_f32(answers.miners(), "hit rate")?;
        let losses = self.gpu.zeros_f32(answers.miners(), "losses")?;
        let mut b = self.gpu.batch();
        let params = HitParams { miners, positions: batch.tokens.positions() as u32, k: answers.k, _pad: 0 };
        b.dispatch_with(
            &self.hits,
            &[ids.all(), targets.all(), hit_rate.all()],
            [miners.div_ceil(WORKGROUP), 1, 1],
            &params,
        );
        b.dispatch_with(
            &self.loss,
            &[ids.all(), logprobs.all(), targets.all(), ks.all(), losses.all()],
            [miners, 1, 1],
            &answers.params(&batch, self.floor),
        );
        let (read_hits, read_losses) = (b.read(hit_rate.all()), b.read(losses.all()));
        let done = b.submit()?;
        let (rates, miner_losses): (Vec<f32>, Vec<f32>) = (done.get(read_hits)?, done.get(read_losses)?);
        for ((&i, &rate), &loss) in answers.rows.iter().zip(&rates).zip(&miner_losses) {
            scores.scores[i] = rate;
            scores.losses[i] = loss;
        }
        Ok(scores)
    }
    // Stateless: the default export_state/import_state hold nothing and accept nothing.
}
