//! Scorers: how a validator turns the miners' answers into scores.

use abi_stable::{
    sabi_trait,
    sabi_trait::TD_Opaque,
    std_types::{RBox, RResult, RSlice, RString, RVec},
    StableAbi,
};

use crate::{guard::guard, MinerResponse, PluginError, Result, Scores, ScoringBatch, Tensor};

/// What a scorer says about itself.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct ScorerDescription {
    /// Policy name, e.g. "loss" or "shapley".
    pub policy: RString,
    /// The effective configuration, as TOML.
    pub config: RString,
}

/// The ABI form of a scorer. Authors implement [`ScorerPlugin`].
#[sabi_trait]
pub trait Scorer: Send {
    fn describe(&self) -> RResult<ScorerDescription, PluginError>;
    fn score(&mut self, batch: ScoringBatch<'_>, responses: RSlice<'_, MinerResponse>) -> RResult<Scores, PluginError>;
    fn export_state(&mut self) -> RResult<RVec<Tensor>, PluginError>;
    #[sabi(last_prefix_field)]
    fn import_state(&mut self, tensors: RSlice<'_, Tensor>) -> RResult<(), PluginError>;
}

/// A scorer as it crosses the boundary.
pub type ScorerBox = Scorer_TO<'static, RBox<()>>;

/// What a scoring plugin implements.
///
/// Lifecycle: the host builds a scorer from the plugin's TOML section (with the network preset's
/// scoring values as defaults, see [`config::NETWORK_DEFAULTS`](crate::config::NETWORK_DEFAULTS)), calls
/// [`score`](Self::score) once per validator step with the step's batch and every queried
/// miner's response (timeouts and errors included), and saves [`export_state`](Self::export_state)
/// in the validator's checkpoint, handing it back through [`import_state`](Self::import_state)
/// after a restart. A stateless scorer keeps the default state methods.
pub trait ScorerPlugin: Send + 'static {
    /// The policy's name and its effective configuration as TOML (recorded with the validator's
    /// state). A network preset's scoring values (`prune_len`, `logits_divergence`, ...) reach the
    /// constructor as defaults that [`PluginConfig`](crate::PluginConfig) reads where the
    /// section leaves a key out.
    fn describe(&self) -> ScorerDescription;
    /// One score and one loss per response, in the responses' order. A response that cannot be
    /// used (see [`usable_response`]) scores 0 with a NaN loss; never an error for a bad miner.
    fn score(&mut self, batch: ScoringBatch<'_>, responses: &[MinerResponse]) -> Result<Scores>;
    /// State kept across steps (for example a running baseline). Default: none.
    fn export_state(&mut self) -> Result<Vec<Tensor>> {
        Ok(Vec::new())
    }
    /// Restores [`export_state`](Self::export_state)'s tensors; must check everything before
    /// changing anything. Default: a stateless scorer accepts only an empty list.
    fn import_state(&mut self, tensors: &[Tensor]) -> Result<()> {
        crate::check_state(&[], tensors)
    }
}

struct ScorerAdapter(Box<dyn ScorerPlugin>);

impl Scorer for ScorerAdapter {
    fn describe(&self) -> RResult<ScorerDescription, PluginError> {
        guard("describe", || Ok(self.0.describe()))
    }
    fn score(&mut self, batch: ScoringBatch<'_>, responses: RSlice<'_, MinerResponse>) -> RResult<Scores, PluginError> {
        guard("score", || {
            batch.check()?;
            let scores = self.0.score(batch, responses.as_slice())?;
            if scores.scores.len() != responses.len() || scores.losses.len() != responses.len() {
                return Err(PluginError::internal(format!(
                    "scorer returned {} scores and {} losses for {} responses",
                    scores.scores.len(),
                    scores.losses.len(),
                    responses.len()
                )));
            }
            Ok(scores)
        })
    }
    fn export_state(&mut self) -> RResult<RVec<Tensor>, PluginError> {
        guard("export_state", || self.0.export_state().map(RVec::from))
    }
    fn import_state(&mut self, tensors: RSlice<'_, Tensor>) -> RResult<(), PluginError> {
        guard("import_state", || self.0.import_state(tensors.as_slice()))
    }
}

/// Wraps an author's scorer into its ABI form.
pub fn scorer_box(scorer: Box<dyn ScorerPlugin>) -> ScorerBox {
    Scorer_TO::from_value(ScorerAdapter(scorer), TD_Opaque)
}

impl ScorerDescription {
    pub fn new(policy: &str, config: &str) -> Self {
        Self { policy: RString::from(policy), config: RString::from(config) }
    }
}

/// Top-k probabilities may sum slightly above 1 from rounding; beyond this an answer is malformed.
const MASS_TOLERANCE: f64 = 1e-3;

/// Whether a miner's answer can be scored: it answered, with the right shape
/// (`positions * k` ids and log-probabilities, `0 < k < vocab`), ids inside the
/// vocabulary, finite log-probabilities that are not positive, and at most all
/// the probability mass in each row's top k. Scorers give the rest 0 and a NaN
/// loss.
pub fn usable_response(r: &MinerResponse, positions: usize, vocab: u32) -> bool {
    if r.status != crate::ResponseStatus::OK || r.k == 0 || r.k >= vocab {
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

/// The usable answers of a step, packed for the shared top-k kernels
/// ([`shaders::TOPK_CROSS_ENTROPY`](crate::shaders::TOPK_CROSS_ENTROPY)): every answer padded to the largest k,
/// row-major `[miner][position][j]`, padding id [`TopKAnswers::PAD_ID`] with
/// log-probability [`TopKAnswers::PAD_LOGPROB`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TopKAnswers {
    /// Index in the responses of each packed answer, in the responses' order.
    pub rows: Vec<usize>,
    /// The padded width: the largest k among the packed answers (0 when none).
    pub k: u32,
    pub ids: Vec<u32>,
    pub logprobs: Vec<f32>,
    /// Each packed answer's own k.
    pub ks: Vec<u32>,
}

impl TopKAnswers {
    pub const PAD_ID: u32 = u32::MAX;
    pub const PAD_LOGPROB: f32 = -1e30;

    /// Checks the batch (its shape, one target per position, a vocabulary of at
    /// least 2 tokens, targets inside it) and packs the answers
    /// [`usable_response`] accepts.
    pub fn pack(batch: &ScoringBatch<'_>, responses: &[MinerResponse]) -> Result<Self> {
        batch.check()?;
        let positions = batch.tokens.positions();
        if batch.vocab_size < 2 {
            return Err(PluginError::input(format!("vocabulary of {} tokens", batch.vocab_size)));
        }
        if let Some(t) = batch.targets.iter().find(|&&t| t >= batch.vocab_size) {
            return Err(PluginError::input(format!("target {t} outside the vocabulary of {}", batch.vocab_size)));
        }
        let rows: Vec<usize> =
            (0..responses.len()).filter(|&i| usable_response(&responses[i], positions, batch.vocab_size)).collect();
        let k = rows.iter().map(|&i| responses[i].k).max().unwrap_or(0) as usize;
        let mut ids = Vec::with_capacity(rows.len() * positions * k);
        let mut logprobs = Vec::with_capacity(rows.len() * positions * k);
        for &i in &rows {
            let r = &responses[i];
            let rk = r.k as usize;
            for p in 0..positions {
                ids.extend_from_slice(&r.ids[p * rk..(p + 1) * rk]);
                logprobs.extend_from_slice(&r.logprobs[p * rk..(p + 1) * rk]);
                ids.extend(std::iter::repeat_n(Self::PAD_ID, k - rk));
                logprobs.extend(std::iter::repeat_n(Self::PAD_LOGPROB, k - rk));
            }
        }
        let ks = rows.iter().map(|&i| responses[i].k).collect();
        Ok(Self { rows, k: k as u32, ids, logprobs, ks })
    }

    /// Number of packed answers.
    pub fn miners(&self) -> usize {
        self.rows.len()
    }

    /// The uniform block [`shaders::TOPK_CROSS_ENTROPY`](crate::shaders::TOPK_CROSS_ENTROPY) takes for these answers.
    pub fn params(&self, batch: &ScoringBatch<'_>, floor: f32) -> TopKParams {
        TopKParams {
            miners: self.rows.len() as u32,
            positions: batch.tokens.positions() as u32,
            k: self.k,
            vocab: batch.vocab_size,
            floor,
            _pad: [0; 3],
        }
    }
}

/// The uniform block of [`shaders::TOPK_CROSS_ENTROPY`](crate::shaders::TOPK_CROSS_ENTROPY), byte for byte.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct TopKParams {
    pub miners: u32,
    pub positions: u32,
    /// The padded width.
    pub k: u32,
    pub vocab: u32,
    /// Least probability mass assumed outside a top k.
    pub floor: f32,
    pub _pad: [u32; 3],
}
crate::uniform_layout!(TopKParams { miners, positions, k, vocab, floor, _pad });
