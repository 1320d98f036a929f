//! Datasets: a sequence of token ids, from text, from a token file, or built in.

use std::{
    io::Read,
    path::{Path, PathBuf},
};

use super::{corpus, Tokenizer};
use crate::{Error, Result};

/// Token ids in memory, two bytes each (every supported vocabulary fits in 16 bits, as nanoGPT's
/// files assume), with where they came from for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dataset {
    source: String,
    tokens: Vec<u16>,
}

impl Dataset {
    /// Token ids as they are. Errors if an id does not fit 16 bits.
    pub fn from_tokens(source: &str, ids: &[u32]) -> Result<Self> {
        let tokens = ids
            .iter()
            .map(|&id| {
                u16::try_from(id).map_err(|_| Error::Data(format!("{source}: token id {id} does not fit 16 bits")))
            })
            .collect::<Result<_>>()?;
        Ok(Self { source: source.to_string(), tokens })
    }

    /// Text tokenized with `tokenizer`.
    pub fn from_text(source: &str, text: &str, tokenizer: Tokenizer) -> Result<Self> {
        Self::from_tokens(source, &tokenizer.encode(text))
    }

    /// A UTF-8 text file, tokenized with `tokenizer`.
    pub fn from_text_file(path: &Path, tokenizer: Tokenizer) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| io(path, source))?;
        Self::from_text(&path.display().to_string(), &text, tokenizer)
    }

    /// A nanoGPT-style token file: little-endian uint16 ids, nothing else (`train.bin`).
    pub fn from_token_file(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|source| io(path, source))?;
        let len = file.metadata().map_err(|source| io(path, source))?.len();
        if len % 2 != 0 {
            return Err(Error::Data(format!(
                "{}: {len} bytes is not a whole number of uint16 token ids; is it a nanoGPT .bin token file?",
                path.display()
            )));
        }
        let mut tokens = Vec::with_capacity((len / 2) as usize);
        let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
        let mut chunk = vec![0u8; 1 << 20];
        loop {
            let n = read_full(&mut reader, &mut chunk).map_err(|source| io(path, source))?;
            tokens.extend(chunk[..n].chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]])));
            if n < chunk.len() {
                break;
            }
        }
        Ok(Self { source: path.display().to_string(), tokens })
    }

    /// A text file (`.txt`, or any extension but `.bin`) or a token file (`.bin`).
    pub fn from_file(path: &Path, tokenizer: Tokenizer) -> Result<Self> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("bin") => Self::from_token_file(path),
            _ => Self::from_text_file(path, tokenizer),
        }
    }

    /// The built-in corpus ([`corpus::generate`]) of about `bytes` bytes, tokenized.
    pub fn builtin(seed: u64, bytes: usize, tokenizer: Tokenizer) -> Result<Self> {
        Self::from_text(&format!("built-in corpus (seed {seed})"), &corpus::generate(seed, bytes), tokenizer)
    }

    pub fn source(&self) -> &str {
        &self.source
    }
    pub fn len(&self) -> usize {
        self.tokens.len()
    }
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
    pub fn token(&self, i: usize) -> u32 {
        u32::from(self.tokens[i])
    }
    /// Ids `range` as u32, as models take them.
    pub fn slice(&self, start: usize, len: usize) -> Vec<u32> {
        self.tokens[start..start + len].iter().map(|&t| u32::from(t)).collect()
    }

    /// Checks that every id is below `vocab` (a model's vocabulary size), naming the first that is not.
    pub fn check_vocab(&self, vocab: u32) -> Result<()> {
        match self.tokens.iter().position(|&t| u32::from(t) >= vocab) {
            Some(i) => Err(Error::Data(format!(
                "{}: token {i} has id {}, outside the model's vocabulary of {vocab}; tokenize the data with the model's tokenizer",
                self.source, self.tokens[i]
            ))),
            None => Ok(()),
        }
    }

    /// Splits off the last `fraction` of the tokens (nanoGPT's train/val split): (head, tail).
    pub fn split(&self, fraction: f64) -> (Self, Self) {
        let at = self.len() - ((self.len() as f64 * fraction.clamp(0.0, 1.0)) as usize).min(self.len());
        let part = |name: &str, t: &[u16]| Self { source: format!("{} ({name})", self.source), tokens: t.to_vec() };
        (part("train", &self.tokens[..at]), part("val", &self.tokens[at..]))
    }

    /// Writes the ids as a nanoGPT token file.
    pub fn write_token_file(&self, path: &Path) -> Result<()> {
        let bytes: Vec<u8> = self.tokens.iter().flat_map(|t| t.to_le_bytes()).collect();
        std::fs::write(path, bytes).map_err(|source| io(path, source))
    }
}

fn io(path: &Path, source: std::io::Error) -> Error {
    Error::Io { path: PathBuf::from(path), source }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_files_are_little_endian_uint16_and_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("train.bin");
        std::fs::write(&path, [1u8, 0, 0x51, 0xC4, 255, 255]).unwrap();
        let d = Dataset::from_file(&path, Tokenizer::Bytes).unwrap();
        assert_eq!(d.slice(0, 3), [1, 50257, 65535]);
        assert!(d.check_vocab(50257).unwrap_err().to_string().contains("token 1 has id 50257"));
        let copy = dir.path().join("copy.bin");
        d.write_token_file(&copy).unwrap();
        assert_eq!(Dataset::from_token_file(&copy).unwrap().slice(0, 3), d.slice(0, 3));
        std::fs::write(&path, [1u8, 0, 7]).unwrap();
        let err = Dataset::from_token_file(&path).unwrap_err().to_string();
        assert!(err.contains("3 bytes is not a whole number of uint16 token ids"), "{err}");
        assert!(!err.contains('\n'));
    }

    #[test]
    fn text_files_are_tokenized_and_missing_files_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("input.txt");
        std::fs::write(&path, "Hello world").unwrap();
        assert_eq!(Dataset::from_file(&path, Tokenizer::Gpt2).unwrap().slice(0, 2), [15496, 995]);
        assert_eq!(Dataset::from_file(&path, Tokenizer::Bytes).unwrap().len(), 11);
        let err = Dataset::from_file(&dir.path().join("nope.txt"), Tokenizer::Bytes).unwrap_err().to_string();
        assert!(err.contains("nope.txt"), "{err}");
        let (train, val) = Dataset::from_file(&path, Tokenizer::Bytes).unwrap().split(0.1);
        assert_eq!((train.len(), val.len()), (10, 1));
    }
}
