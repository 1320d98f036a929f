//! `scoring-loss`: a miner's score is how well its top-k answer predicts the
//! batch's next tokens.
//!
//! For each miner, the next-token cross-entropy over the batch is computed on
//! the GPU (`shaders/topk_cross_entropy.wgsl`): the probability it gave the
//! true token, or — when the token is outside its top k — the probability
//! mass it left outside the top k, spread evenly over the rest of the
//! vocabulary (never below `floor`). The score is `exp(-loss / temperature)`,
//! the geometric-mean probability the miner gave the truth (with the default
//! temperature 1). Miners that time out, fail, or send a malformed answer
//! (wrong length, ids outside the vocabulary, non-finite or positive
//! log-probabilities, more than all the mass in the top k) score 0 with a NaN
//! loss for this step.

use neuron_plugin_api::{
    bytemuck::{Pod, Zeroable},
    export_plugin, Gpu, Kernel, MinerResponse, Plugin, PluginConfig, PluginError, ResponseStatus, Result,
    ScorerDescription, ScorerPlugin, Scores, ScoringBatch, Tensor,
};

const KERNEL: &str = include_str!("../../../shaders/topk_cross_entropy.wgsl");
const PAD_ID: u32 = u32::MAX;
const PAD_LOGPROB: f32 = -1e30;
/// Top-k probabilities may sum slightly above 1 from rounding; beyond this they are malformed.
const MASS_TOLERANCE: f64 = 1e-3;

pub fn plugin() -> Plugin {
    Plugin::new("scoring-loss", "Scores miners by next-token cross-entropy of their top-k answers")
        .scorer(LossScorer::new)
}

export_plugin!(plugin);

#[repr(C)]
#[derive(Copy, Clone, Pod, Zeroable)]
#[bytemuck(crate = "neuron_plugin_api::bytemuck")]
struct Params {
    miners: u32,
    positions: u32,
    k: u32,
    vocab: u32,
    floor: f32,
    _pad: [u32; 3],
}

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
        let kernel = gpu.compile(KERNEL, "miner_loss")?;
        Ok(Self { gpu, kernel, floor, temperature })
    }
}

/// Whether a response can be scored: the right shape and plausible numbers.
pub fn usable(r: &MinerResponse, positions: usize, vocab: u32) -> bool {
    if r.status != ResponseStatus::OK || r.k == 0 || r.k >= vocab {
        return false;
    }
    let k = r.k as usize;
    if r.ids.len() != positions * k || r.logprobs.len() != positions * k {
        return false;
    }
    if r.ids.iter().any(|&id| id >= vocab) || r.logprobs.iter().any(|lp| !lp.is_finite() || *lp > 1e-4) {
        return false;
    }
    r.logprobs.chunks(k).all(|row| row.iter().map(|&lp| f64::from(lp).exp()).sum::<f64>() <= 1.0 + MASS_TOLERANCE)
}

impl ScorerPlugin for LossScorer {
    fn describe(&self) -> ScorerDescription {
        ScorerDescription::new("loss", &format!("floor = {}\ntemperature = {}\n", self.floor, self.temperature))
    }

    fn score(&mut self, batch: ScoringBatch<'_>, responses: &[MinerResponse]) -> Result<Scores> {
        let positions = batch.tokens.positions();
        if batch.vocab_size < 2 {
            return Err(PluginError::input(format!("vocabulary of {} tokens", batch.vocab_size)));
        }
        if let Some(t) = batch.targets.iter().find(|&&t| t >= batch.vocab_size) {
            return Err(PluginError::input(format!("target {t} outside the vocabulary of {}", batch.vocab_size)));
        }
        let ok: Vec<usize> =
            (0..responses.len()).filter(|&i| usable(&responses[i], positions, batch.vocab_size)).collect();
        let mut scores = Scores {
            scores: std::iter::repeat_n(0.0, responses.len()).collect(),
            losses: std::iter::repeat_n(f32::NAN, responses.len()).collect(),
        };
        if ok.is_empty() {
            return Ok(scores);
        }
        let k = ok.iter().map(|&i| responses[i].k).max().expect("non-empty") as usize;
        let mut ids = Vec::with_capacity(ok.len() * positions * k);
        let mut lps = Vec::with_capacity(ok.len() * positions * k);
        for &i in &ok {
            let r = &responses[i];
            let rk = r.k as usize;
            for p in 0..positions {
                ids.extend_from_slice(&r.ids[p * rk..(p + 1) * rk]);
                lps.extend_from_slice(&r.logprobs[p * rk..(p + 1) * rk]);
                ids.extend(std::iter::repeat_n(PAD_ID, k - rk));
                lps.extend(std::iter::repeat_n(PAD_LOGPROB, k - rk));
            }
        }
        let ids_buf = self.gpu.buffer_from(&ids, "response ids")?;
        let lps_buf = self.gpu.buffer_from(&lps, "response logprobs")?;
        let targets = self.gpu.buffer_from(batch.targets.as_slice(), "targets")?;
        let ks: Vec<u32> = ok.iter().map(|&i| responses[i].k).collect();
        let ks = self.gpu.buffer_from(&ks, "k per miner")?;
        let losses = self.gpu.zeros_f32(ok.len(), "losses")?;
        let mut b = self.gpu.batch();
        b.dispatch_with(
            &self.kernel,
            &[ids_buf.all(), lps_buf.all(), targets.all(), ks.all(), losses.all()],
            [ok.len() as u32, 1, 1],
            &Params {
                miners: ok.len() as u32,
                positions: positions as u32,
                k: k as u32,
                vocab: batch.vocab_size,
                floor: self.floor,
                _pad: [0; 3],
            },
        );
        let read = b.read(losses.all());
        let values: Vec<f32> = b.submit()?.get(read)?;
        for (&i, &loss) in ok.iter().zip(&values) {
            scores.losses[i] = loss;
            scores.scores[i] = (-loss / self.temperature).exp();
        }
        Ok(scores)
    }

    fn export_state(&mut self) -> Result<Vec<Tensor>> {
        Ok(Vec::new())
    }

    fn import_state(&mut self, tensors: &[Tensor]) -> Result<()> {
        neuron_plugin_api::check_state(&[], tensors)
    }
}
