//! What neurons send each other, and how it is encoded.
//!
//! Small messages are JSON and carry `"version": 1`: a [`ForwardQuery`] (a
//! token batch and the output wanted), [`NodeInfo`], error bodies. A forward
//! pass's output is binary, because a logits answer for a modest batch is
//! megabytes of floats ([`encode_output`] / [`decode_output`]):
//!
//! ```text
//! offset  size  field (all little-endian)
//!      0     4  magic "NHFO"
//!      4     2  format version (1)
//!      6     1  kind: 0 logits, 1 top-k (plugin-api's OutputKind)
//!      7     1  reserved, 0
//!      8     4  batch          sequences
//!     12     4  positions      rows per sequence
//!     16     4  vocab_size
//!     20     4  k              0 for logits
//!     24        logits: f32 x batch*positions*vocab_size
//!               top-k:  u32 ids x batch*positions*k, then f32 log-probabilities x the same
//! ```
//!
//! The decoder trusts nothing: lengths are computed with overflow checks and
//! must match the buffer exactly, and the output is checked against the query
//! that asked for it ([`check_answer`]) before a validator scores it.

use neuron_plugin_api::{ForwardOutput, OutputKind, OutputRequest, Positions, TokenBatch};
use serde::{Deserialize, Serialize};

/// The payload format version of every message this module defines.
pub const FORMAT_VERSION: u16 = 1;
pub const OUTPUT_MAGIC: &[u8; 4] = b"NHFO";
pub const OUTPUT_HEADER_LEN: usize = 24;
/// Content type of the binary forward output.
pub const OUTPUT_CONTENT_TYPE: &str = "application/x-neuron-forward-output";

/// Largest `k` a query may ask for.
pub const MAX_TOP_K: u32 = 4096;

/// A request for a forward pass: `batch` sequences of `seq_len` tokens.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardQuery {
    pub version: u16,
    pub batch: u32,
    pub seq_len: u32,
    pub tokens: Vec<u32>,
    pub output: OutputWanted,
    /// Top-k entries per position (ignored for logits).
    #[serde(default)]
    pub k: u32,
    /// Only the last position of each sequence.
    #[serde(default)]
    pub last_only: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputWanted {
    Logits,
    TopK,
}

impl ForwardQuery {
    /// A query for a plugin-api batch and output request.
    pub fn new(batch: TokenBatch<'_>, request: OutputRequest) -> ForwardQuery {
        ForwardQuery {
            version: FORMAT_VERSION,
            batch: batch.batch,
            seq_len: batch.seq_len,
            tokens: batch.tokens.to_vec(),
            output: if request.kind == OutputKind::LOGITS { OutputWanted::Logits } else { OutputWanted::TopK },
            k: request.k,
            last_only: request.positions == Positions::LAST,
        }
    }

    pub fn token_batch(&self) -> TokenBatch<'_> {
        TokenBatch::new(self.batch, self.seq_len, &self.tokens)
    }

    pub fn output_request(&self) -> OutputRequest {
        let r = match self.output {
            OutputWanted::Logits => OutputRequest::logits(),
            OutputWanted::TopK => OutputRequest::top_k(self.k),
        };
        if self.last_only {
            r.last_only()
        } else {
            r
        }
    }

    /// Rows the answer has: one per position, or one per sequence.
    pub fn rows(&self) -> u64 {
        u64::from(self.batch) * if self.last_only { 1 } else { u64::from(self.seq_len) }
    }

    /// Checks what a server must check before running the query.
    pub fn check(&self, max_tokens: usize) -> Result<(), String> {
        if self.version != FORMAT_VERSION {
            return Err(format!("unsupported payload version {} (this neuron speaks {FORMAT_VERSION})", self.version));
        }
        if self.tokens.len() > max_tokens {
            return Err(format!("{} tokens is more than this neuron accepts ({max_tokens})", self.tokens.len()));
        }
        self.token_batch().check().map_err(|e| e.message.to_string())?;
        if self.output == OutputWanted::TopK && !(1..=MAX_TOP_K).contains(&self.k) {
            return Err(format!("k must be between 1 and {MAX_TOP_K}"));
        }
        Ok(())
    }
}

/// `GET /v1/health` (unsigned) and `GET /v1/info` (signed): who a neuron is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub version: u16,
    /// `btauth/1`.
    pub protocol: String,
    /// The neuron's hotkey (SS58).
    pub hotkey: String,
    /// neuron-host's version.
    pub software: String,
    /// What the forward service says about itself (`GET /v1/info` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelSummary>,
}

/// What a forward service reports about its model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSummary {
    pub architecture: String,
    pub vocab_size: u32,
    /// Longest sequence the model takes.
    pub max_seq_len: u32,
}

/// An error answer: `{"error": "..."}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

/// Why bytes are not a valid forward output.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed forward output: {0}")]
pub struct WireError(pub String);

fn wire(message: impl Into<String>) -> WireError {
    WireError(message.into())
}

/// Bytes of an encoded output; `None` when the shape overflows.
fn encoded_len(kind: u8, rows: u64, vocab: u32, k: u32) -> Option<u64> {
    let values = match kind {
        0 => rows.checked_mul(u64::from(vocab))?,
        _ => rows.checked_mul(u64::from(k))?.checked_mul(2)?,
    };
    values.checked_mul(4)?.checked_add(OUTPUT_HEADER_LEN as u64)
}

/// Encodes a forward output (see the module docs for the layout). Fails when
/// the output's arrays do not match its declared shape.
pub fn encode_output(out: &ForwardOutput) -> Result<Vec<u8>, WireError> {
    let kind: u8 = if out.k == 0 { 0 } else { 1 };
    let rows = u64::from(out.batch) * u64::from(out.positions);
    let (expect_logits, expect_topk) =
        if kind == 0 { (rows * u64::from(out.vocab_size), 0) } else { (0, rows * u64::from(out.k)) };
    if out.logits.len() as u64 != expect_logits
        || out.ids.len() as u64 != expect_topk
        || out.logprobs.len() as u64 != expect_topk
    {
        return Err(wire(format!(
            "the output declares {} x {} rows of {} but holds {} logits, {} ids and {} log-probabilities",
            out.batch,
            out.positions,
            if kind == 0 { format!("{} logits", out.vocab_size) } else { format!("top-{}", out.k) },
            out.logits.len(),
            out.ids.len(),
            out.logprobs.len()
        )));
    }
    let len = encoded_len(kind, rows, out.vocab_size, out.k).ok_or_else(|| wire("the output is too large"))?;
    let mut buf = Vec::with_capacity(len as usize);
    buf.extend_from_slice(OUTPUT_MAGIC);
    buf.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    buf.push(kind);
    buf.push(0);
    for v in [out.batch, out.positions, out.vocab_size, out.k] {
        buf.extend_from_slice(&v.to_le_bytes());
    }
    for v in out.logits.iter() {
        buf.extend_from_slice(&v.to_le_bytes());
    }
    for v in out.ids.iter() {
        buf.extend_from_slice(&v.to_le_bytes());
    }
    for v in out.logprobs.iter() {
        buf.extend_from_slice(&v.to_le_bytes());
    }
    Ok(buf)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// Decodes a forward output. Checks the framing only; [`check_answer`]
/// checks the values against the query.
pub fn decode_output(bytes: &[u8]) -> Result<ForwardOutput, WireError> {
    if bytes.len() < OUTPUT_HEADER_LEN {
        return Err(wire(format!("{} bytes is shorter than the {OUTPUT_HEADER_LEN}-byte header", bytes.len())));
    }
    if &bytes[..4] != OUTPUT_MAGIC {
        return Err(wire("it does not start with NHFO"));
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if version != FORMAT_VERSION {
        return Err(wire(format!("format version {version}, expected {FORMAT_VERSION}")));
    }
    let (kind, reserved) = (bytes[6], bytes[7]);
    if kind > 1 || reserved != 0 {
        return Err(wire(format!("unknown kind {kind} or reserved byte {reserved}")));
    }
    let (batch, positions, vocab_size, k) = (u32_at(bytes, 8), u32_at(bytes, 12), u32_at(bytes, 16), u32_at(bytes, 20));
    if (kind == 0) != (k == 0) {
        return Err(wire("k must be 0 exactly for logits"));
    }
    let rows = u64::from(batch) * u64::from(positions);
    let expected = encoded_len(kind, rows, vocab_size, k).ok_or_else(|| wire("the declared shape overflows"))?;
    if expected != bytes.len() as u64 {
        return Err(wire(format!("the header declares {expected} bytes but {} arrived", bytes.len())));
    }
    let body = &bytes[OUTPUT_HEADER_LEN..];
    let f32s = |b: &[u8]| b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect();
    let mut out = ForwardOutput { batch, positions, vocab_size, k, ..Default::default() };
    if kind == 0 {
        out.logits = f32s(body);
    } else {
        let (ids, logprobs) = body.split_at(body.len() / 2);
        out.ids = ids.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes"))).collect();
        out.logprobs = f32s(logprobs);
    }
    Ok(out)
}

/// Checks a decoded answer against the query it answers: the shape asked
/// for, ids inside the vocabulary, finite values, log-probabilities <= 0.
pub fn check_answer(query: &ForwardQuery, out: &ForwardOutput) -> Result<(), WireError> {
    let positions = if query.last_only { 1 } else { query.seq_len };
    if out.batch != query.batch || out.positions != positions {
        return Err(wire(format!(
            "{} x {} rows answer a query for {} x {positions}",
            out.batch, out.positions, query.batch
        )));
    }
    match query.output {
        OutputWanted::Logits => {
            if out.k != 0 || out.vocab_size == 0 {
                return Err(wire("logits were asked for"));
            }
            if out.logits.iter().any(|v| !v.is_finite()) {
                return Err(wire("a logit is not finite"));
            }
        }
        OutputWanted::TopK => {
            // A model clamps k to its vocabulary.
            if out.k == 0 || out.k > query.k || (out.k < query.k && out.k != out.vocab_size) {
                return Err(wire(format!("top-{} answers a query for top-{}", out.k, query.k)));
            }
            if out.ids.iter().any(|&id| id >= out.vocab_size) {
                return Err(wire("a token id is outside the vocabulary"));
            }
            // Log-softmax values: finite and at most 0 (a little rounding allowed).
            if out.logprobs.iter().any(|v| !v.is_finite() || *v > 1e-4) {
                return Err(wire("a log-probability is not finite or is above 0"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topk() -> ForwardOutput {
        ForwardOutput {
            batch: 1,
            positions: 2,
            vocab_size: 10,
            k: 2,
            ids: vec![3, 4, 5, 6].into(),
            logprobs: vec![-0.1, -2.0, -0.5, -1.0].into(),
            ..Default::default()
        }
    }

    #[test]
    fn outputs_round_trip() {
        let logits = ForwardOutput {
            batch: 2,
            positions: 1,
            vocab_size: 3,
            logits: vec![0.5, -1.0, 2.0, 0.0, 1.0, f32::MIN_POSITIVE].into(),
            ..Default::default()
        };
        for out in [topk(), logits] {
            let bytes = encode_output(&out).unwrap();
            assert_eq!(&bytes[..4], b"NHFO");
            assert_eq!(decode_output(&bytes).unwrap(), out);
        }
    }

    #[test]
    fn framing_errors_are_refused() {
        let bytes = encode_output(&topk()).unwrap();
        assert!(decode_output(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_output(&longer).is_err());
        let mut huge = bytes.clone();
        huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        huge[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        huge[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_output(&huge).is_err());
        let mut bad_version = bytes;
        bad_version[4] = 2;
        assert!(decode_output(&bad_version).unwrap_err().0.contains("version 2"));
        let mut inconsistent = topk();
        inconsistent.ids.push(1);
        assert!(encode_output(&inconsistent).is_err());
    }

    #[test]
    fn answers_are_checked_against_their_query() {
        let tokens = [1u32, 2];
        let query = ForwardQuery::new(TokenBatch::new(1, 2, &tokens), OutputRequest::top_k(2));
        assert!(check_answer(&query, &topk()).is_ok());
        let mut out = topk();
        out.ids[0] = 10;
        assert!(check_answer(&query, &out).is_err());
        let mut out = topk();
        out.logprobs[1] = f32::NAN;
        assert!(check_answer(&query, &out).is_err());
        let mut out = topk();
        out.logprobs[1] = 0.5;
        assert!(check_answer(&query, &out).is_err());
        let last = ForwardQuery::new(TokenBatch::new(1, 2, &tokens), OutputRequest::top_k(2).last_only());
        assert!(check_answer(&last, &topk()).is_err());
    }

    #[test]
    fn queries_round_trip_through_json_and_are_checked() {
        let tokens = [1u32, 2, 3, 4];
        let q = ForwardQuery::new(TokenBatch::new(2, 2, &tokens), OutputRequest::top_k(5).last_only());
        let json = serde_json::to_string(&q).unwrap();
        assert_eq!(serde_json::from_str::<ForwardQuery>(&json).unwrap(), q);
        assert_eq!(q.output_request(), OutputRequest::top_k(5).last_only());
        assert!(q.check(4).is_ok());
        assert!(q.check(3).is_err());
        let mut q2 = q.clone();
        q2.version = 2;
        assert!(q2.check(100).unwrap_err().contains("version 2"));
        let mut q3 = q;
        q3.tokens.pop();
        assert!(q3.check(100).is_err());
    }
}
