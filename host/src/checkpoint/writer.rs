//! Saving without stopping the loop, and without ever leaving a bad file.
//!
//! [`CheckpointWriter`] owns one file and one background thread. The loop
//! hands it a snapshot ([`Value`]) and carries on; while a save is in flight
//! a newer request waits, and replaces any request still waiting, so there is
//! at most one save in flight and one queued, and never two writers on the file.
//!
//! A save writes a temp file in the same directory, fsyncs it, moves the
//! current file to `.prev` (atomically replacing the older one), renames the
//! temp file into place and fsyncs the directory: at every instant the path
//! holds a complete checkpoint (the old or the new one) and `.prev` the one
//! before. A failed save (full disk, permissions) removes its temp file,
//! leaves both checkpoints as they were, and is logged and counted — never
//! fatal to the loop. [`load_with_fallback`] reads the file, or `.prev` with
//! a warning when the file is damaged.

use std::{
    fs::File,
    io::{Cursor, Write},
    path::{Path, PathBuf},
    sync::{Arc, Condvar, Mutex},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use super::{pickle::Value, pth};

/// Counters of one writer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WriterStats {
    pub saves: u64,
    pub failures: u64,
    /// Requests replaced by a newer one before they were written.
    pub superseded: u64,
    pub last_duration: Option<Duration>,
    pub last_bytes: u64,
    pub last_error: Option<String>,
}

struct Queue {
    pending: Option<(Value, u64)>,
    busy: bool,
    closed: bool,
    stats: WriterStats,
    /// Tag of the newest save that reached the disk.
    written_tag: Option<u64>,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
}

/// The background writer of one checkpoint file.
pub struct CheckpointWriter {
    path: PathBuf,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// `name.prev` beside `path`.
pub fn prev_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".prev");
    PathBuf::from(p)
}

fn archive_name(path: &Path) -> String {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("checkpoint");
    let clean: String =
        stem.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect();
    if clean.is_empty() {
        "checkpoint".into()
    } else {
        clean
    }
}

/// Writes `value` to `path` crash-safely (see the module docs); returns the bytes written.
pub fn save_atomically(path: &Path, value: &Value) -> std::io::Result<u64> {
    let prev = prev_path(path);
    let how = crate::fsutil::Replace { mode: None, keep_previous: Some(&prev) };
    crate::fsutil::replace_file(path, how, |file| {
        let writer =
            pth::save(value, &archive_name(path), std::io::BufWriter::with_capacity(1 << 20, SeekableFile(file)))?;
        writer.into_inner().map_err(|e| e.into_error())?;
        Ok(())
    })
}

/// A `File` borrowed as `Write + Seek` through `BufWriter` (zip needs both).
struct SeekableFile<'f>(&'f mut File);

impl Write for SeekableFile<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl std::io::Seek for SeekableFile<'_> {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        self.0.seek(pos)
    }
}

impl CheckpointWriter {
    /// Starts the writer thread for `path`.
    pub fn new(path: PathBuf) -> Self {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                pending: None,
                busy: false,
                closed: false,
                stats: WriterStats::default(),
                written_tag: None,
            }),
            wake: Condvar::new(),
        });
        let worker = shared.clone();
        let target = path.clone();
        let thread = std::thread::Builder::new()
            .name("checkpoint-writer".into())
            .spawn(move || run(&worker, &target))
            .expect("the OS starts a thread");
        Self { path, shared, thread: Some(thread) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues `value` (tagged, e.g. with its global step) and returns at once.
    /// A request still waiting is replaced.
    pub fn request(&self, value: Value, tag: u64) {
        let mut q = self.shared.queue.lock().unwrap_or_else(|p| p.into_inner());
        if q.pending.replace((value, tag)).is_some() {
            q.stats.superseded += 1;
        }
        self.shared.wake.notify_all();
    }

    /// Blocks until nothing is queued or in flight (shutdown, tests).
    pub fn flush(&self) {
        let mut q = self.shared.queue.lock().unwrap_or_else(|p| p.into_inner());
        while q.pending.is_some() || q.busy {
            q = self.shared.wake.wait(q).unwrap_or_else(|p| p.into_inner());
        }
    }

    pub fn stats(&self) -> WriterStats {
        self.shared.queue.lock().unwrap_or_else(|p| p.into_inner()).stats.clone()
    }

    /// The tag of the newest save on disk.
    pub fn written_tag(&self) -> Option<u64> {
        self.shared.queue.lock().unwrap_or_else(|p| p.into_inner()).written_tag
    }
}

fn run(shared: &Shared, path: &Path) {
    loop {
        let (value, tag) = {
            let mut q = shared.queue.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if let Some(job) = q.pending.take() {
                    q.busy = true;
                    break job;
                }
                if q.closed {
                    return;
                }
                q = shared.wake.wait(q).unwrap_or_else(|p| p.into_inner());
            }
        };
        let started = Instant::now();
        let result = save_atomically(path, &value);
        drop(value);
        let mut q = shared.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.busy = false;
        match result {
            Ok(bytes) => {
                q.stats.saves += 1;
                q.stats.last_duration = Some(started.elapsed());
                q.stats.last_bytes = bytes;
                q.written_tag = Some(tag);
                tracing::debug!(target: "neuron_host::checkpoint", "saved {} ({bytes} bytes, {:?})", path.display(), started.elapsed());
            }
            Err(e) => {
                q.stats.failures += 1;
                let message =
                    format!("cannot save checkpoint {}: {e}; the previous checkpoint is intact", path.display());
                tracing::error!(target: "neuron_host::checkpoint", "{message}");
                q.stats.last_error = Some(message);
            }
        }
        shared.wake.notify_all();
    }
}

impl Drop for CheckpointWriter {
    /// Finishes what is queued, then stops the thread.
    fn drop(&mut self) {
        self.flush();
        self.shared.queue.lock().unwrap_or_else(|p| p.into_inner()).closed = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Where a loaded checkpoint came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadedFrom {
    Current,
    /// The current file was damaged (the reason is kept); `.prev` was used.
    Previous {
        reason: String,
    },
}

/// Reads `path`, or `.prev` when `path` is damaged. `Ok(None)` when neither exists.
pub fn load_with_fallback(path: &Path) -> Result<Option<(Value, LoadedFrom)>, String> {
    let read = |p: &Path| -> Result<Value, String> {
        let bytes = std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
        pth::load(Cursor::new(bytes)).map_err(|e| format!("{}: {e}", p.display()))
    };
    let prev = prev_path(path);
    match (path.exists(), prev.exists()) {
        (false, false) => Ok(None),
        (true, _) => match read(path) {
            Ok(v) => Ok(Some((v, LoadedFrom::Current))),
            Err(reason) if prev.exists() => match read(&prev) {
                Ok(v) => {
                    tracing::warn!(target: "neuron_host::checkpoint", "{reason}; using the previous checkpoint {} instead", prev.display());
                    Ok(Some((v, LoadedFrom::Previous { reason })))
                }
                Err(prev_reason) => Err(format!("{reason}; and the previous one is damaged too ({prev_reason})")),
            },
            Err(reason) => Err(reason),
        },
        (false, true) => {
            let v = read(&prev)?;
            let reason = format!("{} is missing", path.display());
            tracing::warn!(target: "neuron_host::checkpoint", "{reason}; using the previous checkpoint {} instead", prev.display());
            Ok(Some((v, LoadedFrom::Previous { reason })))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(n: i64) -> Value {
        Value::Dict(vec![
            (Value::str("global_step"), Value::Int(n)),
            (Value::str("pad"), Value::Str("x".repeat(10_000))),
        ])
    }

    #[test]
    fn saves_keep_the_previous_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("miner_checkpoint.pth");
        let w = CheckpointWriter::new(path.clone());
        w.request(step(1), 1);
        w.flush();
        w.request(step(2), 2);
        w.flush();
        let (v, from) = load_with_fallback(&path).unwrap().unwrap();
        assert_eq!((v.get("global_step").unwrap().as_int(), from), (Some(2), LoadedFrom::Current));
        std::fs::write(&path, b"garbage").unwrap();
        let (v, from) = load_with_fallback(&path).unwrap().unwrap();
        assert_eq!(v.get("global_step").unwrap().as_int(), Some(1));
        assert!(matches!(from, LoadedFrom::Previous { .. }));
        assert_eq!(w.stats().saves, 2);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn a_failed_save_is_counted_and_leaves_the_files_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("c.pth");
        let w = CheckpointWriter::new(path.clone());
        w.request(step(1), 1);
        w.flush();
        let s = w.stats();
        assert_eq!((s.saves, s.failures), (0, 1));
        assert!(s.last_error.unwrap().contains("cannot save checkpoint"));
        assert!(load_with_fallback(&path).unwrap().is_none());
    }

    #[test]
    fn newer_requests_replace_queued_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.pth");
        let w = CheckpointWriter::new(path.clone());
        for i in 0..50 {
            w.request(step(i), i as u64);
        }
        w.flush();
        let s = w.stats();
        assert_eq!(s.saves + s.superseded, 50);
        assert_eq!(w.written_tag(), Some(49), "the newest request is always written");
        assert_eq!(load_with_fallback(&path).unwrap().unwrap().0.get("global_step").unwrap().as_int(), Some(49));
    }
}
