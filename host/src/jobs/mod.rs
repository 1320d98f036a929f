//! The jobs the binary runs. `plugin_check` is today's main job: load the
//! plugins given, open the GPU, and exercise each model and scorer. `wallet`
//! creates and inspects wallets.

pub mod inspect;
pub mod plugin_check;
pub mod wallet;
