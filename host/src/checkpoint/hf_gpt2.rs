//! GPT-2 in Hugging Face's layout and in the gpt plugin's: the one place that knows how the two
//! name, shape and store the same tensors.
//!
//! Hugging Face (`transformers`' `GPT2LMHeadModel.save_pretrained`): `model.safetensors` with
//! `transformer.wte.weight`, `transformer.h.N.attn.c_attn.weight`, ... (the `transformer.`
//! prefix absent in files saved from a bare `GPT2Model`, as the hub's `gpt2` is), the four
//! projection matrices stored as `Conv1D` weights, `[in, out]`; the causal-mask buffers
//! `attn.bias`/`attn.masked_bias` in older files; `lm_head.weight` tied to `wte` (left out, or
//! equal to it); and `config.json` with the shape.
//!
//! The gpt plugin (nanoGPT's names): the same names with the `transformer.` prefix, projection
//! matrices as `nn.Linear` weights, `[out, in]`, and the LM head always tied.

use std::{collections::HashMap, path::Path};

use neuron_plugin_api::Tensor;
use safetensors::{tensor::TensorView, Dtype, SafeTensors};
use serde_json::{json, Value as Json};

/// The shape of a GPT-2 model, as `config.json` gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gpt2Shape {
    pub n_layer: u32,
    pub n_head: u32,
    pub n_embd: u32,
    /// `n_positions`: the context.
    pub n_positions: u32,
    pub vocab_size: u32,
}

/// GPT-2's published sizes, by the gpt plugin's preset names where it has one.
const PRESET_SHAPES: &[(&str, Gpt2Shape)] = &[
    ("tiny", Gpt2Shape { n_layer: 2, n_head: 2, n_embd: 32, n_positions: 16, vocab_size: 256 }),
    ("nano", Gpt2Shape { n_layer: 4, n_head: 4, n_embd: 128, n_positions: 64, vocab_size: 256 }),
    ("gpt2", Gpt2Shape { n_layer: 12, n_head: 12, n_embd: 768, n_positions: 1024, vocab_size: 50257 }),
    ("gpt2-medium", Gpt2Shape { n_layer: 24, n_head: 16, n_embd: 1024, n_positions: 1024, vocab_size: 50257 }),
];

/// The GPT-2 BPE vocabulary's size: a model at least this wide reads GPT-2 tokens.
pub const GPT2_VOCAB: u32 = 50257;

impl Gpt2Shape {
    /// Reads `config.json`, refusing what the gpt plugin would compute differently, in one line.
    pub fn from_config_json(text: &str) -> Result<Self, String> {
        let cfg: Json = serde_json::from_str(text).map_err(|e| format!("config.json is not JSON: {e}"))?;
        let int = |keys: &[&str]| -> Result<u32, String> {
            keys.iter()
                .find_map(|k| cfg.get(*k).filter(|v| !v.is_null()))
                .ok_or_else(|| format!("config.json has no `{}`", keys[0]))?
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| format!("config.json's `{}` is not a whole number", keys[0]))
        };
        if let Some(t) = cfg.get("model_type").and_then(Json::as_str).filter(|t| *t != "gpt2") {
            return Err(format!(
                "config.json describes a `{t}` model; only GPT-2 (model_type \"gpt2\") can be imported"
            ));
        }
        let shape = Self {
            n_layer: int(&["n_layer", "num_hidden_layers"])?,
            n_head: int(&["n_head", "num_attention_heads"])?,
            n_embd: int(&["n_embd", "hidden_size"])?,
            n_positions: int(&["n_positions", "n_ctx", "max_position_embeddings"])?,
            vocab_size: int(&["vocab_size"])?,
        };
        let refuse = |what: String| {
            Err(format!(
                "config.json: {what}; the gpt plugin computes GPT-2 exactly as published and cannot represent it"
            ))
        };
        let s = |k: &str| cfg.get(k).and_then(Json::as_str);
        let b = |k: &str| cfg.get(k).and_then(Json::as_bool);
        match s("activation_function") {
            None | Some("gelu_new" | "gelu_pytorch_tanh") => {}
            Some(other) => {
                return refuse(format!("activation_function is \"{other}\", not \"gelu_new\" (GELU, tanh form)"))
            }
        }
        if let Some(eps) = cfg.get("layer_norm_epsilon").and_then(Json::as_f64) {
            if (eps - 1e-5).abs() > 1e-12 {
                return refuse(format!("layer_norm_epsilon is {eps}, not 1e-5"));
            }
        }
        if let Some(inner) = cfg.get("n_inner").and_then(Json::as_u64) {
            if inner != 4 * u64::from(shape.n_embd) {
                return refuse(format!("n_inner is {inner}, not 4 x n_embd ({})", 4 * shape.n_embd));
            }
        }
        for (key, want) in [
            ("tie_word_embeddings", true),
            ("scale_attn_weights", true),
            ("scale_attn_by_inverse_layer_idx", false),
            ("add_cross_attention", false),
        ] {
            if let Some(v) = b(key).filter(|v| *v != want) {
                return refuse(format!("{key} is {v}"));
            }
        }
        if shape.n_layer == 0 || shape.n_head == 0 || shape.n_embd == 0 || shape.n_positions == 0 {
            return Err("config.json: n_layer, n_head, n_embd and n_positions must all be at least 1".into());
        }
        Ok(shape)
    }

    /// `config.json` for `transformers` (`GPT2LMHeadModel`), GPT-2's defaults for the rest.
    pub fn to_config_json(&self) -> String {
        let value = json!({
            "architectures": ["GPT2LMHeadModel"],
            "model_type": "gpt2",
            "n_layer": self.n_layer,
            "n_head": self.n_head,
            "n_embd": self.n_embd,
            "n_positions": self.n_positions,
            "n_ctx": self.n_positions,
            "vocab_size": self.vocab_size,
            "n_inner": null,
            "activation_function": "gelu_new",
            "layer_norm_epsilon": 1e-5,
            "initializer_range": 0.02,
            "resid_pdrop": 0.0,
            "embd_pdrop": 0.0,
            "attn_pdrop": 0.0,
            "scale_attn_weights": true,
            "scale_attn_by_inverse_layer_idx": false,
            "reorder_and_upcast_attn": false,
            "tie_word_embeddings": true,
            "use_cache": true,
            "bos_token_id": GPT2_VOCAB - 1,
            "eos_token_id": GPT2_VOCAB - 1,
            "torch_dtype": "float32",
        });
        serde_json::to_string_pretty(&value).expect("JSON") + "\n"
    }

    /// The gpt plugin's keys for this shape, set over whatever the configuration says: the
    /// preset of the same shape where there is one (so a miner configured with just that preset
    /// accepts the checkpoint), and every shape key.
    pub fn plugin_keys(&self) -> toml::Table {
        let mut t = toml::Table::new();
        let tokenizer = if self.vocab_size >= GPT2_VOCAB { "gpt2" } else { "bytes" };
        let preset = PRESET_SHAPES
            .iter()
            .find(|(_, s)| s == self)
            .map_or(if tokenizer == "gpt2" { "gpt2" } else { "nano" }, |(p, _)| *p);
        t.insert("preset".into(), toml::Value::String(preset.into()));
        for (k, v) in [
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
            ("n_embd", self.n_embd),
            ("block_size", self.n_positions),
            ("vocab_size", self.vocab_size),
        ] {
            t.insert(k.into(), toml::Value::Integer(i64::from(v)));
        }
        t.insert("tokenizer".into(), toml::Value::String(tokenizer.into()));
        t
    }

    /// GPT-2's weights in Hugging Face's layout: each name (without `transformer.`) and its
    /// shape, the projection matrices as `Conv1D` `[in, out]`, in `state_dict` order.
    pub fn hf_tensors(&self) -> Vec<(String, Vec<u64>)> {
        let (c, v, t) = (u64::from(self.n_embd), u64::from(self.vocab_size), u64::from(self.n_positions));
        let mut out = vec![("wte.weight".to_string(), vec![v, c]), ("wpe.weight".to_string(), vec![t, c])];
        for l in 0..self.n_layer {
            for (name, dims) in [
                ("ln_1.weight", vec![c]),
                ("ln_1.bias", vec![c]),
                ("attn.c_attn.weight", vec![c, 3 * c]),
                ("attn.c_attn.bias", vec![3 * c]),
                ("attn.c_proj.weight", vec![c, c]),
                ("attn.c_proj.bias", vec![c]),
                ("ln_2.weight", vec![c]),
                ("ln_2.bias", vec![c]),
                ("mlp.c_fc.weight", vec![c, 4 * c]),
                ("mlp.c_fc.bias", vec![4 * c]),
                ("mlp.c_proj.weight", vec![4 * c, c]),
                ("mlp.c_proj.bias", vec![c]),
            ] {
                out.push((format!("h.{l}.{name}"), dims));
            }
        }
        out.push(("ln_f.weight".to_string(), vec![c]));
        out.push(("ln_f.bias".to_string(), vec![c]));
        out
    }

    /// The shape a gpt plugin's effective configuration (a checkpoint's `plugin.config`) describes.
    /// (Its tokenizer: [`tokenizer_of_plugin_config`].)
    pub fn from_plugin_config(text: &str) -> Result<Self, String> {
        let t: toml::Table = text.parse().map_err(|e| format!("the checkpoint's model config is not TOML: {e}"))?;
        let int = |k: &str| -> Result<u32, String> {
            t.get(k)
                .and_then(toml::Value::as_integer)
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| format!("the checkpoint's model config has no `{k}`: is it a gpt plugin checkpoint?"))
        };
        Ok(Self {
            n_layer: int("n_layer")?,
            n_head: int("n_head")?,
            n_embd: int("n_embd")?,
            n_positions: int("block_size")?,
            vocab_size: int("vocab_size")?,
        })
    }
}

/// The tokenizer a gpt plugin's effective configuration names (`"gpt2"` or `"bytes"`); a
/// configuration without one is a byte-level model (the plugin's default for its small presets).
pub fn tokenizer_of_plugin_config(text: &str) -> Result<String, String> {
    let t: toml::Table = text.parse().map_err(|e| format!("the checkpoint's model config is not TOML: {e}"))?;
    match t.get("tokenizer") {
        None => Ok("bytes".into()),
        Some(toml::Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!("the checkpoint's model config has tokenizer = {other}, not a name")),
    }
}

/// The projection matrices `transformers` stores as `Conv1D` (`[in, out]`).
fn is_conv1d(name: &str) -> bool {
    ["attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight"]
        .iter()
        .any(|s| name.ends_with(s))
}

/// A tensor as f32 values in row-major order.
#[derive(Clone, Debug, PartialEq)]
pub struct F32Tensor {
    pub name: String,
    pub shape: Vec<u64>,
    pub values: Vec<f32>,
}

fn transpose(t: &F32Tensor) -> Result<F32Tensor, String> {
    let [rows, cols] = t.shape[..] else {
        return Err(format!("{} should be a matrix, it has shape {:?}", t.name, t.shape));
    };
    let (rows, cols) = (rows as usize, cols as usize);
    let mut out = vec![0f32; t.values.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = t.values[r * cols + c];
        }
    }
    Ok(F32Tensor { name: t.name.clone(), shape: vec![cols as u64, rows as u64], values: out })
}

fn to_f32(view: &TensorView<'_>, name: &str) -> Result<Vec<f32>, String> {
    let data = view.data();
    let words = |n: usize| data.chunks_exact(n);
    Ok(match view.dtype() {
        Dtype::F32 => words(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        Dtype::F16 => words(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        Dtype::BF16 => words(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        Dtype::F64 => words(8).map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32).collect(),
        other => {
            return Err(format!("{name} is stored as {other:?}; only F32, F16, BF16 and F64 weights can be imported"))
        }
    })
}

/// Reads a safetensors file's tensors as f32 (a damaged or foreign file is one line).
pub fn read_safetensors(bytes: &[u8], what: &Path) -> Result<Vec<F32Tensor>, String> {
    let st =
        SafeTensors::deserialize(bytes).map_err(|e| format!("{} is not a safetensors file: {e}", what.display()))?;
    let mut out = Vec::with_capacity(st.len());
    for (name, view) in st.iter() {
        out.push(F32Tensor {
            name: name.to_string(),
            shape: view.shape().iter().map(|&d| d as u64).collect(),
            values: to_f32(&view, name)?,
        });
    }
    Ok(out)
}

/// Hugging Face's GPT-2 tensors as the gpt plugin's model state: names, Conv1D weights
/// transposed, buffers dropped, the tied head checked. Every tensor is accounted for: one the
/// plugin does not have, or an untied head, is refused by name.
pub fn to_plugin_tensors(hf: Vec<F32Tensor>, shape: &Gpt2Shape) -> Result<Vec<Tensor>, String> {
    let expected: HashMap<String, Vec<u64>> = shape.hf_tensors().into_iter().collect();
    let mut wte: Option<Vec<f32>> = None;
    let mut head: Option<F32Tensor> = None;
    let mut out = Vec::new();
    for t in hf {
        let bare = t.name.strip_prefix("transformer.").unwrap_or(&t.name).to_string();
        if bare == "lm_head.weight" {
            head = Some(t);
            continue;
        }
        // The causal mask and its fill value: buffers, not weights.
        if bare.ends_with(".attn.bias") || bare.ends_with(".attn.masked_bias") {
            continue;
        }
        match expected.get(bare.as_str()) {
            None => return Err(format!("the file holds `{}`, which GPT-2 of this shape does not have", t.name)),
            Some(dims) if *dims != t.shape => {
                return Err(format!("`{}` has shape {:?}; GPT-2 of this shape has {dims:?}", t.name, t.shape))
            }
            Some(_) => {}
        }
        let t = F32Tensor { name: format!("transformer.{bare}"), ..t };
        let t = if is_conv1d(&t.name) { transpose(&t)? } else { t };
        if bare == "wte.weight" {
            wte = Some(t.values.clone());
        }
        out.push(Tensor::f32(t.name, &t.shape, &t.values));
    }
    if let Some(head) = head {
        if wte.as_deref() != Some(&head.values[..]) {
            return Err(
                "lm_head.weight differs from transformer.wte.weight: the gpt plugin ties its LM head to the token embedding and cannot hold an untied one"
                    .into(),
            );
        }
    }
    Ok(out)
}

/// The gpt plugin's model state as Hugging Face's GPT-2 tensors (Conv1D weights transposed, the
/// tied head left out as `save_pretrained` leaves it out).
pub fn from_plugin_tensors(tensors: &[Tensor]) -> Result<Vec<F32Tensor>, String> {
    let mut out = Vec::with_capacity(tensors.len());
    for t in tensors {
        let name = t.name.to_string();
        if !name.starts_with("transformer.") {
            return Err(format!("the checkpoint's model holds `{name}`, which GPT-2 does not have"));
        }
        let values = t.to_f32().map_err(|e| format!("{name}: {e}"))?;
        let t = F32Tensor { name, shape: t.shape.to_vec(), values };
        out.push(if is_conv1d(&t.name) { transpose(&t)? } else { t });
    }
    Ok(out)
}

/// Writes `tensors` as an F32 safetensors file, as `save_pretrained` marks it (`format: pt`).
pub fn write_safetensors(tensors: &[F32Tensor], path: &Path) -> Result<(), String> {
    let bytes: Vec<(&str, &[u8])> =
        tensors.iter().map(|t| (t.name.as_str(), bytemuck::cast_slice::<f32, u8>(&t.values))).collect();
    let mut views = Vec::with_capacity(tensors.len());
    for (t, (name, data)) in tensors.iter().zip(&bytes) {
        let shape = t.shape.iter().map(|&d| d as usize).collect();
        views.push((*name, TensorView::new(Dtype::F32, shape, data).map_err(|e| format!("{name}: {e}"))?));
    }
    let info = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(views, Some(info), path).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn tiny() -> Gpt2Shape {
        PRESET_SHAPES[0].1
    }

    /// A model's tensors in Hugging Face's layout with distinct values, the mask buffers included.
    pub(crate) fn hf_tensors(shape: &Gpt2Shape, prefix: &str) -> Vec<F32Tensor> {
        let t = u64::from(shape.n_positions);
        let mut dims = shape.hf_tensors();
        dims.extend((0..shape.n_layer).map(|l| (format!("h.{l}.attn.bias"), vec![1, 1, t, t])));
        dims.into_iter()
            .enumerate()
            .map(|(k, (name, dims))| {
                let n = dims.iter().product::<u64>() as usize;
                let values = (0..n).map(|i| (i as f32 + k as f32) * 1e-3).collect();
                F32Tensor { name: format!("{prefix}{name}"), shape: dims, values }
            })
            .collect()
    }

    #[test]
    fn weights_cross_between_the_layouts_and_back_unchanged() {
        for prefix in ["transformer.", ""] {
            let hf = hf_tensors(&tiny(), prefix);
            let plugin = to_plugin_tensors(hf.clone(), &tiny()).unwrap();
            let attn = plugin.iter().find(|t| t.name.as_str() == "transformer.h.1.attn.c_attn.weight").unwrap();
            assert_eq!(attn.shape.to_vec(), vec![96, 32], "Linear's [out, in]");
            let src = hf.iter().find(|t| t.name.ends_with("h.1.attn.c_attn.weight")).unwrap();
            // Row r, column c of the Linear weight is row c, column r of the Conv1D one.
            let values = attn.to_f32().unwrap();
            assert_eq!(values[5 * 32 + 7], src.values[7 * 96 + 5]);
            assert!(plugin.iter().all(|t| !t.name.ends_with(".attn.bias")), "buffers dropped");
            let back = from_plugin_tensors(&plugin).unwrap();
            let weights: Vec<&F32Tensor> = hf.iter().filter(|t| !t.name.ends_with(".attn.bias")).collect();
            assert_eq!(back.len(), weights.len());
            for (b, w) in back.iter().zip(weights) {
                assert_eq!(
                    (b.name.ends_with(w.name.trim_start_matches("transformer.")), &b.shape, &b.values),
                    (true, &w.shape, &w.values)
                );
            }
        }
    }

    #[test]
    fn a_foreign_tensor_an_untied_head_or_another_architecture_is_one_line() {
        let mut hf = hf_tensors(&tiny(), "transformer.");
        hf.push(F32Tensor { name: "transformer.h.2.ln_1.weight".into(), shape: vec![32], values: vec![0.0; 32] });
        let e = to_plugin_tensors(hf, &tiny()).unwrap_err();
        assert!(e.contains("transformer.h.2.ln_1.weight"), "{e}");
        let mut hf = hf_tensors(&tiny(), "");
        hf[1].shape = vec![32, 16];
        let e = to_plugin_tensors(hf, &tiny()).unwrap_err();
        assert!(e.contains("`wpe.weight` has shape [32, 16]") && e.contains("[16, 32]"), "{e}");
        let mut hf = hf_tensors(&tiny(), "");
        let mut head = hf[0].clone();
        head.name = "lm_head.weight".into();
        head.values[3] += 1.0;
        hf.push(head.clone());
        let e = to_plugin_tensors(hf.clone(), &tiny()).unwrap_err();
        assert!(e.contains("untied"), "{e}");
        *hf.last_mut().unwrap() = F32Tensor { name: "lm_head.weight".into(), ..hf[0].clone() };
        assert!(to_plugin_tensors(hf, &tiny()).is_ok(), "a tied head equal to wte is accepted");
        for (json, want) in [
            (r#"{"model_type": "llama", "n_layer": 2}"#, "`llama` model"),
            (r#"{"n_layer": 2, "n_head": 2, "n_embd": 32, "n_positions": 16}"#, "no `vocab_size`"),
            (
                r#"{"n_layer": 2, "n_head": 2, "n_embd": 32, "n_positions": 16, "vocab_size": 256, "activation_function": "relu"}"#,
                "activation_function",
            ),
            (
                r#"{"n_layer": 2, "n_head": 2, "n_embd": 32, "n_positions": 16, "vocab_size": 256, "tie_word_embeddings": false}"#,
                "tie_word_embeddings is false",
            ),
            ("{", "not JSON"),
        ] {
            let e = Gpt2Shape::from_config_json(json).unwrap_err();
            assert!(e.contains(want) && !e.contains('\n'), "{json}: {e}");
        }
    }

    #[test]
    fn config_json_reads_back_and_names_the_preset_of_its_shape() {
        for (_, shape) in PRESET_SHAPES {
            assert_eq!(Gpt2Shape::from_config_json(&shape.to_config_json()).unwrap(), *shape);
        }
        let gpt2 = PRESET_SHAPES[2].1;
        let keys = gpt2.plugin_keys();
        assert_eq!((keys["preset"].as_str(), keys["block_size"].as_integer()), (Some("gpt2"), Some(1024)));
        let medium = PRESET_SHAPES[3].1.plugin_keys();
        assert_eq!((medium["preset"].as_str(), medium["n_layer"].as_integer()), (Some("gpt2-medium"), Some(24)));
        let odd = Gpt2Shape { n_layer: 3, ..gpt2 };
        let keys = odd.plugin_keys();
        assert_eq!((keys["preset"].as_str(), keys["n_layer"].as_integer()), (Some("gpt2"), Some(3)));
        assert_eq!(keys["tokenizer"].as_str(), Some("gpt2"));
    }
}
