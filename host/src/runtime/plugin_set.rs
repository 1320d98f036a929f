//! The plugins of a run: which loaded library is the model and which the scorer, the GPU opened
//! with what they all require, and scorers built with the network preset's scoring keys.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use neuron_plugin_api::PluginKinds;

use crate::{
    config::Config,
    error::{Error, Result},
    gpu::{GpuDevice, Requirement},
    plugins::{load_all, LoadedPlugin, PluginScorer},
};

/// The scorer a subnet uses when none is named: the loss-based one, looked
/// for beside the model plugin and beside the executable.
pub const DEFAULT_SCORER_LIBRARY: &str = "scoring_loss";

/// The plugins of a run: the model and the scorer, and the libraries they came from.
pub struct PluginSet {
    pub libraries: Vec<LoadedPlugin>,
    model: usize,
    scorer: Option<usize>,
}

impl PluginSet {
    /// Loads `config.plugins` and `config.scoring`; picks the model plugin and the
    /// scorer (`config.scorer` by name, else the only one given, else the default
    /// found beside the model plugin when `need_scorer`).
    pub fn load(config: &Config, need_scorer: bool) -> Result<Self> {
        if config.plugins.is_empty() {
            return Err(Error::Config(
                "no model plugin given: pass --plugin PATH (for example target/release/libgpt.so), or list `plugins` in the config file"
                    .into(),
            ));
        }
        let mut paths: Vec<PathBuf> = config.plugins.clone();
        paths.extend(config.scoring.iter().cloned());
        let mut libraries = load_all(&paths)?;
        let models: Vec<usize> = (0..libraries.len()).filter(|&i| libraries[i].provides(PluginKinds::MODEL)).collect();
        let model = match models.as_slice() {
            [] => {
                return Err(Error::Config(format!(
                    "none of the plugins given provides a model ({}); pass a model plugin with --plugin",
                    names(&libraries)
                )))
            }
            [one] => *one,
            many => {
                return Err(Error::Config(format!(
                    "more than one model plugin given ({}); a neuron runs one model",
                    many.iter().map(|&i| libraries[i].name()).collect::<Vec<_>>().join(", ")
                )))
            }
        };
        let scorers = |libs: &[LoadedPlugin]| -> Vec<usize> {
            (0..libs.len()).filter(|&i| libs[i].provides(PluginKinds::SCORER)).collect()
        };
        let mut found = scorers(&libraries);
        if found.is_empty() && need_scorer {
            let path = default_scorer_path(libraries[model].path()).ok_or_else(|| {
                Error::Config(format!(
                    "no scoring plugin given and no {} beside {} or the executable; pass --scoring PATH",
                    library_file(DEFAULT_SCORER_LIBRARY),
                    libraries[model].path().display()
                ))
            })?;
            libraries.push(LoadedPlugin::load(&path)?);
            found = scorers(&libraries);
        }
        let scorer = select_scorer(&libraries, &found, &config.scorer)?;
        Ok(Self { libraries, model, scorer })
    }

    pub fn model(&self) -> &LoadedPlugin {
        &self.libraries[self.model]
    }

    pub fn scorer(&self) -> Option<&LoadedPlugin> {
        self.scorer.map(|i| &self.libraries[i])
    }

    /// Opens the GPU with every loaded plugin's requirements.
    pub fn open_gpu(&self, config: &Config) -> Result<Arc<GpuDevice>> {
        open_gpu(config, &self.libraries)
    }

    /// The scorer, built with the network preset's values for the scoring keys
    /// its config section leaves out (the chain's own values win elsewhere).
    pub fn new_scorer(&self, gpu: &Arc<GpuDevice>, config: &Config) -> Result<PluginScorer> {
        let plugin =
            self.scorer().ok_or_else(|| Error::Config("no scoring plugin loaded; pass --scoring PATH".into()))?;
        build_scorer(plugin, gpu, config)
    }

    /// The libraries that provide a scorer (the candidates a config reload picks from).
    pub fn scorer_libraries(&self) -> Vec<usize> {
        (0..self.libraries.len()).filter(|&i| self.libraries[i].provides(PluginKinds::SCORER)).collect()
    }

    /// Index in `libraries` of the scorer in use.
    pub fn scorer_index(&self) -> Option<usize> {
        self.scorer
    }

    /// The model plugin's section with `seed` set, unless the section sets it.
    pub fn model_section(&self, config: &Config, seed: u64) -> Result<String> {
        let mut table: toml::Table = config
            .plugin_section(self.model().name())
            .parse()
            .map_err(|e| Error::Config(format!("[plugin.{}] is not valid TOML: {e}", self.model().name())))?;
        table.entry("seed").or_insert(toml::Value::Integer(seed as i64));
        Ok(toml::to_string(&table).unwrap_or_default())
    }
}

/// Opens the GPU (`[gpu]`) with the requirements every plugin of `plugins` declares.
pub fn open_gpu(config: &Config, plugins: &[LoadedPlugin]) -> Result<Arc<GpuDevice>> {
    let reqs: Vec<Requirement<'_>> =
        plugins.iter().map(|p| Requirement { plugin: p.name(), gpu: &p.info().gpu }).collect();
    Ok(GpuDevice::open(&config.gpu_options(), &reqs)?)
}

/// Picks the scorer among `candidates` (indices into `libraries`): the one
/// called `name`, else the only one; `None` when there is none.
pub fn select_scorer(libraries: &[LoadedPlugin], candidates: &[usize], name: &str) -> Result<Option<usize>> {
    if name.is_empty() {
        return match candidates {
            [] => Ok(None),
            [one] => Ok(Some(*one)),
            many => Err(Error::Config(format!(
                "more than one scorer loaded ({}); name the one to use with --scorer NAME",
                many.iter().map(|&i| libraries[i].name()).collect::<Vec<_>>().join(", ")
            ))),
        };
    }
    candidates.iter().copied().find(|&i| libraries[i].name() == name).map(Some).ok_or_else(|| {
        Error::Config(format!(
            "scorer `{name}` is not among the plugins loaded ({}); load it with --scoring PATH",
            names(libraries)
        ))
    })
}

/// Builds `plugin`'s scorer with its `[plugin.<name>]` section and the network preset's scoring
/// values as defaults (`Config::scorer_section`).
pub fn build_scorer(plugin: &LoadedPlugin, gpu: &Arc<GpuDevice>, config: &Config) -> Result<PluginScorer> {
    Ok(plugin.new_scorer(gpu, &config.scorer_section(plugin.name()))?)
}

fn names(libraries: &[LoadedPlugin]) -> String {
    libraries.iter().map(|p| p.name()).collect::<Vec<_>>().join(", ")
}

fn library_file(name: &str) -> String {
    format!("{}{name}{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX)
}

fn default_scorer_path(model_plugin: &Path) -> Option<PathBuf> {
    let file = library_file(DEFAULT_SCORER_LIBRARY);
    let beside_model = model_plugin.parent().map(|d| d.join(&file));
    let beside_exe = std::env::current_exe().ok().and_then(|e| e.parent().map(|d| d.join(&file)));
    [beside_model, beside_exe].into_iter().flatten().find(|p| p.is_file())
}
