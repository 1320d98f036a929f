//! `scoring-loss`: a miner's score is how well its top-k answer predicts the
//! batch's next tokens.
//!
//! For each miner, the next-token cross-entropy over the batch is computed on
//! the GPU (plugin-api's `shaders::TOPK_CROSS_ENTROPY`): the probability it gave the
//! true token, or — when the token is outside its top k — the probability
//! mass it left outside the top k, spread evenly over the rest of the
//! vocabulary (never below `floor`). The score is `exp(-loss / temperature)`,
//! the geometric-mean probability the miner gave the truth (with the default
//! temperature 1). Miners that time out, fail, or send a malformed answer
//! (wrong length, ids outside the vocabulary, non-finite or positive
//! log-probabilities, more than all the mass in the top k) score 0 with a NaN
//! loss for this step.

use neuron_plugin_api::{
    export_plugin, shaders, Gpu, Kernel, MinerResponse, Plugin, PluginConfig, PluginError, Result, ScorerDescription,
    ScorerPlugin, Scores, ScoringBatch, TopKAnswers,
};

pub fn plugin() -> Plugin {
    Plugin::new("scoring-loss", "Scores miners by next-token cross-entropy of their top-k answers")
        // The loss sums over a workgroup on subgroup operations where the adapter has them.
        .use_feature_if_available("SUBGROUP")
        .scorer(LossScorer::new)
}

export_plugin!(plugin);

pub struct LossScorer {
    gpu: Gpu,
    kernel: Kernel,
    floor: f32,
    temperature: f32,
}

impl LossScorer {
    pub fn new(gpu: Gpu, config: &str) -> Result<Self> {
        let mut cfg = PluginConfig::parse("scoring-loss", config)?;
        let floor: f32 = cfg.get("floor", 1e-6)?;
        let temperature: f32 = cfg.get("temperature", 1.0)?;
        cfg.finish()?;
        if !(floor > 0.0 && floor < 1.0) {
            return Err(PluginError::config(format!("plugin scoring-loss: floor must be in (0, 1), got {floor}")));
        }
        if !(temperature > 0.0 && temperature.is_finite()) {
            return Err(PluginError::config(format!(
                "plugin scoring-loss: temperature must be positive, got {temperature}"
            )));
        }
        let kernel = gpu.kernel(shaders::miner_loss(shaders::Reduction::for_gpu(&gpu)))?;
        Ok(Self { gpu, kernel, floor, temperature })
    }
}

impl ScorerPlugin for LossScorer {
    fn describe(&self) -> ScorerDescription {
        ScorerDescription::new("loss", &format!("floor = {}\ntemperature = {}\n", self.floor, self.temperature))
    }

    fn score(&mut self, batch: ScoringBatch<'_>, responses: &[MinerResponse]) -> Result<Scores> {
        let answers = TopKAnswers::pack(&batch, responses)?;
        let mut scores = Scores::unscored(responses.len());
        if answers.rows.is_empty() {
            return Ok(scores);
        }
        let ok = &answers.rows;
        let ids_buf = self.gpu.buffer_from(&answers.ids, "response ids")?;
        let lps_buf = self.gpu.buffer_from(&answers.logprobs, "response logprobs")?;
        let targets = self.gpu.buffer_from(batch.targets.as_slice(), "targets")?;
        let ks = self.gpu.buffer_from(&answers.ks, "k per miner")?;
        let losses = self.gpu.zeros_f32(ok.len(), "losses")?;
        let mut b = self.gpu.batch();
        b.dispatch_with(
            &self.kernel,
            &[ids_buf.all(), lps_buf.all(), targets.all(), ks.all(), losses.all()],
            [ok.len() as u32, 1, 1],
            &answers.params(&batch, self.floor),
        );
        let read = b.read(losses.all());
        let values: Vec<f32> = b.submit()?.get(read)?;
        for (&i, &loss) in ok.iter().zip(&values) {
            scores.losses[i] = loss;
            scores.scores[i] = (-loss / self.temperature).exp();
        }
        Ok(scores)
    }
    // Stateless: the default state methods (nothing to export, only nothing to import).
}
