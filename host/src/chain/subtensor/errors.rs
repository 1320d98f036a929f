//! Refusals from the node, named as subtensor names them.
//!
//! A refusal comes in one of two places: the transaction pool rejects a
//! transaction before it is included (subtensor's own extension answers
//! `InvalidTransaction::Custom(code)`), or the runtime includes it and its
//! dispatch fails (`System.ExtrinsicFailed` with a module error). Both are
//! turned into [`ChainError::Dispatch`] when the host acts on the error, and
//! [`ChainError::OtherDispatch`] with the pallet's name and docs otherwise.

use subxt::error::DispatchError as SubxtDispatchError;

use crate::chain::{ChainError, DispatchError};

/// A failed dispatch, decoded with the metadata of the block it failed in.
pub fn from_dispatch(call: &'static str, error: &SubxtDispatchError) -> ChainError {
    if let SubxtDispatchError::Module(module) = error {
        if let Ok(details) = module.details() {
            let (pallet, name) = (details.pallet.name(), details.variant.name.as_str());
            if pallet == "SubtensorModule" {
                if let Some(known) = DispatchError::from_name(name) {
                    return ChainError::dispatch(call, known);
                }
            }
            return ChainError::OtherDispatch {
                call,
                pallet: pallet.to_string(),
                name: name.to_string(),
                docs: details.variant.docs.join(" ").trim().to_string(),
            };
        }
    }
    ChainError::OtherDispatch { call, pallet: "System".into(), name: format!("{error:?}"), docs: error.to_string() }
}

/// subtensor's `CustomTransactionError` codes (its `InvalidTransaction::Custom(u8)`),
/// as stable on the wire since they were introduced; newer codes are reported by number.
const CUSTOM_CODES: &[&str] = &[
    "ColdkeyInSwapSchedule",
    "StakeAmountTooLow",
    "BalanceTooLow",
    "SubnetNotExists",
    "HotkeyAccountDoesntExist",
    "NotEnoughStakeToWithdraw",
    "RateLimitExceeded",
    "InsufficientLiquidity",
    "SlippageTooHigh",
    "TransferDisallowed",
    "HotKeyNotRegisteredInNetwork",
    "InvalidIpAddress",
    "ServingRateLimitExceeded",
    "InvalidPort",
    "BadRequest",
    "ZeroMaxAmount",
    "InvalidRevealRound",
    "CommitNotFound",
    "CommitBlockNotInRevealRange",
    "InputLengthsUnequal",
    "UidNotFound",
];

/// The custom code in a pool rejection's text ("Custom error: 6" or "Custom(6)").
fn custom_code(message: &str) -> Option<u8> {
    for marker in ["Custom error: ", "Custom("] {
        if let Some(at) = message.find(marker) {
            let digits: String = message[at + marker.len()..].chars().take_while(char::is_ascii_digit).collect();
            if let Ok(code) = digits.parse() {
                return Some(code);
            }
        }
    }
    None
}

/// A transaction the node refused to accept into its pool.
pub fn from_pool_rejection(call: &'static str, message: &str) -> ChainError {
    let Some(code) = custom_code(message) else {
        return ChainError::OtherDispatch {
            call,
            pallet: "TransactionPool".into(),
            name: "Invalid".into(),
            docs: message.to_string(),
        };
    };
    let name = CUSTOM_CODES.get(usize::from(code)).copied();
    let known = match (name, call) {
        (Some("SubnetNotExists"), _) => Some(DispatchError::SubnetNotExists),
        (Some("HotKeyNotRegisteredInNetwork"), _) => Some(DispatchError::HotKeyNotRegisteredInSubNet),
        (Some("RateLimitExceeded"), "set_weights" | "reveal_weights") => Some(DispatchError::SettingWeightsTooFast),
        (Some("RateLimitExceeded"), "commit_weights") => Some(DispatchError::CommittingWeightsTooFast),
        (Some("ServingRateLimitExceeded"), _) => Some(DispatchError::ServingRateLimitExceeded),
        (Some("InvalidPort"), _) => Some(DispatchError::InvalidPort),
        (Some("InputLengthsUnequal"), _) => Some(DispatchError::WeightVecNotEqualSize),
        (Some("CommitNotFound"), _) => Some(DispatchError::NoWeightsCommitFound),
        _ => None,
    };
    match known {
        Some(e) => ChainError::dispatch(call, e),
        None => ChainError::OtherDispatch {
            call,
            pallet: "SubtensorTransactionExtension".into(),
            name: name.map(str::to_string).unwrap_or_else(|| format!("Custom({code})")),
            docs: message.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_rejections_name_subtensors_custom_errors() {
        let e = from_pool_rejection("set_weights", "Invalid Transaction: Custom error: 6");
        assert_eq!(e.dispatch_error(), Some(DispatchError::SettingWeightsTooFast));
        let e = from_pool_rejection("serve_axon", "1010: Invalid Transaction (Custom(12))");
        assert_eq!(e.dispatch_error(), Some(DispatchError::ServingRateLimitExceeded));
        let e = from_pool_rejection("set_weights", "Invalid Transaction: Custom error: 200");
        assert!(matches!(e, ChainError::OtherDispatch { ref name, .. } if name == "Custom(200)"), "{e}");
        let e = from_pool_rejection("set_weights", "Transaction is outdated");
        assert!(matches!(e, ChainError::OtherDispatch { ref docs, .. } if docs.contains("outdated")), "{e}");
    }
}
