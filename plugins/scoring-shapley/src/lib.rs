//! `scoring-shapley`: the scaling-law Shapley scoring of Bittensor's 3.x core
//! validator, on the GPU.
//!
//! Each miner's next-token cross-entropy (from its top-k answer, as
//! scoring-loss computes it) stands for a model size through Kaplan et al.'s
//! scaling law, raised to `scaling_law_power`: its base value. Every pair of
//! kept miners is scored as the mixture of their two distributions; what the
//! pair gains over the better of the two, in scaled model size
//! (`synergy_scaling_law_power`), is shared between them. A miner whose
//! distribution is further from the miners' average than the usual spread is
//! divided down by `1 + logits_divergence * excess`. At most `prune_len`
//! miners (lowest loss first) are kept per step; the rest score 0. Miners that
//! time out or send malformed answers score 0 with a NaN loss.
//!
//! All per-miner, per-position and per-pair arithmetic runs in the kernels of
//! plugin-api's top-k kernels (`shaders::TOPK_CROSS_ENTROPY`, `shaders::TOPK_DIVERGENCE`) and
//! this crate's `shaders/shapley_synergy.wgsl`; this crate packs the answers, picks the
//! kept miners from their losses, and reads back per-miner results. The
//! formulas and the differences from the reference are in the README.

mod config;
mod evaluation;

pub use config::ShapleyConfig;
pub use evaluation::{Evaluation, Trace};

use neuron_plugin_api::{
    export_plugin, shaders, Gpu, MinerResponse, Plugin, PluginError, Result, ScorerDescription, ScorerPlugin, Scores,
    ScoringBatch,
};

use evaluation::Kernels;

/// The plugin's name, as the configuration section `[plugin.scoring-shapley]` names it.
pub const NAME: &str = "scoring-shapley";

pub fn plugin() -> Plugin {
    Plugin::new(NAME, "Scores miners by scaling-law Shapley values of their top-k answers")
        // Sums over a workgroup on subgroup operations where the adapter has them.
        .use_feature_if_available("SUBGROUP")
        .scorer(ShapleyScorer::new)
}

export_plugin!(plugin);

pub struct ShapleyScorer {
    gpu: Gpu,
    kernels: Kernels,
    config: ShapleyConfig,
    scratch_bytes: u64,
}

impl ShapleyScorer {
    pub fn new(gpu: Gpu, config: &str) -> Result<Self> {
        let config = ShapleyConfig::parse(config)?;
        let kernels = Kernels::compile(&gpu, shaders::Reduction::for_gpu(&gpu))?;
        Ok(Self { gpu, kernels, config, scratch_bytes: evaluation::SCRATCH_BYTES })
    }

    pub fn config(&self) -> &ShapleyConfig {
        &self.config
    }

    /// Caps the scratch of the divergence pass (each of its two buffers holds
    /// `vocab` words per position of a chunk; default 32 MiB, never more than
    /// the adapter's binding limit). Smaller means more, smaller dispatches.
    pub fn set_scratch_bytes(&mut self, bytes: u64) {
        self.scratch_bytes = bytes;
    }

    /// One step's evaluation; with `trace`, every intermediate the kernels
    /// computed is read back too (for tests and diagnostics).
    pub fn evaluate(
        &mut self,
        batch: ScoringBatch<'_>,
        responses: &[MinerResponse],
        trace: bool,
    ) -> Result<Evaluation> {
        evaluation::evaluate(&self.gpu, &self.kernels, &self.config, &batch, responses, self.scratch_bytes, trace)
    }
}

impl ScorerPlugin for ShapleyScorer {
    fn describe(&self) -> ScorerDescription {
        ScorerDescription::new("shapley", &self.config.to_toml())
    }

    fn score(&mut self, batch: ScoringBatch<'_>, responses: &[MinerResponse]) -> Result<Scores> {
        let e = self.evaluate(batch, responses, false)?;
        let mut scores = Scores::unscored(responses.len());
        for (&row, &loss) in e.rows.iter().zip(&e.losses) {
            scores.losses[row] = loss;
        }
        for (&miner, &value) in e.kept.iter().zip(&e.values) {
            let uid = responses[e.rows[miner]].uid;
            if !(value.is_finite() && value >= 0.0) {
                return Err(PluginError::internal(format!(
                    "Shapley value {value} for uid {uid}; please report this with the scorer's configuration"
                )));
            }
            scores.scores[e.rows[miner]] = value;
        }
        Ok(scores)
    }

    // Stateless: the default state methods (nothing to export, only nothing to import).
}
