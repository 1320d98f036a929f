//! TensorBoard event files, written directly (no TensorFlow, no protobuf
//! crate): TFRecord framing around hand-encoded `tensorflow.Event` messages.
//!
//! A record is `u64 length | u32 masked CRC-32C(length) | data | u32 masked
//! CRC-32C(data)`, little-endian. The first event carries
//! `file_version = "brain.Event:2"`; each scalar is an event with
//! `wall_time`, `step` and a `Summary` holding one `(tag, simple_value)`.
//! `tensorboard --logdir RUN_DIR` shows the curves.

use std::{
    fs::File,
    io::{BufWriter, Write},
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use crc32c::crc32c;

/// TFRecord's checksum mask: a CRC over data that itself holds CRCs is
/// weak, so TFRecord stores the CRC-32C rotated and offset instead.
fn masked(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn bytes_field(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    varint(out, u64::from(field << 3 | 2));
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// `Event { wall_time = 1 (double), step = 2 (int64), file_version = 3 | summary = 5 }`.
fn event(wall_time: f64, step: i64, body: Option<(u32, Vec<u8>)>) -> Vec<u8> {
    let mut e = Vec::new();
    e.push(0x09);
    e.extend_from_slice(&wall_time.to_le_bytes());
    if step != 0 {
        e.push(0x10);
        varint(&mut e, step as u64);
    }
    if let Some((field, bytes)) = body {
        bytes_field(&mut e, field, &bytes);
    }
    e
}

/// `Summary { value = 1: Value { tag = 1, simple_value = 2 (float) } }`.
fn scalar_summary(tag: &str, value: f32) -> Vec<u8> {
    let mut v = Vec::new();
    bytes_field(&mut v, 1, tag.as_bytes());
    v.push(0x15);
    v.extend_from_slice(&value.to_le_bytes());
    let mut s = Vec::new();
    bytes_field(&mut s, 1, &v);
    s
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// One event file in a run directory.
pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl EventWriter {
    /// Creates `events.out.tfevents.<time>.<host>.<suffix>` in `dir`.
    pub fn create(dir: &Path, suffix: &str) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        let path = dir.join(format!("events.out.tfevents.{}.{host}.{suffix}", now() as u64));
        let mut w = Self { out: BufWriter::new(File::create(&path)?), path };
        let mut first = Vec::new();
        bytes_field(&mut first, 3, b"brain.Event:2");
        let mut e = Vec::new();
        e.push(0x09);
        e.extend_from_slice(&now().to_le_bytes());
        e.extend_from_slice(&first);
        w.record(&e)?;
        w.out.flush()?;
        Ok(w)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn record(&mut self, data: &[u8]) -> std::io::Result<()> {
        let len = (data.len() as u64).to_le_bytes();
        self.out.write_all(&len)?;
        self.out.write_all(&masked(crc32c(&len)).to_le_bytes())?;
        self.out.write_all(data)?;
        self.out.write_all(&masked(crc32c(data)).to_le_bytes())
    }

    /// Appends a scalar `tag` at `step`.
    pub fn scalar(&mut self, tag: &str, step: i64, value: f32) -> std::io::Result<()> {
        let e = event(now(), step, Some((5, scalar_summary(tag, value))));
        self.record(&e)
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_value() {
        // The standard check value of CRC-32C over "123456789".
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn masked_crc_matches_tensorboards_reader() {
        // Values from TensorBoard's own reader (`masked_crc32c` in the
        // tensorboard package's tensorflow stub), which rejects a record
        // whose stored CRC differs: the data and an 8-byte zero length.
        assert_eq!(masked(crc32c(b"123456789")), 0xc78a_b0e5);
        assert_eq!(masked(crc32c(&0u64.to_le_bytes())), 0x0798_0329);
    }
}
