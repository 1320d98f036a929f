//! # neuron-plugin-testkit
//!
//! What a plugin author adds as a dev-dependency to test a plugin without the rest of
//! neuron-host:
//!
//! - [`gpu`]: a real compute context on the process's wgpu device (a GPU, or Mesa's lavapipe on
//!   a machine without one), the same implementation the host gives a plugin, for building a model
//!   or scorer in-process and checking its kernels; [`gpu_for`] opens the device with the
//!   features the plugin declares, as the host would;
//! - [`reference`](mod@reference): seeded random inputs and plain f64 CPU references (matmul, softmax,
//!   cross-entropy, layer norm, GELU) with [`reference::assert_close`];
//! - [`gradcheck`]: finite-difference gradients of any function, and of a model's loss through its
//!   state ([`gradcheck::check_model_gradients`]);
//! - [`Conformance`]: the suite every plugin must pass, run on the built library through the real
//!   loader. `neuron-host plugin check` runs the same suite.
//!
//! ```no_run
//! #[test]
//! fn conforms() {
//!     neuron_plugin_testkit::Conformance::new(neuron_plugin_testkit::cdylib("my_plugin"))
//!         .model_config("vocab_size = 32")
//!         .assert_passes();
//! }
//! ```

pub mod conformance;
pub mod gradcheck;
pub mod reference;

use std::{
    path::PathBuf,
    sync::{Arc, Mutex, OnceLock},
};

pub use conformance::{Check, Conformance, Outcome, Report};
pub use neuron_plugin_host::{
    loader::{LoadedPlugin, PluginModel, PluginScorer},
    Error as HostError, GpuDevice, GpuOptions,
};

/// The process's GPU device, opened once (`NEURON_GPU_BACKEND` / `NEURON_GPU_ADAPTER` pick the
/// adapter, as for the host). Panics with the host's one-line reason when there is no adapter:
/// on Debian, `apt-get install mesa-vulkan-drivers` gives a software one.
pub fn device() -> Arc<GpuDevice> {
    static DEVICE: OnceLock<Arc<GpuDevice>> = OnceLock::new();
    DEVICE
        .get_or_init(|| match GpuDevice::open(&GpuOptions::from_env(), &[]) {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        })
        .clone()
}

/// A fresh compute context on [`device`], as a plugin instance gets one from the host.
pub fn gpu(label: &str) -> neuron_plugin_api::Gpu {
    device().context(label).into_gpu()
}

/// The device the host would open for `plugin` alone: the same adapter as [`device`], with the
/// features the plugin requires and those it uses if available (`use_feature_if_available`)
/// where the adapter offers them. Opened once per distinct set of requirements. Panics with the
/// host's one-line reason when the adapter lacks a required feature or limit.
pub fn device_for(plugin: &neuron_plugin_api::Plugin) -> Arc<GpuDevice> {
    let info = plugin.info();
    device_with(&info.name, &info.gpu).unwrap_or_else(|e| panic!("{e}"))
}

/// [`device`] for a plugin that declares no GPU requirement, else a device opened with
/// `plugin`'s requirements (once per distinct set, for the process): what [`device_for`] and the
/// conformance suite run a plugin on.
pub(crate) fn device_with(
    plugin: &str,
    requirements: &neuron_plugin_api::GpuRequirements,
) -> Result<Arc<GpuDevice>, HostError> {
    static DEVICES: Mutex<Vec<(String, Arc<GpuDevice>)>> = Mutex::new(Vec::new());
    if *requirements == neuron_plugin_api::GpuRequirements::default() {
        return Ok(device());
    }
    let key = format!("{requirements:?}");
    let mut devices = DEVICES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, d)) = devices.iter().find(|(k, _)| *k == key) {
        return Ok(d.clone());
    }
    let requirement = neuron_plugin_host::gpu::Requirement { plugin, gpu: requirements };
    let d = GpuDevice::open(&GpuOptions::from_env(), &[requirement])?;
    devices.push((key, d.clone()));
    Ok(d)
}

/// A fresh compute context on [`device_for`]`(plugin)`.
pub fn gpu_for(plugin: &neuron_plugin_api::Plugin, label: &str) -> neuron_plugin_api::Gpu {
    device_for(plugin).context(label).into_gpu()
}

/// Compute contexts for every path `plugin` can take on this adapter: one on the plain
/// [`device`], then one on [`device_for`]`(plugin)` when that device has features enabled that
/// the plain one lacks (a feature the plugin uses if available, such as `SUBGROUP` on lavapipe).
/// Run a kernel's reference checks on each, so that both the fast path and its fallback are
/// tested wherever the adapter can run them.
pub fn gpus_for(plugin: &neuron_plugin_api::Plugin, label: &str) -> Vec<neuron_plugin_api::Gpu> {
    let plain = gpu(label);
    let own = gpu_for(plugin, label);
    if own.adapter().features == plain.adapter().features {
        vec![plain]
    } else {
        vec![plain, own]
    }
}

/// The shared library cargo built for the library target `name` of the crate under test
/// (`lib{name}.so` on Linux), found beside the running test binary. A crate with
/// `crate-type = ["cdylib", "rlib"]` has it built by `cargo test`. Panics with what to do when it
/// is missing.
pub fn cdylib(name: &str) -> PathBuf {
    let file = format!("{}{name}{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/<test binary>: the library is in deps/ and in target/<profile>/.
    let deps = exe.parent().expect("the test binary's folder").to_path_buf();
    let candidates = [deps.join(&file), deps.parent().map(|p| p.join(&file)).unwrap_or_default()];
    candidates.iter().find(|p| p.is_file()).cloned().unwrap_or_else(|| {
        panic!(
            "no {file} beside {} or in its parent; give the crate `crate-type = [\"cdylib\", \"rlib\"]` and `name = \"{name}\"` under [lib]",
            deps.display()
        )
    })
}
