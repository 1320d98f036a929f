//! Checkpoints in PyTorch's file format.
pub mod hf_gpt2;
pub mod hf_tokenizer;
pub mod pickle;
pub mod pth;
pub mod writer;
