//! Loading plugins and calling them.
//!
//! Each file is opened with `lib_header_from_path` and its root module taken
//! with `init_root_module`, never `RootModule::load_from_file`: the latter keeps
//! one module per root-module type, so a second plugin would silently be the
//! first one again. Libraries are never unloaded (abi_stable does not support
//! it); a changed plugin needs a restart.
//!
//! Every failure becomes one line naming the file and the cause.

mod log_sink;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use abi_stable::{
    library::{lib_header_from_path, LibraryError, RootModule},
    std_types::{RResult, RSlice},
};
use neuron_plugin_api::abi::{ComputeBox, HostServices, ModelBox, PluginModRef, ScorerBox};
use neuron_plugin_api::{
    ComputeStats, ForwardOutput, MinerResponse, ModelDescription, OutputRequest, PluginError, PluginInfo, PluginKinds,
    ScorerDescription, Scores, ScoringBatch, StateGroup, StepStats, Tensor, TensorSpec, TokenBatch, ABI_VERSION,
};

use crate::{
    error::{Error, Result},
    gpu::GpuDevice,
};

pub use log_sink::HostLogSink;

/// A plugin library, loaded and initialised. Cloning shares the library.
#[derive(Clone)]
pub struct LoadedPlugin {
    path: PathBuf,
    module: PluginModRef,
    info: PluginInfo,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin").field("path", &self.path).field("name", &self.info.name).finish()
    }
}

impl LoadedPlugin {
    /// Loads the plugin at `path`, checks its ABI, installs the log bridge
    /// and reads what it declares.
    pub fn load(path: &Path) -> Result<Self> {
        let fail = |cause: String| Error::PluginLoad { path: path.to_path_buf(), cause };
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(fail(
                    "no such file; check the path, or build the plugin first (`cargo build --release`)".into(),
                ))
            }
            Err(e) => return Err(fail(format!("cannot read it: {e}"))),
            Ok(m) if m.is_dir() => return Err(fail("is a directory, not a shared library".into())),
            Ok(_) => {}
        }
        let header = lib_header_from_path(path).map_err(|e| fail(describe_library_error(&e, path)))?;
        let module = header.init_root_module::<PluginModRef>().map_err(|e| fail(describe_library_error(&e, path)))?;
        let host = HostServices { log: HostLogSink::into_abi(), host_version: env!("CARGO_PKG_VERSION").into() };
        if let RResult::RErr(e) = (module.init())(host) {
            return Err(fail(format!("its init failed: {}", e.message)));
        }
        let info = match (module.info())() {
            RResult::ROk(info) => info,
            RResult::RErr(e) => return Err(fail(format!("its info() failed: {}", e.message))),
        };
        let name = info.name.as_str();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(fail(format!("declares an invalid name `{name}` (use letters, digits, `-` and `_`)")));
        }
        if info.kinds.0 == 0 {
            return Err(fail("declares neither a model nor a scorer".into()));
        }
        tracing::debug!(target: "neuron_host::plugins", "loaded plugin {} {} from {}", info.name, info.version, path.display());
        Ok(Self { path: path.to_path_buf(), module, info })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }
    pub fn name(&self) -> &str {
        self.info.name.as_str()
    }
    pub fn provides(&self, kind: PluginKinds) -> bool {
        self.info.kinds.contains(kind)
    }

    /// Builds a model from this plugin, with its own compute context on `gpu`.
    pub fn new_model(&self, gpu: &Arc<GpuDevice>, config: &str) -> Result<PluginModel> {
        if !self.provides(PluginKinds::MODEL) {
            return Err(self.error("model constructor", PluginError::unsupported("this plugin provides no model")));
        }
        let ctx = gpu.context(&format!("{} model", self.name())).into_abi();
        match (self.module.new_model())(ctx.clone(), config.into()) {
            RResult::ROk(inner) => Ok(PluginModel { plugin: self.name().to_string(), inner, ctx }),
            RResult::RErr(e) => Err(self.error("model constructor", e)),
        }
    }

    /// Builds a scorer from this plugin, with its own compute context on `gpu`.
    pub fn new_scorer(&self, gpu: &Arc<GpuDevice>, config: &str) -> Result<PluginScorer> {
        if !self.provides(PluginKinds::SCORER) {
            return Err(self.error("scorer constructor", PluginError::unsupported("this plugin provides no scorer")));
        }
        let ctx = gpu.context(&format!("{} scorer", self.name())).into_abi();
        match (self.module.new_scorer())(ctx.clone(), config.into()) {
            RResult::ROk(inner) => Ok(PluginScorer { plugin: self.name().to_string(), inner, ctx }),
            RResult::RErr(e) => Err(self.error("scorer constructor", e)),
        }
    }

    fn error(&self, op: &'static str, e: PluginError) -> Error {
        Error::plugin(self.name(), op, e)
    }
}

/// One line for each way abi_stable can refuse a library.
fn describe_library_error(e: &LibraryError, path: &Path) -> String {
    match e {
        LibraryError::OpenError { err, .. } => {
            let text = err.to_string();
            let text = text.replace(&format!("{}: ", path.display()), "");
            format!("not a loadable shared library ({})", text.lines().next().unwrap_or("").trim())
        }
        LibraryError::GetSymbolError { .. } => {
            "not a neuron-host plugin: it exports no plugin root module (declare one with `neuron_plugin_api::export_plugin!`)".into()
        }
        LibraryError::InvalidAbiHeader(_) => format!(
            "built with an incompatible abi_stable; rebuild it against neuron-plugin-api {ABI_VERSION}"
        ),
        LibraryError::InvalidCAbi { .. } => "built by a compiler with a different C ABI; rebuild it with this host's toolchain".into(),
        LibraryError::ParseVersionError(v) => format!("declares an unparsable plugin ABI version ({v})"),
        LibraryError::IncompatibleVersionNumber { expected_version, actual_version, .. } => format!(
            "built against plugin ABI {actual_version}, but this host speaks ABI {expected_version}; rebuild the plugin against neuron-plugin-api {expected_version}"
        ),
        LibraryError::AbiInstability(_) => format!(
            "its plugin ABI layout differs from this host's (ABI {}) although the version matches; rebuild the plugin against the same neuron-plugin-api as the host",
            <PluginModRef as RootModule>::VERSION_STRINGS.version
        ),
        LibraryError::RootModule { err, .. } => {
            format!("its root module failed to initialise: {}", err.to_string().lines().next().unwrap_or("").trim())
        }
        LibraryError::Many(errors) => errors.iter().next().map(|e| describe_library_error(e, path)).unwrap_or_else(|| "unknown error".into()),
    }
}

fn plugin_result<T>(plugin: &str, op: &'static str, r: RResult<T, PluginError>) -> Result<T> {
    r.into_result().map_err(|e| Error::plugin(plugin, op, e))
}

/// A model built by a plugin. Calls return host errors naming the plugin.
pub struct PluginModel {
    plugin: String,
    inner: ModelBox,
    ctx: ComputeBox,
}

impl PluginModel {
    pub fn plugin(&self) -> &str {
        &self.plugin
    }
    pub fn describe(&self) -> Result<ModelDescription> {
        plugin_result(&self.plugin, "describe", self.inner.describe())
    }
    pub fn forward(&mut self, batch: TokenBatch<'_>, request: OutputRequest) -> Result<ForwardOutput> {
        plugin_result(&self.plugin, "forward", self.inner.forward(batch, request))
    }
    pub fn loss(&mut self, batch: TokenBatch<'_>, targets: &[u32]) -> Result<f32> {
        plugin_result(&self.plugin, "loss", self.inner.loss(batch, RSlice::from_slice(targets)))
    }
    pub fn backward(&mut self) -> Result<()> {
        plugin_result(&self.plugin, "backward", self.inner.backward())
    }
    pub fn step(&mut self, learning_rate: f32) -> Result<StepStats> {
        plugin_result(&self.plugin, "step", self.inner.step(learning_rate))
    }
    pub fn zero_grad(&mut self) -> Result<()> {
        plugin_result(&self.plugin, "zero_grad", self.inner.zero_grad())
    }
    /// One training step in the order the plugin contract fixes (`ModelPlugin`'s documentation):
    /// zero_grad, loss, backward, step. Returns the loss before the step and the step's stats.
    /// The host's trainer and the test kit's checks both train through this.
    pub fn train_step(
        &mut self,
        batch: TokenBatch<'_>,
        targets: &[u32],
        learning_rate: f32,
    ) -> Result<(f32, StepStats)> {
        self.zero_grad()?;
        let loss = self.loss(batch, targets)?;
        self.backward()?;
        let stats = self.step(learning_rate)?;
        Ok((loss, stats))
    }
    pub fn state_schema(&self, group: StateGroup) -> Result<Vec<TensorSpec>> {
        plugin_result(&self.plugin, "state_schema", self.inner.state_schema(group)).map(Into::into)
    }
    pub fn export_state(&mut self, group: StateGroup) -> Result<Vec<Tensor>> {
        plugin_result(&self.plugin, "export_state", self.inner.export_state(group)).map(Into::into)
    }
    pub fn import_state(&mut self, group: StateGroup, tensors: &[Tensor]) -> Result<()> {
        plugin_result(&self.plugin, "import_state", self.inner.import_state(group, RSlice::from_slice(tensors)))
    }
    /// Counters of this model's compute context (buffers, dispatches).
    pub fn compute_stats(&self) -> ComputeStats {
        self.ctx.stats()
    }
}

/// A scorer built by a plugin.
pub struct PluginScorer {
    plugin: String,
    inner: ScorerBox,
    ctx: ComputeBox,
}

impl PluginScorer {
    pub fn plugin(&self) -> &str {
        &self.plugin
    }
    pub fn describe(&self) -> Result<ScorerDescription> {
        plugin_result(&self.plugin, "describe", self.inner.describe())
    }
    pub fn score(&mut self, batch: ScoringBatch<'_>, responses: &[MinerResponse]) -> Result<Scores> {
        plugin_result(&self.plugin, "score", self.inner.score(batch, RSlice::from_slice(responses)))
    }
    pub fn export_state(&mut self) -> Result<Vec<Tensor>> {
        plugin_result(&self.plugin, "export_state", self.inner.export_state()).map(Into::into)
    }
    pub fn import_state(&mut self, tensors: &[Tensor]) -> Result<()> {
        plugin_result(&self.plugin, "import_state", self.inner.import_state(RSlice::from_slice(tensors)))
    }
    pub fn compute_stats(&self) -> ComputeStats {
        self.ctx.stats()
    }
}

/// Loads several plugin files, refusing two plugins with one name.
pub fn load_all(paths: &[PathBuf]) -> Result<Vec<LoadedPlugin>> {
    let mut loaded: Vec<LoadedPlugin> = Vec::new();
    for path in paths {
        let p = LoadedPlugin::load(path)?;
        if let Some(other) = loaded.iter().find(|o| o.name() == p.name()) {
            return Err(Error::PluginLoad {
                path: path.clone(),
                cause: format!("declares the name `{}`, already taken by {}", p.name(), other.path().display()),
            });
        }
        loaded.push(p);
    }
    Ok(loaded)
}
