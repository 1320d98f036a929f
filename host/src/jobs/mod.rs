//! The jobs the binary runs. `plugin_check` is today's main job: load the
//! plugins given, open the GPU, and exercise each model and scorer.

pub mod inspect;
pub mod plugin_check;
