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
