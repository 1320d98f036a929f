//! `neuron-host checkpoint import-hf` and `export-hf`: GPT-2 weights in and out in Hugging Face's
//! layout (`model.safetensors` + `config.json`), so a miner can start from published weights and
//! hand what it trained to `transformers`, vLLM and the rest.
//!
//! Import builds the model through the plugin exactly as a miner with the same configuration
//! builds it, loads the weights through the plugin's own state checks and writes a miner
//! checkpoint at step 0 (fresh optimizer, the configured schedule), which a miner, `train`,
//! `eval` and `sample` then resume from. Export reads a miner checkpoint (no plugin, no GPU).

use std::path::{Path, PathBuf};

use neuron_plugin_api::{check_state, StateGroup};

use crate::{
    checkpoint::{
        hf_gpt2::{self, Gpt2Shape},
        writer::{check_destination, save_atomically},
    },
    config::Config,
    error::{Error, Result},
    jobs::train::{read_checkpoint, ModelSource},
    runtime::{
        checkpoints::{MinerCheckpoint, PluginIdentity},
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

/// Exports a miner checkpoint's GPT-2 model to `out` as `model.safetensors` and `config.json`.
/// Returns the number of tensors written.
pub fn export_hf(checkpoint: &Path, out: &Path) -> Result<usize> {
    let ckpt = read_checkpoint(checkpoint)?;
    let shape = Gpt2Shape::from_plugin_config(&ckpt.plugin.config)
        .map_err(|e| Error::Config(format!("{}: {e}", checkpoint.display())))?;
    let tensors = hf_gpt2::from_plugin_tensors(&ckpt.model)
        .map_err(|e| Error::Config(format!("{}: {e}", checkpoint.display())))?;
    std::fs::create_dir_all(out).map_err(|e| Error::Config(format!("cannot create {}: {e}", out.display())))?;
    let (weights, json) = (out.join("model.safetensors"), out.join("config.json"));
    for f in [&weights, &json] {
        if f.exists() {
            return Err(Error::Config(format!(
                "{} already exists: exporting would replace it; give another --out",
                f.display()
            )));
        }
    }
    hf_gpt2::write_safetensors(&tensors, &weights).map_err(Error::Config)?;
    crate::fsutil::write_atomically(&json, shape.to_config_json().as_bytes())
        .map_err(|e| Error::Config(format!("cannot write {}: {e}", json.display())))?;
    Ok(tensors.len())
}
