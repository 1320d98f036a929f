//! `neuron-host checkpoint import-hf` and `export-hf`: GPT-2 weights in and out in Hugging Face's
//! layout (`model.safetensors` + `config.json`), so a miner can start from published weights and
//! hand what it trained to `transformers`, vLLM and the rest.
//!
//! Import builds the model through the plugin exactly as a miner with the same configuration
//! builds it, loads the weights through the plugin's own state checks and writes a miner
//! checkpoint at step 0 (fresh optimizer, the configured schedule), which a miner, `train`,
//! `eval` and `sample` then resume from. Export reads a miner's checkpoint or a validator's own
//! model (no plugin, no GPU).

use std::path::{Path, PathBuf};

use neuron_plugin_api::{check_state, StateGroup, Tensor};

use crate::{
    checkpoint::{
        hf_gpt2::{self, Gpt2Shape},
        hf_tokenizer,
        writer::{check_destination, save_atomically},
    },
    config::Config,
    error::{Error, Result},
    jobs::train::{load_checkpoint, ModelSource},
    runtime::{
        checkpoints::{MinerCheckpoint, PluginIdentity, ValidatorCheckpoint},
        training::fresh_data_position,
    },
};

/// The weights file and the `config.json` beside it, from a directory or a `.safetensors` file.
fn hf_files(src: &Path) -> Result<(PathBuf, PathBuf)> {
    let (weights, dir) = if src.is_dir() {
        (src.join("model.safetensors"), src.to_path_buf())
    } else {
        (src.to_path_buf(), src.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf))
    };
    if !weights.is_file() {
        return Err(Error::Config(format!(
            "{} does not exist: give a directory holding model.safetensors and config.json (as save_pretrained writes them), or the .safetensors file",
            weights.display()
        )));
    }
    let config = dir.join("config.json");
    if !config.is_file() {
        return Err(Error::Config(format!(
            "{} does not exist: the model's shape is read from the config.json beside its weights",
            config.display()
        )));
    }
    Ok((weights, config))
}

/// What [`import_hf`] did.
#[derive(Debug)]
pub struct Imported {
    pub tensors: usize,
    pub parameters: u64,
    /// The `[plugin.<name>]` section a miner must run with to resume from the checkpoint.
    pub section: String,
}

/// Imports Hugging Face GPT-2 weights (`src`: a directory or a `.safetensors` file) into a
/// miner checkpoint at `out`, the model built from `config` with the shape of `config.json`.
pub fn import_hf(src: &Path, out: &Path, config: &Config, seed: u64) -> Result<Imported> {
    let (weights, json) = hf_files(src)?;
    if out.exists() {
        return Err(Error::Config(format!(
            "{} already exists: importing would replace it; move it away or give another --out",
            out.display()
        )));
    }
    check_destination(out).map_err(Error::Config)?;
    let text =
        std::fs::read_to_string(&json).map_err(|e| Error::Config(format!("cannot read {}: {e}", json.display())))?;
    let shape = Gpt2Shape::from_config_json(&text).map_err(|e| Error::Config(format!("{}: {e}", json.display())))?;
    let tensors = {
        let bytes =
            std::fs::read(&weights).map_err(|e| Error::Config(format!("cannot read {}: {e}", weights.display())))?;
        let hf = hf_gpt2::read_safetensors(&bytes, &weights).map_err(Error::Config)?;
        hf_gpt2::to_plugin_tensors(hf, &shape).map_err(|e| Error::Config(format!("{}: {e}", weights.display())))?
    };

    let source = ModelSource { config: config.clone(), preset: None, seed, section: None };
    let mut built = source.build_with(&shape.plugin_keys())?;
    let schema = built.model.state_schema(StateGroup::MODEL)?;
    check_state(&schema, &tensors).map_err(|e| {
        Error::Config(format!(
            "{}: the weights do not fit plugin {}'s model of this shape: {}",
            weights.display(),
            built.plugins.model().name(),
            e.message
        ))
    })?;
    built.model.import_state(StateGroup::MODEL, &tensors)?;
    let identity = PluginIdentity::of(&built.model, &built.plugin_version)?;
    let value = MinerCheckpoint::capture(
        &mut built.model,
        &identity,
        &config.miner.schedule(),
        0,
        fresh_data_position(config.data.seed),
    )?;
    save_atomically(out, &value, 0).map_err(|e| Error::Config(format!("cannot write {}: {e}", out.display())))?;
    Ok(Imported { tensors: tensors.len(), parameters: built.parameters, section: identity.config })
}

/// The model a miner's or a validator's checkpoint holds: its plugin identity and weights.
fn checkpoint_model(path: &Path) -> Result<(PluginIdentity, Vec<Tensor>)> {
    let value = load_checkpoint(path)?;
    let named = |e: String| Error::Config(format!("{}: {e}", path.display()));
    match value.get("role").and_then(|r| r.as_str()) {
        Some("validator") => {
            let v = ValidatorCheckpoint::from_owned(value).map_err(named)?;
            let m = v.model.ok_or_else(|| {
                named("this validator's checkpoint holds no model of its own (it ran without one)".into())
            })?;
            Ok((m.plugin, m.model))
        }
        _ => MinerCheckpoint::from_owned(value).map(|c| (c.plugin, c.model)).map_err(named),
    }
}

/// What [`export_hf`] wrote.
#[derive(Debug)]
pub struct Exported {
    pub tensors: usize,
    /// The tokenizer files written beside the model (GPT-2's, for a `tokenizer = "gpt2"`
    /// model); empty for a byte-level model, whose token ids are the text's UTF-8 bytes.
    pub tokenizer_files: Vec<&'static str>,
}

/// Exports the GPT-2 model of a miner's or a validator's checkpoint to `out` as
/// `model.safetensors` and `config.json`, and, for a model that reads GPT-2's BPE, the tokenizer
/// as `vocab.json`, `merges.txt` and `tokenizer_config.json`. Nothing is replaced: an existing
/// file of those names is refused before anything is written.
pub fn export_hf(checkpoint: &Path, out: &Path) -> Result<Exported> {
    let (plugin, model) = checkpoint_model(checkpoint)?;
    let named = |e: String| Error::Config(format!("{}: {e}", checkpoint.display()));
    let shape = Gpt2Shape::from_plugin_config(&plugin.config).map_err(named)?;
    let tensors = hf_gpt2::from_plugin_tensors(&model).map_err(named)?;
    let tokenizer = match hf_gpt2::tokenizer_of_plugin_config(&plugin.config).map_err(named)?.as_str() {
        "gpt2" => Some(hf_tokenizer::gpt2_files(shape.n_positions).map_err(named)?),
        _ => None,
    };
    let (weights, json) = (out.join("model.safetensors"), out.join("config.json"));
    let tokenizer_paths: Vec<(&'static str, &str)> = tokenizer.as_ref().map_or(Vec::new(), |t| t.named().to_vec());
    for f in [weights.clone(), json.clone()].into_iter().chain(tokenizer_paths.iter().map(|(n, _)| out.join(n))) {
        if f.exists() {
            return Err(Error::Config(format!(
                "{} already exists: exporting would replace it; give another --out",
                f.display()
            )));
        }
    }
    std::fs::create_dir_all(out).map_err(|e| Error::Config(format!("cannot create {}: {e}", out.display())))?;
    hf_gpt2::write_safetensors(&tensors, &weights).map_err(Error::Config)?;
    let write = |path: &Path, text: &str| {
        crate::fsutil::write_atomically(path, text.as_bytes())
            .map_err(|e| Error::Config(format!("cannot write {}: {e}", path.display())))
    };
    write(&json, &shape.to_config_json())?;
    for (name, text) in &tokenizer_paths {
        write(&out.join(name), text)?;
    }
    Ok(Exported { tensors: tensors.len(), tokenizer_files: tokenizer_paths.iter().map(|(n, _)| *n).collect() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        chain::AccountId,
        data::SamplerState,
        runtime::checkpoints::{DataPosition, ModelState},
        scores::UidStats,
    };

    /// The tiny preset's tensors with recognisable values, as the gpt plugin names them.
    fn tiny_model() -> (PluginIdentity, Vec<Tensor>) {
        let shape = Gpt2Shape::from_config_json(
            r#"{"n_layer": 2, "n_head": 2, "n_embd": 32, "n_positions": 16, "vocab_size": 256}"#,
        )
        .unwrap();
        let plugin = PluginIdentity {
            name: "gpt".into(),
            version: "0.1.0".into(),
            architecture: "gpt2".into(),
            config: "preset = \"tiny\"\nn_layer = 2\nn_head = 2\nn_embd = 32\nblock_size = 16\nvocab_size = 256\n"
                .into(),
        };
        (plugin, hf_gpt2::to_plugin_tensors(hf_gpt2::tests::hf_tensors(&shape, ""), &shape).unwrap())
    }

    /// A validator's checkpoint with (or without) a model of its own.
    fn validator(model: Option<ModelState>) -> ValidatorCheckpoint {
        ValidatorCheckpoint {
            model,
            global_step: 7,
            block: 100,
            epoch: 3,
            hotkeys: vec![AccountId::from_name("a")],
            scores: vec![1.0],
            weights: vec![1.0],
            stats: vec![UidStats::default()],
            scorer_name: "scoring-loss".into(),
            scorer_state: vec![],
            data: DataPosition { sampler: SamplerState { seed: 1, step: 0 }, noise_state: 1 },
        }
    }

    #[test]
    fn a_validators_own_model_exports_and_one_without_a_model_is_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let (plugin, model) = tiny_model();
        let with = dir.path().join("validator.pth");
        let state = ModelState { plugin, model: model.clone(), optimizer: vec![] };
        save_atomically(&with, &validator(Some(state)).to_value(), 0).unwrap();
        let out = dir.path().join("hf");
        let done = export_hf(&with, &out).unwrap();
        assert_eq!(
            (done.tensors, done.tokenizer_files.len()),
            (model.len(), 0),
            "a byte-level model has no tokenizer files"
        );
        let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
        let back = hf_gpt2::read_safetensors(&bytes, &out).unwrap();
        let shape = Gpt2Shape::from_config_json(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
        // safetensors stores tensors sorted; compare by name.
        let by_name = |mut v: Vec<Tensor>| {
            v.sort_by(|a, b| a.name.cmp(&b.name));
            v
        };
        let back = by_name(hf_gpt2::to_plugin_tensors(back, &shape).unwrap());
        assert!(back == by_name(model.clone()), "the same weights come back");

        let without = dir.path().join("bare.pth");
        save_atomically(&without, &validator(None).to_value(), 0).unwrap();
        let e = export_hf(&without, &dir.path().join("hf2")).unwrap_err().to_string();
        assert!(e.contains("holds no model of its own") && !e.contains('\n'), "{e}");
        let e = export_hf(&with, &out).unwrap_err().to_string();
        assert!(e.contains("already exists"), "{e}");
    }

    #[test]
    fn a_gpt2_tokenizer_model_exports_its_tokenizer_and_an_existing_tokenizer_file_is_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let shape = Gpt2Shape { n_layer: 1, n_head: 2, n_embd: 8, n_positions: 16, vocab_size: 50257 };
        let plugin = PluginIdentity {
            name: "gpt".into(),
            version: "0.1.0".into(),
            architecture: "gpt2".into(),
            config: "preset = \"gpt2\"\nn_layer = 1\nn_head = 2\nn_embd = 8\nblock_size = 16\nvocab_size = 50257\ntokenizer = \"gpt2\"\n".into(),
        };
        let model = hf_gpt2::to_plugin_tensors(hf_gpt2::tests::hf_tensors(&shape, ""), &shape).unwrap();
        let ckpt = dir.path().join("validator.pth");
        let state = ModelState { plugin, model, optimizer: vec![] };
        save_atomically(&ckpt, &validator(Some(state)).to_value(), 0).unwrap();

        let out = dir.path().join("hf");
        let done = export_hf(&ckpt, &out).unwrap();
        assert_eq!(done.tokenizer_files, ["vocab.json", "merges.txt", "tokenizer_config.json"]);
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("tokenizer_config.json")).unwrap()).unwrap();
        assert_eq!(config["model_max_length"], 16, "the model's context");

        // Another export into a folder that already has a vocab.json writes nothing.
        let other = dir.path().join("other");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join("vocab.json"), "mine").unwrap();
        let e = export_hf(&ckpt, &other).unwrap_err().to_string();
        assert!(e.contains("vocab.json already exists"), "{e}");
        assert!(
            !other.join("model.safetensors").exists()
                && std::fs::read_to_string(other.join("vocab.json")).unwrap() == "mine"
        );
    }
}
