//! The chain through a real subtensor node, with subxt.

pub mod calls;
pub mod runtime;
pub mod signer;
