//! GPT-2's tokenizer as Hugging Face's files (`vocab.json`, `merges.txt`,
//! `tokenizer_config.json`), written beside an exported model so that `transformers`
//! (`AutoTokenizer.from_pretrained(dir)`) and servers that read a model directory (vLLM) find the
//! tokenizer the model was trained with, offline.
//!
//! Derived from the r50k ranks the host itself encodes with (tiktoken-rs; compiled in), not from
//! any downloaded file. GPT-2's ids are r50k's ranks. `vocab.json` maps each token's bytes,
//! written with GPT-2's byte-to-character table, to its id. `merges.txt` lists, in rank order,
//! the pair of tokens each multi-byte token is made from: the last merge that byte-pair encoding
//! performs when it encodes the token's own bytes with only the lower-ranked tokens, which is
//! the merge that created it. Applying the merges in that order reproduces r50k's encoding;
//! `tests/hf_gpt2.rs` checks it against `transformers` on text.

use std::collections::HashMap;

use serde_json::json;

/// The end-of-text token: GPT-2's only special token, the last id.
pub const END_OF_TEXT: &str = "<|endoftext|>";

/// The three files, as text.
pub struct TokenizerFiles {
    pub vocab_json: String,
    pub merges_txt: String,
    pub tokenizer_config_json: String,
}

impl TokenizerFiles {
    /// `(file name, contents)` for each file, in the order they are written.
    pub fn named(&self) -> [(&'static str, &str); 3] {
        [
            ("vocab.json", &self.vocab_json),
            ("merges.txt", &self.merges_txt),
            ("tokenizer_config.json", &self.tokenizer_config_json),
        ]
    }
}

/// GPT-2's table from bytes to printable characters: the printable Latin-1 bytes stand for
/// themselves, and every other byte for the next unused character from U+0100 on, in byte order.
pub fn byte_chars() -> [char; 256] {
    let printable = |b: u32| (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b);
    let mut table = ['\0'; 256];
    let mut next = 0x100u32;
    for b in 0..256u32 {
        table[b as usize] = if printable(b) {
            char::from_u32(b).expect("Latin-1")
        } else {
            let c = char::from_u32(next).expect("below the surrogates");
            next += 1;
            c
        };
    }
    table
}

/// Every token's bytes, by id (r50k's ranks; the special token excluded).
fn r50k_tokens() -> Vec<Vec<u8>> {
    let bpe = tiktoken_rs::r50k_base_singleton();
    (0..crate::checkpoint::hf_gpt2::GPT2_VOCAB - 1)
        .map(|id| bpe.decode_bytes(&[id]).expect("every id below 50256 is a token"))
        .collect()
}

/// The two tokens that byte-pair encoding joins last when it encodes `token` with only the
/// tokens ranked below `rank`: the merge that made it.
fn last_merge<'a>(token: &'a [u8], rank: u32, ranks: &HashMap<&[u8], u32>) -> Option<(&'a [u8], &'a [u8])> {
    // Part boundaries into `token`; parts are token[bounds[i]..bounds[i + 1]].
    let mut bounds: Vec<usize> = (0..=token.len()).collect();
    while bounds.len() > 3 {
        let best = (0..bounds.len() - 2)
            .filter_map(|i| ranks.get(&token[bounds[i]..bounds[i + 2]]).filter(|&&r| r < rank).map(|&r| (r, i)))
            .min()?;
        bounds.remove(best.1 + 1);
    }
    (bounds.len() == 3).then(|| (&token[..bounds[1]], &token[bounds[1]..]))
}

/// GPT-2's tokenizer files, for a model whose context is `model_max_length` tokens.
pub fn gpt2_files(model_max_length: u32) -> Result<TokenizerFiles, String> {
    let tokens = r50k_tokens();
    let chars = byte_chars();
    let text = |bytes: &[u8]| bytes.iter().map(|&b| chars[b as usize]).collect::<String>();
    let ranks: HashMap<&[u8], u32> = tokens.iter().enumerate().map(|(id, t)| (t.as_slice(), id as u32)).collect();

    let mut vocab = serde_json::Map::new();
    for (id, token) in tokens.iter().enumerate() {
        vocab.insert(text(token), json!(id));
    }
    vocab.insert(END_OF_TEXT.into(), json!(tokens.len()));

    let mut merges = String::from("#version: 0.2\n");
    for (id, token) in tokens.iter().enumerate().filter(|(_, t)| t.len() > 1) {
        let (a, b) = last_merge(token, id as u32, &ranks)
            .ok_or_else(|| format!("token {id} cannot be built from lower-ranked tokens"))?;
        merges.push_str(&format!("{} {}\n", text(a), text(b)));
    }

    let config = json!({
        "tokenizer_class": "GPT2Tokenizer",
        "model_max_length": model_max_length,
        "add_prefix_space": false,
        "bos_token": END_OF_TEXT,
        "eos_token": END_OF_TEXT,
        "unk_token": END_OF_TEXT,
        "clean_up_tokenization_spaces": false,
    });
    Ok(TokenizerFiles {
        vocab_json: serde_json::to_string(&serde_json::Value::Object(vocab)).expect("JSON") + "\n",
        merges_txt: merges,
        tokenizer_config_json: serde_json::to_string_pretty(&config).expect("JSON") + "\n",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_byte_table_is_a_bijection_onto_printable_characters() {
        let t = byte_chars();
        let mut seen: Vec<char> = t.to_vec();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 256);
        assert_eq!((t[b'!' as usize], t[b' ' as usize], t[b'\n' as usize], t[0]), ('!', 'Ġ', 'Ċ', 'Ā'));
        assert!(t.iter().all(|c| !c.is_whitespace() && !c.is_control()));
    }

    #[test]
    fn every_token_has_one_merge_and_the_files_are_complete() {
        let files = gpt2_files(1024).unwrap();
        let vocab: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&files.vocab_json).unwrap();
        assert_eq!(vocab.len(), 50257);
        assert_eq!(vocab["<|endoftext|>"], 50256);
        // GPT-2's first ids: the printable bytes in order, then " t" (id 220 is a lone space).
        assert_eq!((vocab["!"].as_u64(), vocab["Ġ"].as_u64(), vocab["Ġthe"].as_u64()), (Some(0), Some(220), Some(262)));
        let lines: Vec<&str> = files.merges_txt.lines().collect();
        assert_eq!(lines[0], "#version: 0.2");
        // 50000 merges: every token above the 256 bytes, in id order, each made of two tokens.
        assert_eq!(lines.len(), 1 + 50000);
        assert_eq!(lines[1], "Ġ t", "GPT-2's first merge");
        for (i, line) in lines[1..].iter().enumerate() {
            let (a, b) = line.split_once(' ').unwrap();
            let (ia, ib) = (vocab[a].as_u64().unwrap(), vocab[b].as_u64().unwrap());
            let made = vocab[&format!("{a}{b}")].as_u64().unwrap();
            assert_eq!(made, 256 + i as u64, "merge {i} makes the token of the next id");
            assert!(ia < made && ib < made, "merge {i} joins lower-ranked tokens");
        }
        let config: serde_json::Value = serde_json::from_str(&files.tokenizer_config_json).unwrap();
        assert_eq!(config["model_max_length"], 1024);
    }
}
