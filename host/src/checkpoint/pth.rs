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

use std::io::{Read, Seek, Write};

use zip::{write::SimpleFileOptions, CompressionMethod, ZipArchive, ZipWriter};

use super::pickle::{self, Loaded, TensorRef, TensorValue, Value};

/// A pickle larger than this is refused (state dicts' pickles are small; the data is in storages).
const MAX_PICKLE_BYTES: u64 = 256 << 20;
/// Entries in an archive.
const MAX_ENTRIES: usize = 1_000_000;

/// Writes `value` as a PyTorch archive whose top-level folder is `name`.
pub fn save<W: Write + Seek>(value: &Value, name: &str, out: W) -> std::io::Result<W> {
    let (pkl, storages) = pickle::dump(value);
    let mut zip = ZipWriter::new(out);
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
    zip.finish().map_err(io)
}

/// Why an archive was refused; one line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PthError(pub String);

fn fail<T>(message: impl Into<String>) -> Result<T, PthError> {
    Err(PthError(message.into()))
}

/// Reads and checks a whole archive.
pub fn load<R: Read + Seek>(input: R) -> Result<Value, PthError> {
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
    let pkl = read_entry(&mut zip, &pkl_name, MAX_PICKLE_BYTES)?;
    let loaded = pickle::load(&pkl).map_err(|e| PthError(format!("data.pkl: {e}")))?;
    resolve(loaded, &mut |t| read_tensor(&mut zip, &root, t))
}

fn read_entry<R: Read + Seek>(zip: &mut ZipArchive<R>, name: &str, limit: u64) -> Result<Vec<u8>, PthError> {
    let mut entry = zip.by_name(name).map_err(|_| PthError(format!("the archive has no `{name}`")))?;
    if entry.compression() != CompressionMethod::Stored {
        return fail(format!(
            "`{name}` is compressed ({:?}); PyTorch stores checkpoint entries uncompressed",
            entry.compression()
        ));
    }
    if entry.size() > limit {
        return fail(format!("`{name}` is {} bytes, more than the {limit} allowed", entry.size()));
    }
    let mut bytes = Vec::with_capacity(entry.size() as usize);
    entry
        .read_to_end(&mut bytes)
        .map_err(|e| PthError(format!("`{name}` cannot be read ({e}); the file is damaged")))?;
    Ok(bytes)
}

fn read_tensor<R: Read + Seek>(zip: &mut ZipArchive<R>, root: &str, t: &TensorRef) -> Result<TensorValue, PthError> {
    let elem =
        t.storage.dtype.size().ok_or_else(|| PthError(format!("storage {} has an unknown dtype", t.storage.key)))?
            as u64;
    let storage_bytes = t
        .storage
        .numel
        .checked_mul(elem)
        .ok_or_else(|| PthError(format!("storage {} declares an impossible size", t.storage.key)))?;
    let name = format!("{root}data/{}", t.storage.key);
    let bytes = read_entry(zip, &name, storage_bytes)?;
    if bytes.len() as u64 != storage_bytes {
        return fail(format!(
            "storage {} holds {} bytes but declares {} elements of {} bytes; the file is truncated or damaged",
            t.storage.key,
            bytes.len(),
            t.storage.numel,
            elem
        ));
    }
    let numel: u64 = t
        .shape
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .ok_or_else(|| PthError("a tensor shape overflows".into()))?;
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
    if t.shape.len() != t.stride.len() {
        return fail(format!(
            "a tensor in storage {} has {} sizes but {} strides",
            t.storage.key,
            t.shape.len(),
            t.stride.len()
        ));
    }
    let end = t.offset.checked_add(numel).filter(|&e| e <= t.storage.numel);
    if end.is_none() {
        return fail(format!("a tensor reads past the end of storage {}", t.storage.key));
    }
    let (start, len) = ((t.offset * elem) as usize, (numel * elem) as usize);
    // A tensor that is its whole storage (what the host and `state_dict()` write) takes its bytes as read.
    let data = if start == 0 && len == bytes.len() { bytes.into() } else { bytes[start..start + len].into() };
    Ok(TensorValue { dtype: t.storage.dtype, shape: t.shape.clone(), data })
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
}
