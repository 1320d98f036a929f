//! Writing a record: segments of about a quarter of the size bound each, the
//! oldest deleted (or recording stopped) when the bound would be passed. A
//! write error is reported once and ends the recording; it never stops the
//! validator.

use std::{
    collections::VecDeque,
    fs::File,
    io::{BufWriter, Write},
    path::{Path, PathBuf},
};

use super::{
    format::{encode_frame, EpochRecord, Frame, Snapshot, SnapshotReason, StepRecord, HEADER_LEN},
    reader::segment_files,
    segment_name,
};
use crate::{
    error::{Error, Result},
    scores::ScoreBook,
};

/// What to do when the record reaches its size bound (`validator.record.when_full`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WhenFull {
    /// Delete the oldest segments.
    Rotate,
    /// Stop recording (one warning).
    Stop,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RecorderSettings {
    pub dir: PathBuf,
    /// Bound on the bytes of all segments together.
    pub max_bytes: u64,
    pub when_full: WhenFull,
}

/// The validator's state a new segment starts from.
pub struct BookState<'a> {
    pub netuid: u16,
    pub own_uid: u16,
    pub steps: u64,
    pub epochs: u64,
    pub book: &'a ScoreBook,
}

impl BookState<'_> {
    fn snapshot(&self, reason: SnapshotReason) -> Snapshot {
        Snapshot {
            reason,
            netuid: self.netuid,
            own_uid: self.own_uid,
            steps: self.steps,
            epochs: self.epochs,
            hotkeys: self.book.hotkeys().to_vec(),
            scores: self.book.scores().to_vec(),
            misses: self.book.stats().iter().map(|s| s.misses_in_a_row).collect(),
        }
    }
}

/// Records a validator's steps and epochs (or does nothing when off).
pub struct Recorder {
    inner: Option<Inner>,
}

struct Inner {
    name: String,
    settings: RecorderSettings,
    segment_bytes: u64,
    /// Segments on disk, oldest first, with their sizes; the last is being written when `out` is open.
    segments: VecDeque<(u32, u64)>,
    out: Option<BufWriter<File>>,
    /// Frames written to the open segment after its snapshot.
    frames_in_segment: u64,
    next_seq: u32,
    total: u64,
    /// Whether this process has written its first segment (its snapshot says "start").
    started: bool,
    stopped: bool,
}

impl Recorder {
    pub fn off() -> Self {
        Self { inner: None }
    }

    /// Recording as `[validator.record]` says: off when its `dir` is empty.
    pub fn from_config(settings: &RecordSettings, name: &str) -> Result<Self> {
        match settings.recorder() {
            Some(s) => Self::open(s, name),
            None => Ok(Self::off()),
        }
    }

    /// Starts recording into `settings.dir` (created if needed). Segments left
    /// there by an earlier run are kept and count towards the bound; new
    /// ones continue their sequence.
    pub fn open(settings: RecorderSettings, name: &str) -> Result<Self> {
        let dir = settings.dir.clone();
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io { path: dir.clone(), source })?;
        let existing = segment_files(&dir).map_err(|source| Error::Io { path: dir.clone(), source })?;
        let mut segments = VecDeque::new();
        let mut total = 0;
        for (seq, path) in &existing {
            let size = std::fs::metadata(path).map_err(|source| Error::Io { path: path.clone(), source })?.len();
            total += size;
            segments.push_back((*seq, size));
        }
        let next_seq = existing.last().map_or(1, |(s, _)| s.saturating_add(1));
        let segment_bytes = (settings.max_bytes / 4).max(1024);
        tracing::info!(
            target: "neuron_host::record",
            "{name}: recording steps and epochs to {} (at most {} bytes, {} when full)",
            dir.display(),
            settings.max_bytes,
            if settings.when_full == WhenFull::Rotate { "oldest segments deleted" } else { "recording stops" }
        );
        Ok(Self {
            inner: Some(Inner {
                name: name.to_string(),
                settings,
                segment_bytes,
                segments,
                out: None,
                frames_in_segment: 0,
                next_seq,
                total,
                started: false,
                stopped: false,
            }),
        })
    }

    /// Whether frames are still being written.
    pub fn is_on(&self) -> bool {
        self.inner.as_ref().is_some_and(|i| !i.stopped)
    }

    pub fn dir(&self) -> Option<&Path> {
        self.inner.as_ref().map(|i| i.settings.dir.as_path())
    }

    /// Records one step (built only when recording).
    pub fn step(&mut self, state: BookState<'_>, make: impl FnOnce() -> StepRecord) {
        if self.is_on() {
            let frame = Frame::Step(make());
            self.write(state, &frame, false);
        }
    }

    /// Records one epoch end and flushes.
    pub fn epoch(&mut self, state: BookState<'_>, make: impl FnOnce() -> EpochRecord) {
        if self.is_on() {
            let frame = Frame::Epoch(make());
            self.write(state, &frame, true);
        }
    }

    /// Writes what is buffered.
    pub fn flush(&mut self) {
        if let Some(inner) = &mut self.inner {
            inner.flush();
        }
    }

    fn write(&mut self, state: BookState<'_>, frame: &Frame, flush: bool) {
        let Some(inner) = &mut self.inner else { return };
        let bytes = encode_frame(frame);
        if let Err(e) = inner.write(&state, &bytes, flush) {
            inner.fail(&e);
        }
    }
}

impl Inner {
    fn path(&self, seq: u32) -> PathBuf {
        self.settings.dir.join(segment_name(seq))
    }

    fn fail(&mut self, e: &std::io::Error) {
        tracing::error!(target: "neuron_host::record", "{}: recording to {} stopped: {e}", self.name, self.settings.dir.display());
        self.stopped = true;
        self.out = None;
    }

    fn stop(&mut self, why: String) {
        tracing::warn!(target: "neuron_host::record", "{}: recording to {} stopped: {why}", self.name, self.settings.dir.display());
        self.flush();
        self.stopped = true;
        self.out = None;
    }

    fn flush(&mut self) {
        if let Some(out) = &mut self.out {
            if let Err(e) = out.flush() {
                self.fail(&e);
            }
        }
    }

    fn close_segment(&mut self) -> std::io::Result<()> {
        if let Some(mut out) = self.out.take() {
            out.flush()?;
        }
        Ok(())
    }

    fn write(&mut self, state: &BookState<'_>, bytes: &[u8], flush: bool) -> std::io::Result<()> {
        let len = bytes.len() as u64;
        let mut opening =
            self.out.is_none() || (self.frames_in_segment > 0 && self.segment_len() + len > self.segment_bytes);
        if opening {
            self.close_segment()?;
        }
        let reason = if self.started { SnapshotReason::NewSegment } else { SnapshotReason::Start };
        let mut snapshot: Option<Vec<u8>> = None;
        let snapshot_len = |snapshot: &mut Option<Vec<u8>>| {
            snapshot.get_or_insert_with(|| encode_frame(&Frame::Snapshot(state.snapshot(reason)))).len()
        };
        loop {
            let need = len + if opening { (HEADER_LEN + snapshot_len(&mut snapshot)) as u64 } else { 0 };
            if self.total + need <= self.settings.max_bytes {
                break;
            }
            if self.settings.when_full == WhenFull::Stop {
                self.stop(format!(
                    "it reached validator.record.max_bytes = {} (when_full = \"stop\"); raise the bound or use when_full = \"rotate\"",
                    self.settings.max_bytes
                ));
                return Ok(());
            }
            // The open segment can only go once a new one replaces it.
            let deletable = self.segments.len() - usize::from(!opening);
            if deletable == 0 {
                if !opening {
                    opening = true;
                    self.close_segment()?;
                    continue;
                }
                self.stop(format!(
                    "one frame of {need} bytes does not fit validator.record.max_bytes = {}; raise it",
                    self.settings.max_bytes
                ));
                return Ok(());
            }
            let (seq, size) = self.segments.pop_front().expect("a segment to delete");
            match std::fs::remove_file(self.path(seq)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            self.total -= size;
        }
        if opening {
            snapshot_len(&mut snapshot);
            let snapshot = snapshot.expect("encoded above");
            let seq = self.next_seq;
            self.next_seq =
                self.next_seq.checked_add(1).ok_or_else(|| std::io::Error::other("segment sequence exhausted"))?;
            let mut out = BufWriter::new(File::create(self.path(seq))?);
            out.write_all(&super::format::encode_header(seq))?;
            out.write_all(&snapshot)?;
            let size = (HEADER_LEN + snapshot.len()) as u64;
            self.segments.push_back((seq, size));
            self.total += size;
            self.out = Some(out);
            self.frames_in_segment = 0;
            self.started = true;
        }
        let out = self.out.as_mut().expect("an open segment");
        out.write_all(bytes)?;
        if flush {
            out.flush()?;
        }
        self.frames_in_segment += 1;
        self.total += len;
        if let Some(last) = self.segments.back_mut() {
            last.1 += len;
        }
        Ok(())
    }

    fn segment_len(&self) -> u64 {
        self.segments.back().map_or(0, |s| s.1)
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Recording a validator's steps and epochs (off unless `dir` is set).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordSettings {
    /// Directory of the record's segment files ("" records nothing).
    pub dir: String,
    /// Bound on the bytes of all segments together.
    pub max_bytes: u64,
    /// At the bound: "rotate" (delete the oldest segments) or "stop" (stop recording, one warning).
    pub when_full: WhenFull,
}

impl Default for RecordSettings {
    fn default() -> Self {
        Self { dir: String::new(), max_bytes: 1 << 30, when_full: WhenFull::Rotate }
    }
}

impl RecordSettings {
    /// The recorder's settings, `None` when recording is off.
    pub fn recorder(&self) -> Option<RecorderSettings> {
        (!self.dir.is_empty()).then(|| RecorderSettings {
            dir: PathBuf::from(&self.dir),
            max_bytes: self.max_bytes,
            when_full: self.when_full,
        })
    }
}

/// Smallest bound a record may have.
const MIN_RECORD_BYTES: u64 = 64 * 1024;

impl RecordSettings {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.max_bytes < MIN_RECORD_BYTES {
            return Err(format!(
                "validator.record.max_bytes must be at least {MIN_RECORD_BYTES} (64 KiB), got {}",
                self.max_bytes
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        chain::{AccountId, Metagraph, NeuronInfo},
        record::{format::tests::sample_step, Frame, RecordReader},
    };

    fn book() -> ScoreBook {
        let mut b = ScoreBook::new(0.1);
        b.resync(&Metagraph {
            netuid: 1,
            block: 0,
            neurons: (0..4)
                .map(|uid| NeuronInfo::bare(uid, AccountId::from_name(&format!("n{uid}")), AccountId::from_name("c")))
                .collect(),
        });
        b
    }

    fn state(book: &ScoreBook, steps: u64) -> BookState<'_> {
        BookState { netuid: 1, own_uid: 0, steps, epochs: 0, book }
    }

    fn on_disk(dir: &Path) -> u64 {
        segment_files(dir).unwrap().iter().map(|(_, p)| std::fs::metadata(p).unwrap().len()).sum()
    }

    #[test]
    fn rotation_keeps_the_bound_and_every_segment_replays_from_its_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let frame_len = encode_frame(&Frame::Step(sample_step(0))).len() as u64;
        let max = frame_len * 12;
        let settings = RecorderSettings { dir: dir.path().into(), max_bytes: max, when_full: WhenFull::Rotate };
        let book = book();
        let mut rec = Recorder::open(settings, "v").unwrap();
        for i in 0..60u32 {
            rec.step(state(&book, u64::from(i)), || sample_step(i));
        }
        rec.flush();
        assert!(rec.is_on());
        assert!(on_disk(dir.path()) <= max, "{} > {max}", on_disk(dir.path()));
        let files = segment_files(dir.path()).unwrap();
        assert!(files.len() >= 2 && files[0].0 > 1, "old segments were deleted: {files:?}");
        // What is left reads back: a snapshot first, then consecutive steps ending at the last.
        let mut reader = RecordReader::open(dir.path(), false).unwrap();
        let mut steps = Vec::new();
        let mut snapshots = 0;
        while let Some(frame) = reader.next_frame().unwrap() {
            match frame {
                Frame::Step(s) => steps.push(s.step),
                Frame::Snapshot(s) => {
                    snapshots += 1;
                    assert_eq!(s.reason, SnapshotReason::NewSegment, "the first segment was rotated out");
                    assert_eq!(s.hotkeys.len(), 4);
                }
                Frame::Epoch(_) => unreachable!(),
            }
        }
        assert_eq!(snapshots, files.len());
        assert_eq!(*steps.last().unwrap(), sample_step(59).step);
        assert!(steps.windows(2).all(|w| w[1] == w[0] + 1), "{steps:?}");
    }

    #[test]
    fn stop_mode_stops_once_and_keeps_what_it_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let frame_len = encode_frame(&Frame::Step(sample_step(0))).len() as u64;
        let settings = RecorderSettings { dir: dir.path().into(), max_bytes: frame_len * 5, when_full: WhenFull::Stop };
        let book = book();
        let mut rec = Recorder::open(settings, "v").unwrap();
        for i in 0..20u32 {
            rec.step(state(&book, u64::from(i)), || sample_step(i));
        }
        assert!(!rec.is_on());
        let mut reader = RecordReader::open(dir.path(), false).unwrap();
        let mut n = 0;
        while let Some(f) = reader.next_frame().unwrap() {
            if matches!(f, Frame::Step(_)) {
                n += 1;
            }
        }
        assert!((2..5).contains(&n), "{n} steps kept");
    }

    #[test]
    fn a_second_run_continues_the_sequence_with_a_start_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let settings = RecorderSettings { dir: dir.path().into(), max_bytes: 1 << 20, when_full: WhenFull::Rotate };
        let book = book();
        for run in 0..2u32 {
            let mut rec = Recorder::open(settings.clone(), "v").unwrap();
            rec.step(state(&book, 0), || sample_step(run));
        }
        let files = segment_files(dir.path()).unwrap();
        assert_eq!(files.iter().map(|f| f.0).collect::<Vec<_>>(), vec![1, 2]);
        let mut reader = RecordReader::open(dir.path(), false).unwrap();
        let mut reasons = Vec::new();
        while let Some(f) = reader.next_frame().unwrap() {
            if let Frame::Snapshot(s) = f {
                reasons.push(s.reason);
            }
        }
        assert_eq!(reasons, vec![SnapshotReason::Start, SnapshotReason::Start]);
    }
}
