//! The frames of a record and their binary encoding (layout in the module
//! docs of `record`). The decoder trusts nothing: every length is checked
//! against the bytes left (with overflow checks) before anything is
//! allocated, every enumeration against its known values.

use neuron_plugin_api::{MinerResponse, ResponseStatus};

use crc32c::crc32c;

use crate::{chain::Hyperparams, wallet::AccountId, weights::WeightsPipeline};

pub const MAGIC: &[u8; 4] = b"NHRC";
pub const FORMAT_VERSION: u16 = 1;
pub const HEADER_LEN: usize = 16;
/// Bytes of a frame around its payload: kind, reserved, length, checksum.
pub const FRAME_OVERHEAD: usize = 12;
/// Largest payload a frame may declare.
pub const MAX_PAYLOAD: u32 = 1 << 30;

const KIND_SNAPSHOT: u8 = 1;
const KIND_STEP: u8 = 2;
const KIND_EPOCH: u8 = 3;

/// Why a snapshot was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotReason {
    /// A new segment began (the validator kept running).
    NewSegment,
    /// The validator (re)started: the first segment it writes.
    Start,
}

/// The validator's score book at the start of a segment.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub reason: SnapshotReason,
    pub netuid: u16,
    pub own_uid: u16,
    /// Steps and epochs the validator had done.
    pub steps: u64,
    pub epochs: u64,
    pub hotkeys: Vec<AccountId>,
    pub scores: Vec<f32>,
    /// Failed queries in a row, per uid.
    pub misses: Vec<u32>,
}

/// One miner's answer as the scorer got it, and what the live scorer made of it.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedResponse {
    pub uid: u16,
    pub status: ResponseStatus,
    pub k: u32,
    pub latency_s: f32,
    pub score: f32,
    pub loss: f32,
    pub ids: Vec<u32>,
    pub logprobs: Vec<f32>,
}

impl RecordedResponse {
    pub fn from_response(r: &MinerResponse, score: f32, loss: f32) -> Self {
        Self {
            uid: r.uid,
            status: r.status,
            k: r.k,
            latency_s: r.latency_s,
            score,
            loss,
            ids: r.ids.to_vec(),
            logprobs: r.logprobs.to_vec(),
        }
    }

    pub fn to_response(&self) -> MinerResponse {
        MinerResponse {
            uid: self.uid,
            status: self.status,
            k: self.k,
            ids: self.ids.clone().into(),
            logprobs: self.logprobs.clone().into(),
            latency_s: self.latency_s,
        }
    }
}

/// One validator step.
#[derive(Clone, Debug, PartialEq)]
pub struct StepRecord {
    pub step: u64,
    pub block: u64,
    pub vocab_size: u32,
    /// The score book's moving-average weight and zero-after-misses rule in force.
    pub alpha: f32,
    pub zero_after_misses: u32,
    pub batch: u32,
    pub seq_len: u32,
    pub tokens: Vec<u32>,
    pub targets: Vec<u32>,
    pub responses: Vec<RecordedResponse>,
}

/// What became of an epoch's weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightsOutcomeCode {
    Set,
    Committed,
    /// The pipeline produced nothing to set.
    NotSet,
    /// The chain refused them.
    Refused,
}

impl WeightsOutcomeCode {
    pub fn name(self) -> &'static str {
        match self {
            Self::Set => "set",
            Self::Committed => "committed",
            Self::NotSet => "not set",
            Self::Refused => "refused",
        }
    }
}

/// One neuron of the metagraph an epoch's weights were computed against.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedNeuron {
    pub hotkey: AccountId,
    pub stake: u64,
    pub validator_permit: bool,
    pub last_update: u64,
    pub registered_at: u64,
    /// The chain's incentive as the validator read it (from the chain's last Yuma epoch).
    pub incentive: f64,
}

/// One epoch end.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochRecord {
    pub epoch: u64,
    pub block: u64,
    pub own_uid: u16,
    pub pipeline: WeightsPipeline,
    pub outcome: WeightsOutcomeCode,
    pub exclude_quantile: u16,
    /// The live scorer's plugin name and effective configuration.
    pub scorer: String,
    pub scorer_config: String,
    pub hyperparams: Hyperparams,
    pub neurons: Vec<RecordedNeuron>,
    /// The weights the pipeline produced (empty when it produced none).
    pub uids: Vec<u16>,
    pub weights: Vec<u16>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    Snapshot(Snapshot),
    Step(StepRecord),
    Epoch(EpochRecord),
}

/// Why bytes are not a frame. Offsets are relative to the frame's start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The buffer ends inside the frame.
    Truncated {
        need: usize,
        have: usize,
    },
    Checksum,
    UnknownKind(u8),
    TooLarge(u32),
    /// The checksum holds but the payload does not decode (a writer bug, or a forged file).
    Payload(String),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Truncated { need, have } => write!(f, "truncated: the frame needs {need} bytes, {have} are left"),
            Self::Checksum => f.write_str("checksum mismatch (the file is corrupt)"),
            Self::UnknownKind(k) => write!(f, "unknown frame kind {k}"),
            Self::TooLarge(n) => {
                write!(f, "frame declares a payload of {n} bytes, more than the limit of {MAX_PAYLOAD}")
            }
            Self::Payload(m) => write!(f, "malformed payload: {m}"),
        }
    }
}

// ---------------------------------------------------------------- writing

#[derive(Default)]
struct Out(Vec<u8>);

impl Out {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn f32(&mut self, v: f32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn f64(&mut self, v: f64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
    /// Ids as u16 when all fit, else u32; the width byte is written by the caller.
    fn ids(&mut self, ids: &[u32], width: u8) {
        for &v in ids {
            if width == 2 {
                self.u16(v as u16);
            } else {
                self.u32(v);
            }
        }
    }
    fn string16(&mut self, s: &str) {
        let b = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
        self.u16(b.len() as u16);
        self.bytes(b);
    }
    fn string32(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.bytes(s.as_bytes());
    }
}

fn id_width(ids: &[u32]) -> u8 {
    if ids.iter().all(|&v| v <= u32::from(u16::MAX)) {
        2
    } else {
        4
    }
}

fn status_code(s: ResponseStatus) -> u8 {
    match s {
        ResponseStatus::OK => 0,
        ResponseStatus::TIMEOUT => 1,
        ResponseStatus::MALFORMED => 2,
        _ => 3,
    }
}

fn encode_payload(frame: &Frame) -> (u8, Vec<u8>) {
    let mut o = Out::default();
    match frame {
        Frame::Snapshot(s) => {
            o.u8(match s.reason {
                SnapshotReason::NewSegment => 0,
                SnapshotReason::Start => 1,
            });
            o.bytes(&[0; 3]);
            o.u16(s.netuid);
            o.u16(s.own_uid);
            o.u64(s.steps);
            o.u64(s.epochs);
            let n = s.hotkeys.len().min(s.scores.len()).min(s.misses.len()).min(u16::MAX as usize);
            o.u16(n as u16);
            for i in 0..n {
                o.bytes(&s.hotkeys[i].0);
                o.f32(s.scores[i]);
                o.u32(s.misses[i]);
            }
            (KIND_SNAPSHOT, o.0)
        }
        Frame::Step(s) => {
            o.u64(s.step);
            o.u64(s.block);
            o.u32(s.vocab_size);
            o.f32(s.alpha);
            o.u32(s.zero_after_misses);
            o.u32(s.batch);
            o.u32(s.seq_len);
            let width = id_width(&s.tokens).max(id_width(&s.targets));
            o.u8(width);
            o.bytes(&[0; 3]);
            o.ids(&s.tokens, width);
            o.ids(&s.targets, width);
            o.u16(s.responses.len().min(u16::MAX as usize) as u16);
            for r in s.responses.iter().take(u16::MAX as usize) {
                let width = id_width(&r.ids);
                o.u16(r.uid);
                o.u8(status_code(r.status));
                o.u8(width);
                o.u32(r.k);
                o.f32(r.latency_s);
                o.f32(r.score);
                o.f32(r.loss);
                o.u32(r.ids.len() as u32);
                o.u32(r.logprobs.len() as u32);
                o.ids(&r.ids, width);
                for &v in &r.logprobs {
                    o.f32(v);
                }
            }
            (KIND_STEP, o.0)
        }
        Frame::Epoch(e) => {
            o.u64(e.epoch);
            o.u64(e.block);
            o.u16(e.own_uid);
            o.u8(match e.pipeline {
                WeightsPipeline::Legacy => 0,
                WeightsPipeline::Sdk11 => 1,
            });
            o.u8(match e.outcome {
                WeightsOutcomeCode::Set => 0,
                WeightsOutcomeCode::Committed => 1,
                WeightsOutcomeCode::NotSet => 2,
                WeightsOutcomeCode::Refused => 3,
            });
            o.u16(e.exclude_quantile);
            o.string16(&e.scorer);
            o.string32(&e.scorer_config);
            let h = &e.hyperparams;
            o.u16(h.tempo);
            o.u16(h.min_allowed_weights);
            o.u16(h.max_weight_limit);
            o.u64(h.weights_rate_limit);
            o.u64(h.weights_version_key);
            o.u8(u8::from(h.commit_reveal_enabled));
            o.u64(h.commit_reveal_period);
            o.u64(h.activity_cutoff);
            o.u16(h.kappa);
            o.u64(h.bonds_moving_average);
            o.u16(h.bonds_penalty);
            o.u64(h.immunity_period);
            o.u16(h.max_allowed_uids);
            o.u16(h.max_allowed_validators);
            o.u8(u8::from(h.yuma3));
            o.u64(h.min_stake);
            let n = e.neurons.len().min(u16::MAX as usize);
            o.u16(n as u16);
            for nr in &e.neurons[..n] {
                o.bytes(&nr.hotkey.0);
                o.u64(nr.stake);
                o.u8(u8::from(nr.validator_permit));
                o.u64(nr.last_update);
                o.u64(nr.registered_at);
                o.f64(nr.incentive);
            }
            let m = e.uids.len().min(e.weights.len()).min(u16::MAX as usize);
            o.u16(m as u16);
            for &u in &e.uids[..m] {
                o.u16(u);
            }
            for &w in &e.weights[..m] {
                o.u16(w);
            }
            (KIND_EPOCH, o.0)
        }
    }
}

/// A whole frame: kind, length, payload, checksum.
pub fn encode_frame(frame: &Frame) -> Vec<u8> {
    let (kind, payload) = encode_payload(frame);
    let mut buf = Vec::with_capacity(payload.len() + FRAME_OVERHEAD);
    buf.push(kind);
    buf.extend_from_slice(&[0; 3]);
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&payload);
    let crc = crc32c(&buf);
    buf.extend_from_slice(&crc.to_le_bytes());
    buf
}

/// A segment's header.
pub fn encode_header(seq: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..4].copy_from_slice(MAGIC);
    h[4..6].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[6..8].copy_from_slice(&(HEADER_LEN as u16).to_le_bytes());
    h[8..12].copy_from_slice(&seq.to_le_bytes());
    h
}

/// Checks a segment's header; returns its sequence number.
pub fn decode_header(buf: &[u8]) -> Result<u32, String> {
    if buf.len() < 8 || &buf[0..4] != MAGIC {
        return Err("not a neuron-host record segment (no NHRC magic at its start)".into());
    }
    let version = u16::from_le_bytes([buf[4], buf[5]]);
    if version != FORMAT_VERSION {
        return Err(format!(
            "record format version {version}; this neuron-host reads version {FORMAT_VERSION} (replay it with the neuron-host that wrote it)"
        ));
    }
    if buf.len() < HEADER_LEN {
        return Err(format!("truncated: the header needs {HEADER_LEN} bytes, the file has {}", buf.len()));
    }
    let len = u16::from_le_bytes([buf[6], buf[7]]) as usize;
    if len != HEADER_LEN {
        return Err(format!("header length {len}, version {FORMAT_VERSION} headers are {HEADER_LEN} bytes"));
    }
    Ok(u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]]))
}

// ---------------------------------------------------------------- reading

struct Cur<'a> {
    buf: &'a [u8],
    pos: usize,
}

type R<T> = Result<T, String>;

impl<'a> Cur<'a> {
    fn take(&mut self, n: usize, what: &str) -> R<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| format!("it ends reading {what} at payload byte {} ({n} bytes needed)", self.pos))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self, what: &str) -> R<u8> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &str) -> R<u16> {
        Ok(u16::from_le_bytes(self.take(2, what)?.try_into().expect("2 bytes")))
    }
    fn u32(&mut self, what: &str) -> R<u32> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self, what: &str) -> R<u64> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().expect("8 bytes")))
    }
    fn f32(&mut self, what: &str) -> R<f32> {
        Ok(f32::from_le_bytes(self.take(4, what)?.try_into().expect("4 bytes")))
    }
    fn f64(&mut self, what: &str) -> R<f64> {
        Ok(f64::from_le_bytes(self.take(8, what)?.try_into().expect("8 bytes")))
    }
    fn bool(&mut self, what: &str) -> R<bool> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(format!("{what} is {v}, not 0 or 1")),
        }
    }
    fn account(&mut self, what: &str) -> R<AccountId> {
        Ok(AccountId(self.take(32, what)?.try_into().expect("32 bytes")))
    }
    fn width(&mut self, what: &str) -> R<u8> {
        match self.u8(what)? {
            w @ (2 | 4) => Ok(w),
            w => Err(format!("{what} is {w}, not 2 or 4")),
        }
    }
    fn ids(&mut self, count: usize, width: u8, what: &str) -> R<Vec<u32>> {
        let bytes = count.checked_mul(width as usize).ok_or_else(|| format!("{what}: {count} ids overflow"))?;
        let raw = self.take(bytes, what)?;
        Ok(if width == 2 {
            raw.chunks_exact(2).map(|c| u32::from(u16::from_le_bytes([c[0], c[1]]))).collect()
        } else {
            raw.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
        })
    }
    fn f32s(&mut self, count: usize, what: &str) -> R<Vec<f32>> {
        let bytes = count.checked_mul(4).ok_or_else(|| format!("{what}: {count} values overflow"))?;
        Ok(self.take(bytes, what)?.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }
    fn u16s(&mut self, count: usize, what: &str) -> R<Vec<u16>> {
        Ok(self.take(count * 2, what)?.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect())
    }
    fn string(&mut self, len: usize, what: &str) -> R<String> {
        String::from_utf8(self.take(len, what)?.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
    }
    fn reserved(&mut self, n: usize) -> R<()> {
        if self.take(n, "reserved bytes")?.iter().any(|&b| b != 0) {
            return Err("reserved bytes are not zero".into());
        }
        Ok(())
    }
    fn end(&self) -> R<()> {
        match self.buf.len() - self.pos {
            0 => Ok(()),
            extra => Err(format!("{extra} bytes after the payload's last field")),
        }
    }
}

fn status_of(code: u8) -> R<ResponseStatus> {
    Ok(match code {
        0 => ResponseStatus::OK,
        1 => ResponseStatus::TIMEOUT,
        2 => ResponseStatus::MALFORMED,
        3 => ResponseStatus::ERROR,
        v => return Err(format!("response status {v} is not 0-3")),
    })
}

fn decode_snapshot(c: &mut Cur<'_>) -> R<Snapshot> {
    let reason = match c.u8("snapshot reason")? {
        0 => SnapshotReason::NewSegment,
        1 => SnapshotReason::Start,
        v => return Err(format!("snapshot reason {v} is not 0 or 1")),
    };
    c.reserved(3)?;
    let netuid = c.u16("netuid")?;
    let own_uid = c.u16("own uid")?;
    let steps = c.u64("steps")?;
    let epochs = c.u64("epochs")?;
    let n = c.u16("neuron count")? as usize;
    let (mut hotkeys, mut scores, mut misses) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        hotkeys.push(c.account("hotkey")?);
        let s = c.f32("score")?;
        if !s.is_finite() {
            return Err(format!("score {s} is not finite"));
        }
        scores.push(s);
        misses.push(c.u32("misses")?);
    }
    c.end()?;
    Ok(Snapshot { reason, netuid, own_uid, steps, epochs, hotkeys, scores, misses })
}

fn decode_step(c: &mut Cur<'_>) -> R<StepRecord> {
    let step = c.u64("step")?;
    let block = c.u64("block")?;
    let vocab_size = c.u32("vocab size")?;
    let alpha = c.f32("alpha")?;
    if !(alpha > 0.0 && alpha <= 1.0) {
        return Err(format!("alpha {alpha} is not in (0, 1]"));
    }
    let zero_after_misses = c.u32("zero_after_misses")?;
    let batch = c.u32("batch")?;
    let seq_len = c.u32("seq_len")?;
    let positions = (batch as usize)
        .checked_mul(seq_len as usize)
        .ok_or_else(|| format!("batch {batch} x seq_len {seq_len} overflows"))?;
    let width = c.width("token width")?;
    c.reserved(3)?;
    let tokens = c.ids(positions, width, "tokens")?;
    let targets = c.ids(positions, width, "targets")?;
    let count = c.u16("response count")? as usize;
    let mut responses = Vec::with_capacity(count.min(c.buf.len() / 28 + 1));
    for _ in 0..count {
        let uid = c.u16("uid")?;
        let status = status_of(c.u8("status")?)?;
        let width = c.width("id width")?;
        let k = c.u32("k")?;
        let latency_s = c.f32("latency")?;
        let score = c.f32("score")?;
        let loss = c.f32("loss")?;
        let n_ids = c.u32("id count")? as usize;
        let n_lps = c.u32("log-probability count")? as usize;
        let ids = c.ids(n_ids, width, "response ids")?;
        let logprobs = c.f32s(n_lps, "response log-probabilities")?;
        responses.push(RecordedResponse { uid, status, k, latency_s, score, loss, ids, logprobs });
    }
    c.end()?;
    Ok(StepRecord { step, block, vocab_size, alpha, zero_after_misses, batch, seq_len, tokens, targets, responses })
}

fn decode_epoch(c: &mut Cur<'_>) -> R<EpochRecord> {
    let epoch = c.u64("epoch")?;
    let block = c.u64("block")?;
    let own_uid = c.u16("own uid")?;
    let pipeline = match c.u8("pipeline")? {
        0 => WeightsPipeline::Legacy,
        1 => WeightsPipeline::Sdk11,
        v => return Err(format!("weights pipeline {v} is not 0 or 1")),
    };
    let outcome = match c.u8("outcome")? {
        0 => WeightsOutcomeCode::Set,
        1 => WeightsOutcomeCode::Committed,
        2 => WeightsOutcomeCode::NotSet,
        3 => WeightsOutcomeCode::Refused,
        v => return Err(format!("weights outcome {v} is not 0-3")),
    };
    let exclude_quantile = c.u16("exclude_quantile")?;
    let len = c.u16("scorer name length")? as usize;
    let scorer = c.string(len, "scorer name")?;
    let len = c.u32("scorer config length")? as usize;
    let scorer_config = c.string(len, "scorer config")?;
    let hyperparams = Hyperparams {
        tempo: c.u16("tempo")?,
        min_allowed_weights: c.u16("min_allowed_weights")?,
        max_weight_limit: c.u16("max_weight_limit")?,
        weights_rate_limit: c.u64("weights_rate_limit")?,
        weights_version_key: c.u64("weights_version_key")?,
        commit_reveal_enabled: c.bool("commit_reveal_enabled")?,
        commit_reveal_period: c.u64("commit_reveal_period")?,
        activity_cutoff: c.u64("activity_cutoff")?,
        kappa: c.u16("kappa")?,
        bonds_moving_average: c.u64("bonds_moving_average")?,
        bonds_penalty: c.u16("bonds_penalty")?,
        immunity_period: c.u64("immunity_period")?,
        max_allowed_uids: c.u16("max_allowed_uids")?,
        max_allowed_validators: c.u16("max_allowed_validators")?,
        yuma3: c.bool("yuma3")?,
        min_stake: c.u64("min_stake")?,
    };
    let n = c.u16("neuron count")? as usize;
    if n > 0 && own_uid as usize >= n {
        return Err(format!("own uid {own_uid} outside a subnet of {n}"));
    }
    let mut neurons = Vec::with_capacity(n);
    for _ in 0..n {
        neurons.push(RecordedNeuron {
            hotkey: c.account("hotkey")?,
            stake: c.u64("stake")?,
            validator_permit: c.bool("validator permit")?,
            last_update: c.u64("last_update")?,
            registered_at: c.u64("registered_at")?,
            incentive: c.f64("incentive")?,
        });
    }
    let m = c.u16("weight count")? as usize;
    let uids = c.u16s(m, "weight uids")?;
    let weights = c.u16s(m, "weights")?;
    if let Some(u) = uids.iter().find(|&&u| u as usize >= n) {
        return Err(format!("weight uid {u} outside a subnet of {n}"));
    }
    c.end()?;
    Ok(EpochRecord {
        epoch,
        block,
        own_uid,
        pipeline,
        outcome,
        exclude_quantile,
        scorer,
        scorer_config,
        hyperparams,
        neurons,
        uids,
        weights,
    })
}

/// Decodes the frame at the start of `buf`; returns it and its length.
pub fn decode_frame(buf: &[u8]) -> Result<(Frame, usize), FrameError> {
    if buf.len() < 8 {
        return Err(FrameError::Truncated { need: 8, have: buf.len() });
    }
    let kind = buf[0];
    let len = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    if len > MAX_PAYLOAD {
        return Err(FrameError::TooLarge(len));
    }
    let total = 8 + len as usize + 4;
    if buf.len() < total {
        return Err(FrameError::Truncated { need: total, have: buf.len() });
    }
    let body = &buf[..8 + len as usize];
    let crc = u32::from_le_bytes(buf[8 + len as usize..total].try_into().expect("4 bytes"));
    if crc32c(body) != crc {
        return Err(FrameError::Checksum);
    }
    if buf[1..4] != [0, 0, 0] {
        return Err(FrameError::Payload("reserved bytes of the frame are not zero".into()));
    }
    let mut c = Cur { buf: &body[8..], pos: 0 };
    let frame = match kind {
        KIND_SNAPSHOT => Frame::Snapshot(decode_snapshot(&mut c).map_err(FrameError::Payload)?),
        KIND_STEP => Frame::Step(decode_step(&mut c).map_err(FrameError::Payload)?),
        KIND_EPOCH => Frame::Epoch(decode_epoch(&mut c).map_err(FrameError::Payload)?),
        other => return Err(FrameError::UnknownKind(other)),
    };
    Ok((frame, total))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn sample_step(seed: u32) -> StepRecord {
        let positions = 2 * 3;
        StepRecord {
            step: 7 + u64::from(seed),
            block: 42,
            vocab_size: 70_000,
            alpha: 0.1,
            zero_after_misses: 8,
            batch: 2,
            seq_len: 3,
            tokens: (0..positions).map(|i| i * 11 + seed).collect(),
            targets: (0..positions).map(|i| i * 13 + 1).collect(),
            responses: vec![
                RecordedResponse {
                    uid: 1,
                    status: ResponseStatus::OK,
                    k: 2,
                    latency_s: 0.25,
                    score: 0.5,
                    loss: 1.25,
                    ids: (0..positions * 2).collect(),
                    logprobs: (0..positions * 2).map(|i| -(i as f32) * 0.5).collect(),
                },
                RecordedResponse {
                    uid: 2,
                    status: ResponseStatus::MALFORMED,
                    k: 2,
                    latency_s: 0.5,
                    score: 0.0,
                    loss: f32::NAN,
                    ids: vec![69_999, 1, 2],
                    logprobs: vec![-0.1],
                },
                RecordedResponse {
                    uid: 3,
                    status: ResponseStatus::TIMEOUT,
                    k: 0,
                    latency_s: 12.0,
                    score: 0.0,
                    loss: f32::NAN,
                    ids: vec![],
                    logprobs: vec![],
                },
            ],
        }
    }

    pub fn sample_epoch() -> EpochRecord {
        EpochRecord {
            epoch: 3,
            block: 99,
            own_uid: 0,
            pipeline: WeightsPipeline::Legacy,
            outcome: WeightsOutcomeCode::Set,
            exclude_quantile: 0,
            scorer: "scoring-loss".into(),
            scorer_config: "floor = 1e-6\n".into(),
            hyperparams: Hyperparams { tempo: 10, yuma3: true, commit_reveal_enabled: true, ..Hyperparams::default() },
            neurons: (0..3)
                .map(|i| RecordedNeuron {
                    hotkey: AccountId::from_name(&format!("n{i}")),
                    stake: 1000 * i,
                    validator_permit: i == 0,
                    last_update: 90 + i,
                    registered_at: i,
                    incentive: 0.25 * i as f64,
                })
                .collect(),
            uids: vec![1, 2],
            weights: vec![65535, 1234],
        }
    }

    pub fn sample_snapshot() -> Snapshot {
        Snapshot {
            reason: SnapshotReason::Start,
            netuid: 1,
            own_uid: 0,
            steps: 5,
            epochs: 1,
            hotkeys: (0..3).map(|i| AccountId::from_name(&format!("n{i}"))).collect(),
            scores: vec![0.0, 0.5, 0.25],
            misses: vec![0, 1, 9],
        }
    }

    fn same(a: &Frame, b: &Frame) -> bool {
        // NaN losses compare by bits.
        format!("{a:?}") == format!("{b:?}")
    }

    #[test]
    fn frames_round_trip_with_narrow_and_wide_ids() {
        for frame in [
            Frame::Step(sample_step(0)),
            Frame::Step(sample_step(70_000)),
            Frame::Epoch(sample_epoch()),
            Frame::Snapshot(sample_snapshot()),
        ] {
            let bytes = encode_frame(&frame);
            let (back, used) = decode_frame(&bytes).unwrap();
            assert_eq!(used, bytes.len());
            assert!(same(&frame, &back), "{frame:?}\n{back:?}");
        }
        // Tokens below 65536 are written as u16.
        let narrow = encode_frame(&Frame::Step(sample_step(0))).len();
        let wide = encode_frame(&Frame::Step(sample_step(70_000))).len();
        assert_eq!(wide - narrow, 2 * 2 * 6);
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_refused() {
        for frame in [Frame::Step(sample_step(1)), Frame::Epoch(sample_epoch()), Frame::Snapshot(sample_snapshot())] {
            let bytes = encode_frame(&frame);
            for cut in 0..bytes.len() {
                assert!(matches!(decode_frame(&bytes[..cut]), Err(FrameError::Truncated { .. })), "cut at {cut}");
            }
            for i in 0..bytes.len() {
                for bit in [0x01u8, 0x80] {
                    let mut bad = bytes.clone();
                    bad[i] ^= bit;
                    assert!(decode_frame(&bad).is_err(), "flipping bit {bit:#x} of byte {i} went unnoticed");
                }
            }
        }
    }

    #[test]
    fn a_forged_checksum_still_meets_the_payload_checks() {
        // A payload with a valid checksum but a count that runs past its end.
        let mut o = Out::default();
        o.u8(1);
        o.bytes(&[0; 3]);
        o.u16(1);
        o.u16(0);
        o.u64(0);
        o.u64(0);
        o.u16(60_000);
        let mut buf = vec![KIND_SNAPSHOT, 0, 0, 0];
        buf.extend_from_slice(&(o.0.len() as u32).to_le_bytes());
        buf.extend_from_slice(&o.0);
        let crc = crc32c(&buf);
        buf.extend_from_slice(&crc.to_le_bytes());
        let e = decode_frame(&buf).unwrap_err();
        assert!(matches!(&e, FrameError::Payload(m) if m.contains("hotkey")), "{e}");
        // An alpha out of range, checksummed.
        let mut step = sample_step(0);
        step.alpha = 2.0;
        let e = decode_frame(&encode_frame(&Frame::Step(step))).unwrap_err();
        assert!(e.to_string().contains("alpha 2"), "{e}");
        // A huge declared length is refused before anything is read.
        let mut huge = encode_frame(&Frame::Snapshot(sample_snapshot()));
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode_frame(&huge).unwrap_err(), FrameError::TooLarge(u32::MAX));
    }

    #[test]
    fn headers_name_the_version_they_refuse() {
        let h = encode_header(12);
        assert_eq!(decode_header(&h), Ok(12));
        let mut v2 = h;
        v2[4] = 2;
        let e = decode_header(&v2).unwrap_err();
        assert!(e.contains("version 2") && e.contains("reads version 1"), "{e}");
        assert!(decode_header(b"NHFO\x01\x00").unwrap_err().contains("magic"));
        assert!(decode_header(&h[..10]).unwrap_err().contains("truncated"));
    }
}
