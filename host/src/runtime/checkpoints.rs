//! What a miner's and a validator's checkpoint hold, and how a running role
//! is captured into one and restored from one.
//!
//! The layer below ([`crate::checkpoint`]) writes and reads PyTorch archives;
//! this module decides the keys. A checkpoint is a plain dict that
//! `torch.load(path, weights_only=True)` opens:
//!
//! ```text
//! format_version  int (1)
//! role            "miner" | "validator"
//! plugin          {name, version, architecture, config}   the model plugin and its effective config (TOML)
//! model           OrderedDict name -> tensor               export_state(MODEL)
//! optimizer       OrderedDict name -> tensor               export_state(OPTIMIZER) (Adam moments, step)
//! scheduler       {lr, min_lr, warmup_steps, decay_steps, last_lr}
//! global_step     int                                      optimizer steps taken so far
//! data            {seed, step, noise_state}                the data stream's position
//! ```
//!
//! and for a validator also `block`, `epoch`, `hotkeys` (SS58 strings by
//! uid), `scores` and `weights` (float32 by uid), `uid_stats` (one tensor per
//! statistic, by uid) and `scorer` (`{name, state}`). A validator trained
//! without its own model has no `plugin`, `model`, `optimizer` or `scheduler`.
//!
//! 64-bit unsigned values (seeds, the noise generator's state) are stored as
//! the signed integer with the same bits.
//!
//! Restoring parses and checks everything against the live model (plugin,
//! architecture, config, then every tensor's name, dtype and shape) before
//! importing anything, and names the first difference in one line. A model
//! key the plugin does not export is accepted only when it is a byte-identical
//! copy of an exported tensor of the same shape (a tied weight, such as
//! nanoGPT's `lm_head.weight`, which PyTorch's `state_dict()` lists next to
//! `transformer.wte.weight`); the host does not write such aliases.

use std::{path::PathBuf, sync::Arc};

use neuron_plugin_api::{DType, StateGroup, Tensor, TensorSpec};

use super::schedule::LrSchedule;
use crate::scores::UidStats;
use crate::{
    chain::AccountId,
    checkpoint::{
        pickle::{TensorValue, Value},
        writer::{load_with_fallback, CheckpointWriter},
    },
    data::SamplerState,
    error::{Error, Result},
    metrics::prometheus::{neuron, Metrics, NeuronLabel},
    plugins::{PluginModel, PluginScorer},
};

/// The version of the key layout above.
pub const FORMAT_VERSION: i64 = 1;

/// The model plugin a checkpoint was taken with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginIdentity {
    pub name: String,
    pub version: String,
    pub architecture: String,
    /// The model's effective configuration (`describe().config`, TOML).
    pub config: String,
}

impl PluginIdentity {
    /// The identity of a live model: its plugin's name and version, its description.
    pub fn of(model: &PluginModel, version: &str) -> Result<Self> {
        let d = model.describe()?;
        Ok(Self {
            name: model.plugin().to_string(),
            version: version.to_string(),
            architecture: d.architecture.to_string(),
            config: d.config.to_string(),
        })
    }

    fn to_value(&self) -> Value {
        dict(vec![
            ("name", Value::str(&self.name)),
            ("version", Value::str(&self.version)),
            ("architecture", Value::str(&self.architecture)),
            ("config", Value::str(&self.config)),
        ])
    }

    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        Ok(Self {
            name: get_str(v, "plugin", "name")?,
            version: get_str(v, "plugin", "version")?,
            architecture: get_str(v, "plugin", "architecture")?,
            config: get_str(v, "plugin", "config")?,
        })
    }

    /// Refuses a checkpoint of another plugin, architecture or configuration,
    /// naming the difference; a different plugin version only warns.
    pub fn check_matches(&self, live: &PluginIdentity) -> std::result::Result<(), String> {
        if self.name != live.name {
            return Err(format!(
                "the checkpoint was written by plugin `{}`, this neuron runs plugin `{}`; start with --no-resume or point checkpoint.path elsewhere",
                self.name, live.name
            ));
        }
        if self.architecture != live.architecture {
            return Err(format!(
                "the checkpoint holds a `{}` model, this neuron's model is `{}`; start with --no-resume or point checkpoint.path elsewhere",
                self.architecture, live.architecture
            ));
        }
        if let Some(diff) = config_difference(&self.config, &live.config) {
            return Err(format!(
                "the checkpoint's model config differs from this neuron's: {diff}; use the same [plugin.{}] settings, or start with --no-resume",
                live.name
            ));
        }
        if self.version != live.version {
            tracing::warn!(target: "neuron_host::checkpoint", "the checkpoint was written by {} {}, this is {} {}; its tensors match, loading it", self.name, self.version, live.name, live.version);
        }
        Ok(())
    }
}

/// The first key whose value differs between two TOML configs, as
/// "n_layer is 4 in the checkpoint, 2 here"; `None` when they are equal.
fn config_difference(saved: &str, live: &str) -> Option<String> {
    if saved == live {
        return None;
    }
    let (Ok(mut a), Ok(mut b)) = (saved.parse::<toml::Table>(), live.parse::<toml::Table>()) else {
        return Some("the configs differ (one of them is not TOML)".into());
    };
    // The seed only decides the initial weights, which the checkpoint replaces.
    a.remove("seed");
    b.remove("seed");
    if a == b {
        return None;
    }
    fn walk(prefix: &str, a: &toml::Table, b: &toml::Table) -> Option<String> {
        let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
        keys.sort();
        keys.dedup();
        for k in keys {
            let name = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
            match (a.get(k), b.get(k)) {
                (Some(toml::Value::Table(x)), Some(toml::Value::Table(y))) => {
                    if let Some(d) = walk(&name, x, y) {
                        return Some(d);
                    }
                }
                (Some(x), Some(y)) if x != y => return Some(format!("{name} is {x} in the checkpoint, {y} here")),
                (Some(x), None) => return Some(format!("{name} is {x} in the checkpoint and not set here")),
                (None, Some(y)) => return Some(format!("{name} is not in the checkpoint, {y} here")),
                _ => {}
            }
        }
        None
    }
    walk("", &a, &b).or_else(|| Some("the configs differ".into()))
}

/// Where the data stream is: the sampler's state and the noise generator's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataPosition {
    pub sampler: SamplerState,
    /// The miner's target-noise generator (0 when it has none).
    pub noise_state: u64,
}

impl DataPosition {
    fn to_value(self) -> Value {
        dict(vec![
            ("seed", Value::Int(self.sampler.seed as i64)),
            ("step", Value::Int(self.sampler.step as i64)),
            ("noise_state", Value::Int(self.noise_state as i64)),
        ])
    }

    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        Ok(Self {
            sampler: SamplerState { seed: get_int(v, "data", "seed")? as u64, step: get_count(v, "data", "step")? },
            noise_state: get_int(v, "data", "noise_state")? as u64,
        })
    }
}

fn schedule_value(s: &LrSchedule, step: u64) -> Value {
    dict(vec![
        ("lr", Value::Float(s.lr)),
        ("min_lr", Value::Float(s.min_lr)),
        ("warmup_steps", Value::Int(s.warmup_steps as i64)),
        ("decay_steps", Value::Int(s.decay_steps as i64)),
        ("last_lr", Value::Float(s.lr_at(step))),
    ])
}

fn schedule_from(v: &Value) -> std::result::Result<LrSchedule, String> {
    let float =
        |k: &str| v.get(k).and_then(Value::as_float).ok_or_else(|| format!("scheduler.{k} is missing or not a number"));
    let s = LrSchedule {
        lr: float("lr")?,
        min_lr: float("min_lr")?,
        warmup_steps: get_count(v, "scheduler", "warmup_steps")?,
        decay_steps: get_count(v, "scheduler", "decay_steps")?,
    };
    s.validate().map_err(|e| format!("the checkpoint's scheduler is invalid: {e}"))?;
    Ok(s)
}

/// A miner's checkpoint, parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct MinerCheckpoint {
    pub plugin: PluginIdentity,
    pub model: Vec<Tensor>,
    pub optimizer: Vec<Tensor>,
    pub schedule: LrSchedule,
    pub global_step: u64,
    pub data: DataPosition,
}

impl MinerCheckpoint {
    /// Copies the model's and optimizer's state out of the plugin (GPU
    /// buffers read back; call between training steps) and builds the
    /// checkpoint's value, ready for [`crate::checkpoint::writer::CheckpointWriter::request`].
    pub fn capture(
        model: &mut PluginModel,
        plugin: &PluginIdentity,
        schedule: &LrSchedule,
        global_step: u64,
        data: DataPosition,
    ) -> Result<Value> {
        let weights = model.export_state(StateGroup::MODEL)?;
        let optimizer = model.export_state(StateGroup::OPTIMIZER)?;
        Ok(Self { plugin: plugin.clone(), model: weights, optimizer, schedule: *schedule, global_step, data }
            .into_value())
    }

    /// The checkpoint's value, tensors copied (see [`Self::into_value`]).
    pub fn to_value(&self) -> Value {
        self.clone().into_value()
    }

    /// The checkpoint's value; the tensors' bytes move into it.
    pub fn into_value(self) -> Value {
        let scheduler = schedule_value(&self.schedule, self.global_step);
        dict(vec![
            ("format_version", Value::Int(FORMAT_VERSION)),
            ("role", Value::str("miner")),
            ("plugin", self.plugin.to_value()),
            ("model", tensors_value(self.model)),
            ("optimizer", tensors_value(self.optimizer)),
            ("scheduler", scheduler),
            ("global_step", Value::Int(self.global_step as i64)),
            ("data", self.data.to_value()),
        ])
    }

    /// Parses a loaded checkpoint (structure only; see [`Self::check`]).
    pub fn from_value(v: &Value) -> std::result::Result<Self, String> {
        Self::from_owned(v.clone())
    }

    /// [`Self::from_value`] of a value the caller gives up: the tensors' bytes
    /// move out of it instead of being copied (restoring gpt2's state).
    pub fn from_owned(mut v: Value) -> std::result::Result<Self, String> {
        check_header(&v, "miner")?;
        let model = tensors_from(take_section(&mut v, "model")?, "model")?;
        let optimizer = tensors_from(take_section(&mut v, "optimizer")?, "optimizer")?;
        let v = &v;
        Ok(Self {
            plugin: PluginIdentity::from_value(section(v, "plugin")?)?,
            model,
            optimizer,
            schedule: schedule_from(section(v, "scheduler")?)?,
            global_step: top_count(v, "global_step")?,
            data: DataPosition::from_value(section(v, "data")?)?,
        })
    }

    /// Checks the checkpoint against the live model without changing it:
    /// the same plugin, architecture and config, then every tensor.
    pub fn check(&mut self, model: &PluginModel, live: &PluginIdentity) -> std::result::Result<(), String> {
        self.plugin.check_matches(live)?;
        let schema = model.state_schema(StateGroup::MODEL).map_err(|e| e.to_string())?;
        check_tensors(&schema, &mut self.model, "model")?;
        let schema = model.state_schema(StateGroup::OPTIMIZER).map_err(|e| e.to_string())?;
        check_tensors(&schema, &mut self.optimizer, "optimizer")
    }

    /// Imports the (checked) model and optimizer state into the plugin.
    pub fn apply(&self, model: &mut PluginModel) -> Result<()> {
        model.import_state(StateGroup::MODEL, &self.model)?;
        Ok(model.import_state(StateGroup::OPTIMIZER, &self.optimizer)?)
    }

    /// Parses, checks and applies `value` to `model`; returns the checkpoint
    /// (schedule, global step, data position) for the loop to continue from.
    pub fn restore(model: &mut PluginModel, live: &PluginIdentity, value: Value) -> Result<Self> {
        let mut c = Self::from_owned(value).map_err(Error::Config)?;
        c.check(model, live).map_err(Error::Config)?;
        c.apply(model)?;
        Ok(c)
    }
}

/// A validator's checkpoint, parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidatorCheckpoint {
    /// The validator's own model, when it trains one.
    pub model: Option<ModelState>,
    pub global_step: u64,
    /// The chain's block the checkpoint was taken at.
    pub block: u64,
    pub epoch: u64,
    pub hotkeys: Vec<AccountId>,
    pub scores: Vec<f32>,
    /// The shares of the last weights this validator set, by uid.
    pub weights: Vec<f32>,
    pub stats: Vec<UidStats>,
    pub scorer_name: String,
    pub scorer_state: Vec<Tensor>,
    pub data: DataPosition,
}

/// The model part of a validator's checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelState {
    pub plugin: PluginIdentity,
    pub model: Vec<Tensor>,
    pub optimizer: Vec<Tensor>,
}

impl ValidatorCheckpoint {
    /// Reads the own model's and the scorer's state out of their plugins and
    /// builds the value; the rest comes from the loop.
    #[allow(clippy::too_many_arguments)]
    pub fn capture(
        model: Option<(&mut PluginModel, &PluginIdentity)>,
        scorer: &mut PluginScorer,
        global_step: u64,
        block: u64,
        epoch: u64,
        hotkeys: &[AccountId],
        scores: &[f32],
        weights: &[f32],
        stats: &[UidStats],
        data: DataPosition,
    ) -> Result<Value> {
        let model = match model {
            Some((m, id)) => Some(ModelState {
                plugin: id.clone(),
                model: m.export_state(StateGroup::MODEL)?,
                optimizer: m.export_state(StateGroup::OPTIMIZER)?,
            }),
            None => None,
        };
        Ok(Self {
            model,
            global_step,
            block,
            epoch,
            hotkeys: hotkeys.to_vec(),
            scores: scores.to_vec(),
            // Before the first epoch no weights were set: zeros, one per uid.
            weights: (0..hotkeys.len()).map(|u| weights.get(u).copied().unwrap_or(0.0)).collect(),
            stats: stats.to_vec(),
            scorer_name: scorer.plugin().to_string(),
            scorer_state: scorer.export_state()?,
            data,
        }
        .into_value())
    }

    /// The checkpoint's value, tensors copied (see [`Self::into_value`]).
    pub fn to_value(&self) -> Value {
        self.clone().into_value()
    }

    /// The checkpoint's value; the tensors' bytes move into it.
    pub fn into_value(self) -> Value {
        let mut entries = vec![("format_version", Value::Int(FORMAT_VERSION)), ("role", Value::str("validator"))];
        if let Some(m) = self.model {
            entries.push(("plugin", m.plugin.to_value()));
            entries.push(("model", tensors_value(m.model)));
            entries.push(("optimizer", tensors_value(m.optimizer)));
        }
        let n = self.hotkeys.len() as u64;
        let col_i = |f: &dyn Fn(&UidStats) -> u64| {
            tensor_value(DType::I64, &[n], self.stats.iter().flat_map(|s| (f(s) as i64).to_le_bytes()).collect())
        };
        let col_f = |f: &dyn Fn(&UidStats) -> f32| {
            tensor_value(DType::F32, &[n], self.stats.iter().flat_map(|s| f(s).to_le_bytes()).collect())
        };
        entries.extend([
            ("global_step", Value::Int(self.global_step as i64)),
            ("block", Value::Int(self.block as i64)),
            ("epoch", Value::Int(self.epoch as i64)),
            ("hotkeys", Value::List(self.hotkeys.iter().map(|h| Value::Str(h.to_ss58())).collect())),
            ("scores", f32_tensor(&self.scores)),
            ("weights", f32_tensor(&self.weights)),
            (
                "uid_stats",
                dict(vec![
                    ("queried", col_i(&|s| s.queried)),
                    ("answered", col_i(&|s| s.answered)),
                    ("timeouts", col_i(&|s| s.timeouts)),
                    ("malformed", col_i(&|s| s.malformed)),
                    ("errors", col_i(&|s| s.errors)),
                    ("misses_in_a_row", col_i(&|s| u64::from(s.misses_in_a_row))),
                    ("last_loss", col_f(&|s| s.last_loss)),
                    ("avg_loss", col_f(&|s| s.avg_loss)),
                    ("last_latency_s", col_f(&|s| s.last_latency_s)),
                ]),
            ),
            (
                "scorer",
                dict(vec![("name", Value::str(&self.scorer_name)), ("state", tensors_value(self.scorer_state))]),
            ),
            ("data", self.data.to_value()),
        ]);
        dict(entries)
    }

    pub fn from_value(v: &Value) -> std::result::Result<Self, String> {
        Self::from_owned(v.clone())
    }

    /// [`Self::from_value`] of a value the caller gives up: the tensors' bytes move out of it.
    pub fn from_owned(mut v: Value) -> std::result::Result<Self, String> {
        check_header(&v, "validator")?;
        let model = match v.get("model") {
            None => None,
            Some(_) => Some(ModelState {
                plugin: PluginIdentity::from_value(section(&v, "plugin")?)?,
                model: tensors_from(take_section(&mut v, "model")?, "model")?,
                optimizer: tensors_from(take_section(&mut v, "optimizer")?, "optimizer")?,
            }),
        };
        let scorer = v.get_mut("scorer").ok_or("the checkpoint has no `scorer`")?;
        let scorer_state = tensors_from(take_section(scorer, "state")?, "scorer.state")?;
        let v = &v;
        let hotkeys = match v.get("hotkeys") {
            Some(Value::List(items)) => items
                .iter()
                .map(|h| {
                    h.as_str()
                        .and_then(|s| AccountId::from_ss58(s).ok())
                        .ok_or_else(|| "hotkeys holds something that is not an SS58 address".to_string())
                })
                .collect::<std::result::Result<Vec<_>, _>>()?,
            _ => return Err("the checkpoint has no `hotkeys` list".into()),
        };
        let n = hotkeys.len();
        let scores = f32_column(v.get("scores"), "scores", n)?;
        let weights = f32_column(v.get("weights"), "weights", n)?;
        let st = section(v, "uid_stats")?;
        let int = |k: &str| i64_column(st.get(k), &format!("uid_stats.{k}"), n);
        let flt = |k: &str| f32_column(st.get(k), &format!("uid_stats.{k}"), n);
        let (queried, answered, timeouts, malformed, errors, misses) = (
            int("queried")?,
            int("answered")?,
            int("timeouts")?,
            int("malformed")?,
            int("errors")?,
            int("misses_in_a_row")?,
        );
        let (last_loss, avg_loss, latency) = (flt("last_loss")?, flt("avg_loss")?, flt("last_latency_s")?);
        let stats = (0..n)
            .map(|i| UidStats {
                queried: queried[i] as u64,
                answered: answered[i] as u64,
                timeouts: timeouts[i] as u64,
                malformed: malformed[i] as u64,
                errors: errors[i] as u64,
                misses_in_a_row: misses[i] as u32,
                last_loss: last_loss[i],
                avg_loss: avg_loss[i],
                last_latency_s: latency[i],
            })
            .collect();
        let scorer = section(v, "scorer")?;
        Ok(Self {
            model,
            global_step: top_count(v, "global_step")?,
            block: top_count(v, "block")?,
            epoch: top_count(v, "epoch")?,
            hotkeys,
            scores,
            weights,
            stats,
            scorer_name: get_str(scorer, "scorer", "name")?,
            scorer_state,
            data: DataPosition::from_value(section(v, "data")?)?,
        })
    }

    /// Checks against the live model (when the validator trains one) and
    /// scorer without changing them.
    pub fn check(
        &mut self,
        model: Option<(&PluginModel, &PluginIdentity)>,
        scorer: &PluginScorer,
    ) -> std::result::Result<(), String> {
        if self.scorer_name != scorer.plugin() {
            return Err(format!(
                "the checkpoint's scores were made by scorer `{}`, this validator runs `{}`; start with --no-resume or point checkpoint.path elsewhere",
                self.scorer_name,
                scorer.plugin()
            ));
        }
        match (&mut self.model, model) {
            (Some(saved), Some((m, live))) => {
                saved.plugin.check_matches(live)?;
                check_tensors(
                    &m.state_schema(StateGroup::MODEL).map_err(|e| e.to_string())?,
                    &mut saved.model,
                    "model",
                )?;
                check_tensors(
                    &m.state_schema(StateGroup::OPTIMIZER).map_err(|e| e.to_string())?,
                    &mut saved.optimizer,
                    "optimizer",
                )
            }
            (None, Some(_)) => {
                tracing::warn!(target: "neuron_host::checkpoint", "the checkpoint holds no model (it was taken with validator.train = false): the own model starts fresh");
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Parses, checks, then imports the model and scorer state; returns the
    /// checkpoint for the loop (scores, stats, step, data position).
    pub fn restore(
        model: Option<(&mut PluginModel, &PluginIdentity)>,
        scorer: &mut PluginScorer,
        value: Value,
    ) -> Result<Self> {
        let mut c = Self::from_owned(value).map_err(Error::Config)?;
        match model {
            Some((m, live)) => {
                c.check(Some((&*m, live)), scorer).map_err(Error::Config)?;
                if let Some(saved) = &c.model {
                    m.import_state(StateGroup::MODEL, &saved.model)?;
                    m.import_state(StateGroup::OPTIMIZER, &saved.optimizer)?;
                }
            }
            None => c.check(None, scorer).map_err(Error::Config)?,
        }
        scorer.import_state(&c.scorer_state)?;
        Ok(c)
    }
}

/// Where a role saves, how often, and whether it resumes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointPlan {
    pub path: PathBuf,
    /// Miner: training steps between saves; validator: chain blocks (0: only at shutdown).
    pub every: u64,
    /// Load the checkpoint at start-up when it exists.
    pub resume: bool,
    /// Previous checkpoints kept beside the file (`checkpoint.keep`).
    pub keep: usize,
    /// The model plugin's version, saved with its name and config.
    pub plugin_version: String,
}

impl CheckpointPlan {
    /// The checkpoint to resume from: `None` when resuming is off or there is
    /// none yet; the previous file (with a warning) when the current one is
    /// damaged; an error naming the file when neither can be read.
    pub fn load(&self) -> Result<Option<Value>> {
        if !self.resume {
            if self.path.exists() {
                tracing::info!(target: "neuron_host::checkpoint", "not resuming from {} (checkpoint.resume = false); it is replaced at the first save", self.path.display());
            }
            return Ok(None);
        }
        match load_with_fallback(&self.path) {
            Ok(None) => Ok(None),
            // (Falling back to .prev is logged as a warning by the loader.)
            Ok(Some((value, _))) => Ok(Some(value)),
            Err(e) => Err(Error::Config(format!("cannot resume: {e}; move the file away or start with --no-resume"))),
        }
    }

    /// Loads and applies a miner checkpoint, when there is one to resume from.
    pub fn resume_miner(&self, model: &mut PluginModel) -> Result<Option<MinerCheckpoint>> {
        let Some(value) = self.load()? else { return Ok(None) };
        let live = PluginIdentity::of(model, &self.plugin_version)?;
        let c = MinerCheckpoint::restore(model, &live, value)
            .map_err(|e| Error::Config(format!("cannot resume from {}: {e}", self.path.display())))?;
        Ok(Some(c))
    }
}

/// What a [`Saver`] left when it finished.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finished {
    /// The tag (step or block) of the newest save on disk.
    pub written: Option<u64>,
    /// Why the last save failed, if one did (read after the final flush).
    pub last_error: Option<String>,
}

/// A role's background writer, and the metrics its saves are recorded in
/// (`checkpoint_duration`, `checkpoint_size`, `checkpoint_failures`).
pub struct Saver {
    writer: CheckpointWriter,
    metrics: Arc<Metrics>,
    label: NeuronLabel,
    recorded_saves: u64,
    recorded_failures: u64,
    /// The tag (step or block) of the newest request.
    pub last_requested: Option<u64>,
}

impl Saver {
    /// A writer for `path` keeping `keep` previous checkpoints.
    pub fn new(path: PathBuf, keep: usize, metrics: Arc<Metrics>, name: &str) -> Self {
        remove_stale_temp_files(&path);
        Self {
            writer: CheckpointWriter::new(path, keep),
            metrics,
            label: neuron(name),
            recorded_saves: 0,
            recorded_failures: 0,
            last_requested: None,
        }
    }

    pub fn path(&self) -> &std::path::Path {
        self.writer.path()
    }

    /// The tag of the newest save that reached the disk.
    pub fn written(&self) -> Option<u64> {
        self.writer.written_tag()
    }

    /// Requests a newer one replaced before they were written (saves slower than the interval).
    pub fn superseded(&self) -> u64 {
        self.writer.stats().superseded
    }

    /// Hands a captured snapshot to the writer (returns at once), or counts
    /// the capture's failure; never fails the loop.
    pub fn request(&mut self, captured: Result<Value>, tag: u64) {
        self.record();
        match captured {
            Ok(value) => {
                self.writer.request(value, tag);
                self.last_requested = Some(tag);
            }
            Err(e) => {
                tracing::error!(target: "neuron_host::checkpoint", "cannot take a checkpoint at {tag}: {e}; the previous checkpoint is kept");
                self.metrics.checkpoint_failures.get_or_create(&self.label).inc();
            }
        }
    }

    /// Moves the writer's finished saves and failures into the metrics (cheap; call each step).
    pub fn record(&mut self) {
        let stats = self.writer.stats();
        if stats.saves > self.recorded_saves {
            if let Some(d) = stats.last_duration {
                self.metrics.checkpoint_duration.get_or_create(&self.label).observe(d.as_secs_f64());
            }
            self.metrics.checkpoint_size.get_or_create(&self.label).set(stats.last_bytes as i64);
            self.recorded_saves = stats.saves;
        }
        if stats.failures > self.recorded_failures {
            self.metrics.checkpoint_failures.get_or_create(&self.label).inc_by(stats.failures - self.recorded_failures);
            self.recorded_failures = stats.failures;
        }
    }

    /// Waits for the queued save to reach the disk (shutdown).
    pub fn finish(mut self) -> Finished {
        self.writer.flush();
        self.record();
        let written = self.writer.written_tag();
        if let Some(tag) = written {
            tracing::info!(target: "neuron_host::checkpoint", "checkpoint at {tag} saved in {}", self.writer.path().display());
        }
        Finished { written, last_error: self.writer.stats().last_error }
    }
}

/// Removes temp files a killed process left beside `path` (`.NAME.tmp.PID`,
/// `.NAME.prev.PID`, `.NAME.old.PID` of a process that no longer runs); the checkpoint and
/// `.prev` are never touched.
pub fn remove_stale_temp_files(path: &std::path::Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else { return };
    let dir = if dir.as_os_str().is_empty() { std::path::Path::new(".") } else { dir };
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(file) = file.to_str() else { continue };
        let Some(rest) = file.strip_prefix(&format!(".{name}.")) else { continue };
        let Some((kind, pid)) = rest.split_once('.') else { continue };
        let Ok(pid) = pid.parse::<u32>() else { continue };
        let alive = pid == std::process::id() || std::path::Path::new(&format!("/proc/{pid}")).exists();
        if matches!(kind, "tmp" | "prev" | "old") && !alive && cfg!(target_os = "linux") {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => {
                    tracing::info!(target: "neuron_host::checkpoint", "removed {}, left by an interrupted save", entry.path().display())
                }
                Err(e) => {
                    tracing::warn!(target: "neuron_host::checkpoint", "cannot remove {}: {e}", entry.path().display())
                }
            }
        }
    }
}

// ---- helpers ----

fn dict(entries: Vec<(&str, Value)>) -> Value {
    Value::Dict(entries.into_iter().map(|(k, v)| (Value::str(k), v)).collect())
}

fn tensor_value(dtype: DType, shape: &[u64], data: Vec<u8>) -> Value {
    Value::Tensor(TensorValue { dtype, shape: shape.to_vec(), data: data.into() })
}

fn f32_tensor(values: &[f32]) -> Value {
    tensor_value(DType::F32, &[values.len() as u64], values.iter().flat_map(|v| v.to_le_bytes()).collect())
}

/// The tensors as an ordered dict; their bytes move (a checkpoint of gpt2's state is 1.5 GB: a
/// copy here would cost the loop about a second per snapshot).
fn tensors_value(tensors: Vec<Tensor>) -> Value {
    Value::OrderedDict(
        tensors
            .into_iter()
            .map(|t| {
                let value = TensorValue { dtype: t.dtype, shape: t.shape.to_vec(), data: t.data };
                (Value::Str(t.name.into()), Value::Tensor(value))
            })
            .collect(),
    )
}

/// Takes the value under `key` out of a dict (leaving `None`).
fn take_section(v: &mut Value, key: &str) -> std::result::Result<Value, String> {
    v.get_mut(key).map(std::mem::take).ok_or_else(|| format!("the checkpoint has no `{key}`"))
}

/// A dict of tensors as plugin tensors; the bytes move.
fn tensors_from(v: Value, what: &str) -> std::result::Result<Vec<Tensor>, String> {
    let (Value::Dict(entries) | Value::OrderedDict(entries)) = v else {
        return Err(format!("`{what}` is not a dict of tensors"));
    };
    entries
        .into_iter()
        .map(|(k, t)| {
            let name = k.as_str().ok_or_else(|| format!("`{what}` has a key that is not a string"))?.to_string();
            match t {
                Value::Tensor(t) => {
                    Ok(Tensor { name: name.into(), dtype: t.dtype, shape: t.shape.into_iter().collect(), data: t.data })
                }
                _ => Err(format!("`{what}.{name}` is not a tensor")),
            }
        })
        .collect()
}

/// Checks `tensors` against `schema`: every expected tensor present with its
/// dtype and shape, and no other tensor except byte-identical aliases of an
/// expected one (tied weights), which are dropped.
fn check_tensors(schema: &[TensorSpec], tensors: &mut Vec<Tensor>, what: &str) -> std::result::Result<(), String> {
    for spec in schema {
        let Some(t) = tensors.iter().find(|t| t.name == spec.name) else {
            return Err(format!(
                "the checkpoint's {what} has no tensor `{}`; it was saved from another model",
                spec.name
            ));
        };
        if t.dtype != spec.dtype {
            return Err(format!(
                "the checkpoint's {what} tensor `{}` is {}, this model's is {}",
                spec.name,
                t.dtype.name(),
                spec.dtype.name()
            ));
        }
        if t.shape.as_slice() != spec.shape.as_slice() {
            return Err(format!(
                "the checkpoint's {what} tensor `{}` has shape {:?}, this model's has shape {:?}",
                spec.name,
                t.shape.as_slice(),
                spec.shape.as_slice()
            ));
        }
        if Some(t.data.len() as u64) != spec.byte_len() {
            return Err(format!("the checkpoint's {what} tensor `{}` holds the wrong number of bytes", spec.name));
        }
    }
    let mut extras = Vec::new();
    for (i, t) in tensors.iter().enumerate() {
        if schema.iter().any(|s| s.name == t.name) {
            continue;
        }
        let alias = tensors.iter().any(|o| {
            o.name != t.name
                && schema.iter().any(|s| s.name == o.name)
                && o.dtype == t.dtype
                && o.shape == t.shape
                && o.data == t.data
        });
        if !alias {
            return Err(format!("the checkpoint's {what} has a tensor `{}` this model does not have", t.name));
        }
        extras.push(i);
    }
    for i in extras.into_iter().rev() {
        tensors.remove(i);
    }
    Ok(())
}

fn check_header(v: &Value, role: &str) -> std::result::Result<(), String> {
    if v.entries().is_none() {
        return Err("the checkpoint is not a dict; it was not written by neuron-host or torch.save of a dict".into());
    }
    if let Some(version) = v.get("format_version") {
        match version.as_int() {
            Some(FORMAT_VERSION) => {}
            other => {
                return Err(format!(
                    "the checkpoint's format_version is {other:?}; this host reads version {FORMAT_VERSION}"
                ))
            }
        }
    }
    match v.get("role").and_then(Value::as_str) {
        Some(r) if r == role => Ok(()),
        Some(r) => {
            Err(format!("this is a {r}'s checkpoint, not a {role}'s; point checkpoint.path at the {role}'s file"))
        }
        None => Err(format!("the checkpoint has no `role` (expected \"{role}\")")),
    }
}

fn section<'v>(v: &'v Value, key: &str) -> std::result::Result<&'v Value, String> {
    v.get(key).ok_or_else(|| format!("the checkpoint has no `{key}`"))
}

fn top_int(v: &Value, key: &str) -> std::result::Result<i64, String> {
    section(v, key)?.as_int().ok_or_else(|| format!("`{key}` is not an integer"))
}

/// A counter (a step, a block, an epoch): an integer that is not negative. (Seeds and generator
/// states are 64-bit values stored as signed integers and may be.)
fn top_count(v: &Value, key: &str) -> std::result::Result<u64, String> {
    let n = top_int(v, key)?;
    u64::try_from(n)
        .map_err(|_| format!("`{key}` is {n}; a count is never negative, so the file is damaged or hostile"))
}

fn get_count(v: &Value, parent: &str, key: &str) -> std::result::Result<u64, String> {
    let n = get_int(v, parent, key)?;
    u64::try_from(n)
        .map_err(|_| format!("`{parent}.{key}` is {n}; a count is never negative, so the file is damaged or hostile"))
}

fn get_int(v: &Value, parent: &str, key: &str) -> std::result::Result<i64, String> {
    v.get(key).and_then(Value::as_int).ok_or_else(|| format!("`{parent}.{key}` is missing or not an integer"))
}

fn get_str(v: &Value, parent: &str, key: &str) -> std::result::Result<String, String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| format!("`{parent}.{key}` is missing or not a string"))
}

fn column<'v>(v: Option<&'v Value>, what: &str, dtype: DType, n: usize) -> std::result::Result<&'v [u8], String> {
    match v {
        Some(Value::Tensor(t)) if t.dtype == dtype && t.shape == [n as u64] => Ok(&t.data),
        Some(Value::Tensor(t)) => Err(format!(
            "`{what}` is a {} tensor of shape {:?}; expected {} of shape [{n}] (one per hotkey)",
            t.dtype.name(),
            t.shape,
            dtype.name()
        )),
        _ => Err(format!("the checkpoint has no `{what}` tensor")),
    }
}

fn f32_column(v: Option<&Value>, what: &str, n: usize) -> std::result::Result<Vec<f32>, String> {
    Ok(column(v, what, DType::F32, n)?.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect())
}

fn i64_column(v: Option<&Value>, what: &str, n: usize) -> std::result::Result<Vec<i64>, String> {
    Ok(column(v, what, DType::I64, n)?.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect())
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckpointSettings {
    /// File to save to and resume from ("": the role's default file in the run's neuron directory).
    pub path: String,
    /// Miners save every this many training steps (0: only at shutdown).
    pub miner_every_steps: u64,
    /// Validators save every this many chain blocks (0: only at shutdown).
    pub validator_every_blocks: u64,
    /// Resume from the checkpoint when it exists.
    pub resume: bool,
    /// Previous checkpoints kept beside the file (`NAME.prev`, `NAME.prev.2`, ...), the
    /// fallbacks when the newest turns out damaged (at least 1).
    pub keep: usize,
}

impl Default for CheckpointSettings {
    fn default() -> Self {
        Self { path: String::new(), miner_every_steps: 500, validator_every_blocks: 500, resume: true, keep: 1 }
    }
}

impl CheckpointSettings {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.keep == 0 {
            return Err("checkpoint.keep must be at least 1: the previous checkpoint is the fallback when the newest is damaged".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;
    use crate::checkpoint::pth;

    fn identity() -> PluginIdentity {
        PluginIdentity {
            name: "gpt".into(),
            version: "0.1.0".into(),
            architecture: "gpt".into(),
            config: "n_layer = 2\nn_embd = 32\n".into(),
        }
    }

    fn miner() -> MinerCheckpoint {
        MinerCheckpoint {
            plugin: identity(),
            model: vec![
                Tensor::f32("wte", &[2, 3], &[1., 2., 3., 4., 5., 6.]),
                Tensor::f32("ln.bias", &[3], &[0.5; 3]),
            ],
            optimizer: vec![Tensor::f32("wte.exp_avg", &[2, 3], &[0.1; 6]), Tensor::i64_scalar("step", 1234)],
            schedule: LrSchedule { lr: 1e-3, min_lr: 1e-4, warmup_steps: 10, decay_steps: 2000 },
            global_step: 1234,
            data: DataPosition { sampler: SamplerState { seed: u64::MAX - 3, step: 1234 }, noise_state: 1 << 63 },
        }
    }

    fn through_the_file(v: &Value) -> Value {
        let bytes = pth::save(v, "ckpt", Cursor::new(Vec::new())).unwrap().into_inner();
        pth::load(Cursor::new(bytes)).unwrap()
    }

    fn specs(tensors: &[Tensor]) -> Vec<TensorSpec> {
        tensors.iter().map(Tensor::spec).collect()
    }

    #[test]
    fn saves_and_failures_reach_the_metrics_and_stale_temp_files_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("miner_checkpoint.pth");
        // A temp file of a process that no longer runs (pid 2^31 - 2 cannot exist on Linux).
        let stale = dir.path().join(".miner_checkpoint.pth.tmp.2147483646");
        std::fs::write(&stale, b"half a checkpoint").unwrap();
        let metrics = Arc::new(Metrics::new());
        let mut saver = Saver::new(path.clone(), 1, metrics.clone(), "m");
        if cfg!(target_os = "linux") {
            assert!(!stale.exists());
        }
        saver.request(Ok(miner().to_value()), 1234);
        saver.request(Err(Error::Config("the GPU went away".into())), 1235);
        saver.finish();
        assert_eq!(global_step_of(&path), Some(1234));
        let text = metrics.render();
        let line = |name: &str| text.lines().find(|l| l.starts_with(name)).unwrap_or_default().to_string();
        assert!(
            line("neuron_checkpoint_size_bytes{").ends_with(&std::fs::metadata(&path).unwrap().len().to_string()),
            "{text}"
        );
        assert!(line("neuron_checkpoint_failures_total{").ends_with(" 1"), "{text}");
        assert!(line("neuron_checkpoint_duration_seconds_count{").ends_with(" 1"), "{text}");
    }

    fn global_step_of(path: &std::path::Path) -> Option<i64> {
        load_with_fallback(path).unwrap()?.0.get("global_step")?.as_int()
    }

    #[test]
    fn a_miner_checkpoint_survives_the_file_with_every_field() {
        let c = miner();
        let back = MinerCheckpoint::from_value(&through_the_file(&c.to_value())).unwrap();
        assert_eq!(back, c);
        let v = c.to_value();
        assert!(
            (v.get("scheduler").unwrap().get("last_lr").unwrap().as_float().unwrap() - c.schedule.lr_at(1234)).abs()
                < 1e-15
        );
    }

    #[test]
    fn another_plugin_or_config_is_refused_naming_the_difference() {
        let saved = identity();
        let other = PluginIdentity { name: "llama".into(), ..identity() };
        assert!(saved.check_matches(&other).unwrap_err().contains("plugin `gpt`"));
        let bigger = PluginIdentity { config: "n_layer = 4\nn_embd = 32\n".into(), ..identity() };
        let e = saved.check_matches(&bigger).unwrap_err();
        assert!(e.contains("n_layer is 2 in the checkpoint, 4 here"), "{e}");
        let reseeded = PluginIdentity { config: "n_layer = 2\nn_embd = 32\nseed = 5\n".into(), ..identity() };
        saved.check_matches(&reseeded).unwrap();
        let newer = PluginIdentity { version: "0.2.0".into(), ..identity() };
        saved.check_matches(&newer).unwrap();
    }

    #[test]
    fn tensors_are_checked_by_name_dtype_and_shape_and_tied_aliases_are_dropped() {
        let c = miner();
        let schema = specs(&c.model);
        let mut ok = c.model.clone();
        check_tensors(&schema, &mut ok, "model").unwrap();
        let mut wrong_shape = c.model.clone();
        wrong_shape[0] = Tensor::f32("wte", &[3, 2], &[0.; 6]);
        let e = check_tensors(&schema, &mut wrong_shape, "model").unwrap_err();
        assert!(e.contains("`wte` has shape [3, 2]") && e.contains("[2, 3]"), "{e}");
        let mut missing = vec![c.model[0].clone()];
        assert!(check_tensors(&schema, &mut missing, "model").unwrap_err().contains("no tensor `ln.bias`"));
        let mut tied = c.model.clone();
        tied.push(Tensor { name: "lm_head.weight".into(), ..c.model[0].clone() });
        check_tensors(&schema, &mut tied, "model").unwrap();
        assert_eq!(tied.len(), 2, "the alias is dropped before import");
        let mut stranger = c.model.clone();
        stranger.push(Tensor::f32("lm_head.weight", &[2, 3], &[9.; 6]));
        assert!(check_tensors(&schema, &mut stranger, "model").unwrap_err().contains("`lm_head.weight`"));
    }

    #[test]
    fn a_checkpoint_of_the_other_role_or_a_newer_format_is_refused() {
        let mut v = miner().to_value();
        assert!(ValidatorCheckpoint::from_value(&v).unwrap_err().contains("miner's checkpoint"));
        if let Value::Dict(e) = &mut v {
            e[0].1 = Value::Int(99);
        }
        assert!(MinerCheckpoint::from_value(&v).unwrap_err().contains("format_version"));
        assert!(MinerCheckpoint::from_value(&Value::List(vec![])).unwrap_err().contains("not a dict"));
    }

    #[test]
    fn a_validator_checkpoint_keeps_scores_weights_and_stats_by_hotkey() {
        let hotkeys: Vec<AccountId> = ["a", "b", "c"].iter().map(|n| AccountId::from_name(n)).collect();
        let stats = vec![
            UidStats { queried: 5, answered: 4, timeouts: 1, last_loss: 2.5, avg_loss: 2.6, ..Default::default() },
            UidStats { last_loss: f32::NAN, avg_loss: f32::NAN, misses_in_a_row: 3, errors: 3, ..Default::default() },
            UidStats::default(),
        ];
        let c = ValidatorCheckpoint {
            model: Some(ModelState { plugin: identity(), model: miner().model, optimizer: miner().optimizer }),
            global_step: 77,
            block: 1000,
            epoch: 9,
            hotkeys,
            scores: vec![0.5, 0.0, 0.25],
            weights: vec![0.0, 0.3, 0.7],
            stats,
            scorer_name: "scoring-loss".into(),
            scorer_state: vec![Tensor::f32("baseline", &[1], &[3.0])],
            data: DataPosition { sampler: SamplerState { seed: 7, step: 77 }, noise_state: 0 },
        };
        let back = ValidatorCheckpoint::from_value(&through_the_file(&c.to_value())).unwrap();
        assert_eq!(back.scores, c.scores);
        assert_eq!(back.weights, c.weights);
        assert_eq!(back.hotkeys, c.hotkeys);
        assert_eq!(back.stats[0], c.stats[0]);
        assert!(back.stats[1].last_loss.is_nan() && back.stats[1].misses_in_a_row == 3);
        assert_eq!((back.global_step, back.block, back.epoch), (77, 1000, 9));
        assert_eq!(back.model, c.model);
        assert_eq!(back.scorer_state, c.scorer_state);
        // Without a model the keys are absent, and parse back to None.
        let bare = ValidatorCheckpoint { model: None, ..c };
        let v = bare.to_value();
        assert!(v.get("model").is_none());
        assert_eq!(ValidatorCheckpoint::from_value(&v).unwrap().model, None);
    }

    #[test]
    fn negative_counters_are_refused() {
        for (key, path) in [("global_step", vec!["global_step"]), ("data.step", vec!["data", "step"])] {
            let mut v = miner().to_value();
            let slot = path[..path.len() - 1].iter().fold(&mut v, |v, k| v.get_mut(k).unwrap());
            *slot.get_mut(path[path.len() - 1]).unwrap() = Value::Int(-5);
            let e = MinerCheckpoint::from_value(&v).unwrap_err();
            assert!(e.contains(&format!("`{key}` is -5; a count is never negative")), "{e}");
        }
        // A seed is a 64-bit value stored signed: negative is fine.
        let mut v = miner().to_value();
        *v.get_mut("data").unwrap().get_mut("seed").unwrap() = Value::Int(-5);
        assert_eq!(MinerCheckpoint::from_value(&v).unwrap().data.sampler.seed, (-5i64) as u64);
    }
}
