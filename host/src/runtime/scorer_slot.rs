//! The validator's scorer, and swapping it while the validator runs.
//!
//! The validator scores through a [`ScorerSlot`]. When the slot was given the
//! config's sources (the `--config` file, the environment and the flags: the
//! inputs of `Config::load_layers`), it re-reads them after a SIGHUP or when
//! the file's modification time or size changes (checked once per step), and
//! applies the result at the next epoch boundary, after that epoch's weights
//! are set:
//!
//! - a changed `scorer`, `scoring` or `[plugin.<scorer>]` section builds the
//!   new scorer (from a library already loaded or a new one); the scores are
//!   kept or reset per `on_scorer_switch`; the switch is logged in one line
//!   and counted in the epoch record;
//! - the keys of [`LIVE_VALIDATOR_KEYS`] take effect at once;
//! - any other changed key is named in the log as needing a restart, and not applied;
//! - a config that does not load, names a missing library or an unknown
//!   scorer, or whose scorer cannot be built, is refused in one line and
//!   nothing changes.
//!
//! A new scorer that fails on its first step gives way to the one it replaced
//! (one line in the log), so a swap never stops the validator.

use std::{
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::SystemTime,
};

use neuron_plugin_api::{MinerResponse, PluginKinds, Scores, ScoringBatch};

use super::plugin_set::{build_scorer, select_scorer};
use crate::{
    config::{Config, Override, ValidatorSettings},
    error::{Error, Result},
    gpu::GpuDevice,
    plugins::{LoadedPlugin, PluginScorer},
    scores::ScoreBook,
};

/// Validator keys a reload applies without a restart. (`model_reset_every`
/// is not one: the state it resets to is taken at start.)
pub const LIVE_VALIDATOR_KEYS: &[&str] = &[
    "validator.alpha",
    "validator.zero_after_misses",
    "validator.sample_size",
    "validator.top_k",
    "validator.lr",
    "validator.exclude_quantile",
    "validator.weights_pipeline",
    "validator.version_key",
];

/// Keys that choose the scorer (applied by building it again).
const SCORER_KEYS: &[&str] = &["scorer", "scoring", "on_scorer_switch"];

/// What a scorer switch does to the moving-average scores (`on_scorer_switch`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnScorerSwitch {
    /// Keep them: the new scorer's scores blend in at the book's alpha.
    #[default]
    Keep,
    /// Start every uid from zero.
    Reset,
}

/// Where a config comes from: what `Config::load_layers` reads.
#[derive(Clone, Debug, Default)]
pub struct ConfigSource {
    pub file: Option<PathBuf>,
    pub flags: Vec<Override>,
}

impl ConfigSource {
    pub fn load(&self) -> Result<Config> {
        Ok(Config::load_layers(self.file.as_deref(), &self.flags)?.config)
    }
}

/// What a slot needs to rebuild its scorer from a changed config.
pub struct Reload {
    pub source: ConfigSource,
    /// The config the run started with.
    pub config: Config,
    /// Every library loaded so far (the model's too; libraries are never unloaded).
    pub libraries: Vec<LoadedPlugin>,
    /// The scorer libraries a config without `scoring` chooses from.
    pub default_candidates: Vec<usize>,
    /// Index in `libraries` of the scorer in use.
    pub current: usize,
    pub gpu: Arc<GpuDevice>,
    /// Set by the SIGHUP handler.
    pub signal: Arc<AtomicBool>,
}

/// The slot for a run's scorer: reloading when the run was given its config's
/// sources and a SIGHUP flag, fixed otherwise.
pub fn slot_for(
    scorer: PluginScorer,
    plugins: &super::plugin_set::PluginSet,
    config: &Config,
    gpu: &Arc<GpuDevice>,
    reload: Option<(ConfigSource, Arc<AtomicBool>)>,
) -> ScorerSlot {
    match (reload, plugins.scorer_index()) {
        (Some((source, signal)), Some(current)) => ScorerSlot::reloading(
            scorer,
            Reload {
                source,
                config: config.clone(),
                libraries: plugins.libraries.clone(),
                default_candidates: plugins.scorer_libraries(),
                current,
                gpu: gpu.clone(),
                signal,
            },
        ),
        _ => ScorerSlot::fixed(scorer),
    }
}

/// What happened to the scorer at an epoch boundary.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Boundary {
    /// The scorer that scored the epoch's steps.
    pub scorer: String,
    /// "a → b, scores kept|reset" when a switch took effect at this boundary.
    pub switch: Option<String>,
    /// What a config re-read at this boundary did (None: none was asked for).
    pub reload: Option<String>,
}

struct Watch {
    reload: Reload,
    stamp: Option<(SystemTime, u64)>,
    pending: Option<&'static str>,
}

/// The scorer in use, and (with a [`Reload`]) the means to replace it.
pub struct ScorerSlot {
    scorer: PluginScorer,
    /// Its effective configuration, as it describes it.
    config_text: String,
    /// The scorer it replaced, until the new one has scored once.
    previous: Option<(PluginScorer, String, usize)>,
    switches: u64,
    watch: Option<Watch>,
}

fn file_stamp(path: Option<&Path>) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path?).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

fn described_config(scorer: &PluginScorer) -> String {
    scorer.describe().map(|d| d.config.to_string()).unwrap_or_default()
}

impl ScorerSlot {
    /// A scorer that stays for the whole run.
    pub fn fixed(scorer: PluginScorer) -> Self {
        let config_text = described_config(&scorer);
        Self { scorer, config_text, previous: None, switches: 0, watch: None }
    }

    /// A scorer that a changed config may replace at an epoch boundary.
    pub fn reloading(scorer: PluginScorer, reload: Reload) -> Self {
        let config_text = described_config(&scorer);
        let stamp = file_stamp(reload.source.file.as_deref());
        Self { scorer, config_text, previous: None, switches: 0, watch: Some(Watch { reload, stamp, pending: None }) }
    }

    /// The plugin name of the scorer in use.
    pub fn name(&self) -> &str {
        self.scorer.plugin()
    }

    /// The scorer's effective configuration (TOML), as it describes it.
    pub fn config_text(&self) -> &str {
        &self.config_text
    }

    /// Switches so far in this run.
    pub fn switches(&self) -> u64 {
        self.switches
    }

    /// Scores a step. A scorer swapped in at the last boundary that fails on
    /// its first step is replaced by the one before it, which scores instead.
    /// The current scorer, for checkpoints (its state is saved and restored).
    pub fn scorer_mut(&mut self) -> &mut PluginScorer {
        &mut self.scorer
    }

    /// The current scorer's compute-context statistics (GPU memory in use).
    pub fn compute_stats(&self) -> neuron_plugin_api::ComputeStats {
        self.scorer.compute_stats()
    }

    pub fn score(&mut self, who: &str, batch: ScoringBatch<'_>, responses: &[MinerResponse]) -> Result<Scores> {
        match self.scorer.score(batch, responses) {
            Ok(s) => {
                self.previous = None;
                Ok(s)
            }
            Err(e) => {
                let Some((previous, text, index)) = self.previous.take() else { return Err(e.into()) };
                tracing::error!(target: "neuron_host::validator", "{who}: scorer {} failed on its first step ({e}); going back to {}", self.name(), previous.plugin());
                let failed = std::mem::replace(&mut self.scorer, previous);
                drop(failed);
                self.config_text = text;
                self.switches += 1;
                if let Some(w) = &mut self.watch {
                    w.reload.current = index;
                }
                Ok(self.scorer.score(batch, responses)?)
            }
        }
    }

    /// Notices a SIGHUP or a changed config file (once per step; cheap).
    pub fn poll(&mut self) {
        let Some(w) = &mut self.watch else { return };
        if w.reload.signal.swap(false, Ordering::AcqRel) {
            w.pending = Some("SIGHUP");
        }
        let stamp = file_stamp(w.reload.source.file.as_deref());
        if stamp != w.stamp {
            w.stamp = stamp;
            w.pending.get_or_insert("file changed");
        }
    }

    /// At an epoch boundary, after the epoch's weights: applies a re-read config if one is due.
    pub fn at_boundary(
        &mut self,
        who: &str,
        epoch: u64,
        settings: &mut ValidatorSettings,
        book: &mut ScoreBook,
    ) -> Boundary {
        self.poll();
        let mut out = Boundary { scorer: self.name().to_string(), ..Boundary::default() };
        let Some(trigger) = self.watch.as_mut().and_then(|w| w.pending.take()) else { return out };
        let at = format!("{who}: config re-read at the end of epoch {epoch} ({trigger})");
        match self.reload(settings, book) {
            Err(e) => {
                tracing::error!(target: "neuron_host::validator", "{at} refused; scorer {} and settings unchanged: {e}", self.name());
                out.reload = Some(format!("refused: {e}"));
            }
            Ok(applied) => {
                let mut parts = Vec::new();
                if let Some(switch) = &applied.switch {
                    parts.push(format!("scorer switch: {switch}"));
                }
                if !applied.live.is_empty() {
                    parts.push(format!("applied {}", applied.live.join(", ")));
                }
                if !applied.restart.is_empty() {
                    parts.push(format!("need a restart (not applied): {}", applied.restart.join(", ")));
                }
                if parts.is_empty() {
                    parts.push("nothing changed".into());
                }
                let summary = parts.join("; ");
                tracing::info!(target: "neuron_host::validator", "{at}: {summary}");
                out.switch = applied.switch;
                out.reload = Some(summary);
            }
        }
        out
    }

    fn reload(&mut self, settings: &mut ValidatorSettings, book: &mut ScoreBook) -> Result<Applied> {
        let w = self.watch.as_mut().expect("reload needs a watch");
        let r = &mut w.reload;
        let new = r.source.load()?;
        let candidates = if new.scoring.is_empty() {
            r.default_candidates.clone()
        } else {
            let mut found = Vec::new();
            for path in &new.scoring {
                let i = library_for(&mut r.libraries, path)?;
                if r.libraries[i].provides(PluginKinds::SCORER) {
                    found.push(i);
                }
            }
            found
        };
        let index = select_scorer(&r.libraries, &candidates, &new.scorer)?
            .ok_or_else(|| Error::Config("no scoring plugin among `scoring`; name one with --scoring PATH".into()))?;
        let name = r.libraries[index].name().to_string();
        let old_name = r.libraries[r.current].name().to_string();
        let rebuild = index != r.current || new.plugin_section(&name) != r.config.plugin_section(&name);
        let built = if rebuild { Some(build_scorer(&r.libraries[index], &r.gpu, &new)?) } else { None };

        // Nothing below fails: apply.
        let changed = changed_keys(&r.config, &new);
        let (mut live, mut restart) = (Vec::new(), Vec::new());
        for key in changed {
            let scorer_key = SCORER_KEYS.contains(&key.as_str())
                || key.strip_prefix("plugin.").is_some_and(|p| p == name || p == old_name);
            if scorer_key {
                continue;
            }
            if LIVE_VALIDATOR_KEYS.contains(&key.as_str()) {
                live.push(format!("{key} = {}", leaf(&new, &key)));
            } else {
                restart.push(key);
            }
        }
        for key in LIVE_VALIDATOR_KEYS {
            match *key {
                "validator.alpha" => settings.alpha = new.validator.alpha,
                "validator.zero_after_misses" => settings.zero_after_misses = new.validator.zero_after_misses,
                "validator.sample_size" => settings.sample_size = new.validator.sample_size,
                "validator.top_k" => settings.top_k = new.validator.top_k,
                "validator.lr" => settings.lr = new.validator.lr,
                "validator.exclude_quantile" => settings.exclude_quantile = new.validator.exclude_quantile,
                "validator.weights_pipeline" => settings.weights_pipeline = new.validator.weights_pipeline,
                "validator.version_key" => settings.version_key = new.validator.version_key,
                other => unreachable!("{other} is listed live but not applied"),
            }
        }
        book.set_alpha(settings.alpha);
        book.set_zero_after_misses(settings.zero_after_misses);
        let reset = new.on_scorer_switch == OnScorerSwitch::Reset;
        let old_index = r.current;
        r.current = index;
        r.config = new;
        let switch = built.map(|scorer| {
            let text = described_config(&scorer);
            let old = std::mem::replace(&mut self.scorer, scorer);
            let old_text = std::mem::replace(&mut self.config_text, text);
            self.previous = Some((old, old_text, old_index));
            self.switches += 1;
            if reset {
                book.reset_scores();
            }
            let what =
                if old_name == name { format!("{name} (new configuration)") } else { format!("{old_name} → {name}") };
            format!("{what}, scores {}", if reset { "reset" } else { "kept" })
        });
        Ok(Applied { switch, live, restart })
    }
}

struct Applied {
    switch: Option<String>,
    live: Vec<String>,
    restart: Vec<String>,
}

/// The library loaded from `path`, loading it now if none was.
fn library_for(libraries: &mut Vec<LoadedPlugin>, path: &Path) -> Result<usize> {
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let want = canonical(path);
    if let Some(i) = libraries.iter().position(|l| canonical(l.path()) == want) {
        return Ok(i);
    }
    let loaded = LoadedPlugin::load(path)?;
    if let Some(other) = libraries.iter().find(|l| l.name() == loaded.name()) {
        return Err(neuron_plugin_host::Error::PluginLoad {
            path: path.to_path_buf(),
            cause: format!(
                "declares the name `{}`, already loaded from {}; a loaded library cannot be replaced without a restart",
                loaded.name(),
                other.path().display()
            ),
        }
        .into());
    }
    libraries.push(loaded);
    Ok(libraries.len() - 1)
}

/// A config as dotted keys and values; `[plugin.<name>]` sections count as one key each.
fn leaves(config: &Config) -> Vec<(String, toml::Value)> {
    fn walk(t: &toml::Table, path: &str, out: &mut Vec<(String, toml::Value)>) {
        for (k, v) in t {
            let full = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
            match v {
                toml::Value::Table(inner) if !full.starts_with("plugin.") => walk(inner, &full, out),
                other => out.push((full, other.clone())),
            }
        }
    }
    let mut out = Vec::new();
    if let Ok(table) = toml::Table::try_from(config) {
        walk(&table, "", &mut out);
    }
    out
}

/// The keys whose values differ between two configs.
pub fn changed_keys(old: &Config, new: &Config) -> Vec<String> {
    let a: std::collections::BTreeMap<_, _> = leaves(old).into_iter().collect();
    let b: std::collections::BTreeMap<_, _> = leaves(new).into_iter().collect();
    let mut keys: Vec<String> = a.keys().chain(b.keys()).filter(|k| a.get(*k) != b.get(*k)).cloned().collect();
    keys.sort();
    keys.dedup();
    keys
}

fn leaf(config: &Config, key: &str) -> String {
    // f32 keys (alpha) serialise widened to f64: show them as the f32 they are.
    let show = |v: toml::Value| match v {
        toml::Value::Float(f) if f64::from(f as f32) == f => format!("{}", f as f32),
        other => other.to_string(),
    };
    leaves(config).into_iter().find(|(k, _)| k == key).map(|(_, v)| show(v)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_keys_name_leaves_and_plugin_sections() {
        let old = Config::parse("[validator]\nalpha = 0.1\n[plugin.gpt]\npreset = \"tiny\"\n").unwrap();
        let new = Config::parse(
            "scorer = \"x\"\n[validator]\nalpha = 0.2\nbatch_size = 9\n[validator.record]\ndir = \"r\"\n[plugin.gpt]\npreset = \"nano\"\n[plugin.x]\nk = 1\n",
        )
        .unwrap();
        assert_eq!(
            changed_keys(&old, &new),
            vec!["plugin.gpt", "plugin.x", "scorer", "validator.alpha", "validator.batch_size", "validator.record.dir"]
        );
        assert!(changed_keys(&old, &old).is_empty());
        assert_eq!(leaf(&new, "validator.alpha"), "0.2");
    }
}
