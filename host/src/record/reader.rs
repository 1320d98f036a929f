//! Reading a record back, one segment in memory at a time. Every refusal is
//! one line naming the segment file and the byte offset.

use std::path::{Path, PathBuf};

use super::format::{decode_frame, decode_header, Frame, FrameError, HEADER_LEN};
use crate::error::{Error, Result};

/// The segment files of a record directory, by sequence number.
pub fn segment_files(dir: &Path) -> std::io::Result<Vec<(u32, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(digits) = name.strip_prefix("seg-").and_then(|r| r.strip_suffix(".nhr")) else { continue };
        if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(seq) = digits.parse::<u32>() {
            out.push((seq, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Frames of a record directory, in order, across its segments.
pub struct RecordReader {
    files: Vec<(u32, PathBuf)>,
    /// Index of the next file to open.
    next_file: usize,
    buf: Vec<u8>,
    pos: usize,
    current: Option<PathBuf>,
    /// Accept a frame cut short at the very end of the last segment (a validator stopped while writing).
    allow_partial: bool,
    /// Set when a cut-short frame at the end was skipped.
    partial_tail: Option<String>,
    first_in_segment: bool,
}

fn refuse(path: &Path, offset: usize, what: impl std::fmt::Display) -> Error {
    Error::Data(format!("record {}, byte {offset}: {what}", path.display()))
}

impl RecordReader {
    /// Lists `dir`'s segments and checks their headers and their sequence.
    pub fn open(dir: &Path, allow_partial: bool) -> Result<Self> {
        let files = segment_files(dir).map_err(|e| {
            Error::Data(format!(
                "record {}: cannot read the directory: {e} (give the validator.record.dir of a run)",
                dir.display()
            ))
        })?;
        if files.is_empty() {
            return Err(Error::Data(format!(
                "record {} holds no segments (seg-NNNNNNNN.nhr); record with validator.record.dir = \"{}\"",
                dir.display(),
                dir.display()
            )));
        }
        for (i, (seq, path)) in files.iter().enumerate() {
            if i > 0 && *seq != files[i - 1].0 + 1 {
                return Err(Error::Data(format!(
                    "record {}: segment {} is missing (the sequence jumps from {} to {seq}); a record must be replayed whole",
                    dir.display(),
                    super::segment_name(files[i - 1].0 + 1),
                    files[i - 1].0
                )));
            }
            let mut head = [0u8; HEADER_LEN];
            let n = read_prefix(path, &mut head)?;
            let found = decode_header(&head[..n]).map_err(|e| refuse(path, 0, e))?;
            if found != *seq {
                return Err(refuse(path, 8, format!("the header says segment {found}, the file name {seq}")));
            }
        }
        Ok(Self {
            files,
            next_file: 0,
            buf: Vec::new(),
            pos: 0,
            current: None,
            allow_partial,
            partial_tail: None,
            first_in_segment: false,
        })
    }

    pub fn segments(&self) -> usize {
        self.files.len()
    }

    /// The cut-short frame that was skipped at the end, if any (with `allow_partial`).
    pub fn partial_tail(&self) -> Option<&str> {
        self.partial_tail.as_deref()
    }

    /// The next frame, `None` at the end of the record.
    pub fn next_frame(&mut self) -> Result<Option<Frame>> {
        loop {
            if self.current.is_some() && self.pos < self.buf.len() {
                let path = self.current.clone().expect("a segment is open");
                let last = self.next_file == self.files.len();
                match decode_frame(&self.buf[self.pos..]) {
                    Ok((frame, used)) => {
                        if self.first_in_segment && !matches!(frame, Frame::Snapshot(_)) {
                            return Err(refuse(&path, self.pos, "the segment does not start with a snapshot"));
                        }
                        self.first_in_segment = false;
                        self.pos += used;
                        return Ok(Some(frame));
                    }
                    Err(e @ FrameError::Truncated { .. }) if last => {
                        if self.allow_partial {
                            let note = format!("record {}, byte {}: {e}; replayed up to it", path.display(), self.pos);
                            tracing::warn!(target: "neuron_host::record", "{note}");
                            self.partial_tail = Some(note);
                            self.pos = self.buf.len();
                            continue;
                        }
                        return Err(refuse(
                            &path,
                            self.pos,
                            format!(
                                "{e} (a validator stopped while writing leaves this; --allow-partial replays up to it)"
                            ),
                        ));
                    }
                    Err(e) => return Err(refuse(&path, self.pos, e)),
                }
            }
            let Some((_, path)) = self.files.get(self.next_file).cloned() else { return Ok(None) };
            self.next_file += 1;
            self.buf = std::fs::read(&path).map_err(|source| Error::Io { path: path.clone(), source })?;
            self.pos = HEADER_LEN.min(self.buf.len());
            self.current = Some(path);
            self.first_in_segment = true;
        }
    }
}

fn read_prefix(path: &Path, buf: &mut [u8]) -> Result<usize> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(source) => return Err(Error::Io { path: path.to_path_buf(), source }),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::format::{
        encode_frame, encode_header,
        tests::{sample_epoch, sample_snapshot, sample_step},
    };

    fn write_segment(dir: &Path, seq: u32, frames: &[Frame]) -> PathBuf {
        let mut bytes = encode_header(seq).to_vec();
        for f in frames {
            bytes.extend(encode_frame(f));
        }
        let path = dir.join(crate::record::segment_name(seq));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn frames() -> Vec<Frame> {
        vec![Frame::Snapshot(sample_snapshot()), Frame::Step(sample_step(1)), Frame::Epoch(sample_epoch())]
    }

    fn read_all(dir: &Path, allow_partial: bool) -> Result<usize> {
        let mut r = RecordReader::open(dir, allow_partial)?;
        let mut n = 0;
        while r.next_frame()?.is_some() {
            n += 1;
        }
        Ok(n)
    }

    #[test]
    fn refusals_are_one_line_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_all(dir.path(), false).unwrap_err().to_string();
        assert!(e.contains("holds no segments"), "{e}");

        write_segment(dir.path(), 1, &frames());
        let last = write_segment(dir.path(), 2, &frames());
        assert_eq!(read_all(dir.path(), false).unwrap(), 6);

        // Truncated at every point inside the last frame of the last segment.
        let whole = std::fs::read(&last).unwrap();
        let frame_start = whole.len() - encode_frame(&frames()[2]).len();
        for cut in frame_start + 1..whole.len() {
            std::fs::write(&last, &whole[..cut]).unwrap();
            let e = read_all(dir.path(), false).unwrap_err().to_string();
            assert!(e.contains("seg-00000002.nhr") && e.contains("truncated") && !e.contains('\n'), "{e}");
            assert_eq!(read_all(dir.path(), true).unwrap(), 5, "cut at {cut}");
        }
        // A corrupt byte anywhere after the header is refused.
        for i in HEADER_LEN..whole.len() {
            let mut bad = whole.clone();
            bad[i] ^= 0x10;
            std::fs::write(&last, &bad).unwrap();
            let e = read_all(dir.path(), false).unwrap_err().to_string();
            assert!(e.starts_with("record ") && e.contains("seg-00000002.nhr, byte"), "byte {i}: {e}");
        }
        // Another version, in any segment, before any frame is read.
        let mut v9 = whole.clone();
        v9[4..6].copy_from_slice(&9u16.to_le_bytes());
        std::fs::write(&last, &v9).unwrap();
        let e = RecordReader::open(dir.path(), true).err().unwrap().to_string();
        assert!(e.contains("version 9") && e.contains("seg-00000002.nhr"), "{e}");
        std::fs::write(&last, &whole).unwrap();

        // A gap in the sequence.
        write_segment(dir.path(), 4, &frames());
        let e = read_all(dir.path(), false).unwrap_err().to_string();
        assert!(e.contains("seg-00000003.nhr is missing"), "{e}");
        std::fs::remove_file(dir.path().join("seg-00000004.nhr")).unwrap();

        // A segment that does not start with a snapshot.
        write_segment(dir.path(), 3, &frames()[1..]);
        let e = read_all(dir.path(), false).unwrap_err().to_string();
        assert!(e.contains("does not start with a snapshot"), "{e}");
    }
}
