//! A deterministic batch sampler whose position can be saved and restored.

use serde::{Deserialize, Serialize};

use super::Dataset;
use crate::{Error, Result};

/// Where a sampler is in its stream: the batch it hands out next depends on these alone, so a
/// neuron that saves this with its checkpoint continues the same stream after a restart.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SamplerState {
    pub seed: u64,
    /// Batches handed out so far.
    pub step: u64,
}

/// `batch` windows of `seq + 1` consecutive tokens: the first `seq` are the input, the last
/// `seq` the next-token targets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    pub batch: u32,
    pub seq: u32,
    pub tokens: Vec<u32>,
    pub targets: Vec<u32>,
}

/// Uniformly random windows of a dataset (nanoGPT's `get_batch`), from a counter-based generator:
/// window `i` of batch `step` is a pure function of (seed, step, i).
#[derive(Clone, Debug)]
pub struct BatchSampler {
    batch: u32,
    seq: u32,
    state: SamplerState,
}

impl BatchSampler {
    pub fn new(seed: u64, batch: u32, seq: u32) -> Self {
        Self { batch: batch.max(1), seq: seq.max(1), state: SamplerState { seed, step: 0 } }
    }

    /// A sampler continuing from a saved state.
    pub fn resume(state: SamplerState, batch: u32, seq: u32) -> Self {
        Self { state, ..Self::new(state.seed, batch, seq) }
    }

    pub fn state(&self) -> SamplerState {
        self.state
    }

    /// The next batch. Errors if the dataset is shorter than one window.
    pub fn next_batch(&mut self, data: &Dataset) -> Result<Batch> {
        let seq = self.seq as usize;
        if data.len() <= seq {
            return Err(Error::Data(format!(
                "{} holds {} tokens, fewer than one window of {} (sequence length + 1); use more data or a shorter sequence",
                data.source(),
                data.len(),
                seq + 1
            )));
        }
        let starts = (data.len() - seq) as u64;
        let mut batch = Batch { batch: self.batch, seq: self.seq, tokens: vec![], targets: vec![] };
        for i in 0..u64::from(self.batch) {
            let o = (mix(self.state.seed, self.state.step, i) % starts) as usize;
            let window = data.slice(o, seq + 1);
            batch.tokens.extend_from_slice(&window[..seq]);
            batch.targets.extend_from_slice(&window[1..]);
        }
        self.state.step += 1;
        Ok(batch)
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn mix(seed: u64, step: u64, i: u64) -> u64 {
    splitmix(splitmix(splitmix(seed) ^ step) ^ i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Tokenizer;

    #[test]
    fn one_seed_one_stream_and_a_restored_sampler_continues_it() {
        let data = Dataset::builtin(1, 5000, Tokenizer::Bytes).unwrap();
        let mut a = BatchSampler::new(7, 4, 16);
        let first: Vec<Batch> = (0..5).map(|_| a.next_batch(&data).unwrap()).collect();
        let saved = a.state();
        let next = a.next_batch(&data).unwrap();
        assert_eq!(saved, SamplerState { seed: 7, step: 5 });
        // Save and restore through JSON, as a checkpoint would.
        let json = serde_json::to_string(&saved).unwrap();
        let mut b = BatchSampler::resume(serde_json::from_str(&json).unwrap(), 4, 16);
        assert_eq!(b.next_batch(&data).unwrap(), next);
        let mut c = BatchSampler::new(7, 4, 16);
        assert_eq!((0..5).map(|_| c.next_batch(&data).unwrap()).collect::<Vec<_>>(), first);
        let mut d = BatchSampler::new(8, 4, 16);
        assert_ne!(d.next_batch(&data).unwrap(), first[0], "another seed, another stream");
        // Targets are the inputs shifted by one.
        let b0 = &first[0];
        assert_eq!(b0.tokens.len(), 64);
        assert_eq!(&b0.tokens[1..16], &b0.targets[..15]);
    }

    #[test]
    fn a_dataset_shorter_than_a_window_is_an_error() {
        let data = Dataset::from_tokens("tiny.bin", &[1, 2, 3]).unwrap();
        let err = BatchSampler::new(0, 1, 3).next_batch(&data).unwrap_err().to_string();
        assert!(err.contains("tiny.bin holds 3 tokens, fewer than one window of 4"), "{err}");
    }
}
