//! The GPU: one wgpu device per process, shared by every plugin instance.
//!
//! - [`GpuDevice::open`] picks an adapter (a discrete GPU when there is one,
//!   else whatever exists, Mesa's lavapipe included), requests the adapter's
//!   own limits rather than wgpu's conservative defaults, and enables the
//!   features the loaded plugins declare.
//! - [`kernel`] compiles WGSL once per process (cached by source and entry
//!   point) and reflects its bindings.
//! - [`context`] is the compute context a plugin instance sees: its buffers,
//!   its cached bind groups, its batched submissions.
//!
//! No other module touches wgpu.

pub mod context;
pub mod kernel;

use std::sync::Arc;

use neuron_plugin_api::{AdapterInfo, DeviceLimits, GpuRequirements};

use crate::error::{Error, Result};

pub use context::ComputeContext;

/// Which adapter to use.
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    /// "auto" (default), "vulkan", "metal", "dx12" or "gl".
    pub backend: Option<String>,
    /// Use only adapters whose name contains this text (case-insensitive).
    pub adapter: Option<String>,
}

impl GpuOptions {
    /// Options from `NEURON_GPU_BACKEND` and `NEURON_GPU_ADAPTER`.
    pub fn from_env() -> Self {
        Self {
            backend: std::env::var("NEURON_GPU_BACKEND").ok().filter(|s| !s.is_empty()),
            adapter: std::env::var("NEURON_GPU_ADAPTER").ok().filter(|s| !s.is_empty()),
        }
    }
}

/// The process's GPU.
pub struct GpuDevice {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    pub(crate) limits: wgpu::Limits,
    features: wgpu::Features,
    /// What the adapter offers, enabled or not.
    offered: wgpu::Features,
    pub(crate) kernels: kernel::KernelCache,
}

/// A plugin's requirements, with the plugin's name for error messages.
pub struct Requirement<'a> {
    pub plugin: &'a str,
    pub gpu: &'a GpuRequirements,
}

impl GpuDevice {
    /// Opens the best adapter allowed by `options`, with every feature that
    /// `requirements` name; fails with one line when there is none or when it
    /// lacks what a plugin needs.
    pub fn open(options: &GpuOptions, requirements: &[Requirement<'_>]) -> Result<Arc<GpuDevice>> {
        let backend = options.backend.as_deref().unwrap_or("auto").to_ascii_lowercase();
        let (backends, searched) = match backend.as_str() {
            "auto" => (wgpu::Backends::PRIMARY, "Vulkan, Metal, DX12, then OpenGL"),
            "vulkan" => (wgpu::Backends::VULKAN, "Vulkan"),
            "metal" => (wgpu::Backends::METAL, "Metal"),
            "dx12" => (wgpu::Backends::DX12, "DX12"),
            "gl" | "gles" | "opengl" => (wgpu::Backends::GL, "OpenGL"),
            other => {
                return Err(Error::Config(format!(
                "GPU backend `{other}` (NEURON_GPU_BACKEND or gpu.backend) is not one of auto, vulkan, metal, dx12, gl"
            )))
            }
        };
        let mut adapters = enumerate(backends);
        if adapters.is_empty() && backend == "auto" {
            // OpenGL only as a last resort: it is slower and its probe is noisy.
            adapters = enumerate(wgpu::Backends::GL);
        }
        if let Some(filter) = &options.adapter {
            let needle = filter.to_ascii_lowercase();
            adapters.retain(|a| a.get_info().name.to_ascii_lowercase().contains(&needle));
        }
        adapters.sort_by_key(|a| rank(&a.get_info()));
        let Some(adapter) = adapters.into_iter().next() else {
            let hint = if options.adapter.is_some() {
                "no adapter matches NEURON_GPU_ADAPTER/gpu.adapter; run `neuron-host gpu` to list them".to_string()
            } else {
                "install Mesa's software Vulkan driver with `sudo apt-get install mesa-vulkan-drivers` (or a GPU driver), then retry".to_string()
            };
            return Err(Error::NoAdapter { searched: searched.to_string(), hint });
        };
        let info = adapter.get_info();
        let limits = adapter.limits();

        let mut features = wgpu::Features::empty();
        for req in requirements {
            for name in req.gpu.features.iter() {
                let Some(f) = wgpu::Features::from_name(name.as_str()) else {
                    return Err(Error::Gpu(format!(
                        "plugin {} requires GPU feature `{name}`, which this host does not know",
                        req.plugin
                    )));
                };
                if !adapter.features().contains(f) {
                    return Err(Error::Gpu(format!(
                        "plugin {} requires GPU feature `{name}`, which adapter {} ({:?}) lacks",
                        req.plugin, info.name, info.backend
                    )));
                }
                features |= f;
            }
            for name in req.gpu.optional_features.iter() {
                // Optional, so never a refusal; an unknown name is the plugin author's typo.
                match wgpu::Features::from_name(name.as_str()) {
                    None => {
                        return Err(Error::Gpu(format!(
                            "plugin {} asks for GPU feature `{name}` if available, which this host does not know (wgpu's names, e.g. SUBGROUP, SHADER_F16)",
                            req.plugin
                        )))
                    }
                    Some(f) if adapter.features().contains(f) => features |= f,
                    Some(_) => tracing::info!(
                        target: "neuron_host::gpu",
                        "adapter {} lacks GPU feature {name}; plugin {} runs its plain path",
                        info.name,
                        req.plugin
                    ),
                }
            }
            for lim in req.gpu.limits.iter() {
                let Some(have) = limit_value(&limits, lim.name.as_str()) else {
                    return Err(Error::Gpu(format!(
                        "plugin {} requires GPU limit `{}`, which this host does not know",
                        req.plugin, lim.name
                    )));
                };
                if have < lim.min {
                    return Err(Error::Gpu(format!(
                        "plugin {} needs {} >= {}, adapter {} offers {have}",
                        req.plugin, lim.name, lim.min, info.name
                    )));
                }
            }
        }

        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("neuron-host"),
            required_features: features,
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| Error::Gpu(format!("adapter {} refused to open a device: {e}", info.name)))?;
        // Errors outside an error scope must never panic the host (wgpu's default).
        device.on_uncaptured_error(Arc::new(|e: wgpu::Error| {
            tracing::error!(target: "neuron_host::gpu", "uncaptured GPU error: {e}");
        }));
        let device_limits = device.limits();
        tracing::info!(
            target: "neuron_host::gpu",
            "GPU: {} ({:?}, {:?}, driver {} {}); storage binding limit {} MiB, buffer limit {} MiB",
            info.name,
            info.backend,
            info.device_type,
            info.driver,
            info.driver_info,
            device_limits.max_storage_buffer_binding_size >> 20,
            device_limits.max_buffer_size >> 20,
        );
        Ok(Arc::new(GpuDevice {
            device,
            queue,
            info,
            limits: device_limits,
            features,
            offered: adapter.features(),
            kernels: kernel::KernelCache::default(),
        }))
    }

    /// Every adapter the backends offer, best first (for `neuron-host gpu`).
    pub fn list_adapters(options: &GpuOptions) -> Vec<String> {
        let mut adapters = enumerate(wgpu::Backends::all());
        adapters.sort_by_key(|a| rank(&a.get_info()));
        let _ = options;
        adapters
            .iter()
            .map(|a| {
                let i = a.get_info();
                format!("{} ({:?}, {:?}, driver {} {})", i.name, i.backend, i.device_type, i.driver, i.driver_info)
            })
            .collect()
    }

    /// The adapter, as plugins see it.
    pub fn adapter_info(&self) -> AdapterInfo {
        let l = &self.limits;
        AdapterInfo {
            name: self.info.name.as_str().into(),
            backend: format!("{:?}", self.info.backend).to_lowercase().into(),
            device_type: match self.info.device_type {
                wgpu::DeviceType::DiscreteGpu => "discrete",
                wgpu::DeviceType::IntegratedGpu => "integrated",
                wgpu::DeviceType::VirtualGpu => "virtual",
                wgpu::DeviceType::Cpu => "cpu",
                wgpu::DeviceType::Other => "other",
            }
            .into(),
            driver: format!("{} {}", self.info.driver, self.info.driver_info).trim().into(),
            limits: DeviceLimits {
                max_buffer_size: l.max_buffer_size,
                max_storage_buffer_binding_size: l.max_storage_buffer_binding_size,
                min_storage_buffer_offset_alignment: l.min_storage_buffer_offset_alignment,
                max_storage_buffers_per_shader_stage: l.max_storage_buffers_per_shader_stage,
                max_compute_workgroup_storage_size: l.max_compute_workgroup_storage_size,
                max_compute_invocations_per_workgroup: l.max_compute_invocations_per_workgroup,
                max_compute_workgroup_size: [
                    l.max_compute_workgroup_size_x,
                    l.max_compute_workgroup_size_y,
                    l.max_compute_workgroup_size_z,
                ],
                max_compute_workgroups_per_dimension: l.max_compute_workgroups_per_dimension,
                subgroup_min_size: self.info.subgroup_min_size,
                subgroup_max_size: self.info.subgroup_max_size,
            },
            features: self.features.iter_names().map(|(n, _)| n.into()).collect(),
        }
    }

    /// Whether the adapter offers the wgpu feature `name`, enabled on this device or not.
    pub fn offers(&self, name: &str) -> bool {
        wgpu::Features::from_name(name).is_some_and(|f| self.offered.contains(f))
    }

    /// One line naming the adapter, for logs and summaries.
    pub fn describe(&self) -> String {
        format!("{} ({:?}, {:?})", self.info.name, self.info.backend, self.info.device_type)
    }

    /// A new compute context for one plugin instance.
    pub fn context(self: &Arc<Self>, label: &str) -> ComputeContext {
        ComputeContext::new(self.clone(), label)
    }

    /// The raw wgpu device and queue, for benchmarks that compare the compute
    /// context against wgpu used directly. Nothing in the host uses this.
    pub fn wgpu(&self) -> (&wgpu::Device, &wgpu::Queue) {
        (&self.device, &self.queue)
    }

    /// Kernels compiled so far and compile requests served from the cache.
    pub fn kernel_counts(&self) -> (u64, u64) {
        self.kernels.counts()
    }
}

fn enumerate(backends: wgpu::Backends) -> Vec<wgpu::Adapter> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    pollster::block_on(instance.enumerate_adapters(backends))
}

/// Lower is better: discrete, integrated, virtual, CPU; Vulkan/Metal/DX12 before GL.
fn rank(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let device = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    };
    let backend = match info.backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        _ => 1,
    };
    (device, backend)
}

/// A device limit by wgpu's field name; the compute-relevant ones.
fn limit_value(l: &wgpu::Limits, name: &str) -> Option<u64> {
    Some(match name {
        "max_buffer_size" => l.max_buffer_size,
        "max_storage_buffer_binding_size" => l.max_storage_buffer_binding_size,
        "max_uniform_buffer_binding_size" => l.max_uniform_buffer_binding_size,
        "max_storage_buffers_per_shader_stage" => l.max_storage_buffers_per_shader_stage as u64,
        "max_bind_groups" => l.max_bind_groups as u64,
        "max_bindings_per_bind_group" => l.max_bindings_per_bind_group as u64,
        "max_compute_workgroup_storage_size" => l.max_compute_workgroup_storage_size as u64,
        "max_compute_invocations_per_workgroup" => l.max_compute_invocations_per_workgroup as u64,
        "max_compute_workgroup_size_x" => l.max_compute_workgroup_size_x as u64,
        "max_compute_workgroup_size_y" => l.max_compute_workgroup_size_y as u64,
        "max_compute_workgroup_size_z" => l.max_compute_workgroup_size_z as u64,
        "max_compute_workgroups_per_dimension" => l.max_compute_workgroups_per_dimension as u64,
        _ => return None,
    })
}
