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

pub use crate::{
    chain::{local::LocalChainSettings, subtensor::SubtensorSettings},
    data::DataSettings,
    gpu::GpuSettings,
    logging::LoggingSettings,
    metrics::MetricsSettings,
    net::NetSettings,
    record::RecordSettings,
    runtime::{
        checkpoints::CheckpointSettings,
        miner::{AxonSettings, MinerSettings},
        scorer_slot::OnScorerSwitch,
        subnet::{MinerProfile, SubnetSettings},
        validator::ValidatorSettings,
    },
    wallet::WalletSettings,
};
use crate::{
    error::{Error, Result},
    gpu::GpuOptions,
    net::NetConfig,
    wallet::WalletConfig,
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

/// Parameters that depend on the network a neuron runs on (`subtensor.network`): the
/// validator's batch shape, who may call a neuron's server (`[net]`'s access keys), and the
/// scoring keys a scorer's section leaves out. Weight limits are not here: a validator reads
/// them from the chain it sets weights on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkPreset {
    pub batch_size: u32,
    pub sequence_length: u32,
    pub prune_len: u32,
    pub logits_divergence: f64,
    pub scaling_law_power: f64,
    pub synergy_scaling_law_power: f64,
    /// `net.require_registered` unless set: serve only hotkeys registered on the subnet.
    pub require_registered: bool,
    /// `net.require_validator_permit` unless set: serve only hotkeys holding a validator permit.
    pub require_validator_permit: bool,
    /// `net.min_stake_tao` unless set: the stake floor of a caller.
    pub min_stake_tao: f64,
}

impl Default for NetworkPreset {
    fn default() -> Self {
        Self {
            batch_size: 4,
            sequence_length: 64,
            prune_len: 16,
            logits_divergence: 0.1,
            scaling_law_power: 0.5,
            synergy_scaling_law_power: 0.6,
            require_registered: false,
            require_validator_permit: false,
            min_stake_tao: 0.0,
        }
    }
}

fn default_presets() -> BTreeMap<String, NetworkPreset> {
    let mut p = BTreeMap::new();
    p.insert("local".to_string(), NetworkPreset::default());
    // A real network's neurons answer only validators of their subnet: anyone can make a hotkey
    // and sign, and a miner's GPU time is what it is paid for. The local subnet stays open.
    let remote = NetworkPreset {
        batch_size: 16,
        sequence_length: 256,
        prune_len: 32,
        require_registered: true,
        require_validator_permit: true,
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
    /// Stop after this many epochs of this run (0: run until stopped); a restarted subnet runs as many more.
    pub epochs: u64,
    /// Model plugin files.
    pub plugins: Vec<PathBuf>,
    /// Scoring plugin files (a validator uses one of them, `scorer`).
    pub scoring: Vec<PathBuf>,
    /// Name of the scoring plugin to use ("": the first).
    pub scorer: String,
    /// On a scorer switch: keep or reset the moving-average scores.
    pub on_scorer_switch: OnScorerSwitch,
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
            on_scorer_switch: OnScorerSwitch::Keep,
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
const PRESET_KEYS: &[(&str, &str)] = &[
    ("batch_size", "validator.batch_size"),
    ("sequence_length", "validator.sequence_length"),
    ("require_registered", "net.require_registered"),
    ("require_validator_permit", "net.require_validator_permit"),
    ("min_stake_tao", "net.min_stake_tao"),
];

/// Keys a network preset hands the scorer as defaults (`plugin_api::config::NETWORK_DEFAULTS`):
/// a scorer reading one gets the section's value, else the preset's.
pub const PRESET_SCORER_KEYS: &[&str] =
    &["prune_len", "logits_divergence", "scaling_law_power", "synergy_scaling_law_power"];

/// Sets the keys of [`PRESET_KEYS`] still at their defaults from the network's preset.
fn apply_preset(merged: &mut toml::Table, sources: &mut BTreeMap<String, Source>) {
    let get = |t: &toml::Table, k: &str| {
        t.get("subtensor").and_then(|s| s.get(k)).and_then(|v| v.as_str()).map(str::to_string)
    };
    // The preset is the named network's, whatever node serves it (a chain_endpoint says where
    // the node is, not which network it belongs to).
    let network = get(merged, "network").unwrap_or_else(|| "local".into());
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
        let checks = [
            self.net.to_config().map(|_| ()),
            self.subtensor.validate(),
            self.chain.validate(),
            self.checkpoint.validate(),
            self.miner.validate(),
            self.validator.validate(),
            self.logging.validate(),
            self.subnet.validate(),
        ];
        checks.into_iter().collect::<std::result::Result<(), String>>().map_err(Error::Config)
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

    /// A scorer's section, with the network preset's values for [`PRESET_SCORER_KEYS`] in its
    /// `NETWORK_DEFAULTS` table: the scorer reads them where the section leaves a key out, and
    /// ignores those it has no use for.
    pub fn scorer_section(&self, name: &str) -> String {
        let mut table: toml::Table = self.plugin_section(name).parse().unwrap_or_default();
        let preset = toml::Table::try_from(self.preset()).unwrap_or_default();
        let network: toml::Table =
            PRESET_SCORER_KEYS.iter().filter_map(|k| preset.get(*k).map(|v| (k.to_string(), v.clone()))).collect();
        if !network.is_empty() {
            table.insert(neuron_plugin_api::config::NETWORK_DEFAULTS.to_string(), toml::Value::Table(network));
        }
        toml::to_string(&table).unwrap_or_default()
    }

    /// The preset of the network in use (`subtensor.network`).
    pub fn preset(&self) -> NetworkPreset {
        self.presets.get(&self.subtensor.network).cloned().unwrap_or_default()
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
        assert!(
            e.contains("`validator.record.when_full`") && e.contains("`rotate` or `stop`") && !e.contains('\n'),
            "{e}"
        );
        for (text, key) in [
            ("on_scorer_switch = \"forget\"\n", "`on_scorer_switch`"),
            ("[logging]\nformat = \"xml\"\n", "`logging.format`"),
            ("[subtensor]\nwait_for = \"soon\"\n", "`subtensor.wait_for`"),
        ] {
            let e = Config::parse(text).unwrap_err().to_string();
            assert!(e.contains(key) && e.contains("expected"), "{e}");
        }
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

    #[test]
    fn the_preset_follows_the_network_named_even_with_a_custom_endpoint() {
        let flags = |network: &str| {
            vec![
                Override::flag("subtensor.chain_endpoint", "--subtensor.chain_endpoint", "ws://127.0.0.1:9944"),
                Override::flag("subtensor.network", "--subtensor.network", network),
            ]
        };
        let test = Config::load_layers(None, &flags("test")).unwrap();
        assert_eq!(test.config.validator.sequence_length, 256);
        assert_eq!(test.source("validator.sequence_length"), Some(&Source::Preset("test".into())));
        let local = Config::load_layers(None, &flags("local")).unwrap();
        assert_eq!(local.config.validator.sequence_length, 64, "not silently finney's");
        assert_eq!(local.source("validator.sequence_length"), Some(&Source::Preset("local".into())));
    }

    #[test]
    fn a_real_network_serves_only_its_validators_unless_told_otherwise() {
        let network = |n: &str| Override::flag("subtensor.network", "--subtensor.network", n);
        for name in ["finney", "test"] {
            let loaded = Config::load_layers(None, &[network(name)]).unwrap();
            let rule = loaded.config.net_config().server.access;
            assert_eq!(rule, crate::net::AccessRule::validators_only(), "{name}");
            assert_eq!(loaded.source("net.require_validator_permit"), Some(&Source::Preset(name.into())));
        }
        let local = Config::load_layers(None, &[network("local")]).unwrap();
        assert_eq!(
            local.config.net_config().server.access,
            crate::net::AccessRule::default(),
            "the local subnet is open"
        );
        // An operator opens it up, or sets a stake floor, and that wins over the preset.
        let opened = Config::load_layers(
            None,
            &[
                network("finney"),
                Override::parse_set("net.require_validator_permit=false").unwrap(),
                Override::parse_set("net.min_stake_tao=1000.0").unwrap(),
            ],
        )
        .unwrap();
        let rule = opened.config.net_config().server.access;
        assert!(rule.require_registered && !rule.require_validator_permit);
        assert_eq!(rule.min_stake_rao, 1_000_000_000_000);
        assert!(matches!(opened.source("net.require_validator_permit"), Some(Source::Flag(_))));
    }
}
