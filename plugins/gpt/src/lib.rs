//! # gpt: a GPT-2-architecture language model plugin
//!
//! Token and position embeddings, pre-LayerNorm transformer blocks (causal multi-head
//! self-attention and a GELU MLP), a final LayerNorm and an LM head tied to the token embedding,
//! trained with AdamW. Every pass on the hot path is a WGSL kernel from this crate's
//! `shaders/` directory run through the host's compute context; the CPU only validates,
//! uploads token ids and reads back scalars or what the caller asked for.
//!
//! Parameter and optimizer state are named as nanoGPT names them
//! (`transformer.h.0.attn.c_attn.weight`, `....exp_avg`), so checkpoints line up with PyTorch's.

pub mod config;
pub mod kernels;
mod model;
pub mod params;

use neuron_plugin_api::{export_plugin, Plugin};

pub use config::GptConfig;
pub use model::{Gpt, GptOptions};

/// The plugin's declaration.
pub fn plugin() -> Plugin {
    Plugin::new("gpt", "GPT-2-architecture language model: forward, backward and AdamW as WGSL kernels")
        // Sums over a workgroup on subgroup operations where the adapter has them.
        .use_feature_if_available("SUBGROUP")
        // An f16 copy of the weights for the matmuls, when the configuration asks for it.
        .use_feature_if_available("SHADER_F16")
        .model(Gpt::new)
}

export_plugin!(plugin);
