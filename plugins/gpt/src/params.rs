//! The parameter tensors: names and shapes as nanoGPT names them, GPT-2's initialisation, and
//! how they are packed into GPU buffers.
//!
//! Parameters (and, in buffers of the same shapes, their gradients and both Adam moments) live
//! in a few large *shards* rather than one buffer per tensor, so that zeroing gradients, the
//! gradient norm and the AdamW update are one dispatch per shard. A shard never exceeds the
//! adapter's storage-binding limit; a tensor larger than that (GPT-2's 154 MB token embedding on
//! a 128 MiB adapter) is split by rows into *pieces* in consecutive shards, and every kernel that
//! reads it runs once per piece. Within a shard, tensors that take weight decay come first, so
//! each shard's AdamW is at most two dispatches.

use neuron_plugin_api::{rand::SplitMix64, PluginError, Result};

use crate::config::GptConfig;

/// How a tensor starts out.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Init {
    Normal(f32),
    Zeros,
    Ones,
}

/// A run of a tensor's rows stored contiguously in one shard.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    pub shard: usize,
    /// Element offset in the shard.
    pub offset: u32,
    pub row_start: u32,
    pub rows: u32,
}

#[derive(Clone, Debug)]
pub struct ParamTensor {
    pub name: String,
    pub shape: Vec<u64>,
    /// AdamW weight decay applies (matrices and embeddings, as nanoGPT does).
    pub decay: bool,
    pub init: Init,
    pub pieces: Vec<Piece>,
}

impl ParamTensor {
    pub fn numel(&self) -> usize {
        self.shape.iter().product::<u64>() as usize
    }
    /// Elements per row (1 for vectors).
    pub fn row_len(&self) -> usize {
        self.shape[1..].iter().product::<u64>() as usize
    }
    pub fn rows(&self) -> usize {
        self.shape[0] as usize
    }
    /// Shard and offset of a tensor stored in one piece.
    pub fn at(&self) -> (usize, u32) {
        (self.pieces[0].shard, self.pieces[0].offset)
    }
}

/// Indices into [`Layout::tensors`] of one transformer block's parameters.
#[derive(Clone, Debug)]
pub struct BlockIds {
    pub ln1_w: usize,
    pub ln1_b: usize,
    pub attn_w: usize,
    pub attn_b: usize,
    pub proj_w: usize,
    pub proj_b: usize,
    pub ln2_w: usize,
    pub ln2_b: usize,
    pub fc_w: usize,
    pub fc_b: usize,
    pub fc_proj_w: usize,
    pub fc_proj_b: usize,
}

#[derive(Clone, Debug)]
pub struct Layout {
    /// In nanoGPT's `state_dict` order.
    pub tensors: Vec<ParamTensor>,
    pub wte: usize,
    pub wpe: usize,
    pub blocks: Vec<BlockIds>,
    pub lnf_w: usize,
    pub lnf_b: usize,
    /// Elements in each shard.
    pub shard_len: Vec<usize>,
    /// Elements at the start of each shard that take weight decay.
    pub shard_decay_len: Vec<usize>,
}

impl Layout {
    /// The tensors of `cfg`, packed into shards of at most `max_shard` elements.
    pub fn new(cfg: &GptConfig, max_shard: usize) -> Result<Self> {
        let (c, v, t) = (u64::from(cfg.n_embd), u64::from(cfg.vocab_size), u64::from(cfg.block_size));
        let std = 0.02f32;
        // GPT-2 scales the init of the projections into the residual stream by 1/sqrt(2 L).
        let proj_std = std / (2.0 * cfg.n_layer as f32).sqrt();
        let mut tensors = Vec::new();
        let mut add = |name: String, shape: &[u64], init: Init| {
            tensors.push(ParamTensor { name, shape: shape.to_vec(), decay: shape.len() >= 2, init, pieces: vec![] });
            tensors.len() - 1
        };
        let wte = add("transformer.wte.weight".into(), &[v, c], Init::Normal(std));
        let wpe = add("transformer.wpe.weight".into(), &[t, c], Init::Normal(std));
        let mut blocks = Vec::new();
        for l in 0..cfg.n_layer {
            let p = |s: &str| format!("transformer.h.{l}.{s}");
            blocks.push(BlockIds {
                ln1_w: add(p("ln_1.weight"), &[c], Init::Ones),
                ln1_b: add(p("ln_1.bias"), &[c], Init::Zeros),
                attn_w: add(p("attn.c_attn.weight"), &[3 * c, c], Init::Normal(std)),
                attn_b: add(p("attn.c_attn.bias"), &[3 * c], Init::Zeros),
                proj_w: add(p("attn.c_proj.weight"), &[c, c], Init::Normal(proj_std)),
                proj_b: add(p("attn.c_proj.bias"), &[c], Init::Zeros),
                ln2_w: add(p("ln_2.weight"), &[c], Init::Ones),
                ln2_b: add(p("ln_2.bias"), &[c], Init::Zeros),
                fc_w: add(p("mlp.c_fc.weight"), &[4 * c, c], Init::Normal(std)),
                fc_b: add(p("mlp.c_fc.bias"), &[4 * c], Init::Zeros),
                fc_proj_w: add(p("mlp.c_proj.weight"), &[c, 4 * c], Init::Normal(proj_std)),
                fc_proj_b: add(p("mlp.c_proj.bias"), &[c], Init::Zeros),
            });
        }
        let lnf_w = add("transformer.ln_f.weight".into(), &[c], Init::Ones);
        let lnf_b = add("transformer.ln_f.bias".into(), &[c], Init::Zeros);
        let mut layout = Self { tensors, wte, wpe, blocks, lnf_w, lnf_b, shard_len: vec![], shard_decay_len: vec![] };
        layout.pack(max_shard)?;
        Ok(layout)
    }

    /// Units that must share a shard: a LayerNorm's weight and bias (its kernels bind one
    /// parameter buffer); every other tensor alone. Decayed units first.
    fn units(&self) -> Vec<Vec<usize>> {
        let mut ln_pairs: Vec<(usize, usize)> = vec![(self.lnf_w, self.lnf_b)];
        ln_pairs.extend(self.blocks.iter().flat_map(|b| [(b.ln1_w, b.ln1_b), (b.ln2_w, b.ln2_b)]));
        let paired = |i: usize| ln_pairs.iter().any(|&(w, b)| w == i || b == i);
        let mut units: Vec<Vec<usize>> =
            (0..self.tensors.len()).filter(|&i| self.tensors[i].decay).map(|i| vec![i]).collect();
        units.extend((0..self.tensors.len()).filter(|&i| !self.tensors[i].decay && !paired(i)).map(|i| vec![i]));
        units.extend(ln_pairs.iter().map(|&(w, b)| vec![w, b]));
        units
    }

    fn pack(&mut self, max_shard: usize) -> Result<()> {
        let mut shard_len: Vec<usize> = vec![0];
        let mut decay_len: Vec<usize> = vec![0];
        for unit in self.units() {
            let size: usize = unit.iter().map(|&i| self.tensors[i].numel()).sum();
            let last = shard_len.len() - 1;
            if size <= max_shard {
                if shard_len[last] + size > max_shard {
                    shard_len.push(0);
                    decay_len.push(0);
                }
                for &i in &unit {
                    let s = shard_len.len() - 1;
                    let t = &mut self.tensors[i];
                    t.pieces =
                        vec![Piece { shard: s, offset: shard_len[s] as u32, row_start: 0, rows: t.rows() as u32 }];
                    shard_len[s] += t.numel();
                    if t.decay {
                        decay_len[s] = shard_len[s];
                    }
                }
                continue;
            }
            // Too large for one binding: split by rows (only matrices can be, and they are alone).
            let i = unit[0];
            let t = &mut self.tensors[i];
            let row_len = t.row_len();
            if unit.len() > 1 || t.shape.len() < 2 || row_len > max_shard {
                return Err(PluginError::config(format!(
                    "plugin gpt: tensor {} ({} floats) does not fit the adapter's storage-binding limit of {} floats; use a smaller n_embd",
                    t.name,
                    t.numel(),
                    max_shard
                )));
            }
            let per_piece = max_shard / row_len;
            let mut row = 0;
            while row < t.rows() {
                let rows = per_piece.min(t.rows() - row);
                let s = shard_len.len() - 1;
                let s = if shard_len[s] + rows * row_len > max_shard {
                    shard_len.push(0);
                    decay_len.push(0);
                    s + 1
                } else {
                    s
                };
                t.pieces.push(Piece {
                    shard: s,
                    offset: shard_len[s] as u32,
                    row_start: row as u32,
                    rows: rows as u32,
                });
                shard_len[s] += rows * row_len;
                if t.decay {
                    decay_len[s] = shard_len[s];
                }
                row += rows;
            }
        }
        self.shard_len = shard_len;
        self.shard_decay_len = decay_len;
        Ok(())
    }

    pub fn parameters(&self) -> u64 {
        self.tensors.iter().map(|t| t.numel() as u64).sum()
    }

    /// Each shard's initial contents: GPT-2's initialisation, every tensor drawn from its own
    /// stream (seed and name), so it does not depend on the packing.
    pub fn initial_values(&self, seed: u64) -> Vec<Vec<f32>> {
        let mut shards: Vec<Vec<f32>> = self.shard_len.iter().map(|&n| vec![0.0; n]).collect();
        for t in &self.tensors {
            let values: Vec<f32> = match t.init {
                Init::Zeros => vec![0.0; t.numel()],
                Init::Ones => vec![1.0; t.numel()],
                Init::Normal(std) => {
                    let mut rng = SplitMix64::new(seed ^ fnv1a(t.name.as_bytes()));
                    (0..t.numel()).map(|_| rng.normal() * std).collect()
                }
            };
            self.scatter(t, &values, &mut shards);
        }
        shards
    }

    /// Writes a tensor's values (row-major, whole tensor) into the shard arrays.
    pub fn scatter(&self, t: &ParamTensor, values: &[f32], shards: &mut [Vec<f32>]) {
        let row_len = t.row_len();
        for p in &t.pieces {
            let src = &values[p.row_start as usize * row_len..(p.row_start + p.rows) as usize * row_len];
            let o = p.offset as usize;
            shards[p.shard][o..o + src.len()].copy_from_slice(src);
        }
    }

    /// Reads a tensor's values out of the shard arrays.
    pub fn gather(&self, t: &ParamTensor, shards: &[Vec<f32>]) -> Vec<f32> {
        let row_len = t.row_len();
        let mut out = Vec::with_capacity(t.numel());
        for p in &t.pieces {
            let o = p.offset as usize;
            out.extend_from_slice(&shards[p.shard][o..o + p.rows as usize * row_len]);
        }
        out
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_shapes_are_nanogpts() {
        let cfg = GptConfig::preset("tiny").unwrap();
        let l = Layout::new(&cfg, usize::MAX >> 8).unwrap();
        let names: Vec<&str> = l.tensors.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            &names[..4],
            [
                "transformer.wte.weight",
                "transformer.wpe.weight",
                "transformer.h.0.ln_1.weight",
                "transformer.h.0.ln_1.bias"
            ]
        );
        assert_eq!(names[4], "transformer.h.0.attn.c_attn.weight");
        assert_eq!(l.tensors[4].shape, [96, 32]);
        assert_eq!(*names.last().unwrap(), "transformer.ln_f.bias");
        assert_eq!(l.shard_len.len(), 1);
        // Decayed tensors first in the shard.
        let decayed: usize = l.tensors.iter().filter(|t| t.decay).map(ParamTensor::numel).sum();
        assert_eq!(l.shard_decay_len[0], decayed);
    }

    #[test]
    fn a_tensor_larger_than_a_shard_is_split_by_rows_and_round_trips() {
        let cfg = GptConfig::preset("tiny").unwrap();
        let l = Layout::new(&cfg, 3000).unwrap();
        let wte = &l.tensors[l.wte];
        assert!(wte.pieces.len() >= 3, "{:?}", wte.pieces);
        assert!(l.shard_len.iter().all(|&n| n <= 3000));
        let shards = l.initial_values(7);
        let values = l.gather(wte, &shards);
        assert_eq!(values.len(), 256 * 32);
        let mut copy: Vec<Vec<f32>> = l.shard_len.iter().map(|&n| vec![0.0; n]).collect();
        l.scatter(wte, &values, &mut copy);
        assert_eq!(l.gather(wte, &copy), values);
        // The same seed gives the same values whatever the packing.
        let whole = Layout::new(&cfg, usize::MAX >> 8).unwrap();
        assert_eq!(whole.gather(&whole.tensors[whole.wte], &whole.initial_values(7)), values);
        let std = (values.iter().map(|v| v * v).sum::<f32>() / values.len() as f32).sqrt();
        assert!((std - 0.02).abs() < 0.002, "init std {std}");
    }
}
