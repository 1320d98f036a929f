//! The model's configuration: presets, the keys of its TOML section, and their checks.

use neuron_plugin_api::{PluginConfig, PluginError, Result};

/// Head sizes above this do not fit the attention kernels' registers (`shaders/attention.wgsl`).
pub const MAX_HEAD_SIZE: u32 = 64;

/// Everything that defines a model and its optimizer.
#[derive(Clone, Debug, PartialEq)]
pub struct GptConfig {
    pub preset: String,
    pub n_layer: u32,
    pub n_head: u32,
    pub n_embd: u32,
    pub block_size: u32,
    pub vocab_size: u32,
    /// "bytes" (ids 0..256 are bytes) or "gpt2" (r50k BPE).
    pub tokenizer: String,
    pub seed: u64,
    pub weight_decay: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// Global gradient-norm clip; 0 disables clipping.
    pub grad_clip: f32,
    /// Sum over workgroups with subgroup operations where the device has them (the default);
    /// `false` keeps the plain tree everywhere. A choice of how to run, not of the model: it is
    /// not in [`GptConfig::to_toml`], so checkpoints neither save nor compare it.
    pub subgroups: bool,
    /// The forward and input-gradient matmuls read the weights from an f16 copy (converted to
    /// f32, summed in f32), refreshed from the f32 master weights after every step; where the
    /// device has SHADER_F16. Off by default: it changes the numerics (about 1e-3 relative in
    /// the logits). A choice of how to run: not in [`GptConfig::to_toml`].
    pub weights_f16: bool,
}

/// Names of the presets, for messages.
pub const PRESETS: [&str; 4] = ["tiny", "nano", "gpt2", "gpt2-medium"];

/// The default preset when the section names none.
pub const DEFAULT_PRESET: &str = "nano";

impl GptConfig {
    /// A named preset with nanoGPT's optimizer defaults.
    pub fn preset(name: &str) -> Option<Self> {
        let (n_layer, n_head, n_embd, block_size, vocab_size, tokenizer) = match name {
            // Small enough for gradient checks and overfitting tests on a software GPU.
            "tiny" => (2, 2, 32, 16, 256, "bytes"),
            // nanoGPT's CPU example (shakespeare_char, shrunk): bytes instead of characters.
            "nano" => (4, 4, 128, 64, 256, "bytes"),
            // GPT-2 small, 124M parameters.
            "gpt2" => (12, 12, 768, 1024, 50257, "gpt2"),
            // GPT-2 medium, 355M parameters.
            "gpt2-medium" => (24, 16, 1024, 1024, 50257, "gpt2"),
            _ => return None,
        };
        Some(Self {
            preset: name.to_string(),
            n_layer,
            n_head,
            n_embd,
            block_size,
            vocab_size,
            tokenizer: tokenizer.to_string(),
            seed: 0,
            weight_decay: 0.1,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            grad_clip: 1.0,
            subgroups: true,
            weights_f16: false,
        })
    }

    /// Reads the plugin's TOML section: a preset (default `nano`), then any key overriding it.
    pub fn parse(text: &str) -> Result<Self> {
        let mut cfg = PluginConfig::parse("gpt", text)?;
        let preset: String = cfg.get("preset", DEFAULT_PRESET.to_string())?;
        let mut c = Self::preset(&preset).ok_or_else(|| {
            PluginError::config(format!("plugin gpt: unknown preset `{preset}`; use one of {}", PRESETS.join(", ")))
        })?;
        c.n_layer = cfg.get("n_layer", c.n_layer)?;
        c.n_head = cfg.get("n_head", c.n_head)?;
        c.n_embd = cfg.get("n_embd", c.n_embd)?;
        c.block_size = cfg.get("block_size", c.block_size)?;
        c.vocab_size = cfg.get("vocab_size", c.vocab_size)?;
        c.tokenizer = cfg.get("tokenizer", c.tokenizer)?;
        c.seed = cfg.get("seed", c.seed)?;
        c.weight_decay = cfg.get("weight_decay", c.weight_decay)?;
        c.beta1 = cfg.get("beta1", c.beta1)?;
        c.beta2 = cfg.get("beta2", c.beta2)?;
        c.eps = cfg.get("eps", c.eps)?;
        c.grad_clip = cfg.get("grad_clip", c.grad_clip)?;
        c.subgroups = cfg.get("subgroups", c.subgroups)?;
        c.weights_f16 = cfg.get("weights_f16", c.weights_f16)?;
        cfg.finish()?;
        c.check()?;
        Ok(c)
    }

    fn check(&self) -> Result<()> {
        let bad = |m: String| Err(PluginError::config(format!("plugin gpt: {m}")));
        if self.n_layer == 0 || self.n_head == 0 || self.n_embd == 0 || self.block_size == 0 {
            return bad("n_layer, n_head, n_embd and block_size must all be at least 1".into());
        }
        if !self.n_embd.is_multiple_of(self.n_head) {
            return bad(format!("n_embd ({}) must be a multiple of n_head ({})", self.n_embd, self.n_head));
        }
        let head = self.n_embd / self.n_head;
        if head > MAX_HEAD_SIZE {
            return bad(format!(
                "head size n_embd / n_head = {head} exceeds {MAX_HEAD_SIZE}; raise n_head to at least {}",
                self.n_embd.div_ceil(MAX_HEAD_SIZE)
            ));
        }
        if self.n_embd > 1 << 14 || self.block_size > 1 << 16 || self.n_layer > 1024 {
            return bad("n_embd above 16384, block_size above 65536 or n_layer above 1024 is not supported".into());
        }
        match self.tokenizer.as_str() {
            "bytes" if self.vocab_size < 256 => {
                return bad(format!("tokenizer \"bytes\" needs vocab_size >= 256, got {}", self.vocab_size))
            }
            "gpt2" if self.vocab_size < 50257 => {
                return bad(format!("tokenizer \"gpt2\" needs vocab_size >= 50257, got {}", self.vocab_size))
            }
            "bytes" | "gpt2" => {}
            other => return bad(format!("unknown tokenizer `{other}`; use \"bytes\" or \"gpt2\"")),
        }
        if self.vocab_size > 1 << 20 {
            return bad(format!("vocab_size {} is above the supported 1048576", self.vocab_size));
        }
        if !(0.0..1.0).contains(&self.beta1) || !(0.0..1.0).contains(&self.beta2) {
            return bad("beta1 and beta2 must be in [0, 1)".into());
        }
        if !(self.eps > 0.0 && self.eps.is_finite()) {
            return bad(format!("eps must be a positive number, got {}", self.eps));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return bad(format!("weight_decay must be a non-negative number, got {}", self.weight_decay));
        }
        if !(self.grad_clip >= 0.0 && self.grad_clip.is_finite()) {
            return bad(format!("grad_clip must be a non-negative number (0 disables it), got {}", self.grad_clip));
        }
        Ok(())
    }

    pub fn head_size(&self) -> u32 {
        self.n_embd / self.n_head
    }

    /// The effective configuration as TOML (presets expanded), as checkpoints save it: the model's
    /// shape, initialisation and optimizer, not `subgroups` or `weights_f16`.
    pub fn to_toml(&self) -> String {
        format!(
            "preset = \"{}\"\nn_layer = {}\nn_head = {}\nn_embd = {}\nblock_size = {}\nvocab_size = {}\n\
             tokenizer = \"{}\"\nseed = {}\nweight_decay = {:?}\nbeta1 = {:?}\nbeta2 = {:?}\neps = {:?}\ngrad_clip = {:?}\n",
            self.preset,
            self.n_layer,
            self.n_head,
            self.n_embd,
            self.block_size,
            self.vocab_size,
            self.tokenizer,
            self.seed,
            self.weight_decay,
            self.beta1,
            self.beta2,
            self.eps,
            self.grad_clip
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_and_overrides() {
        let c = GptConfig::parse("").unwrap();
        assert_eq!((c.preset.as_str(), c.n_layer, c.n_head, c.n_embd, c.block_size), ("nano", 4, 4, 128, 64));
        let c = GptConfig::parse("preset = \"gpt2\"\nn_layer = 2").unwrap();
        assert_eq!((c.n_layer, c.n_embd, c.vocab_size, c.tokenizer.as_str()), (2, 768, 50257, "gpt2"));
        assert_eq!(GptConfig::parse(&c.to_toml()).unwrap(), c, "the effective config reads back as itself");
    }

    #[test]
    fn how_to_run_is_read_but_not_part_of_the_models_identity() {
        let c = GptConfig::parse("preset = \"tiny\"\nsubgroups = false\nweights_f16 = true").unwrap();
        assert!(!c.subgroups && c.weights_f16);
        let saved = c.to_toml();
        assert!(!saved.contains("subgroups") && !saved.contains("weights_f16"), "{saved}");
        assert_eq!(saved, GptConfig::parse("preset = \"tiny\"").unwrap().to_toml(), "checkpoints compare equal");
    }

    #[test]
    fn bad_values_are_one_line_errors_naming_the_fix() {
        for (text, expected) in [
            ("preset = \"huge\"", "unknown preset `huge`; use one of tiny, nano, gpt2, gpt2-medium"),
            ("n_embd = 130", "n_embd (130) must be a multiple of n_head (4)"),
            ("n_embd = 512", "head size n_embd / n_head = 128 exceeds 64; raise n_head to at least 8"),
            ("vocab_size = 100", "tokenizer \"bytes\" needs vocab_size >= 256"),
            ("n_layers = 3", "unknown configuration key `n_layers` (did you mean `n_layer`?)"),
            ("beta2 = 1.0", "beta1 and beta2 must be in [0, 1)"),
        ] {
            let err = GptConfig::parse(text).unwrap_err();
            assert!(err.message.contains(expected), "{text}: {err}");
            assert!(!err.message.contains('\n'));
        }
    }
}
