//! The host's configuration: built-in defaults, then a TOML file, then
//! environment variables, then command-line flags, merged into one typed
//! [`Config`]. Every value remembers where it came from (`neuron-host config
//! show` prints it). Unknown keys are refused with the key that was probably
//! meant; a value of the wrong type is refused naming its key.
//!
//! ```toml
//! role = "subnet"               # subnet (a whole local subnet), miner, validator
//! plugins = ["target/release/libgpt.so"]
//!
//! [subtensor]
//! network = "local"             # local (the embedded chain), finney, test
//!
//! [validator]
//! batch_size = 8
//!
//! [plugin.gpt]                  # handed to the plugin named `gpt`, as TOML text
//! preset = "nano"
//! ```
//!
//! Environment: `NEURON_GPU_BACKEND`, `NEURON_GPU_ADAPTER`, and for any key
//! `NEURON__SECTION__KEY=value` (double underscores between levels; the value
//! is read as TOML, or as a string when it is not valid TOML).

use std::{
    collections::BTreeMap,
    fmt,
    path::{Path, PathBuf},
};

use neuron_plugin_api::config::closest;
use serde::{Deserialize, Serialize};

use crate::{
    chain::Hyperparams,
    error::{Error, Result},
    gpu::GpuOptions,
    net::{NetConfig, NetSettings},
    wallet::WalletConfig,
    weights::WeightsPipeline,
};

/// What the process runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A whole local subnet in one process: one validator and several miners on the embedded chain.
    #[default]
    Subnet,
    /// One miner.
    Miner,
    /// One validator.
    Validator,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Subnet => "subnet",
            Role::Miner => "miner",
            Role::Validator => "validator",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GpuSettings {
    /// auto, vulkan, metal, dx12 or gl.
    pub backend: String,
    /// Use only adapters whose name contains this ("" for any).
    pub adapter: String,
}

impl Default for GpuSettings {
    fn default() -> Self {
        Self { backend: "auto".into(), adapter: String::new() }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubtensorSettings {
    /// local (the embedded chain), finney or test.
    pub network: String,
    /// A node's WebSocket URL; wins over `network` ("" for none).
    pub chain_endpoint: String,
    /// Wait for extrinsics to be "inclusion" in a block or "finalized".
    pub wait_for: String,
}

impl Default for SubtensorSettings {
    fn default() -> Self {
        Self { network: "local".into(), chain_endpoint: String::new(), wait_for: "inclusion".into() }
    }
}

/// The embedded chain (`subtensor.network = "local"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalChainSettings {
    /// Seconds between blocks (12 on the real chain).
    pub block_time: f64,
    /// Rao emitted per block.
    pub block_emission: u64,
    /// Save the chain's state here at each epoch and resume from it ("" keeps it in memory).
    pub state: String,
    /// The subnet's hyperparameters on the embedded chain.
    pub hyperparams: Hyperparams,
}

impl Default for LocalChainSettings {
    fn default() -> Self {
        Self {
            block_time: 1.0,
            block_emission: 1_000_000_000,
            state: String::new(),
            hyperparams: Hyperparams {
                tempo: 20,
                weights_rate_limit: 0,
                immunity_period: 100,
                activity_cutoff: 5000,
                ..Hyperparams::default()
            },
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WalletSettings {
    pub name: String,
    pub hotkey: String,
    /// Directory holding wallets.
    pub path: String,
}

impl Default for WalletSettings {
    fn default() -> Self {
        Self { name: "default".into(), hotkey: "default".into(), path: "~/.bittensor/wallets".into() }
    }
}

impl WalletSettings {
    pub fn wallet_config(&self) -> WalletConfig {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
        WalletConfig { name: some(&self.name), hotkey: some(&self.hotkey), path: some(&self.path).map(PathBuf::from) }
    }
}

/// Where a neuron serves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AxonSettings {
    /// Address to listen on.
    pub ip: String,
    /// Port to listen on (0: any free port).
    pub port: u16,
    /// Address announced on chain ("" announces `ip`).
    pub external_ip: String,
}

impl Default for AxonSettings {
    fn default() -> Self {
        Self { ip: "127.0.0.1".into(), port: 0, external_ip: String::new() }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MinerSettings {
    /// Train the model (false: serve it as it is, e.g. a model loaded from a checkpoint).
    pub train: bool,
    pub batch_size: u32,
    pub sequence_length: u32,
    /// Peak learning rate (after warm-up).
    pub lr: f64,
    pub min_lr: f64,
    pub warmup_steps: u64,
    /// Step at which the cosine decay reaches min_lr (0: no decay).
    pub decay_steps: u64,
    /// Top-k per position a miner is willing to return at most.
    pub max_top_k: u32,
    /// Print a progress line every this many steps (0: never).
    pub log_every: u64,
}

impl Default for MinerSettings {
    fn default() -> Self {
        Self {
            train: true,
            batch_size: 8,
            sequence_length: 64,
            lr: 1e-3,
            min_lr: 1e-4,
            warmup_steps: 20,
            decay_steps: 5000,
            max_top_k: 1024,
            log_every: 50,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ValidatorSettings {
    /// Sequences per step (the network preset's value unless set).
    pub batch_size: u32,
    /// Tokens per sequence (the network preset's value unless set).
    pub sequence_length: u32,
    /// Miners queried per step.
    pub sample_size: u32,
    /// Top-k asked of each miner per position.
    pub top_k: u32,
    /// Seconds a miner has to answer.
    pub timeout: f64,
    /// Weight of a step's score in each uid's moving average.
    pub alpha: f32,
    /// Failed queries in a row after which a uid's score is set to zero (0: never).
    pub zero_after_misses: u32,
    /// Train the validator's own model on each batch.
    pub train: bool,
    pub lr: f64,
    /// Reset the validator's model every this many steps (0: never).
    pub model_reset_every: u64,
    /// Blocks per epoch (0: the subnet's tempo).
    pub epoch_length: u64,
    /// Seconds after which an epoch ends even if its blocks have not passed (0: none).
    pub epoch_time_limit: f64,
    /// legacy (bittensor <= 10's process_weights_for_netuid) or sdk11.
    pub weights_pipeline: WeightsPipeline,
    /// Legacy pipeline: drop this lowest quantile of weights (u16 proportion).
    pub exclude_quantile: u16,
    pub version_key: u64,
    /// `[validator.record]`: what the validator saw, for `neuron-host rescore`.
    pub record: RecordSettings,
}

/// Recording a validator's steps and epochs (off unless `dir` is set).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordSettings {
    /// Directory of the record's segment files ("" records nothing).
    pub dir: String,
    /// Bound on the bytes of all segments together.
    pub max_bytes: u64,
    /// At the bound: "rotate" (delete the oldest segments) or "stop" (stop recording, one warning).
    pub when_full: String,
}

impl Default for RecordSettings {
    fn default() -> Self {
        Self { dir: String::new(), max_bytes: 1 << 30, when_full: "rotate".into() }
    }
}

impl RecordSettings {
    /// The recorder's settings, `None` when recording is off.
    pub fn recorder(&self) -> Option<crate::record::RecorderSettings> {
        (!self.dir.is_empty()).then(|| crate::record::RecorderSettings {
            dir: PathBuf::from(&self.dir),
            max_bytes: self.max_bytes,
            when_full: if self.when_full == "stop" {
                crate::record::WhenFull::Stop
            } else {
                crate::record::WhenFull::Rotate
            },
        })
    }
}

impl Default for ValidatorSettings {
    fn default() -> Self {
        Self {
            batch_size: 4,
            sequence_length: 64,
            sample_size: 16,
            top_k: 16,
            timeout: 12.0,
            alpha: 0.1,
            zero_after_misses: 8,
            train: true,
            lr: 1e-3,
            model_reset_every: 0,
            epoch_length: 0,
            epoch_time_limit: 0.0,
            weights_pipeline: WeightsPipeline::Legacy,
            exclude_quantile: 0,
            version_key: 0,
            record: RecordSettings::default(),
        }
    }
}

/// One miner of the local subnet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MinerProfile {
    /// Model seed.
    pub seed: u64,
    /// Share of training targets replaced by random tokens (0: clean data).
    pub noise: f64,
    /// Stop answering queries after this many epochs (0: never); to see a miner fall.
    pub stop_answering_after: u64,
}

impl Default for MinerProfile {
    fn default() -> Self {
        Self { seed: 1, noise: 0.0, stop_answering_after: 0 }
    }
}

/// The local subnet (`role = "subnet"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubnetSettings {
    /// One entry per miner: different seeds and data quality, so they differ.
    pub miners: Vec<MinerProfile>,
    /// The validator's stake, in TAO.
    pub validator_stake: f64,
}

impl Default for SubnetSettings {
    fn default() -> Self {
        Self {
            miners: vec![
                MinerProfile { seed: 11, noise: 0.0, stop_answering_after: 0 },
                MinerProfile { seed: 12, noise: 0.3, stop_answering_after: 0 },
                MinerProfile { seed: 13, noise: 0.7, stop_answering_after: 0 },
            ],
            validator_stake: 1000.0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataSettings {
    /// "builtin" (a corpus generated at start-up), a text file, or a nanoGPT uint16 token file (.bin).
    pub dataset: String,
    /// Bytes of built-in corpus to generate.
    pub builtin_bytes: usize,
    pub seed: u64,
}

impl Default for DataSettings {
    fn default() -> Self {
        Self { dataset: "builtin".into(), builtin_bytes: 1 << 20, seed: 7 }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// Address for Prometheus' /metrics.
    pub ip: String,
    /// Port for /metrics (0: off).
    pub port: u16,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self { ip: "127.0.0.1".into(), port: 0 }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingSettings {
    /// text or json.
    pub format: String,
    /// Where runs write their logs ("" for runs/<time>).
    pub run_dir: String,
    /// Seconds between progress lines when stderr is not a terminal (on a
    /// terminal the progress line is redrawn every second).
    pub progress_every: f64,
}

impl Default for LoggingSettings {
    fn default() -> Self {
        Self { format: "text".into(), run_dir: String::new(), progress_every: 30.0 }
    }
}

/// Parameters that depend on the network a neuron runs on. The chain's own
/// values (min_allowed_weights, max_weight_limit) override these where it holds them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkPreset {
    pub batch_size: u32,
    pub sequence_length: u32,
    pub prune_len: u32,
    pub logits_divergence: f64,
    pub min_allowed_weights: u16,
    pub max_weight_limit: u16,
    pub scaling_law_power: f64,
    pub synergy_scaling_law_power: f64,
}

impl Default for NetworkPreset {
    fn default() -> Self {
        Self {
            batch_size: 4,
            sequence_length: 64,
            prune_len: 16,
            logits_divergence: 0.1,
            min_allowed_weights: 1,
            max_weight_limit: u16::MAX,
            scaling_law_power: 0.5,
            synergy_scaling_law_power: 0.6,
        }
    }
}

fn default_presets() -> BTreeMap<String, NetworkPreset> {
    let mut p = BTreeMap::new();
    p.insert("local".to_string(), NetworkPreset::default());
    let remote = NetworkPreset {
        batch_size: 16,
        sequence_length: 256,
        prune_len: 32,
        min_allowed_weights: 8,
        max_weight_limit: 455,
        ..NetworkPreset::default()
    };
    p.insert("finney".to_string(), remote.clone());
    p.insert("test".to_string(), remote);
    p
}

/// Everything the host is configured with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub role: Role,
    pub netuid: u16,
    /// Stop after this many epochs (0: run until stopped).
    pub epochs: u64,
    /// Model plugin files.
    pub plugins: Vec<PathBuf>,
    /// Scoring plugin files (a validator uses one of them, `scorer`).
    pub scoring: Vec<PathBuf>,
    /// Name of the scoring plugin to use ("": the first).
    pub scorer: String,
    /// On a scorer switch: "keep" or "reset" the moving-average scores.
    pub on_scorer_switch: String,
    pub gpu: GpuSettings,
    pub subtensor: SubtensorSettings,
    pub chain: LocalChainSettings,
    pub wallet: WalletSettings,
    pub axon: AxonSettings,
    pub miner: MinerSettings,
    pub validator: ValidatorSettings,
    pub subnet: SubnetSettings,
    pub data: DataSettings,
    pub checkpoint: CheckpointSettings,
    pub metrics: MetricsSettings,
    pub logging: LoggingSettings,
    pub presets: BTreeMap<String, NetworkPreset>,
    /// `[net]`: the neuron's server and client.
    pub net: NetSettings,
    /// `[plugin.<name>]` sections, handed to each plugin as TOML text.
    pub plugin: toml::Table,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            role: Role::Subnet,
            netuid: 1,
            epochs: 0,
            plugins: Vec::new(),
            scoring: Vec::new(),
            scorer: String::new(),
            on_scorer_switch: "keep".into(),
            gpu: GpuSettings::default(),
            subtensor: SubtensorSettings::default(),
            chain: LocalChainSettings::default(),
            wallet: WalletSettings::default(),
            axon: AxonSettings::default(),
            miner: MinerSettings::default(),
            validator: ValidatorSettings::default(),
            subnet: SubnetSettings::default(),
            data: DataSettings::default(),
            checkpoint: CheckpointSettings::default(),
            metrics: MetricsSettings::default(),
            logging: LoggingSettings::default(),
            presets: default_presets(),
            net: NetSettings::default(),
            plugin: toml::Table::new(),
        }
    }
}

/// Smallest bound a record may have.
const MIN_RECORD_BYTES: u64 = 64 * 1024;

/// Subtrees whose keys are checked by their owner, not against the defaults.
const FREE_FORM: &[&str] = &["plugin", "presets", "subnet.miners"];

/// Keys that are gone, and where what they did lives now.
const MOVED_KEYS: &[(&str, &str)] =
    &[("net.bind", "a miner serves on [axon]: set axon.ip and axon.port (--axon.port); a validator serves nothing")];

/// Where a value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Default,
    /// The network's preset (`[presets.<network>]`), for a key left at its default.
    Preset(String),
    File(PathBuf),
    Env(String),
    Flag(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::Preset(n) => write!(f, "preset {n}"),
            Source::File(p) => write!(f, "file {}", p.display()),
            Source::Env(v) => write!(f, "environment {v}"),
            Source::Flag(n) => write!(f, "flag {n}"),
        }
    }
}

/// A value set from outside the file: a dotted key, its value and where it came from.
#[derive(Clone, Debug)]
pub struct Override {
    pub key: String,
    pub value: toml::Value,
    pub source: Source,
}

impl Override {
    pub fn flag(key: &str, flag: &str, value: impl Into<toml::Value>) -> Self {
        Self { key: key.into(), value: value.into(), source: Source::Flag(flag.into()) }
    }

    /// `--set KEY=VALUE`: VALUE is read as TOML, and as a string when it is not TOML
    /// (so `--set data.dataset=corpus.txt` works without quotes).
    pub fn parse_set(item: &str) -> Result<Self> {
        let (key, text) = item.split_once('=').ok_or_else(|| {
            Error::Config(format!("--set `{item}` is not KEY=VALUE (for example --set validator.top_k=32)"))
        })?;
        let key = key.trim();
        if key.is_empty() || key.split('.').any(str::is_empty) {
            return Err(Error::Config(format!("--set `{item}`: `{key}` is not a dotted configuration key")));
        }
        Ok(Self { key: key.into(), value: parse_value(text.trim()), source: Source::Flag(format!("--set {key}")) })
    }
}

/// A loaded configuration and where each leaf came from.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub config: Config,
    merged: toml::Table,
    sources: BTreeMap<String, Source>,
}

fn unknown_key(path: &str, key: &str, known: &[String]) -> Error {
    let hint =
        closest(key, known.iter().map(String::as_str)).map(|k| format!(" (did you mean `{k}`?)")).unwrap_or_default();
    let full = if path.is_empty() { key.to_string() } else { format!("{path}.{key}") };
    if let Some((_, instead)) = MOVED_KEYS.iter().find(|(k, _)| *k == full) {
        return Error::Config(format!("configuration key `{full}` does nothing: {instead}"));
    }
    Error::Config(format!("unknown configuration key `{full}`{hint}"))
}

/// Refuses keys of `given` that the defaults do not have (outside free-form subtrees).
fn check_keys(given: &toml::Table, defaults: &toml::Table, path: &str) -> Result<()> {
    for (key, value) in given {
        let full = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
        if FREE_FORM.contains(&full.as_str()) {
            continue;
        }
        let Some(default) = defaults.get(key) else {
            return Err(unknown_key(path, key, &defaults.keys().cloned().collect::<Vec<_>>()));
        };
        if let (toml::Value::Table(g), toml::Value::Table(d)) = (value, default) {
            check_keys(g, d, &full)?;
        }
    }
    Ok(())
}

/// Merges `layer` into `base`, recording the source of every leaf it sets.
fn merge(
    base: &mut toml::Table,
    layer: &toml::Table,
    source: &Source,
    path: &str,
    sources: &mut BTreeMap<String, Source>,
) {
    for (key, value) in layer {
        let full = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
        match (base.get_mut(key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(l)) if !FREE_FORM.contains(&full.as_str()) => {
                merge(b, l, source, &full, sources)
            }
            _ => {
                base.insert(key.clone(), value.clone());
                sources.retain(|k, _| k != &full && !k.starts_with(&format!("{full}.")));
                record_leaves(value, source, &full, sources);
            }
        }
    }
}

fn record_leaves(value: &toml::Value, source: &Source, path: &str, sources: &mut BTreeMap<String, Source>) {
    match value {
        toml::Value::Table(t) if !FREE_FORM.contains(&path) && !t.is_empty() => {
            for (k, v) in t {
                record_leaves(v, source, &format!("{path}.{k}"), sources);
            }
        }
        _ => {
            sources.insert(path.to_string(), source.clone());
        }
    }
}

/// A dotted key's value as a one-key nested table.
fn nested(key: &str, value: toml::Value) -> toml::Table {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().expect("keys are not empty");
    let mut table = toml::Table::new();
    table.insert(last.to_string(), value);
    for part in parts.into_iter().rev() {
        let mut outer = toml::Table::new();
        outer.insert(part.to_string(), toml::Value::Table(table));
        table = outer;
    }
    table
}

/// Overrides from the environment.
fn env_overrides() -> Vec<Override> {
    let mut out = Vec::new();
    for (var, key) in [("NEURON_GPU_BACKEND", "gpu.backend"), ("NEURON_GPU_ADAPTER", "gpu.adapter")] {
        if let Ok(v) = std::env::var(var) {
            if !v.is_empty() {
                out.push(Override { key: key.into(), value: toml::Value::String(v), source: Source::Env(var.into()) });
            }
        }
    }
    for (var, text) in std::env::vars() {
        let Some(rest) = var.strip_prefix("NEURON__") else { continue };
        let key = rest.split("__").map(str::to_ascii_lowercase).collect::<Vec<_>>().join(".");
        if key.is_empty() || key.split('.').any(str::is_empty) {
            continue;
        }
        out.push(Override { key, value: parse_value(&text), source: Source::Env(var.clone()) });
    }
    out
}

/// A value given as text outside the file: TOML when it parses, a string otherwise.
fn parse_value(text: &str) -> toml::Value {
    format!("v = {text}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(text.to_string()))
}

/// Keys a network preset sets when nothing else did: (key under the preset, config key).
const PRESET_KEYS: &[(&str, &str)] =
    &[("batch_size", "validator.batch_size"), ("sequence_length", "validator.sequence_length")];

/// Keys a network preset hands the scorer when its section does not set them and the
/// scorer knows them.
pub const PRESET_SCORER_KEYS: &[&str] =
    &["prune_len", "logits_divergence", "scaling_law_power", "synergy_scaling_law_power"];

/// Sets the keys of [`PRESET_KEYS`] still at their defaults from the network's preset.
fn apply_preset(merged: &mut toml::Table, sources: &mut BTreeMap<String, Source>) {
    let get = |t: &toml::Table, k: &str| {
        t.get("subtensor").and_then(|s| s.get(k)).and_then(|v| v.as_str()).map(str::to_string)
    };
    let endpoint = get(merged, "chain_endpoint").unwrap_or_default();
    let network =
        if endpoint.is_empty() { get(merged, "network").unwrap_or_else(|| "local".into()) } else { "finney".into() };
    let Some(preset) = merged.get("presets").and_then(|p| p.get(&network)).and_then(|p| p.as_table()).cloned() else {
        return;
    };
    for (preset_key, key) in PRESET_KEYS {
        let Some(value) = preset.get(*preset_key) else { continue };
        if sources.get(*key).is_some_and(|s| *s != Source::Default) {
            continue;
        }
        let (section, leaf) = key.split_once('.').expect("preset keys are dotted");
        if let Some(t) = merged.get_mut(section).and_then(|v| v.as_table_mut()) {
            t.insert(leaf.to_string(), value.clone());
            sources.insert(key.to_string(), Source::Preset(network.clone()));
        }
    }
}

impl Config {
    /// Reads `file` (if given), then the environment, then `flags`.
    pub fn load(file: Option<&Path>) -> Result<Config> {
        Ok(Self::load_layers(file, &[])?.config)
    }

    /// Reads every layer and records where each value came from.
    pub fn load_layers(file: Option<&Path>, flags: &[Override]) -> Result<Loaded> {
        let defaults = toml::Table::try_from(Config::default()).expect("the defaults serialise");
        let mut merged = defaults.clone();
        let mut sources = BTreeMap::new();
        record_leaves(&toml::Value::Table(defaults.clone()), &Source::Default, "", &mut sources);
        sources = sources.into_iter().map(|(k, v)| (k.trim_start_matches('.').to_string(), v)).collect();
        if let Some(path) = file {
            let text =
                std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
            let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
                Error::Config(format!("{}: not valid TOML: {}", path.display(), e.message()))
            })?;
            check_keys(&table, &defaults, "").map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
            merge(&mut merged, &table, &Source::File(path.to_path_buf()), "", &mut sources);
        }
        for o in env_overrides().iter().chain(flags) {
            let layer = nested(&o.key, o.value.clone());
            check_keys(&layer, &defaults, "").map_err(|e| Error::Config(format!("{e} (from {})", o.source)))?;
            merge(&mut merged, &layer, &o.source, "", &mut sources);
        }
        apply_preset(&mut merged, &mut sources);
        let config = Self::from_table(&merged)?;
        Ok(Loaded { config, merged, sources })
    }

    /// Parses configuration text (no environment, no flags).
    pub fn parse(text: &str) -> Result<Config> {
        let table: toml::Table =
            text.parse().map_err(|e: toml::de::Error| Error::Config(format!("not valid TOML: {}", e.message())))?;
        let defaults = toml::Table::try_from(Config::default()).expect("the defaults serialise");
        check_keys(&table, &defaults, "")?;
        let mut merged = defaults;
        merge(&mut merged, &table, &Source::Default, "", &mut BTreeMap::new());
        Self::from_table(&merged)
    }

    fn from_table(merged: &toml::Table) -> Result<Config> {
        let deserializer = toml::Value::Table(merged.clone());
        let config: Config = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let path = e.path().to_string();
            Error::Config(format!(
                "configuration key `{path}`: {}",
                e.inner().to_string().lines().next().unwrap_or("invalid")
            ))
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what types alone cannot.
    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        self.net.to_config().map_err(Error::Config)?;
        if !["local", "finney", "test"].contains(&self.subtensor.network.as_str()) {
            return bad(format!(
                "subtensor.network `{}` is not one of local, finney, test (or set subtensor.chain_endpoint)",
                self.subtensor.network
            ));
        }
        if !["inclusion", "finalized"].contains(&self.subtensor.wait_for.as_str()) {
            return bad(format!("subtensor.wait_for `{}` is not inclusion or finalized", self.subtensor.wait_for));
        }
        if !(self.chain.block_time > 0.0 && self.chain.block_time.is_finite()) {
            return bad(format!(
                "chain.block_time must be a positive number of seconds, got {}",
                self.chain.block_time
            ));
        }
        if self.checkpoint.keep == 0 {
            return bad("checkpoint.keep must be at least 1: the previous checkpoint is the fallback when the newest is damaged".into());
        }
        if self.chain.hyperparams.tempo == 0 {
            return bad("chain.hyperparams.tempo must be at least 1 block".into());
        }
        if !(self.validator.alpha > 0.0 && self.validator.alpha <= 1.0) {
            return bad(format!("validator.alpha must be in (0, 1], got {}", self.validator.alpha));
        }
        if !(self.validator.timeout > 0.0 && self.validator.timeout.is_finite()) {
            return bad(format!(
                "validator.timeout must be a positive number of seconds, got {}",
                self.validator.timeout
            ));
        }
        for (name, batch, seq) in [
            ("miner", self.miner.batch_size, self.miner.sequence_length),
            ("validator", self.validator.batch_size, self.validator.sequence_length),
        ] {
            if batch == 0 || seq == 0 {
                return bad(format!("{name}.batch_size and {name}.sequence_length must be at least 1"));
            }
        }
        if self.validator.top_k == 0 || self.validator.sample_size == 0 {
            return bad("validator.top_k and validator.sample_size must be at least 1".into());
        }
        crate::runtime::schedule::LrSchedule {
            lr: self.miner.lr,
            min_lr: self.miner.min_lr,
            warmup_steps: self.miner.warmup_steps,
            decay_steps: self.miner.decay_steps,
        }
        .validate()
        .map_err(|e| Error::Config(format!("miner: {e}")))?;
        if !["rotate", "stop"].contains(&self.validator.record.when_full.as_str()) {
            return bad(format!(
                "validator.record.when_full `{}` is not rotate or stop",
                self.validator.record.when_full
            ));
        }
        if self.validator.record.max_bytes < MIN_RECORD_BYTES {
            return bad(format!(
                "validator.record.max_bytes must be at least {MIN_RECORD_BYTES} (64 KiB), got {}",
                self.validator.record.max_bytes
            ));
        }
        if !["keep", "reset"].contains(&self.on_scorer_switch.as_str()) {
            return bad(format!("on_scorer_switch `{}` is not keep or reset", self.on_scorer_switch));
        }
        if !["text", "json"].contains(&self.logging.format.as_str()) {
            return bad(format!("logging.format `{}` is not text or json", self.logging.format));
        }
        if !(self.logging.progress_every.is_finite() && self.logging.progress_every > 0.0) {
            return bad(format!(
                "logging.progress_every must be a number of seconds above 0, got {}",
                self.logging.progress_every
            ));
        }
        for (i, m) in self.subnet.miners.iter().enumerate() {
            if !(0.0..=1.0).contains(&m.noise) {
                return bad(format!("subnet.miners[{i}].noise must be between 0 and 1, got {}", m.noise));
            }
        }
        Ok(())
    }

    /// The `[plugin.<name>]` section as TOML text ("" when absent).
    pub fn plugin_section(&self, name: &str) -> String {
        match self.plugin.get(name).and_then(|v| v.as_table()) {
            Some(t) => toml::to_string(t).unwrap_or_default(),
            None => String::new(),
        }
    }

    pub fn gpu_options(&self) -> GpuOptions {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
        GpuOptions { backend: some(&self.gpu.backend), adapter: some(&self.gpu.adapter) }
    }

    pub fn net_config(&self) -> NetConfig {
        self.net.to_config().expect("validated when loaded")
    }

    pub fn wallet_config(&self) -> WalletConfig {
        self.wallet.wallet_config()
    }

    /// A scorer's section with the network preset's values for the keys of
    /// [`PRESET_SCORER_KEYS`] that the section leaves out and the scorer knows
    /// (`known`: the keys of its described default config).
    pub fn scorer_section(&self, name: &str, known: &[String]) -> String {
        let mut table: toml::Table = self.plugin_section(name).parse().unwrap_or_default();
        let preset = toml::Table::try_from(self.preset()).unwrap_or_default();
        for key in PRESET_SCORER_KEYS {
            if known.iter().any(|k| k == key) && !table.contains_key(*key) {
                if let Some(v) = preset.get(*key) {
                    table.insert(key.to_string(), v.clone());
                }
            }
        }
        toml::to_string(&table).unwrap_or_default()
    }

    /// The preset of the network in use.
    pub fn preset(&self) -> NetworkPreset {
        let name = if self.subtensor.chain_endpoint.is_empty() { self.subtensor.network.as_str() } else { "finney" };
        self.presets.get(name).cloned().unwrap_or_default()
    }
}

impl Loaded {
    /// Where `key` (dotted) came from.
    pub fn source(&self, key: &str) -> Option<&Source> {
        self.sources.get(key)
    }

    /// Every leaf as `key = value  # source`, in key order.
    pub fn show(&self) -> String {
        let mut lines = Vec::new();
        fn walk(t: &toml::Table, path: &str, out: &mut Vec<(String, String)>) {
            for (k, v) in t {
                let full = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                match v {
                    toml::Value::Table(inner) if !FREE_FORM.contains(&full.as_str()) && !inner.is_empty() => {
                        walk(inner, &full, out)
                    }
                    other => out.push((full, other.to_string())),
                }
            }
        }
        let mut leaves = Vec::new();
        walk(&self.merged, "", &mut leaves);
        let width = leaves.iter().map(|(k, v)| k.len() + v.len() + 3).max().unwrap_or(0).min(72);
        for (key, value) in leaves {
            let source = self.sources.get(&key).map(ToString::to_string).unwrap_or_else(|| "default".into());
            let text = format!("{key} = {value}");
            lines.push(format!("{text:<width$}  # {source}"));
        }
        lines.join("\n") + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load_and_sections_parse() {
        let c = Config::parse("role = \"miner\"\n[gpu]\nbackend = \"vulkan\"\n[plugin.gpt]\npreset = \"nano\"\n[validator]\nbatch_size = 2\n").unwrap();
        assert_eq!(c.role, Role::Miner);
        assert_eq!(c.gpu_options().backend.as_deref(), Some("vulkan"));
        assert_eq!(c.plugin_section("gpt").trim(), "preset = \"nano\"");
        assert_eq!(c.validator.batch_size, 2);
        assert_eq!(c.validator.top_k, 16, "untouched keys keep their defaults");
    }

    #[test]
    fn unknown_keys_are_refused_with_a_suggestion() {
        let e = Config::parse("[gpu]\nbackends = \"vulkan\"\n").unwrap_err().to_string();
        assert_eq!(e, "unknown configuration key `gpu.backends` (did you mean `backend`?)");
        let e = Config::parse("[validator]\nbatch_sise = 4\n").unwrap_err().to_string();
        assert!(e.contains("`validator.batch_sise` (did you mean `batch_size`?)"), "{e}");
        let e = Config::parse("[chain.hyperparams]\ntempoo = 4\n").unwrap_err().to_string();
        assert!(e.contains("did you mean `tempo`"), "{e}");
    }

    #[test]
    fn checkpoint_keep_is_at_least_one() {
        assert_eq!(Config::parse("[checkpoint]\nkeep = 3\n").unwrap().checkpoint.keep, 3);
        let e = Config::parse("[checkpoint]\nkeep = 0\n").unwrap_err().to_string();
        assert!(e.starts_with("checkpoint.keep must be at least 1"), "{e}");
    }

    #[test]
    fn wrong_types_name_the_key() {
        let e = Config::parse("[validator]\nbatch_size = \"eight\"\n").unwrap_err().to_string();
        assert!(e.starts_with("configuration key `validator.batch_size`"), "{e}");
        let e = Config::parse("role = \"oracle\"\n").unwrap_err().to_string();
        assert!(e.contains("`role`") && e.contains("oracle"), "{e}");
        let e = Config::parse("[net]\nmax_in_flight = \"many\"\n").unwrap_err().to_string();
        assert!(e.starts_with("configuration key `net.max_in_flight`"), "{e}");
        let e = Config::parse("[net]\nmax_in_flight = 0\n").unwrap_err().to_string();
        assert_eq!(e, "net.max_in_flight must be a positive integer");
    }

    #[test]
    fn layers_override_in_order_and_remember_their_source() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("neuron.toml");
        std::fs::write(&file, "netuid = 3\n[validator]\nbatch_size = 2\ntop_k = 5\n").unwrap();
        let flags = [Override::flag("validator.top_k", "--validator.top_k", 9i64)];
        let loaded = Config::load_layers(Some(&file), &flags).unwrap();
        assert_eq!(
            (loaded.config.netuid, loaded.config.validator.batch_size, loaded.config.validator.top_k),
            (3, 2, 9)
        );
        assert_eq!(loaded.source("netuid"), Some(&Source::File(file.clone())));
        assert_eq!(loaded.source("validator.top_k"), Some(&Source::Flag("--validator.top_k".into())));
        assert_eq!(loaded.source("validator.alpha"), Some(&Source::Default));
        let shown = loaded.show();
        assert!(
            shown.lines().any(|l| l.starts_with("validator.top_k = 9") && l.ends_with("# flag --validator.top_k")),
            "{shown}"
        );
        assert!(shown.lines().any(|l| l.starts_with("netuid = 3") && l.contains("# file ")), "{shown}");
        let bad = [Override::flag("validator.topk", "--validator.topk", 1i64)];
        let e = Config::load_layers(None, &bad).unwrap_err().to_string();
        assert!(e.contains("did you mean `top_k`") && e.contains("flag --validator.topk"), "{e}");
    }

    #[test]
    fn recording_is_off_by_default_and_its_bounds_are_checked() {
        let c = Config::parse("").unwrap();
        assert!(c.validator.record.recorder().is_none(), "recording is off unless validator.record.dir is set");
        let c = Config::parse("[validator.record]\ndir = \"rec\"\nmax_bytes = 100000\nwhen_full = \"stop\"\n").unwrap();
        let r = c.validator.record.recorder().unwrap();
        assert_eq!((r.dir.to_str(), r.max_bytes, r.when_full), (Some("rec"), 100_000, crate::record::WhenFull::Stop));
        let e = Config::parse("[validator.record]\ndir = \"rec\"\nwhen_full = \"drop\"\n").unwrap_err().to_string();
        assert!(e.contains("validator.record.when_full `drop` is not rotate or stop") && !e.contains('\n'), "{e}");
        let e = Config::parse("[validator.record]\nmax_bytes = 1000\n").unwrap_err().to_string();
        assert!(e.contains("max_bytes must be at least 65536"), "{e}");
        let e = Config::parse("[validator.record]\ndirectory = \"rec\"\n").unwrap_err().to_string();
        assert!(e.contains("validator.record.directory"), "{e}");
    }

    #[test]
    fn net_is_typed_shown_key_by_key_and_bind_points_to_the_axon() {
        let loaded = Config::load_layers(None, &[]).unwrap();
        let shown = loaded.show();
        assert!(shown.lines().any(|l| l.starts_with("net.require_validator_permit = false")), "{shown}");
        assert!(shown.lines().any(|l| l.starts_with("net.max_in_flight = 64")), "{shown}");
        assert!(!shown.contains("net = {}"), "{shown}");
        let flags = [Override::parse_set("net.bind=0.0.0.0:9000").unwrap()];
        let e = Config::load_layers(None, &flags).unwrap_err().to_string();
        assert!(e.contains("`net.bind` does nothing") && e.contains("axon.port"), "{e}");
    }
}
