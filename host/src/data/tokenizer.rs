//! Tokenizers: bytes, and GPT-2's BPE through tiktoken-rs (its ranks are compiled into the
//! binary: no download at run time).

use crate::{Error, Result};

/// A tokenizer, named as models name theirs in `ModelDescription::tokenizer`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Tokenizer {
    /// Each byte of UTF-8 text is one token (vocabulary 256).
    Bytes,
    /// GPT-2's byte-level BPE, `r50k_base` (vocabulary 50257).
    Gpt2,
}

impl Tokenizer {
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "bytes" => Ok(Self::Bytes),
            "gpt2" | "r50k_base" => Ok(Self::Gpt2),
            other => Err(Error::Data(format!("unknown tokenizer `{other}`; use \"bytes\" or \"gpt2\""))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Bytes => "bytes",
            Self::Gpt2 => "gpt2",
        }
    }

    /// Number of distinct token ids.
    pub fn vocab_size(self) -> u32 {
        match self {
            Self::Bytes => 256,
            Self::Gpt2 => 50257,
        }
    }

    /// Token ids of `text` (special tokens such as `<|endoftext|>` are encoded as plain text).
    pub fn encode(self, text: &str) -> Vec<u32> {
        match self {
            Self::Bytes => text.bytes().map(u32::from).collect(),
            Self::Gpt2 => tiktoken_rs::r50k_base_singleton().encode_ordinary(text),
        }
    }

    /// Text of token ids; byte sequences that are not UTF-8 become U+FFFD.
    pub fn decode(self, ids: &[u32]) -> Result<String> {
        if let Some(bad) = ids.iter().find(|&&id| id >= self.vocab_size()) {
            return Err(Error::Data(format!(
                "token id {bad} is outside the {} tokenizer's vocabulary of {}",
                self.name(),
                self.vocab_size()
            )));
        }
        let bytes = match self {
            Self::Bytes => ids.iter().map(|&id| id as u8).collect(),
            Self::Gpt2 => tiktoken_rs::r50k_base_singleton()
                .decode_bytes(ids)
                .map_err(|e| Error::Data(format!("cannot decode GPT-2 tokens: {e}")))?,
        };
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_every_byte_value() {
        let t = Tokenizer::from_name("bytes").unwrap();
        assert_eq!(t.encode("hé"), [104, 195, 169]);
        assert_eq!(t.decode(&[104, 195, 169]).unwrap(), "hé");
        assert!(t.decode(&[256]).unwrap_err().to_string().contains("token id 256 is outside"));
    }

    #[test]
    fn gpt2_bpe_gives_gpt2s_ids_offline() {
        let t = Tokenizer::from_name("gpt2").unwrap();
        // GPT-2's own ids for these strings.
        assert_eq!(t.encode("Hello world"), [15496, 995]);
        let special = t.encode("<|endoftext|>");
        assert!(special.len() > 1 && !special.contains(&50256), "special tokens are plain text: {special:?}");
        let text = "The miner trains; the validator scores. Ünïcödé too.";
        assert_eq!(t.decode(&t.encode(text)).unwrap(), text);
        assert_eq!(t.vocab_size(), 50257);
        assert!(Tokenizer::from_name("gpt4").unwrap_err().to_string().contains("use \"bytes\" or \"gpt2\""));
    }
}
