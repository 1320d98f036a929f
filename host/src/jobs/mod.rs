//! The jobs the binary runs. `run` is the main job: a local subnet, or one
//! miner or validator on a subtensor node. `plugin_check` trains and queries
//! plugins for their authors (`plugin check`), `inspect` prints what a plugin
//! declares, `chain` shows a subtensor node's metagraph, hyperparameters and
//! blocks, `wallet` creates and inspects wallets, `rescore` replays a
//! validator's record through scoring policies offline, `train` trains,
//! evaluates and samples a model plugin on its own (`train`, `eval`, `sample`).

pub mod chain;
pub mod checkpoint;
pub mod hf;
pub mod inspect;
pub mod plugin_check;
pub mod rescore;
pub mod run;
pub mod train;
pub mod wallet;
