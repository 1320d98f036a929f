//! The two steps from a scorer's output to weights that the live validator and
//! `neuron-host rescore` share, so a replay cannot drift from what the
//! validator did: how one response's status and score become an [`Outcome`]
//! for the [`ScoreBook`], and how an epoch's moving-average scores become the
//! u16 weights the validator sets (its own uid left out, the SDK's pipeline).

use neuron_plugin_api::ResponseStatus;

use crate::scores::{Outcome, ScoreBook};
use crate::weights::{emit, WeightLimits, WeightsError, WeightsPipeline};

/// What one queried uid's step counts as: an answer when the scorer gave it a
/// score or a finite loss, else the failure its status names.
pub fn outcome(status: ResponseStatus, score: f32, loss: f32, latency_s: f32) -> Outcome {
    match status {
        ResponseStatus::OK if score > 0.0 || loss.is_finite() => Outcome::Answered { score, loss, latency_s },
        ResponseStatus::OK | ResponseStatus::MALFORMED => Outcome::Malformed,
        ResponseStatus::TIMEOUT => Outcome::Timeout,
        _ => Outcome::Error,
    }
}

/// The subnet's and the validator's rules for an epoch's weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WeightRules {
    pub pipeline: WeightsPipeline,
    pub min_allowed_weights: u16,
    pub max_weight_limit: u16,
    pub exclude_quantile: u16,
}

/// The weights for every uid of a subnet of `book.len()` neurons except
/// `own_uid`, from the book's moving-average scores.
pub fn epoch_weights(book: &ScoreBook, own_uid: u16, rules: WeightRules) -> Result<(Vec<u16>, Vec<u16>), WeightsError> {
    let n = book.len();
    let uids: Vec<u16> = (0..n as u16).filter(|&u| u != own_uid).collect();
    let raw: Vec<f32> = uids.iter().map(|&u| book.scores()[u as usize]).collect();
    let limits = WeightLimits {
        num_neurons: n,
        min_allowed_weights: rules.min_allowed_weights,
        max_weight_limit: rules.max_weight_limit,
        exclude_quantile: rules.exclude_quantile,
    };
    emit(rules.pipeline, &uids, &raw, limits, Some(own_uid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ok_answer_without_score_or_loss_is_malformed() {
        assert_eq!(outcome(ResponseStatus::OK, 0.0, f32::NAN, 0.1), Outcome::Malformed);
        assert_eq!(
            outcome(ResponseStatus::OK, 0.0, 3.0, 0.1),
            Outcome::Answered { score: 0.0, loss: 3.0, latency_s: 0.1 }
        );
        assert_eq!(outcome(ResponseStatus::TIMEOUT, 0.0, f32::NAN, 12.0), Outcome::Timeout);
        assert_eq!(outcome(ResponseStatus::ERROR, 0.0, f32::NAN, 0.0), Outcome::Error);
        assert_eq!(outcome(ResponseStatus(77), 1.0, 1.0, 0.0), Outcome::Error);
    }
}
