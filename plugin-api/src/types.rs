//! Plain data that crosses the plugin boundary: token batches, model outputs,
//! tensors of state, miner responses and scores.
//!
//! Small "enums" are `u32` newtypes with associated constants so that a later
//! ABI version can add values without changing the layout that built plugins
//! were checked against.

use abi_stable::{
    std_types::{RSlice, RString, RVec},
    StableAbi,
};

/// `batch` sequences of `seq_len` token ids, row-major.
#[repr(C)]
#[derive(StableAbi, Copy, Clone, Debug)]
pub struct TokenBatch<'a> {
    pub batch: u32,
    pub seq_len: u32,
    pub tokens: RSlice<'a, u32>,
}

impl<'a> TokenBatch<'a> {
    pub fn new(batch: u32, seq_len: u32, tokens: &'a [u32]) -> Self {
        Self { batch, seq_len, tokens: RSlice::from_slice(tokens) }
    }
    /// Number of token positions (`batch * seq_len`).
    pub fn positions(&self) -> usize {
        self.batch as usize * self.seq_len as usize
    }
    /// Checks that the token count matches the declared shape.
    pub fn check(&self) -> crate::Result<()> {
        if self.batch == 0 || self.seq_len == 0 {
            return Err(crate::PluginError::input(format!("empty token batch ({} x {})", self.batch, self.seq_len)));
        }
        if self.tokens.len() != self.positions() {
            return Err(crate::PluginError::input(format!(
                "token batch declares {} x {} = {} positions but holds {} tokens",
                self.batch,
                self.seq_len,
                self.positions(),
                self.tokens.len()
            )));
        }
        Ok(())
    }
}

/// What a forward pass returns.
#[repr(transparent)]
#[derive(StableAbi, Copy, Clone, Debug, PartialEq, Eq)]
pub struct OutputKind(pub u32);

impl OutputKind {
    /// Raw logits over the whole vocabulary.
    pub const LOGITS: Self = Self(0);
    /// The `k` most likely token ids and their log-probabilities (log-softmax
    /// over the whole vocabulary), best first.
    pub const TOP_K: Self = Self(1);
}

/// Which positions a forward pass returns.
#[repr(transparent)]
#[derive(StableAbi, Copy, Clone, Debug, PartialEq, Eq)]
pub struct Positions(pub u32);

impl Positions {
    /// Every position of every sequence.
    pub const ALL: Self = Self(0);
    /// Only the last position of each sequence (sampling).
    pub const LAST: Self = Self(1);
}

#[repr(C)]
#[derive(StableAbi, Copy, Clone, Debug, PartialEq, Eq)]
pub struct OutputRequest {
    pub kind: OutputKind,
    /// For [`OutputKind::TOP_K`]: how many entries per position.
    pub k: u32,
    pub positions: Positions,
}

impl OutputRequest {
    pub fn logits() -> Self {
        Self { kind: OutputKind::LOGITS, k: 0, positions: Positions::ALL }
    }
    pub fn top_k(k: u32) -> Self {
        Self { kind: OutputKind::TOP_K, k, positions: Positions::ALL }
    }
    pub fn last_only(mut self) -> Self {
        self.positions = Positions::LAST;
        self
    }
}

/// Output of a forward pass: `batch x positions` rows, each either
/// `vocab_size` logits or `k` (id, log-probability) pairs.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, Default, PartialEq)]
pub struct ForwardOutput {
    pub batch: u32,
    /// Positions per sequence in this output (`seq_len`, or 1 for [`Positions::LAST`]).
    pub positions: u32,
    pub vocab_size: u32,
    /// 0 for logits output.
    pub k: u32,
    /// `batch * positions * vocab_size` values, for [`OutputKind::LOGITS`].
    pub logits: RVec<f32>,
    /// `batch * positions * k` token ids, for [`OutputKind::TOP_K`].
    pub ids: RVec<u32>,
    /// `batch * positions * k` log-probabilities matching `ids`.
    pub logprobs: RVec<f32>,
}

impl ForwardOutput {
    /// Builds the requested output from the full logits of a batch
    /// (`batch * seq_len * vocab` values, row-major) computed on the host:
    /// selects the positions asked for, and for top-k ranks each row and
    /// turns it into log-probabilities. Plugins that rank on the GPU build
    /// their output directly.
    pub fn from_full_logits(
        batch: TokenBatch<'_>,
        vocab: u32,
        logits: &[f32],
        request: OutputRequest,
    ) -> crate::Result<Self> {
        let v = vocab as usize;
        let seq = batch.seq_len as usize;
        if logits.len() != batch.positions() * v {
            return Err(crate::PluginError::internal(format!(
                "{} logits for {} positions of vocabulary {vocab}",
                logits.len(),
                batch.positions()
            )));
        }
        let last = request.positions == Positions::LAST;
        let rows: Vec<usize> = if last {
            (0..batch.batch as usize).map(|b| b * seq + seq - 1).collect()
        } else {
            (0..batch.positions()).collect()
        };
        let mut out = ForwardOutput {
            batch: batch.batch,
            positions: if last { 1 } else { batch.seq_len },
            vocab_size: vocab,
            ..Default::default()
        };
        match request.kind {
            OutputKind::LOGITS => {
                for r in rows {
                    out.logits.extend_from_slice(&logits[r * v..(r + 1) * v]);
                }
            }
            OutputKind::TOP_K => {
                let k = (request.k as usize).clamp(1, v);
                out.k = k as u32;
                for r in rows {
                    let (ids, logprobs) = crate::top_k_logprobs(&logits[r * v..(r + 1) * v], k);
                    out.ids.extend(ids);
                    out.logprobs.extend(logprobs);
                }
            }
            other => return Err(crate::PluginError::unsupported(format!("output kind {}", other.0))),
        }
        Ok(out)
    }
}

/// What an optimizer step did.
#[repr(C)]
#[derive(StableAbi, Copy, Clone, Debug, Default, PartialEq)]
pub struct StepStats {
    /// Global L2 norm of the gradients before clipping.
    pub grad_norm: f32,
    /// The factor the gradients were scaled by (1.0 when not clipped).
    pub clip_scale: f32,
}

/// Element type of a [`Tensor`], named as PyTorch names them.
#[repr(transparent)]
#[derive(StableAbi, Copy, Clone, PartialEq, Eq, Hash)]
pub struct DType(pub u32);

impl DType {
    pub const F32: Self = Self(0);
    pub const F16: Self = Self(1);
    pub const BF16: Self = Self(2);
    pub const F64: Self = Self(3);
    pub const I64: Self = Self(4);
    pub const I32: Self = Self(5);
    pub const U8: Self = Self(6);
    pub const BOOL: Self = Self(7);

    /// Bytes per element, or `None` for an unknown dtype.
    pub fn size(self) -> Option<usize> {
        Some(match self {
            Self::F32 | Self::I32 => 4,
            Self::F16 | Self::BF16 => 2,
            Self::F64 | Self::I64 => 8,
            Self::U8 | Self::BOOL => 1,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "float32",
            Self::F16 => "float16",
            Self::BF16 => "bfloat16",
            Self::F64 => "float64",
            Self::I64 => "int64",
            Self::I32 => "int32",
            Self::U8 => "uint8",
            Self::BOOL => "bool",
            _ => "unknown",
        }
    }
}

impl std::fmt::Debug for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which part of a model's state.
#[repr(transparent)]
#[derive(StableAbi, Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct StateGroup(pub u32);

impl StateGroup {
    /// Parameters (what `model.state_dict()` holds in PyTorch).
    pub const MODEL: Self = Self(0);
    /// Optimizer moments and step counters.
    pub const OPTIMIZER: Self = Self(1);
    /// The gradients accumulated since the last `zero_grad`, named and shaped like `MODEL`.
    /// Export only; what the test kit's finite-difference check compares against.
    pub const GRADIENTS: Self = Self(2);
}

/// Name, dtype and shape of a tensor, without its data.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: RString,
    pub dtype: DType,
    pub shape: RVec<u64>,
}

impl TensorSpec {
    pub fn new(name: impl Into<String>, dtype: DType, shape: &[u64]) -> Self {
        Self { name: RString::from(name.into()), dtype, shape: shape.iter().copied().collect() }
    }
    pub fn numel(&self) -> u64 {
        self.shape.iter().product()
    }
    /// Expected data length in bytes.
    pub fn byte_len(&self) -> Option<u64> {
        Some(self.numel() * self.dtype.size()? as u64)
    }
}

/// A named tensor of state: little-endian element bytes, row-major.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct Tensor {
    pub name: RString,
    pub dtype: DType,
    pub shape: RVec<u64>,
    pub data: RVec<u8>,
}

impl Tensor {
    pub fn f32(name: impl Into<String>, shape: &[u64], values: &[f32]) -> Self {
        Self {
            name: RString::from(name.into()),
            dtype: DType::F32,
            shape: shape.iter().copied().collect(),
            data: bytemuck::cast_slice::<f32, u8>(values).iter().copied().collect(),
        }
    }
    pub fn i64_scalar(name: impl Into<String>, value: i64) -> Self {
        Self {
            name: RString::from(name.into()),
            dtype: DType::I64,
            shape: RVec::new(),
            data: value.to_le_bytes().iter().copied().collect(),
        }
    }
    pub fn spec(&self) -> TensorSpec {
        TensorSpec { name: self.name.clone(), dtype: self.dtype, shape: self.shape.clone() }
    }
    /// The data as `f32` values, if the dtype is F32.
    pub fn to_f32(&self) -> crate::Result<Vec<f32>> {
        if self.dtype != DType::F32 {
            return Err(crate::PluginError::state(format!(
                "tensor {} is {}, expected float32",
                self.name,
                self.dtype.name()
            )));
        }
        Ok(bytemuck::pod_collect_to_vec(self.data.as_slice()))
    }
    /// The single value of an int64 scalar tensor.
    pub fn to_i64_scalar(&self) -> crate::Result<i64> {
        if self.dtype != DType::I64 || self.data.len() != 8 {
            return Err(crate::PluginError::state(format!("tensor {} is not an int64 scalar", self.name)));
        }
        Ok(i64::from_le_bytes(self.data.as_slice().try_into().expect("length checked")))
    }
}

/// Checks `tensors` against `expected` (same names, dtypes and shapes, data of the
/// right length), naming the first difference. Plugins call this in
/// `import_state` before touching their own state.
pub fn check_state(expected: &[TensorSpec], tensors: &[Tensor]) -> crate::Result<()> {
    for spec in expected {
        let Some(t) = tensors.iter().find(|t| t.name == spec.name) else {
            return Err(crate::PluginError::state(format!("missing tensor {}", spec.name)));
        };
        if t.dtype != spec.dtype {
            return Err(crate::PluginError::state(format!(
                "tensor {} is {}, expected {}",
                spec.name,
                t.dtype.name(),
                spec.dtype.name()
            )));
        }
        if t.shape != spec.shape {
            return Err(crate::PluginError::state(format!(
                "tensor {} has shape {:?}, expected {:?}",
                spec.name,
                t.shape.as_slice(),
                spec.shape.as_slice()
            )));
        }
        if Some(t.data.len() as u64) != spec.byte_len() {
            return Err(crate::PluginError::state(format!(
                "tensor {} holds {} bytes, expected {:?}",
                spec.name,
                t.data.len(),
                spec.byte_len()
            )));
        }
    }
    if let Some(extra) = tensors.iter().find(|t| !expected.iter().any(|s| s.name == t.name)) {
        return Err(crate::PluginError::state(format!("unexpected tensor {}", extra.name)));
    }
    Ok(())
}

/// How a miner's answer to a validator's query went.
#[repr(transparent)]
#[derive(StableAbi, Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct ResponseStatus(pub u32);

impl ResponseStatus {
    pub const OK: Self = Self(0);
    pub const TIMEOUT: Self = Self(1);
    /// The miner answered but the answer could not be used (wrong shape, bad ids, NaN).
    pub const MALFORMED: Self = Self(2);
    /// Connection refused, HTTP error, authentication refused.
    pub const ERROR: Self = Self(3);
}

/// One miner's top-k answer for a batch: `positions * k` ids and log-probabilities,
/// positions in the batch's row-major order.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct MinerResponse {
    pub uid: u16,
    pub status: ResponseStatus,
    pub k: u32,
    pub ids: RVec<u32>,
    pub logprobs: RVec<f32>,
    /// Seconds from request to response.
    pub latency_s: f32,
}

/// What a scorer scores: the batch, the true next tokens, and the vocabulary size.
#[repr(C)]
#[derive(StableAbi, Copy, Clone, Debug)]
pub struct ScoringBatch<'a> {
    pub tokens: TokenBatch<'a>,
    /// `batch * seq_len` next-token targets.
    pub targets: RSlice<'a, u32>,
    pub vocab_size: u32,
}

impl ScoringBatch<'_> {
    /// Checks the token batch's shape and that there is one target per position.
    pub fn check(&self) -> crate::Result<()> {
        self.tokens.check()?;
        if self.targets.len() != self.tokens.positions() {
            return Err(crate::PluginError::input(format!(
                "{} targets for {} positions",
                self.targets.len(),
                self.tokens.positions()
            )));
        }
        Ok(())
    }
}

/// One score (>= 0, higher is better) and one loss (nats per token, NaN where a
/// miner gave nothing usable) per response, in the order of the responses.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, Default, PartialEq)]
pub struct Scores {
    pub scores: RVec<f32>,
    pub losses: RVec<f32>,
}

impl Scores {
    /// `miners` scores of 0 with NaN losses: where every scorer starts, and what
    /// a miner with no usable answer keeps.
    pub fn unscored(miners: usize) -> Self {
        Self {
            scores: std::iter::repeat_n(0.0, miners).collect(),
            losses: std::iter::repeat_n(f32::NAN, miners).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_logits_become_the_requested_output() {
        // 2 sequences x 2 positions, vocabulary 3.
        let logits = [0.0, 1.0, 2.0, 5.0, 0.0, 0.0, 1.0, 1.0, 3.0, 0.0, 4.0, 0.0];
        let tokens = [0u32; 4];
        let batch = TokenBatch::new(2, 2, &tokens);
        let all = ForwardOutput::from_full_logits(batch, 3, &logits, OutputRequest::logits()).unwrap();
        assert_eq!(all.logits.as_slice(), &logits);
        let last = ForwardOutput::from_full_logits(batch, 3, &logits, OutputRequest::logits().last_only()).unwrap();
        assert_eq!((last.positions, last.logits.as_slice()), (1, &[5.0, 0.0, 0.0, 0.0, 4.0, 0.0][..]));
        let top = ForwardOutput::from_full_logits(batch, 3, &logits, OutputRequest::top_k(2)).unwrap();
        assert_eq!(top.ids.as_slice(), &[2, 1, 0, 1, 2, 0, 1, 0]);
        let z = (0f64.exp() + 1f64.exp() + 2f64.exp()).ln();
        assert!((f64::from(top.logprobs[0]) - (2.0 - z)).abs() < 1e-6);
        assert!(ForwardOutput::from_full_logits(batch, 4, &logits, OutputRequest::logits()).is_err());
    }
}
