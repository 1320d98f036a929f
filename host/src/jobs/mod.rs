//! The jobs the binary runs. `plugin_check` is today's main job: load the
//! plugins given, open the GPU, and exercise each model and scorer. `chain`
//! shows a subtensor node's metagraph, hyperparameters and blocks. `wallet`
//! creates and inspects wallets.

pub mod chain;
pub mod inspect;
pub mod plugin_check;
pub mod run;
pub mod wallet;
