//! What a validator saw, recorded so a scoring policy can be replayed offline
//! (`neuron-host rescore`).
//!
//! A record is a directory of segment files `seg-<8-digit sequence>.nhr`,
//! written by [`Recorder`] and read back by [`RecordReader`]. Each segment
//! starts with a header and a [`Snapshot`] of the validator's score book, so
//! the oldest segments can be deleted to keep the record under its size bound
//! and what is left still replays. Per step a [`StepRecord`] holds the batch
//! (tokens, targets), every queried uid's response exactly as the scorer got
//! it (status, k, ids, log-probabilities, latency) and the score and loss the
//! live scorer gave it; per epoch an [`EpochRecord`] holds the facts needed to
//! replay the weights and Yuma consensus (the metagraph's hotkeys, stake,
//! permits, activity, registration blocks; the hyperparameters; the pipeline;
//! the weights the validator computed and whether the chain took them).
//!
//! ## Layout (version 1, every integer and float little-endian)
//!
//! ```text
//! segment header (16 bytes)
//!   0  4  magic "NHRC"
//!   4  2  format version (1)
//!   6  2  header length (16)
//!   8  4  segment sequence (the number in the file name)
//!  12  4  reserved, 0
//! then frames until the end of the file:
//!   0  1  kind: 1 snapshot, 2 step, 3 epoch
//!   1  3  reserved, 0
//!   4  4  payload length L (at most 1 GiB)
//!   8  L  payload
//! 8+L  4  CRC-32C (Castagnoli) of bytes 0 .. 8+L
//!
//! snapshot payload
//!   u8 why (0 new segment, 1 validator start)  u8×3 reserved
//!   u16 netuid  u16 own uid  u64 steps so far  u64 epochs so far
//!   u16 n, then n × { [u8;32] hotkey, f32 score, u32 failed queries in a row }
//!
//! step payload
//!   u64 step  u64 block  u32 vocab_size  f32 alpha  u32 zero_after_misses
//!   u32 batch  u32 seq_len  u8 token width W (2 or 4)  u8×3 reserved
//!   W × batch·seq_len tokens, W × batch·seq_len targets
//!   u16 responses, then each:
//!     u16 uid  u8 status (0 ok, 1 timeout, 2 malformed, 3 error)  u8 id width V (2 or 4)
//!     u32 k  f32 latency_s  f32 live score  f32 live loss  u32 ids  u32 logprobs
//!     V × ids, f32 × logprobs
//!
//! epoch payload
//!   u64 epoch  u64 block  u16 own uid  u8 pipeline (0 legacy, 1 sdk11)
//!   u8 outcome (0 set, 1 committed, 2 not set, 3 refused)  u16 exclude_quantile
//!   u16 length + UTF-8: the live scorer's plugin name
//!   u32 length + UTF-8: the live scorer's effective configuration (TOML)
//!   hyperparameters: u16 tempo, u16 min_allowed_weights, u16 max_weight_limit,
//!     u64 weights_rate_limit, u64 weights_version_key, u8 commit_reveal_enabled,
//!     u64 commit_reveal_period, u64 activity_cutoff, u16 kappa,
//!     u64 bonds_moving_average, u16 bonds_penalty, u64 immunity_period,
//!     u16 max_allowed_uids, u16 max_allowed_validators, u8 yuma3, u64 min_stake
//!   u16 n, then n × { [u8;32] hotkey, u64 stake (rao), u8 validator permit,
//!     u64 last_update, u64 registered_at, f64 incentive }
//!   u16 m, then m × u16 uids, m × u16 weights (what the pipeline produced)
//! ```
//!
//! Ids are written as u16 when every id of the array fits, else as u32.
//! Readers refuse another version, a bad magic, a failed checksum, a frame
//! that runs past its file, a length that does not add up, and a gap in the
//! segment sequence, each with one line naming the file and the byte offset.

pub(crate) mod format;
mod reader;
mod writer;

pub use format::{
    decode_frame, encode_frame, EpochRecord, Frame, RecordedNeuron, RecordedResponse, Snapshot, SnapshotReason,
    StepRecord, WeightsOutcomeCode, FORMAT_VERSION, HEADER_LEN, MAGIC, MAX_PAYLOAD,
};
pub use reader::{segment_files, RecordReader};
pub use writer::{BookState, RecordSettings, Recorder, RecorderSettings, WhenFull};

/// A segment's file name.
pub fn segment_name(seq: u32) -> String {
    format!("seg-{seq:08}.nhr")
}
