//! Saving without stopping the loop, and without ever leaving a bad file.
//!
//! [`CheckpointWriter`] owns one file and one background thread. The loop
//! hands it a snapshot ([`Value`]) and carries on; while a save is in flight
//! a newer request waits, and replaces any request still waiting, so there is
//! at most one save in flight and one queued, and never two writers on the file.
//!
//! A save writes a temp file in the same directory, fsyncs it, shifts the
//! kept previous checkpoints down by one (`NAME.prev` becomes `NAME.prev.2`,
//! and so on up to `keep`), moves the current file to `NAME.prev`, renames
//! the temp file into place and fsyncs the directory: at every instant the
//! path holds a complete checkpoint (the old or the new one) and the kept
//! files the ones before. The checkpoint that drops out of the kept ones is
//! deleted only after the new one is reported saved: on some disks freeing a
//! big file's blocks takes as long as writing it. A failed save (full disk, permissions) removes its
//! temp file, leaves every checkpoint as it was, and is logged and counted —
//! never fatal to the loop. [`load_with_fallback`] reads the file, or the
//! newest previous one that loads, with a warning, when the file is damaged.

use std::{
    fs::File,
    io::Write,
    path::{Path, PathBuf},
    sync::{Arc, Condvar, Mutex},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use super::{pickle::Value, pth};
use crate::fsutil::Replaced;

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

/// `NAME.prev` beside `path`: the newest previous checkpoint.
pub fn prev_path(path: &Path) -> PathBuf {
    previous_path(path, 1)
}

/// The `n`th previous checkpoint beside `path` (1: `NAME.prev`, n: `NAME.prev.n`).
pub fn previous_path(path: &Path, n: usize) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".prev");
    if n > 1 {
        p.push(format!(".{n}"));
    }
    PathBuf::from(p)
}

/// The previous checkpoints beside `path` that exist, newest first (whatever
/// `keep` wrote them; a gap left by a crash in the middle of a rotation is skipped).
pub fn previous_checkpoints(path: &Path) -> Vec<PathBuf> {
    let (Some(name), dir) = (path.file_name().and_then(|n| n.to_str()), path.parent()) else { return Vec::new() };
    let dir = dir.filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let prefix = format!("{name}.prev");
    let mut found: Vec<(usize, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let file = e.file_name();
            let rest = file.to_str()?.strip_prefix(&prefix)?;
            let n = if rest.is_empty() { 1 } else { rest.strip_prefix('.')?.parse().ok().filter(|&n| n >= 2)? };
            Some((n, e.path()))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, p)| p).collect()
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

/// Writes `value` to `path` crash-safely, keeping the `keep` checkpoints
/// before it (see the module docs; at least one is always kept); returns the
/// bytes written.
pub fn save_atomically(path: &Path, value: &Value, keep: usize) -> std::io::Result<Replaced> {
    let keep = keep.max(1);
    let kept: Vec<PathBuf> = (1..=keep).map(|n| previous_path(path, n)).collect();
    let how = crate::fsutil::Replace { mode: None, keep_previous: &kept };
    let saved = crate::fsutil::replace_file_retiring(path, how, |file| {
        let writer =
            pth::save(value, &archive_name(path), std::io::BufWriter::with_capacity(1 << 20, SeekableFile(file)))?;
        writer.into_inner().map_err(|e| e.into_error())?;
        Ok(())
    })?;
    // Older ones than `keep` (left by a run with a larger `keep`) go once the new file is in place.
    for old in previous_checkpoints(path).into_iter().filter(|p| !kept.contains(p)) {
        if let Err(e) = std::fs::remove_file(&old) {
            tracing::warn!(target: "neuron_host::checkpoint", "cannot remove the old checkpoint {}: {e}", old.display());
        }
    }
    Ok(saved)
}

/// Checks, before any work, that checkpoints can be written at `path`: not a directory, its
/// folder made if missing, and a file can be created in that folder. The error is one line
/// naming the path and the cause (a file where a folder should be, a read-only filesystem, no
/// permission); the caller adds which setting to change.
pub fn check_destination(path: &Path) -> Result<(), String> {
    if path.is_dir() {
        return Err(format!(
            "{} is a directory; a checkpoint is a file, e.g. {}",
            path.display(),
            path.join("checkpoint.pth").display()
        ));
    }
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Some(file) = folder.ancestors().find(|a| a.exists()).filter(|a| !a.is_dir()) {
        return Err(format!(
            "cannot make the checkpoint folder {}: {} is a file, not a folder",
            folder.display(),
            file.display()
        ));
    }
    std::fs::create_dir_all(folder)
        .map_err(|e| format!("cannot make the checkpoint folder {}: {e}", folder.display()))?;
    let probe = folder.join(format!(".{}.probe.{}", archive_name(path), std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|e| format!("cannot write checkpoints in {}: {e}", folder.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
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
    /// Starts the writer thread for `path`, which keeps `keep` previous checkpoints.
    pub fn new(path: PathBuf, keep: usize) -> Self {
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
            .spawn(move || run(&worker, &target, keep))
            .expect("the OS starts a thread");
        Self { path, shared, thread: Some(thread) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues `value` (tagged, e.g. with its global step) and returns at once.
    /// A request still waiting is replaced, with a warning: saves are slower than the interval.
    pub fn request(&self, value: Value, tag: u64) {
        let mut q = self.shared.queue.lock().unwrap_or_else(|p| p.into_inner());
        let replaced = q.pending.replace((value, tag));
        if let Some((_, old_tag)) = &replaced {
            q.stats.superseded += 1;
            // At the 1st, 2nd, 4th, 8th... replacement, so that a slow disk cannot flood the log.
            if q.stats.superseded.is_power_of_two() {
                tracing::warn!(
                    target: "neuron_host::checkpoint",
                    "the checkpoint at {old_tag} was replaced by the one at {tag} before it could be written ({} so far): saves to {} take longer than the save interval; save less often or to a faster disk",
                    q.stats.superseded,
                    self.path.display()
                );
            }
        }
        self.shared.wake.notify_all();
        drop(q);
        // A replaced snapshot (up to a whole model and optimizer) is freed without holding the writer up.
        drop(replaced);
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

fn run(shared: &Shared, path: &Path, keep: usize) {
    // Failures in a row: the first is logged, the rest only counted, and the first success after
    // them says so (a full disk would otherwise log one error per save interval).
    let mut streak = 0u64;
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
        let result = save_atomically(path, &value, keep);
        drop(value);
        let mut q = shared.queue.lock().unwrap_or_else(|p| p.into_inner());
        match &result {
            Ok(saved) => {
                let bytes = saved.size;
                q.stats.saves += 1;
                q.stats.last_duration = Some(started.elapsed());
                q.stats.last_bytes = bytes;
                q.written_tag = Some(tag);
                tracing::debug!(target: "neuron_host::checkpoint", "saved {} ({bytes} bytes, {:?})", path.display(), started.elapsed());
                if streak > 0 {
                    tracing::info!(target: "neuron_host::checkpoint", "{} saved again at {tag}, after {streak} failed saves", path.display());
                }
                streak = 0;
            }
            Err(e) => {
                q.stats.failures += 1;
                streak += 1;
                let kept = if q.stats.saves > 0 || path.exists() {
                    "the previous checkpoint is intact"
                } else {
                    "no checkpoint has been written yet"
                };
                let message = format!("cannot save checkpoint {} at {tag}: {e}; {kept}", path.display());
                if streak == 1 {
                    tracing::error!(target: "neuron_host::checkpoint", "{message} (until a save works again, failures are only counted in checkpoint_failures_total)");
                } else {
                    tracing::debug!(target: "neuron_host::checkpoint", "{message}");
                }
                q.stats.last_error = Some(message);
            }
        }
        // The save is on disk and reported; the checkpoint that dropped out of the kept ones is
        // removed after that (freeing a big file can take as long as writing it), still "busy".
        shared.wake.notify_all();
        drop(q);
        drop(result);
        shared.queue.lock().unwrap_or_else(|p| p.into_inner()).busy = false;
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
    /// The current file was damaged or missing (the reason is kept); `file`,
    /// the newest previous checkpoint that loads, was used.
    Previous {
        file: PathBuf,
        reason: String,
    },
}

/// Opens `path` for reading only when it is a regular file (links followed): a named pipe would
/// block the reader, a device never ends, and a directory or a link loop is no checkpoint. The
/// file is opened without blocking and checked again, so a pipe swapped in cannot hang the open.
pub fn open_regular(path: &Path) -> Result<File, String> {
    let what = |meta: &std::fs::Metadata| -> Option<&'static str> {
        #[cfg(unix)]
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_file() {
            return None;
        }
        #[cfg(unix)]
        {
            if t.is_fifo() {
                return Some("a named pipe");
            }
            if t.is_char_device() || t.is_block_device() {
                return Some("a device");
            }
            if t.is_socket() {
                return Some("a socket");
            }
        }
        Some(if t.is_dir() { "a directory" } else { "not a regular file" })
    };
    let refuse = |kind: &str| format!("{} is {kind}, not a checkpoint file", path.display());
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if let Some(kind) = what(&meta) {
        return Err(refuse(kind));
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    let file = options.open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let meta = file.metadata().map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    match what(&meta) {
        Some(kind) => Err(refuse(kind)),
        None => Ok(file),
    }
}

/// Reads a checkpoint file through the restricted reader (regular files only).
pub fn load_file(path: &Path) -> Result<Value, String> {
    let file = open_regular(path)?;
    pth::load(std::io::BufReader::with_capacity(1 << 20, file)).map_err(|e| format!("{}: {e}", path.display()))
}

/// Reads `path`, or the newest previous checkpoint that loads when `path` is
/// damaged or missing (with a warning that says so). `Ok(None)` when there is none at all.
/// A path that exists as a link (dangling, or a loop) counts as there: it is refused, never
/// taken for "no checkpoint" and then replaced.
pub fn load_with_fallback(path: &Path) -> Result<Option<(Value, LoadedFrom)>, String> {
    let read = |p: &Path| load_file(p);
    let previous = previous_checkpoints(path);
    let mut reason = if path.symlink_metadata().is_ok() {
        match read(path) {
            Ok(v) => return Ok(Some((v, LoadedFrom::Current))),
            Err(reason) => reason,
        }
    } else if previous.is_empty() {
        return Ok(None);
    } else {
        format!("{} is missing", path.display())
    };
    let first_reason = reason.clone();
    for prev in previous {
        match read(&prev) {
            Ok(v) => {
                tracing::warn!(target: "neuron_host::checkpoint", "{reason}; using the previous checkpoint {} instead", prev.display());
                return Ok(Some((v, LoadedFrom::Previous { file: prev, reason: first_reason })));
            }
            Err(why) => reason = format!("{reason}; and the previous one is damaged too ({why})"),
        }
    }
    Err(reason)
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
        let w = CheckpointWriter::new(path.clone(), 1);
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
    fn keep_n_rotates_the_previous_checkpoints_and_falls_back_through_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.pth");
        let w = CheckpointWriter::new(path.clone(), 3);
        for i in 1..=5 {
            w.request(step(i), i as u64);
            w.flush();
        }
        let steps = |paths: &[PathBuf]| -> Vec<i64> {
            paths
                .iter()
                .map(|p| load_with_fallback(p).unwrap().unwrap().0.get("global_step").unwrap().as_int().unwrap())
                .collect()
        };
        let kept = previous_checkpoints(&path);
        assert_eq!(kept, (1..=3).map(|n| previous_path(&path, n)).collect::<Vec<_>>());
        assert_eq!(steps(&kept), [4, 3, 2]);
        // The newest two damaged: the third is used, and the warning's reason names the first.
        std::fs::write(&path, b"").unwrap();
        std::fs::write(&kept[0], b"PK\x03\x04 torn").unwrap();
        let (v, from) = load_with_fallback(&path).unwrap().unwrap();
        assert_eq!(v.get("global_step").unwrap().as_int(), Some(3));
        assert!(
            matches!(&from, LoadedFrom::Previous { file, reason } if *file == kept[1] && reason.contains("c.pth")),
            "{from:?}"
        );
        // A gap (a crash in the middle of a rotation) is skipped.
        std::fs::remove_file(&kept[1]).unwrap();
        assert_eq!(load_with_fallback(&path).unwrap().unwrap().0.get("global_step").unwrap().as_int(), Some(2));
        // All damaged: one error naming each.
        std::fs::write(&kept[2], b"x").unwrap();
        let e = load_with_fallback(&path).unwrap_err();
        assert!(!e.contains('\n') && e.matches("damaged too").count() == 2, "{e}");
        // A writer with a smaller `keep` removes the older files once its save is in place.
        drop(w);
        let w = CheckpointWriter::new(path.clone(), 1);
        w.request(step(6), 6);
        w.flush();
        assert_eq!(previous_checkpoints(&path), [prev_path(&path)]);
    }

    #[test]
    fn a_failed_save_is_counted_and_leaves_the_files_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("c.pth");
        let w = CheckpointWriter::new(path.clone(), 1);
        w.request(step(1), 1);
        w.flush();
        let s = w.stats();
        assert_eq!((s.saves, s.failures), (0, 1));
        assert!(s.last_error.unwrap().contains("cannot save checkpoint"));
        assert!(load_with_fallback(&path).unwrap().is_none());
    }

    #[test]
    fn a_destination_that_cannot_hold_checkpoints_is_refused_before_any_work() {
        let dir = tempfile::tempdir().unwrap();
        // A missing folder is made; nothing is left behind by the check.
        let deep = dir.path().join("a/b/c.pth");
        check_destination(&deep).unwrap();
        assert!(dir.path().join("a/b").is_dir());
        assert_eq!(std::fs::read_dir(dir.path().join("a/b")).unwrap().count(), 0);
        // A directory given as the file.
        let e = check_destination(dir.path()).unwrap_err();
        assert!(e.contains("is a directory"), "{e}");
        // A file where the folder should be.
        let file = dir.path().join("plain");
        std::fs::write(&file, b"x").unwrap();
        let e = check_destination(&file.join("c.pth")).unwrap_err();
        assert!(e.contains("is a file, not a folder") && !e.contains('\n'), "{e}");
        let e = check_destination(&file.join("deeper/c.pth")).unwrap_err();
        assert!(e.contains(&format!("{} is a file, not a folder", file.display())), "{e}");
        // A folder nobody may write in (root may write anywhere: checked only when it binds).
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let ro = dir.path().join("ro");
            std::fs::create_dir(&ro).unwrap();
            std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
            if std::fs::write(ro.join("root-can"), b"").is_err() {
                let e = check_destination(&ro.join("c.pth")).unwrap_err();
                assert!(e.contains("cannot write checkpoints in"), "{e}");
            }
            std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }

    #[test]
    fn newer_requests_replace_queued_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.pth");
        let w = CheckpointWriter::new(path.clone(), 1);
        for i in 0..50 {
            w.request(step(i), i as u64);
        }
        w.flush();
        let s = w.stats();
        assert_eq!(s.saves + s.superseded, 50);
        assert_eq!(w.written_tag(), Some(49), "the newest request is always written");
        assert_eq!(load_with_fallback(&path).unwrap().unwrap().0.get("global_step").unwrap().as_int(), Some(49));
    }

    #[cfg(unix)]
    #[test]
    fn only_regular_files_are_read_and_links_that_lead_nowhere_are_not_taken_for_no_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let started = Instant::now();
        // A named pipe: reading it would block forever.
        let fifo = dir.path().join("fifo.pth");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let e = load_with_fallback(&fifo).unwrap_err();
        assert!(e.contains("is a named pipe, not a checkpoint file"), "{e}");
        // A link to a device that never ends.
        let zero = dir.path().join("zero.pth");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let e = load_with_fallback(&zero).unwrap_err();
        assert!(e.contains("is a device"), "{e}");
        // A directory.
        let e = load_with_fallback(dir.path()).unwrap_err();
        assert!(e.contains("is a directory"), "{e}");
        // A link loop and a dangling link are refused, not read as "no checkpoint yet" (which
        // would start afresh and replace the link).
        let (a, b) = (dir.path().join("a.pth"), dir.path().join("b.pth"));
        std::os::unix::fs::symlink(&b, &a).unwrap();
        std::os::unix::fs::symlink(&a, &b).unwrap();
        assert!(load_with_fallback(&a).is_err());
        let dangling = dir.path().join("dangling.pth");
        std::os::unix::fs::symlink(dir.path().join("gone"), &dangling).unwrap();
        assert!(load_with_fallback(&dangling).is_err());
        assert_eq!(load_with_fallback(&dir.path().join("absent.pth")).unwrap(), None, "nothing there: none");
        // A link to a real checkpoint reads as that checkpoint.
        let real = dir.path().join("real.pth");
        save_atomically(&real, &step(7), 1).unwrap();
        let link = dir.path().join("link.pth");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert_eq!(load_with_fallback(&link).unwrap().unwrap().0, step(7));
        assert!(started.elapsed() < Duration::from_secs(5), "nothing hung: {:?}", started.elapsed());
    }
}
