//! WGSL compilation, reflection and the process-wide kernel cache.
//!
//! A kernel is a WGSL module plus a compute entry point. The host parses and
//! validates it with naga (so errors come back with the compiler's message,
//! line and column, never as a panic), reflects the storage and uniform
//! bindings the entry point actually uses, builds an explicit bind group
//! layout (the uniform block gets a dynamic offset into the context's uniform
//! arena), and creates the pipeline. Each (source, entry) compiles once per
//! process; later requests get the same [`KernelId`].

use std::{
    borrow::Cow,
    collections::HashMap,
    hash::{Hash, Hasher},
    num::NonZeroU64,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, RwLock,
    },
};

use neuron_plugin_api::{KernelBinding, KernelId, KernelInfo, PluginError, UniformMember};
use wgpu::naga;

/// A compiled, reflected kernel.
pub(crate) struct CompiledKernel {
    pub info: KernelInfo,
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
    /// Binding numbers of the storage buffers, in dispatch order.
    pub storage: Vec<u32>,
    /// Binding number and byte size of the uniform block.
    pub uniform: Option<(u32, u64)>,
    source: String,
}

#[derive(Default)]
pub(crate) struct KernelCache {
    /// Source+entry hash -> kernels with that hash (compared in full).
    by_hash: Mutex<HashMap<u64, Vec<Arc<CompiledKernel>>>>,
    /// KernelId.0 - 1 indexes this.
    by_id: RwLock<Vec<Arc<CompiledKernel>>>,
    compiled: AtomicU64,
    hits: AtomicU64,
}

impl KernelCache {
    pub fn counts(&self) -> (u64, u64) {
        (self.compiled.load(Ordering::Relaxed), self.hits.load(Ordering::Relaxed))
    }

    pub fn get(&self, id: KernelId) -> Option<Arc<CompiledKernel>> {
        let index = usize::try_from(id.0).ok()?.checked_sub(1)?;
        self.by_id.read().expect("kernel table poisoned").get(index).cloned()
    }

    /// The cached kernel for (source, entry), compiling it on first request.
    /// The lock is held while compiling so that two threads asking for the
    /// same new kernel compile it once.
    pub fn compile(
        &self,
        device: &wgpu::Device,
        source: &str,
        entry: &str,
    ) -> Result<Arc<CompiledKernel>, PluginError> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        source.hash(&mut hasher);
        entry.hash(&mut hasher);
        let hash = hasher.finish();
        let mut by_hash = self.by_hash.lock().expect("kernel cache poisoned");
        if let Some(k) =
            by_hash.get(&hash).and_then(|v| v.iter().find(|k| k.info.entry.as_str() == entry && k.source == source))
        {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(k.clone());
        }
        let mut by_id = self.by_id.write().expect("kernel table poisoned");
        let id = KernelId(by_id.len() as u64 + 1);
        let kernel = Arc::new(build(device, source, entry, id)?);
        by_id.push(kernel.clone());
        by_hash.entry(hash).or_default().push(kernel.clone());
        self.compiled.fetch_add(1, Ordering::Relaxed);
        Ok(kernel)
    }
}

/// A short name for messages: the entry point and the module's first comment line.
fn kernel_label(source: &str, entry: &str) -> String {
    let title = source
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("//"))
        .map(|l| l.trim_start_matches('/').trim())
        .filter(|l| !l.is_empty());
    match title {
        Some(t) if t.len() <= 60 => format!("`{entry}` ({t})"),
        _ => format!("`{entry}`"),
    }
}

fn location_text(loc: Option<naga::SourceLocation>) -> String {
    match loc {
        Some(l) => format!("line {}, column {}", l.line_number, l.line_position),
        None => "unknown location".to_string(),
    }
}

fn build(device: &wgpu::Device, source: &str, entry: &str, id: KernelId) -> Result<CompiledKernel, PluginError> {
    let label = kernel_label(source, entry);
    let module = naga::front::wgsl::parse_str(source).map_err(|e| {
        let labels: Vec<String> = e.labels().filter(|(_, l)| !l.is_empty()).map(|(_, l)| l.to_string()).collect();
        let detail = if labels.is_empty() { String::new() } else { format!(" ({})", labels.join("; ")) };
        PluginError::gpu(format!(
            "WGSL error in kernel {label} at {}: {}{detail}",
            location_text(e.location(source)),
            e.message()
        ))
    })?;
    let info = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all())
        .validate(&module)
        .map_err(|e| {
            let mut message = e.as_inner().to_string();
            let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(e.as_inner());
            while let Some(c) = cause {
                message.push_str(": ");
                message.push_str(&c.to_string());
                cause = c.source();
            }
            PluginError::gpu(format!(
                "WGSL validation error in kernel {label} at {}: {message}",
                location_text(e.location(source))
            ))
        })?;

    let Some(ep_index) =
        module.entry_points.iter().position(|ep| ep.name == entry && ep.stage == naga::ShaderStage::Compute)
    else {
        let available: Vec<&str> = module
            .entry_points
            .iter()
            .filter(|ep| ep.stage == naga::ShaderStage::Compute)
            .map(|ep| ep.name.as_str())
            .collect();
        return Err(PluginError::gpu(format!(
            "WGSL module has no compute entry point `{entry}` (it has: {})",
            if available.is_empty() { "none".to_string() } else { available.join(", ") }
        )));
    };
    let ep = &module.entry_points[ep_index];
    let ep_info = info.get_entry_point(ep_index);

    let mut storage: Vec<(u32, KernelBinding)> = Vec::new();
    let mut uniform: Option<(u32, u64)> = None;
    let mut uniform_members: Vec<UniformMember> = Vec::new();
    for (handle, var) in module.global_variables.iter() {
        if ep_info[handle].is_empty() {
            continue;
        }
        let name = var.name.clone().unwrap_or_default();
        let binding = match (&var.space, &var.binding) {
            (
                naga::AddressSpace::Storage { .. } | naga::AddressSpace::Uniform | naga::AddressSpace::Handle,
                Some(b),
            ) => {
                if b.group != 0 {
                    return Err(PluginError::gpu(format!(
                        "kernel {label}: binding `{name}` is in @group({}); put every binding in @group(0)",
                        b.group
                    )));
                }
                b.binding
            }
            _ => continue,
        };
        match var.space {
            naga::AddressSpace::Storage { access } => storage.push((
                binding,
                KernelBinding {
                    binding,
                    name: name.as_str().into(),
                    read_only: !access.contains(naga::StorageAccess::STORE),
                },
            )),
            naga::AddressSpace::Uniform => {
                if let Some((other, _)) = uniform {
                    return Err(PluginError::gpu(format!(
                        "kernel {label} uses two uniform blocks (@binding({other}) and @binding({binding})); pack them into one struct"
                    )));
                }
                let size = module.types[var.ty].inner.size(module.to_ctx()) as u64;
                uniform = Some((binding, size));
                uniform_members = uniform_layout(&module, var.ty);
            }
            _ => {
                return Err(PluginError::gpu(format!(
                    "kernel {label}: binding `{name}` is a texture or sampler; compute contexts bind only storage and uniform buffers"
                )))
            }
        }
    }
    storage.sort_by_key(|(b, _)| *b);

    let mut entries: Vec<wgpu::BindGroupLayoutEntry> = storage
        .iter()
        .map(|(b, kb)| wgpu::BindGroupLayoutEntry {
            binding: *b,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only: kb.read_only },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        })
        .collect();
    if let Some((b, size)) = uniform {
        entries.push(wgpu::BindGroupLayoutEntry {
            binding: b,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: true,
                min_binding_size: NonZeroU64::new(size),
            },
            count: None,
        });
    }

    let wg = ep.workgroup_size;
    let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let layout =
        device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some(entry), entries: &entries });
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(entry),
        bind_group_layouts: &[Some(&layout)],
        immediate_size: 0,
    });
    let shader = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(entry),
        source: wgpu::ShaderSource::Naga(Cow::Owned(module)),
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(entry),
        layout: Some(&pipeline_layout),
        module: &shader,
        entry_point: Some(entry),
        compilation_options: Default::default(),
        cache: None,
    });
    if let Some(e) = pollster::block_on(scope.pop()) {
        return Err(PluginError::gpu(format!(
            "the GPU refused kernel {label}: {}",
            e.to_string().lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(": ")
        )));
    }

    Ok(CompiledKernel {
        info: KernelInfo {
            id,
            entry: entry.into(),
            workgroup_size: wg,
            bindings: storage.iter().map(|(_, kb)| kb.clone()).collect(),
            uniform_size: uniform.map(|(_, s)| s as u32).unwrap_or(0),
            uniform_members: uniform_members.into(),
        },
        pipeline,
        layout,
        storage: storage.iter().map(|(b, _)| *b).collect(),
        uniform,
        source: source.to_string(),
    })
}

/// The members of a uniform struct as naga lays them out (a uniform that is not a struct is one
/// unnamed member).
fn uniform_layout(module: &naga::Module, ty: naga::Handle<naga::Type>) -> Vec<UniformMember> {
    let gctx = module.to_ctx();
    match &module.types[ty].inner {
        naga::TypeInner::Struct { members, .. } => members
            .iter()
            .map(|m| UniformMember {
                name: m.name.clone().unwrap_or_default().as_str().into(),
                offset: m.offset,
                size: module.types[m.ty].inner.size(gctx),
            })
            .collect(),
        other => vec![UniformMember { name: "".into(), offset: 0, size: other.size(gctx) }],
    }
}
