//! The run log: every run writes its step and epoch figures to its run
//! directory as JSON lines (`steps.jsonl`, `epochs.jsonl`) and as TensorBoard
//! event files, so curves can be read by a program, by `neuron-host report`,
//! or by `tensorboard --logdir RUN_DIR`, with no cloud service.

use std::{
    fs::{File, OpenOptions},
    io::{BufWriter, Write},
    path::{Path, PathBuf},
};

use serde::Serialize;

use super::tfevents::EventWriter;

/// Writes one run's logs. Errors are reported once and then the log goes
/// quiet: logging must never stop a neuron.
pub struct RunLog {
    dir: PathBuf,
    steps: Option<BufWriter<File>>,
    epochs: Option<BufWriter<File>>,
    events: Option<EventWriter>,
    failed: bool,
}

fn append(path: &Path) -> std::io::Result<BufWriter<File>> {
    Ok(BufWriter::new(OpenOptions::new().create(true).append(true).open(path)?))
}

impl RunLog {
    /// Opens (appending to) the logs in `dir`, creating it.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            steps: Some(append(&dir.join("steps.jsonl"))?),
            epochs: Some(append(&dir.join("epochs.jsonl"))?),
            events: Some(EventWriter::create(dir, "neuron-host")?),
            failed: false,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn report(&mut self, what: &str, e: std::io::Error) {
        if !self.failed {
            tracing::error!(target: "neuron_host::metrics", "run log {}: cannot write {what}: {e}; further run-log errors are not reported", self.dir.display());
            self.failed = true;
        }
    }

    /// One training or validation step: the record as a JSON line, and each
    /// `(tag, value)` as a TensorBoard scalar at `step`.
    pub fn step<T: Serialize>(&mut self, record: &T, step: i64, scalars: &[(&str, f64)]) {
        self.write_line(true, record);
        self.scalars(step, scalars);
    }

    /// One epoch's summary.
    pub fn epoch<T: Serialize>(&mut self, record: &T, epoch: i64, scalars: &[(&str, f64)]) {
        self.write_line(false, record);
        self.scalars(epoch, scalars);
        self.flush();
    }

    fn write_line<T: Serialize>(&mut self, steps: bool, record: &T) {
        let line = match serde_json::to_string(record) {
            Ok(l) => l,
            Err(e) => return self.report("a record", std::io::Error::other(e)),
        };
        let out = if steps { self.steps.as_mut() } else { self.epochs.as_mut() };
        if let Some(out) = out {
            if let Err(e) = writeln!(out, "{line}") {
                self.report(if steps { "steps.jsonl" } else { "epochs.jsonl" }, e);
            }
        }
    }

    fn scalars(&mut self, step: i64, scalars: &[(&str, f64)]) {
        let mut error = None;
        if let Some(ev) = self.events.as_mut() {
            for (tag, v) in scalars {
                if v.is_finite() {
                    if let Err(e) = ev.scalar(tag, step, *v as f32) {
                        error = Some(e);
                        break;
                    }
                }
            }
        }
        if let Some(e) = error {
            self.report("the TensorBoard event file", e);
        }
    }

    pub fn flush(&mut self) {
        let mut errors = Vec::new();
        for w in [self.steps.as_mut(), self.epochs.as_mut()].into_iter().flatten() {
            if let Err(e) = w.flush() {
                errors.push(e);
            }
        }
        if let Some(ev) = self.events.as_mut() {
            if let Err(e) = ev.flush() {
                errors.push(e);
            }
        }
        if let Some(e) = errors.pop() {
            self.report("logs", e);
        }
    }
}

impl Drop for RunLog {
    fn drop(&mut self) {
        self.flush();
    }
}
