//! Training and evaluation data, shared by miners, validators and training jobs: tokenizers,
//! datasets and a deterministic batch sampler. Model-agnostic: nothing here knows a model's
//! architecture, only token ids and a vocabulary size.
//!
//! - [`Tokenizer`]: bytes (vocabulary 256) or GPT-2's r50k BPE (50257), by the names models
//!   declare in their description (`"bytes"`, `"gpt2"`).
//! - [`Dataset`]: token ids from a plain text file (tokenized on load), a nanoGPT-style token
//!   file (little-endian uint16 ids), or the built-in corpus.
//! - [`corpus`]: the built-in corpus, generated at start-up from a seeded probabilistic grammar,
//!   so that a default run has text whose loss can fall well below the uniform baseline.
//! - [`BatchSampler`]: seeded random windows `(tokens, targets)`, whose position
//!   ([`SamplerState`]) can be saved and restored so a restarted neuron continues the same stream.

pub mod corpus;
mod dataset;
mod sampler;
mod tokenizer;

pub use dataset::Dataset;
pub use sampler::{Batch, BatchSampler, SamplerState};
pub use tokenizer::Tokenizer;

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataSettings {
    /// "builtin" (a corpus generated at start-up), a text file, or a nanoGPT uint16 token file (.bin).
    pub dataset: String,
    /// Bytes of built-in corpus to generate.
    pub builtin_bytes: usize,
    pub seed: u64,
}

impl Default for DataSettings {
    fn default() -> Self {
        Self { dataset: "builtin".into(), builtin_bytes: 1 << 20, seed: 7 }
    }
}

impl DataSettings {
    /// The dataset `name` (`builtin`: the corpus these settings generate; else a text or `.bin`
    /// token file), tokenized with `tokenizer` and checked against a vocabulary of `vocab` ids.
    pub fn open(&self, name: &str, tokenizer: Tokenizer, vocab: u32) -> crate::Result<Dataset> {
        let data = if name == "builtin" {
            Dataset::builtin(self.seed, self.builtin_bytes, tokenizer)?
        } else {
            Dataset::from_file(std::path::Path::new(name), tokenizer)?
        };
        data.check_vocab(vocab)?;
        Ok(data)
    }
}
