//! The plugin's root module, its declared information, and the descriptor a
//! plugin author builds.

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings,
    sabi_types::VersionStrings,
    std_types::{RResult, RStr, RString, RVec},
    StableAbi,
};

use crate::{
    compute::{ComputeBox, Gpu},
    logging::HostServices,
    model::{ModelBox, ModelPlugin},
    scorer::{ScorerBox, ScorerPlugin},
    PluginError, Result,
};

/// The plugin ABI version: this crate's version. A host refuses a plugin built
/// against an older minor version (0.y changes are breaking).
pub const ABI_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What a plugin provides (a set of bits).
#[repr(transparent)]
#[derive(StableAbi, Copy, Clone, Debug, PartialEq, Eq, Default)]
pub struct PluginKinds(pub u32);

impl PluginKinds {
    pub const MODEL: Self = Self(1);
    pub const SCORER: Self = Self(2);

    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }
    pub fn names(self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.contains(Self::MODEL) {
            v.push("model");
        }
        if self.contains(Self::SCORER) {
            v.push("scorer");
        }
        v
    }
}

/// A minimum a plugin needs from a device limit, by wgpu's limit name
/// (e.g. `max_storage_buffer_binding_size`).
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct LimitRequirement {
    pub name: RString,
    pub min: u64,
}

/// GPU features (wgpu names, e.g. `SHADER_F16`) and limits a plugin needs, and features it uses
/// when the adapter has them.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq, Default)]
pub struct GpuRequirements {
    pub features: RVec<RString>,
    pub limits: RVec<LimitRequirement>,
    /// Enabled when the adapter offers them; the plugin picks its path from
    /// `Gpu::adapter().features` (or `.has_feature(name)`), which lists what the device has enabled.
    pub optional_features: RVec<RString>,
}

/// What a plugin declares about itself.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct PluginInfo {
    pub name: RString,
    /// The plugin's own version (its crate version).
    pub version: RString,
    /// The plugin-api version it was built against.
    pub abi_version: RString,
    pub kinds: PluginKinds,
    /// One line.
    pub description: RString,
    pub gpu: GpuRequirements,
}

/// The root module every plugin exports (through [`export_plugin!`](crate::export_plugin)).
/// A prefix type: fields may be added after the last prefix field without
/// breaking plugins built earlier; never reorder or remove.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModRef)))]
#[sabi(missing_field(option))]
pub struct PluginMod {
    pub info: extern "C" fn() -> RResult<PluginInfo, PluginError>,
    /// Called once by the host right after loading: installs the log bridge
    /// and the panic hook.
    pub init: extern "C" fn(HostServices) -> RResult<(), PluginError>,
    /// Builds a model from the plugin's configuration section (TOML text).
    pub new_model: extern "C" fn(ComputeBox, RStr<'_>) -> RResult<ModelBox, PluginError>,
    /// Builds a scorer from the plugin's configuration section (TOML text).
    #[sabi(last_prefix_field)]
    pub new_scorer: extern "C" fn(ComputeBox, RStr<'_>) -> RResult<ScorerBox, PluginError>,
}

impl RootModule for PluginModRef {
    declare_root_module_statics! {PluginModRef}
    const BASE_NAME: &'static str = "neuron_plugin";
    const NAME: &'static str = "neuron_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

type ModelCtor = Box<dyn Fn(Gpu, &str) -> Result<Box<dyn ModelPlugin>> + Send + Sync>;
type ScorerCtor = Box<dyn Fn(Gpu, &str) -> Result<Box<dyn ScorerPlugin>> + Send + Sync>;

/// What a plugin author declares: name, description, constructors and GPU needs.
///
/// ```text
/// fn plugin() -> Plugin {
///     Plugin::new("bigram", "A bigram language model").model(Bigram::new)
/// }
/// neuron_plugin_api::export_plugin!(plugin);
/// ```
pub struct Plugin {
    name: String,
    description: String,
    version: String,
    model: Option<ModelCtor>,
    scorer: Option<ScorerCtor>,
    features: Vec<String>,
    optional_features: Vec<String>,
    limits: Vec<(String, u64)>,
}

impl Plugin {
    pub fn new(name: &str, description: &str) -> Self {
        Self {
            name: name.to_string(),
            description: description.to_string(),
            version: String::new(),
            model: None,
            scorer: None,
            features: Vec::new(),
            optional_features: Vec::new(),
            limits: Vec::new(),
        }
    }

    /// Declares a model constructor: `(gpu, config TOML text) -> model`.
    pub fn model<M, F>(mut self, ctor: F) -> Self
    where
        M: ModelPlugin,
        F: Fn(Gpu, &str) -> Result<M> + Send + Sync + 'static,
    {
        self.model = Some(Box::new(move |gpu, cfg| ctor(gpu, cfg).map(|m| Box::new(m) as Box<dyn ModelPlugin>)));
        self
    }

    /// Declares a scorer constructor: `(gpu, config TOML text) -> scorer`.
    pub fn scorer<S, F>(mut self, ctor: F) -> Self
    where
        S: ScorerPlugin,
        F: Fn(Gpu, &str) -> Result<S> + Send + Sync + 'static,
    {
        self.scorer = Some(Box::new(move |gpu, cfg| ctor(gpu, cfg).map(|s| Box::new(s) as Box<dyn ScorerPlugin>)));
        self
    }

    /// Requires a wgpu feature, by name (e.g. "SHADER_F16").
    pub fn require_feature(mut self, name: &str) -> Self {
        self.features.push(name.to_string());
        self
    }

    /// Uses a wgpu feature when the adapter offers it (e.g. "SUBGROUP" or "SHADER_F16" for a
    /// faster path): the host enables it if it can and never refuses the plugin for lacking it.
    /// Choose the path at run time with `gpu.adapter().has_feature(name)`, keeping the plain path
    /// as the fallback, and test both where an adapter offers the feature.
    pub fn use_feature_if_available(mut self, name: &str) -> Self {
        self.optional_features.push(name.to_string());
        self
    }

    /// Requires a device limit of at least `min` (wgpu's field name).
    pub fn require_limit(mut self, name: &str, min: u64) -> Self {
        self.limits.push((name.to_string(), min));
        self
    }

    #[doc(hidden)]
    pub fn with_version(mut self, version: &str) -> Self {
        self.version = version.to_string();
        self
    }

    pub fn info(&self) -> PluginInfo {
        let mut kinds = 0;
        if self.model.is_some() {
            kinds |= PluginKinds::MODEL.0;
        }
        if self.scorer.is_some() {
            kinds |= PluginKinds::SCORER.0;
        }
        PluginInfo {
            name: self.name.as_str().into(),
            version: self.version.as_str().into(),
            abi_version: ABI_VERSION.into(),
            kinds: PluginKinds(kinds),
            description: self.description.as_str().into(),
            gpu: GpuRequirements {
                features: self.features.iter().map(|f| RString::from(f.as_str())).collect(),
                limits: self
                    .limits
                    .iter()
                    .map(|(n, m)| LimitRequirement { name: n.as_str().into(), min: *m })
                    .collect(),
                optional_features: self.optional_features.iter().map(|f| RString::from(f.as_str())).collect(),
            },
        }
    }

    /// Builds a model in-process (tests; the host goes through the root module).
    pub fn build_model(&self, gpu: Gpu, config: &str) -> Result<Box<dyn ModelPlugin>> {
        match &self.model {
            Some(ctor) => ctor(gpu, config),
            None => Err(PluginError::unsupported(format!("plugin {} provides no model", self.name))),
        }
    }

    /// Builds a scorer in-process.
    pub fn build_scorer(&self, gpu: Gpu, config: &str) -> Result<Box<dyn ScorerPlugin>> {
        match &self.scorer {
            Some(ctor) => ctor(gpu, config),
            None => Err(PluginError::unsupported(format!("plugin {} provides no scorer", self.name))),
        }
    }
}
