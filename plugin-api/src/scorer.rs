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
pub trait ScorerPlugin: Send + 'static {
    fn describe(&self) -> ScorerDescription;
    /// One score and one loss per response, in the responses' order.
    fn score(&mut self, batch: ScoringBatch<'_>, responses: &[MinerResponse]) -> Result<Scores>;
    fn export_state(&mut self) -> Result<Vec<Tensor>>;
    fn import_state(&mut self, tensors: &[Tensor]) -> Result<()>;
}

struct ScorerAdapter(Box<dyn ScorerPlugin>);

impl Scorer for ScorerAdapter {
    fn describe(&self) -> RResult<ScorerDescription, PluginError> {
        guard("describe", || Ok(self.0.describe()))
    }
    fn score(&mut self, batch: ScoringBatch<'_>, responses: RSlice<'_, MinerResponse>) -> RResult<Scores, PluginError> {
        guard("score", || {
            batch.tokens.check()?;
            if batch.targets.len() != batch.tokens.positions() {
                return Err(PluginError::input(format!(
                    "{} targets for {} positions",
                    batch.targets.len(),
                    batch.tokens.positions()
                )));
            }
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
