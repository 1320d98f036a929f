//! PyTorch's zip checkpoint layout, so `torch.load(path, weights_only=True)`
//! opens what the host writes and the host opens what PyTorch writes.
//!
//! An archive holds, under one top-level folder: `data.pkl` (the object, a
//! protocol-2 pickle whose tensors point at storages by key), `data/<key>`
//! (each storage's raw little-endian bytes, stored uncompressed and aligned
//! to 64 bytes), `byteorder` and `version`.
//!
//! Reading checks everything before returning anything: one top-level folder,
//! uncompressed entries, sizes within limits, the pickle through the
//! restricted reader, every storage present with exactly the bytes its
//! element count needs, every tensor within its storage and contiguous.

use std::{
    collections::HashMap,
    io::{Read, Seek, SeekFrom, Write},
};

use zip::{write::SimpleFileOptions, CompressionMethod, ZipArchive, ZipWriter};

use super::pickle::{self, Loaded, TensorRef, TensorValue, Value};

/// A pickle larger than this is refused (state dicts' pickles are small; the data is in storages).
const MAX_PICKLE_BYTES: u64 = 256 << 20;
/// Entries in an archive.
const MAX_ENTRIES: usize = 1_000_000;
/// The tensors a file may hold, in bytes, as a multiple of the file's own size. Tensors may share
/// a storage (tied weights: twice), but a small file whose thousands of tensors all view one
/// large storage would otherwise turn megabytes into gigabytes.
pub const MAX_TENSOR_BYTES_PER_FILE_BYTE: u64 = 4;

/// Writes `value` as a PyTorch archive whose top-level folder is `name`.
pub fn save<W: Write + Seek>(value: &Value, name: &str, out: W) -> std::io::Result<W> {
    let (pkl, storages) = pickle::dump(value);
    let mut zip = ZipWriter::new(Latch { inner: out, failed: None });
    let stored = SimpleFileOptions::default().compression_method(CompressionMethod::Stored).large_file(false);
    let io = |e: zip::result::ZipError| std::io::Error::other(e.to_string());
    zip.start_file(format!("{name}/data.pkl"), stored).map_err(io)?;
    zip.write_all(&pkl)?;
    zip.start_file(format!("{name}/byteorder"), stored).map_err(io)?;
    zip.write_all(b"little")?;
    for (key, bytes) in storages.iter().enumerate() {
        let options = stored.with_alignment(64).large_file(bytes.len() as u64 >= u32::MAX as u64);
        zip.start_file(format!("{name}/data/{key}"), options).map_err(io)?;
        zip.write_all(bytes)?;
    }
    zip.start_file(format!("{name}/version"), stored).map_err(io)?;
    zip.write_all(b"3\n")?;
    let latch = zip.finish().map_err(io)?;
    Ok(latch.inner)
}

/// The archive's output, latched at its first error: from then on writes and seeks go nowhere
/// (keeping a position, as a sink would). `save` returns that first error; the zip library's
/// `Drop`, which finishes an archive left unfinished and prints its own failure to stderr,
/// glued to the next log line, then finds nothing to fail on.
struct Latch<W> {
    inner: W,
    /// After a failure: (position, end) of the sink that stands in for `inner`.
    failed: Option<(u64, u64)>,
}

impl<W: Write + Seek> Latch<W> {
    fn latch<T>(&mut self, result: std::io::Result<T>) -> std::io::Result<T> {
        if result.is_err() {
            let at = self.inner.stream_position().unwrap_or(0);
            self.failed = Some((at, at));
        }
        result
    }
}

impl<W: Write + Seek> Write for Latch<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some((pos, end)) = &mut self.failed {
            *pos += buf.len() as u64;
            *end = (*end).max(*pos);
            return Ok(buf.len());
        }
        let result = self.inner.write(buf);
        self.latch(result)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if self.failed.is_some() {
            return Ok(());
        }
        let result = self.inner.flush();
        self.latch(result)
    }
}

impl<W: Write + Seek> Seek for Latch<W> {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        if let Some((pos, end)) = &mut self.failed {
            let target = match to {
                std::io::SeekFrom::Start(n) => Some(n),
                std::io::SeekFrom::Current(d) => pos.checked_add_signed(d),
                std::io::SeekFrom::End(d) => end.checked_add_signed(d),
            };
            *pos = target.ok_or_else(|| std::io::Error::other("seek before the start"))?;
            return Ok(*pos);
        }
        let result = self.inner.seek(to);
        self.latch(result)
    }
}

/// Why an archive was refused; one line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PthError(pub String);

fn fail<T>(message: impl Into<String>) -> Result<T, PthError> {
    Err(PthError(message.into()))
}

/// Reads and checks a whole archive. Every size the archive declares is checked against the
/// file's real size before anything is allocated; a storage viewed by several tensors is read once.
/// A refusal is one line, even where it quotes an entry name with a line break in it.
pub fn load<R: Read + Seek>(input: R) -> Result<Value, PthError> {
    load_checked(input).map_err(|e| PthError(pickle::one_line(&e.0)))
}

fn load_checked<R: Read + Seek>(mut input: R) -> Result<Value, PthError> {
    let file_len = input
        .seek(SeekFrom::End(0))
        .and_then(|len| input.seek(SeekFrom::Start(0)).map(|_| len))
        .map_err(|e| PthError(format!("the file cannot be read ({e})")))?;
    let mut zip = ZipArchive::new(input)
        .map_err(|e| PthError(format!("not a PyTorch checkpoint (not a readable zip archive: {e})")))?;
    if zip.len() > MAX_ENTRIES {
        return fail(format!("the archive has {} entries; a checkpoint has far fewer", zip.len()));
    }
    let names: Vec<String> = zip
        .file_names()
        .map(|n| n.map(|n| n.into_owned()))
        .collect::<Result<_, _>>()
        .map_err(|e| PthError(format!("the archive's file names cannot be read ({e})")))?;
    let Some(pkl_name) = names.iter().find(|n| n.ends_with("/data.pkl") && n.matches('/').count() == 1).cloned() else {
        return fail("not a PyTorch checkpoint (no <folder>/data.pkl in the archive)");
    };
    let root = pkl_name.trim_end_matches("data.pkl").to_string();
    if let Some(stray) = names.iter().find(|n| !n.starts_with(&root)) {
        return fail(format!("the archive holds `{stray}` outside its folder `{root}`"));
    }
    let pkl = read_entry(&mut zip, &pkl_name, MAX_PICKLE_BYTES.min(file_len), file_len)?;
    let loaded = pickle::load(&pkl).map_err(|e| PthError(format!("data.pkl: {e}")))?;
    let mut views = HashMap::new();
    count_views(&loaded, &mut views);
    let mut storages = Storages { root, file_len, views, shared: HashMap::new(), handed_out: 0 };
    resolve(loaded, &mut |t| storages.tensor(&mut zip, t))
}

/// How many tensors view each storage key.
fn count_views(l: &Loaded, views: &mut HashMap<String, usize>) {
    match l {
        Loaded::List(items) | Loaded::Tuple(items) => items.iter().for_each(|i| count_views(i, views)),
        Loaded::Dict(e) | Loaded::OrderedDict(e) => e.iter().for_each(|(k, v)| {
            count_views(k, views);
            count_views(v, views)
        }),
        Loaded::Tensor(t) => *views.entry(t.storage.key.clone()).or_default() += 1,
        _ => {}
    }
}

/// The storages of one archive as tensors ask for them: one viewed once is read and moved into
/// its tensor; one viewed several times is read once and each view copied out of it, within a
/// bound on all the bytes handed out.
struct Storages {
    root: String,
    file_len: u64,
    views: HashMap<String, usize>,
    shared: HashMap<String, Vec<u8>>,
    handed_out: u64,
}

impl Storages {
    fn tensor<R: Read + Seek>(&mut self, zip: &mut ZipArchive<R>, t: &TensorRef) -> Result<TensorValue, PthError> {
        let key = &t.storage.key;
        let tensor = if self.views.get(key).copied().unwrap_or(0) <= 1 {
            let bytes = read_storage(zip, &self.root, t, self.file_len)?;
            view(t, bytes)?
        } else {
            if !self.shared.contains_key(key) {
                let bytes = read_storage(zip, &self.root, t, self.file_len)?;
                self.shared.insert(key.clone(), bytes);
            }
            let bytes = &self.shared[key];
            if bytes.len() as u64 != storage_bytes(t)? {
                return fail(format!("storage {key} is viewed with two different sizes"));
            }
            view_of(t, bytes)?
        };
        self.handed_out += tensor.data.len() as u64;
        let bound = MAX_TENSOR_BYTES_PER_FILE_BYTE.saturating_mul(self.file_len).max(1 << 20);
        if self.handed_out > bound {
            return fail(format!(
                "the tensors hold more than {MAX_TENSOR_BYTES_PER_FILE_BYTE} times the file's {} bytes (views repeating one storage); refusing the file",
                self.file_len
            ));
        }
        Ok(tensor)
    }
}

fn read_entry<R: Read + Seek>(
    zip: &mut ZipArchive<R>,
    name: &str,
    limit: u64,
    file_len: u64,
) -> Result<Vec<u8>, PthError> {
    let mut entry = zip.by_name(name).map_err(|_| PthError(format!("the archive has no `{name}`")))?;
    if entry.compression() != CompressionMethod::Stored {
        return fail(format!(
            "`{name}` is compressed ({:?}); PyTorch stores checkpoint entries uncompressed",
            entry.compression()
        ));
    }
    // What the archive says is never taken on trust: nothing larger than the file itself is
    // allocated (a 726-byte file can declare 64 GiB).
    if entry.size() > file_len {
        return fail(format!(
            "`{name}` declares {} bytes in a file of {file_len}; the file is damaged or hostile",
            entry.size()
        ));
    }
    if entry.size() > limit {
        return fail(format!("`{name}` is {} bytes, more than the {limit} allowed", entry.size()));
    }
    // (Read to the end, not to the declared size: the zip reader checks the CRC at the end.)
    let mut bytes = Vec::with_capacity(entry.size() as usize);
    entry
        .read_to_end(&mut bytes)
        .map_err(|e| PthError(format!("`{name}` cannot be read ({e}); the file is damaged")))?;
    Ok(bytes)
}

/// The bytes a storage must hold: its element count times its element size.
fn storage_bytes(t: &TensorRef) -> Result<u64, PthError> {
    let elem =
        t.storage.dtype.size().ok_or_else(|| PthError(format!("storage {} has an unknown dtype", t.storage.key)))?
            as u64;
    t.storage
        .numel
        .checked_mul(elem)
        .ok_or_else(|| PthError(format!("storage {} declares an impossible size", t.storage.key)))
}

/// A storage's bytes, exactly as many as it declares.
fn read_storage<R: Read + Seek>(
    zip: &mut ZipArchive<R>,
    root: &str,
    t: &TensorRef,
    file_len: u64,
) -> Result<Vec<u8>, PthError> {
    let expected = storage_bytes(t)?;
    let name = format!("{root}data/{}", t.storage.key);
    let bytes = read_entry(zip, &name, expected, file_len)?;
    if bytes.len() as u64 != expected {
        return fail(format!(
            "storage {} holds {} bytes but declares {} elements of {} bytes; the file is truncated or damaged",
            t.storage.key,
            bytes.len(),
            t.storage.numel,
            expected / t.storage.numel.max(1)
        ));
    }
    Ok(bytes)
}

/// Where the tensor's bytes lie in its storage, checked: (start, length).
fn tensor_range(t: &TensorRef) -> Result<(usize, usize), PthError> {
    let elem = t.storage.dtype.size().unwrap_or(1) as u64;
    let numel: u64 = t
        .shape
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .ok_or_else(|| PthError("a tensor shape overflows".into()))?;
    if t.shape.len() != t.stride.len() {
        return fail(format!(
            "a tensor in storage {} has {} sizes but {} strides",
            t.storage.key,
            t.shape.len(),
            t.stride.len()
        ));
    }
    // Row-major contiguity (dimensions of size 1 may have any stride).
    let mut expect = 1u64;
    for (&d, &s) in t.shape.iter().zip(&t.stride).rev() {
        if d != 1 && s != expect {
            return fail(format!(
                "a tensor in storage {} is not contiguous (shape {:?}, stride {:?}); save it with .contiguous()",
                t.storage.key, t.shape, t.stride
            ));
        }
        expect = expect.saturating_mul(d);
    }
    let end = t.offset.checked_add(numel).filter(|&e| e <= t.storage.numel);
    if end.is_none() {
        return fail(format!("a tensor reads past the end of storage {}", t.storage.key));
    }
    Ok(((t.offset * elem) as usize, (numel * elem) as usize))
}

/// The tensor over a storage it alone views: a tensor that is its whole storage (what the host
/// and `state_dict()` write) takes the bytes as read.
fn view(t: &TensorRef, bytes: Vec<u8>) -> Result<TensorValue, PthError> {
    let (start, len) = tensor_range(t)?;
    let data = if start == 0 && len == bytes.len() { bytes.into() } else { bytes[start..start + len].into() };
    Ok(TensorValue { dtype: t.storage.dtype, shape: t.shape.clone(), data })
}

/// The tensor over a storage other tensors view too: its bytes copied out.
fn view_of(t: &TensorRef, bytes: &[u8]) -> Result<TensorValue, PthError> {
    let (start, len) = tensor_range(t)?;
    Ok(TensorValue { dtype: t.storage.dtype, shape: t.shape.clone(), data: bytes[start..start + len].into() })
}

fn resolve(l: Loaded, read: &mut dyn FnMut(&TensorRef) -> Result<TensorValue, PthError>) -> Result<Value, PthError> {
    let pairs = |e: Vec<(Loaded, Loaded)>, read: &mut dyn FnMut(&TensorRef) -> Result<TensorValue, PthError>| {
        e.into_iter().map(|(k, v)| Ok((resolve(k, read)?, resolve(v, read)?))).collect::<Result<Vec<_>, PthError>>()
    };
    Ok(match l {
        Loaded::None => Value::None,
        Loaded::Bool(b) => Value::Bool(b),
        Loaded::Int(i) => Value::Int(i),
        Loaded::Float(f) => Value::Float(f),
        Loaded::Str(s) => Value::Str(s),
        Loaded::List(items) => Value::List(items.into_iter().map(|i| resolve(i, read)).collect::<Result<_, _>>()?),
        Loaded::Tuple(items) => Value::Tuple(items.into_iter().map(|i| resolve(i, read)).collect::<Result<_, _>>()?),
        Loaded::Dict(e) => Value::Dict(pairs(e, read)?),
        Loaded::OrderedDict(e) => Value::OrderedDict(pairs(e, read)?),
        Loaded::Tensor(t) => Value::Tensor(read(&t)?),
    })
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use neuron_plugin_api::DType;

    use super::*;

    fn sample() -> Value {
        let w: Vec<u8> = (0..6).flat_map(|i| (i as f32).to_le_bytes()).collect();
        Value::Dict(vec![
            (
                Value::str("model"),
                Value::OrderedDict(vec![(
                    Value::str("w"),
                    Value::Tensor(TensorValue { dtype: DType::F32, shape: vec![2, 3], data: w.into() }),
                )]),
            ),
            (Value::str("global_step"), Value::Int(1 << 40)),
            (Value::str("lr"), Value::Float(3e-4)),
            (Value::str("tags"), Value::List(vec![Value::str("a"), Value::Bool(true), Value::None, Value::Int(-7)])),
            (Value::str("shape"), Value::Tuple(vec![Value::Int(1), Value::Int(2), Value::Int(3), Value::Int(70000)])),
        ])
    }

    /// A writer that fails once `limit` bytes are written (a disk filling up).
    struct Filling {
        data: Cursor<Vec<u8>>,
        limit: u64,
    }

    impl Write for Filling {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.data.position() + buf.len() as u64 > self.limit {
                return Err(std::io::Error::new(std::io::ErrorKind::StorageFull, "No space left on device"));
            }
            self.data.write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Seek for Filling {
        fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
            self.data.seek(to)
        }
    }

    #[test]
    fn a_save_that_fails_midway_returns_its_error_and_leaves_the_zip_library_nothing_to_print() {
        // The zip library's Drop finishes an unfinished archive and prints its failure to stderr;
        // after the first error the output goes nowhere, so that finish succeeds in silence.
        // (What stderr gets is checked end to end by the full-disk test in tests/checkpoints.rs.)
        let whole = save(&sample(), "ckpt", Filling { data: Cursor::new(Vec::new()), limit: u64::MAX }).unwrap();
        let size = whole.data.get_ref().len() as u64;
        assert!(load(whole.data).is_ok());
        for limit in [0, 10, size / 2, size - 1] {
            let out = Filling { data: Cursor::new(Vec::new()), limit };
            let Err(e) = save(&sample(), "ckpt", out) else { panic!("{limit}: a full disk fails the save") };
            assert!(e.to_string().contains("No space left"), "{limit}: {e}");
        }
    }

    #[test]
    fn round_trip() {
        let bytes = save(&sample(), "ckpt", Cursor::new(Vec::new())).unwrap().into_inner();
        assert_eq!(load(Cursor::new(bytes)).unwrap(), sample());
    }

    #[test]
    fn a_truncated_archive_is_refused_in_one_line() {
        let bytes = save(&sample(), "ckpt", Cursor::new(Vec::new())).unwrap().into_inner();
        for cut in [0, 10, bytes.len() / 2, bytes.len() - 1] {
            let e = load(Cursor::new(bytes[..cut].to_vec())).unwrap_err().to_string();
            assert!(!e.contains('\n'), "{e}");
        }
    }

    /// An archive whose data.pkl is `pickle` and whose storages are `storages` (key, bytes).
    fn archive(pickle: &[u8], storages: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
        let stored = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
        zip.start_file("ckpt/data.pkl", stored).unwrap();
        zip.write_all(pickle).unwrap();
        for (key, bytes) in storages {
            zip.start_file(format!("ckpt/data/{key}"), stored.with_alignment(64)).unwrap();
            zip.write_all(bytes).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    /// A state dict of `views` float tensors `t0`, `t1`, ... that all view the whole of storage
    /// "0" of `numel` elements (what tied weights look like, and what a hostile file repeats).
    fn views_of_one_storage(views: usize, numel: u32) -> Vec<u8> {
        fn text(p: &mut Vec<u8>, s: &str) {
            p.push(b'X');
            p.extend_from_slice(&(s.len() as u32).to_le_bytes());
            p.extend_from_slice(s.as_bytes());
        }
        fn int(p: &mut Vec<u8>, i: u32) {
            p.push(b'J');
            p.extend_from_slice(&i.to_le_bytes());
        }
        let mut p = vec![0x80, 2, b'}', b'('];
        for i in 0..views {
            text(&mut p, &format!("t{i}"));
            p.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n(");
            p.push(b'(');
            text(&mut p, "storage");
            p.extend_from_slice(b"ctorch\nFloatStorage\n");
            text(&mut p, "0");
            text(&mut p, "cpu");
            int(&mut p, numel);
            p.extend_from_slice(b"tQ");
            int(&mut p, 0);
            p.push(b'(');
            int(&mut p, numel);
            p.extend_from_slice(b"t(");
            int(&mut p, 1);
            p.extend_from_slice(b"t\x89NtR");
        }
        p.extend_from_slice(b"u.");
        let data: Vec<u8> = (0..numel).flat_map(|i| (i as f32).to_le_bytes()).collect();
        archive(&p, &[("0", data)])
    }

    #[test]
    fn tied_views_of_one_storage_load_and_a_storage_repeated_thousands_of_times_is_refused() {
        let tied = load(Cursor::new(views_of_one_storage(2, 1000))).unwrap();
        let (a, b) = (tied.get("t0").unwrap(), tied.get("t1").unwrap());
        assert_eq!(a, b);
        let Value::Tensor(t) = a else { panic!("a tensor") };
        assert_eq!((t.shape.as_slice(), &t.data[4..8]), ([1000u64].as_slice(), 1f32.to_le_bytes().as_slice()));

        // An 8 MiB storage viewed by 2,000 tensors: 16 GiB from an 8 MiB file.
        let hostile = views_of_one_storage(2000, 2 << 20);
        let started = std::time::Instant::now();
        let e = load(Cursor::new(hostile)).unwrap_err().to_string();
        assert!(e.contains("more than 4 times the file's"), "{e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "{:?}", started.elapsed());
    }

    #[test]
    fn a_size_larger_than_the_file_is_refused_before_anything_is_allocated() {
        let mut bytes = save(&sample(), "ckpt", Cursor::new(Vec::new())).unwrap().into_inner();
        // Make data.pkl declare 4 GiB - 2 in both its local and its central header.
        let name = b"ckpt/data.pkl";
        let mut patched = 0;
        for (signature, sizes_at, name_len_at, name_at) in [(0x04034b50u32, 18, 26, 30), (0x02014b50, 20, 28, 46)] {
            let sig = signature.to_le_bytes();
            let mut i = 0;
            while i + name_at + name.len() <= bytes.len() {
                let len = u16::from_le_bytes([bytes[i + name_len_at], bytes[i + name_len_at + 1]]) as usize;
                if bytes[i..i + 4] == sig && len == name.len() && &bytes[i + name_at..i + name_at + len] == name {
                    for field in [sizes_at, sizes_at + 4] {
                        bytes[i + field..i + field + 4].copy_from_slice(&0xFFFF_FFFEu32.to_le_bytes());
                    }
                    patched += 1;
                }
                i += 1;
            }
        }
        assert_eq!(patched, 2, "both headers found");
        let e = load(Cursor::new(bytes)).unwrap_err().to_string();
        assert!(!e.contains('\n'), "{e}");
        assert!(e.contains("declares 4294967294 bytes in a file of"), "{e}");
    }
}
