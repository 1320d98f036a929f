//! Checkpoints in PyTorch's file format.
pub mod pickle;
pub mod pth;
pub mod writer;
