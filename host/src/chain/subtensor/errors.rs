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

/// subtensor's `CustomTransactionError` codes (its `InvalidTransaction::Custom(u8)`), as its
/// `From<CustomTransactionError> for u8` numbers them: the wire values are fixed per variant, not
/// by the enum's order (`BadRequest` is 255; `ZeroMaxAmount` took 14). Codes not here are
/// reported by number.
pub const CUSTOM_CODES: &[(u8, &str)] = &[
    (0, "ColdkeyInSwapSchedule"),
    (1, "StakeAmountTooLow"),
    (2, "BalanceTooLow"),
    (3, "SubnetNotExists"),
    (4, "HotkeyAccountDoesntExist"),
    (5, "NotEnoughStakeToWithdraw"),
    (6, "RateLimitExceeded"),
    (7, "InsufficientLiquidity"),
    (8, "SlippageTooHigh"),
    (9, "TransferDisallowed"),
    (10, "HotKeyNotRegisteredInNetwork"),
    (11, "InvalidIpAddress"),
    (12, "ServingRateLimitExceeded"),
    (13, "InvalidPort"),
    (14, "ZeroMaxAmount"),
    (15, "InvalidRevealRound"),
    (16, "CommitNotFound"),
    (17, "CommitBlockNotInRevealRange"),
    (18, "InputLengthsUnequal"),
    (19, "UidNotFound"),
    (20, "EvmKeyAssociateRateLimitExceeded"),
    (21, "ColdkeySwapDisputed"),
    (22, "InvalidRealAccount"),
    (23, "FailedShieldedTxParsing"),
    (24, "InvalidShieldedTxPubKeyHash"),
    (25, "NonAssociatedColdKey"),
    (26, "DelegateTakeTooLow"),
    (27, "DelegateTakeTooHigh"),
    (255, "BadRequest"),
];

/// The name subtensor gives custom pool error `code`.
pub fn custom_code_name(code: u8) -> Option<&'static str> {
    CUSTOM_CODES.iter().find(|(c, _)| *c == code).map(|(_, n)| *n)
}

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
    let name = custom_code_name(code);
    let known = match (name, call) {
        (Some("SubnetNotExists"), _) => Some(DispatchError::SubnetNotExists),
        (Some("HotKeyNotRegisteredInNetwork"), _) => Some(DispatchError::HotKeyNotRegisteredInSubNet),
        (Some("RateLimitExceeded"), "set_weights" | "reveal_weights") => Some(DispatchError::SettingWeightsTooFast),
        (Some("RateLimitExceeded"), c) if c.starts_with("commit") => Some(DispatchError::CommittingWeightsTooFast),
        (Some("ServingRateLimitExceeded"), _) => Some(DispatchError::ServingRateLimitExceeded),
        (Some("InvalidPort"), _) => Some(DispatchError::InvalidPort),
        (Some("InputLengthsUnequal"), _) => Some(DispatchError::WeightVecNotEqualSize),
        (Some("CommitNotFound"), _) => Some(DispatchError::NoWeightsCommitFound),
        (Some("InvalidRevealRound"), _) => Some(DispatchError::InvalidRevealRound),
        (Some("CommitBlockNotInRevealRange"), _) => Some(DispatchError::CommitBlockNotInRevealRange),
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
        // Code 16 is CommitNotFound (the table was once shifted by one from 14 on).
        let e = from_pool_rejection("reveal_weights", "Invalid Transaction: Custom error: 16");
        assert_eq!(e.dispatch_error(), Some(DispatchError::NoWeightsCommitFound));
        let e = from_pool_rejection("serve_axon", "1010: Invalid Transaction (Custom(11))");
        assert!(matches!(e, ChainError::OtherDispatch { ref name, .. } if name == "InvalidIpAddress"), "{e}");
        let e = from_pool_rejection("set_weights", "Invalid Transaction: Custom error: 255");
        assert!(matches!(e, ChainError::OtherDispatch { ref name, .. } if name == "BadRequest"), "{e}");
        let e = from_pool_rejection("set_weights", "Invalid Transaction: Custom error: 200");
        assert!(matches!(e, ChainError::OtherDispatch { ref name, .. } if name == "Custom(200)"), "{e}");
        let e = from_pool_rejection("set_weights", "Transaction is outdated");
        assert!(matches!(e, ChainError::OtherDispatch { ref docs, .. } if docs.contains("outdated")), "{e}");
    }

    #[test]
    fn every_custom_code_is_named_as_subtensor_numbers_it() {
        // (code, name) as subtensor's `From<CustomTransactionError> for u8` maps them.
        for &(code, name) in CUSTOM_CODES {
            let e = from_pool_rejection("add_stake", &format!("Invalid Transaction: Custom error: {code}"));
            let named = match &e {
                ChainError::OtherDispatch { name, .. } => name.clone(),
                other => other.dispatch_error().map(|d| d.name().to_string()).unwrap_or_default(),
            };
            let expected = match name {
                "HotKeyNotRegisteredInNetwork" => "HotKeyNotRegisteredInSubNet",
                "InputLengthsUnequal" => "WeightVecNotEqualSize",
                "CommitNotFound" => "NoWeightsCommitFound",
                n => n,
            };
            assert_eq!(named, expected, "code {code}");
        }
        let codes: Vec<u8> = CUSTOM_CODES.iter().map(|(c, _)| *c).collect();
        assert_eq!(codes[..28], (0..28).collect::<Vec<u8>>()[..], "0 to 27 without a gap");
        assert_eq!(custom_code_name(255), Some("BadRequest"));
        assert_eq!(custom_code_name(14), Some("ZeroMaxAmount"));
        assert_eq!(custom_code_name(28), None);
    }
}
