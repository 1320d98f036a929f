//! The compute context one plugin instance sees.
//!
//! It owns that instance's buffers (all freed when the last handle drops), a
//! cache of bind groups, and a uniform arena: every dispatch's uniform bytes
//! are packed into one buffer written once per submission and bound with a
//! dynamic offset, so recording a dispatch costs a pipeline bind, a cached
//! bind group and the dispatch itself.
//!
//! Everything a plugin passes is checked here first (handles, ranges,
//! alignment, binding counts, uniform sizes, workgroup limits) so mistakes come
//! back as [`PluginError`]s naming the problem; whatever wgpu still refuses is
//! caught by an error scope and returned the same way. Nothing here panics on
//! plugin input.

use std::{
    hash::{Hash, Hasher},
    num::NonZeroU64,
    sync::{mpsc, Arc, Mutex, MutexGuard},
};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RArc, RResult, RSlice, RStr, RVec},
};
use neuron_plugin_api::abi::{Command, Commands, Compute, ComputeBox, Compute_TO};
use neuron_plugin_api::{AdapterInfo, BufferId, BufferSlice, ComputeStats, Gpu, KernelId, KernelInfo, PluginError};
use rustc_hash::{FxHashMap, FxHasher};
use wgpu::util::DeviceExt;

use super::{kernel::CompiledKernel, GpuDevice};

type Result<T> = std::result::Result<T, PluginError>;

/// The host's implementation of the plugin-facing compute context.
#[derive(Clone)]
pub struct ComputeContext {
    inner: Arc<Inner>,
}

struct Inner {
    gpu: Arc<GpuDevice>,
    label: String,
    state: Mutex<State>,
}

struct Buf {
    buffer: wgpu::Buffer,
    size: u64,
}

/// A cached bind group and what it binds: storage slices as
/// (buffer id, offset, size), and the uniform arena generation (0: none).
struct BindEntry {
    kernel: u64,
    arena_generation: u64,
    slices: Box<[(u64, u64, u64)]>,
    group: wgpu::BindGroup,
}

#[derive(Default)]
struct State {
    buffers: FxHashMap<u64, Buf>,
    next_buffer: u64,
    /// Keyed by a hash of the entry's key; looked up without allocating.
    bind_groups: FxHashMap<u64, Vec<BindEntry>>,
    bind_group_count: usize,
    arena: Option<(wgpu::Buffer, u64)>,
    arena_generation: u64,
    staging: Vec<wgpu::Buffer>,
    stats: ComputeStats,
}

/// Bind groups kept per context before the cache is dropped and rebuilt.
const BIND_GROUP_CACHE_LIMIT: usize = 8192;
/// Read-back staging bytes kept for reuse per context.
const STAGING_POOL_LIMIT: u64 = 256 << 20;

/// A validated command, ready to record.
enum Step {
    Dispatch {
        /// Index into the submission's kernel list.
        kernel: usize,
        /// Range in the submission's normalised slices.
        slices: std::ops::Range<usize>,
        workgroups: [u32; 3],
        uniform_offset: Option<u32>,
    },
    Copy {
        src: wgpu::Buffer,
        src_offset: u64,
        dst: wgpu::Buffer,
        dst_offset: u64,
        size: u64,
    },
    Write {
        dst: wgpu::Buffer,
        offset: u64,
        data: std::ops::Range<usize>,
    },
    Clear {
        dst: wgpu::Buffer,
        offset: u64,
        size: u64,
    },
    Read {
        src: wgpu::Buffer,
        offset: u64,
        size: u64,
    },
}

/// What validation produced for one submission.
#[derive(Default)]
struct Plan {
    steps: Vec<Step>,
    kernels: Vec<Arc<CompiledKernel>>,
    kernel_index: FxHashMap<u64, usize>,
    /// Storage bindings of every dispatch, as (buffer id, offset, size).
    slices: Vec<(u64, u64, u64)>,
    /// Every dispatch's uniform bytes at aligned offsets: the arena's contents.
    uniforms: Vec<u8>,
}

fn bind_hash(kernel: u64, arena_generation: u64, slices: &[(u64, u64, u64)]) -> u64 {
    let mut h = FxHasher::default();
    kernel.hash(&mut h);
    arena_generation.hash(&mut h);
    slices.hash(&mut h);
    h.finish()
}

impl ComputeContext {
    pub fn new(gpu: Arc<GpuDevice>, label: &str) -> Self {
        Self { inner: Arc::new(Inner { gpu, label: label.to_string(), state: Mutex::new(State::default()) }) }
    }

    /// The context as it crosses the boundary.
    pub fn into_abi(self) -> ComputeBox {
        Compute_TO::from_ptr(RArc::new(self), TD_Opaque)
    }

    /// The context wrapped as plugins use it (for host-side kernels and tests).
    pub fn into_gpu(self) -> Gpu {
        Gpu::from_raw(self.into_abi())
    }

    pub fn device(&self) -> &Arc<GpuDevice> {
        &self.inner.gpu
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means a panic inside the host's own code while
        // holding it; the state is still structurally valid.
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn compile_kernel(&self, source: &str, entry: &str) -> Result<KernelInfo> {
        let k = self.inner.gpu.kernels.compile(&self.inner.gpu.device, source, entry)?;
        Ok(k.info.clone())
    }

    fn create(&self, size: u64, label: &str) -> Result<BufferId> {
        let gpu = &self.inner.gpu;
        let size = size.div_ceil(4).max(1) * 4;
        if size > gpu.limits.max_buffer_size {
            return Err(PluginError::gpu(format!(
                "buffer `{label}` of {size} bytes exceeds the adapter's max_buffer_size of {} bytes; split it",
                gpu.limits.max_buffer_size
            )));
        }
        let validation = gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = gpu.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let buffer = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let oom = pollster::block_on(oom.pop());
        let validation = pollster::block_on(validation.pop());
        if let Some(e) = oom.or(validation) {
            return Err(PluginError::gpu(format!("cannot create buffer `{label}` of {size} bytes: {}", one_line(&e))));
        }
        let mut st = self.state();
        st.next_buffer += 1;
        let id = st.next_buffer;
        st.buffers.insert(id, Buf { buffer, size });
        st.stats.live_buffers += 1;
        st.stats.live_bytes += size;
        st.stats.peak_bytes = st.stats.peak_bytes.max(st.stats.live_bytes);
        Ok(BufferId(id))
    }

    fn free(&self, id: BufferId) {
        let mut st = self.state();
        if let Some(b) = st.buffers.remove(&id.0) {
            st.stats.live_buffers -= 1;
            st.stats.live_bytes -= b.size;
            // Bind groups hold their buffers alive; drop the ones naming this one.
            st.retain_bind_groups(|e| !e.slices.iter().any(|s| s.0 == id.0));
            b.buffer.destroy();
        }
    }

    fn write_now(&self, id: BufferId, offset: u64, data: &[u8]) -> Result<()> {
        let st = self.state();
        let buf = lookup(&st, id)?;
        check_copy_range(buf.size, offset, data.len() as u64, "write")?;
        let gpu = &self.inner.gpu;
        let scope = gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
        gpu.queue.write_buffer(&buf.buffer, offset, data);
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(PluginError::gpu(format!("write to buffer {} refused: {}", id.0, one_line(&e))));
        }
        Ok(())
    }

    /// Records and submits `commands`; returns the bytes of each `Read`.
    pub fn run(&self, commands: Commands<'_>) -> Result<Vec<Vec<u8>>> {
        let gpu = self.inner.gpu.clone();
        let mut st = self.state();
        let mut plan = Plan::default();
        let count = commands.commands.len();
        for (index, command) in commands.commands.iter().enumerate() {
            let step = plan
                .resolve(&st, &gpu, command, &commands)
                .map_err(|e| e.context(format!("command {index} of {count}")))?;
            plan.steps.push(step);
        }

        // The uniform arena: written once, bound with a dynamic offset per dispatch.
        if !plan.uniforms.is_empty() {
            let need = plan.uniforms.len() as u64;
            if st.arena.as_ref().is_none_or(|(_, cap)| *cap < need) {
                let capacity = need.next_power_of_two().max(64 << 10);
                let buffer = gpu.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("uniform arena"),
                    size: capacity,
                    usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                st.arena = Some((buffer, capacity));
                st.arena_generation += 1;
                let generation = st.arena_generation;
                st.retain_bind_groups(|e| e.arena_generation == 0 || e.arena_generation == generation);
            }
            let (arena, _) = st.arena.as_ref().expect("arena just ensured");
            gpu.queue.write_buffer(arena, 0, &plan.uniforms);
        }

        let validation = gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = gpu.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let mut encoder =
            gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(&self.inner.label) });
        let mut reads: Vec<(wgpu::Buffer, u64)> = Vec::new();
        let mut pass: Option<wgpu::ComputePass<'static>> = None;
        let mut dispatches = 0u64;
        for step in &plan.steps {
            match step {
                Step::Dispatch { kernel, slices, workgroups, uniform_offset } => {
                    let kernel = &plan.kernels[*kernel];
                    let p = pass.get_or_insert_with(|| {
                        encoder
                            .begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes: None })
                            .forget_lifetime()
                    });
                    let bind_group = st.bind_group(&gpu, kernel, &plan.slices[slices.clone()]);
                    p.set_pipeline(&kernel.pipeline);
                    match uniform_offset {
                        Some(o) => p.set_bind_group(0, bind_group, &[*o]),
                        None => p.set_bind_group(0, bind_group, &[]),
                    }
                    if workgroups.iter().all(|&w| w > 0) {
                        p.dispatch_workgroups(workgroups[0], workgroups[1], workgroups[2]);
                        dispatches += 1;
                    }
                }
                other => {
                    drop(pass.take());
                    match other {
                        Step::Copy { src, src_offset, dst, dst_offset, size } => {
                            encoder.copy_buffer_to_buffer(src, *src_offset, dst, *dst_offset, *size)
                        }
                        Step::Write { dst, offset, data } => {
                            let upload = gpu.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                                label: Some("batched write"),
                                contents: &commands.bytes[data.clone()],
                                usage: wgpu::BufferUsages::COPY_SRC,
                            });
                            encoder.copy_buffer_to_buffer(&upload, 0, dst, *offset, data.len() as u64);
                        }
                        Step::Clear { dst, offset, size } => encoder.clear_buffer(dst, *offset, Some(*size)),
                        Step::Read { src, offset, size } => {
                            let staging = take_staging(&mut st, &gpu.device, *size);
                            encoder.copy_buffer_to_buffer(src, *offset, &staging, 0, *size);
                            reads.push((staging, *size));
                        }
                        Step::Dispatch { .. } => unreachable!("handled above"),
                    }
                }
            }
        }
        drop(pass);
        let index = gpu.queue.submit([encoder.finish()]);
        let oom = pollster::block_on(oom.pop());
        let validation = pollster::block_on(validation.pop());
        st.stats.submissions += 1;
        st.stats.dispatches += dispatches;
        if let Some(e) = oom.or(validation) {
            return Err(PluginError::gpu(format!("the GPU refused a submission: {}", one_line(&e))));
        }
        // Later submissions are queue-ordered after this one: the lock is not
        // needed while waiting for the readback.
        drop(st);
        if reads.is_empty() {
            return Ok(Vec::new());
        }

        let (tx, rx) = mpsc::channel();
        for (i, (staging, size)) in reads.iter().enumerate() {
            let tx = tx.clone();
            staging.slice(0..*size).map_async(wgpu::MapMode::Read, move |r| {
                let _ = tx.send((i, r));
            });
        }
        drop(tx);
        gpu.device
            .poll(wgpu::PollType::Wait { submission_index: Some(index), timeout: None })
            .map_err(|e| PluginError::gpu(format!("waiting for the GPU failed: {e}")))?;
        for (i, r) in rx.iter() {
            r.map_err(|e| PluginError::gpu(format!("read {i} could not be mapped: {e}")))?;
        }
        let mut out = Vec::with_capacity(reads.len());
        for (staging, size) in &reads {
            let view = staging
                .slice(0..*size)
                .get_mapped_range()
                .map_err(|e| PluginError::gpu(format!("mapped read could not be viewed: {e}")))?;
            out.push(view.to_vec());
            drop(view);
            staging.unmap();
        }
        let mut st = self.state();
        for (staging, _) in reads {
            give_back_staging(&mut st, staging);
        }
        Ok(out)
    }
}

impl Plan {
    fn kernel(&mut self, gpu: &GpuDevice, id: KernelId) -> Result<usize> {
        if let Some(&i) = self.kernel_index.get(&id.0) {
            return Ok(i);
        }
        let k = gpu.kernels.get(id).ok_or_else(|| PluginError::gpu(format!("unknown kernel id {}", id.0)))?;
        self.kernels.push(k);
        self.kernel_index.insert(id.0, self.kernels.len() - 1);
        Ok(self.kernels.len() - 1)
    }

    fn resolve(&mut self, st: &State, gpu: &GpuDevice, command: &Command, all: &Commands<'_>) -> Result<Step> {
        Ok(match *command {
            Command::Dispatch { kernel, bindings_start, bindings_len, workgroups, uniforms_start, uniforms_len } => {
                let ki = self.kernel(gpu, kernel)?;
                let k = &self.kernels[ki];
                let bindings = range(all.bindings.as_slice(), bindings_start as u64, bindings_len as u64, "bindings")?;
                let bytes = range(all.bytes.as_slice(), uniforms_start as u64, uniforms_len as u64, "uniform bytes")?;
                if bindings.len() != k.storage.len() {
                    return Err(PluginError::gpu(format!(
                        "kernel `{}` uses {} storage bindings, the dispatch passed {}",
                        k.info.entry,
                        k.storage.len(),
                        bindings.len()
                    )));
                }
                let first = self.slices.len();
                for (i, b) in bindings.iter().enumerate() {
                    let buf = lookup(st, b.buffer)?;
                    let (offset, size) = slice_range(buf.size, b)?;
                    let name = &k.info.bindings[i].name;
                    if offset % gpu.limits.min_storage_buffer_offset_alignment as u64 != 0 {
                        return Err(PluginError::gpu(format!(
                            "binding `{name}` of kernel `{}`: offset {offset} is not a multiple of the adapter's storage offset alignment {}",
                            k.info.entry, gpu.limits.min_storage_buffer_offset_alignment
                        )));
                    }
                    if size > gpu.limits.max_storage_buffer_binding_size {
                        return Err(PluginError::gpu(format!(
                            "binding `{name}` of kernel `{}`: {size} bytes exceed the adapter's storage binding limit of {} bytes; split the buffer",
                            k.info.entry, gpu.limits.max_storage_buffer_binding_size
                        )));
                    }
                    self.slices.push((b.buffer.0, offset, size));
                }
                let uniform_offset = match k.uniform {
                    Some((_, size)) => {
                        if bytes.len() as u64 != size {
                            return Err(PluginError::gpu(format!(
                                "kernel `{}` takes {size} uniform bytes, the dispatch passed {}",
                                k.info.entry,
                                bytes.len()
                            )));
                        }
                        let align = gpu.limits.min_uniform_buffer_offset_alignment as usize;
                        let offset = self.uniforms.len().div_ceil(align) * align;
                        self.uniforms.resize(offset, 0);
                        self.uniforms.extend_from_slice(bytes);
                        Some(
                            u32::try_from(offset)
                                .map_err(|_| PluginError::gpu("more than 4 GiB of uniforms in one submission"))?,
                        )
                    }
                    None if !bytes.is_empty() => {
                        return Err(PluginError::gpu(format!(
                            "kernel `{}` has no uniform block, the dispatch passed {} uniform bytes",
                            k.info.entry,
                            bytes.len()
                        )))
                    }
                    None => None,
                };
                let max = gpu.limits.max_compute_workgroups_per_dimension;
                if workgroups.iter().any(|&w| w > max) {
                    return Err(PluginError::gpu(format!(
                        "kernel `{}`: workgroup count {workgroups:?} exceeds the adapter's limit of {max} per dimension",
                        k.info.entry
                    )));
                }
                Step::Dispatch { kernel: ki, slices: first..self.slices.len(), workgroups, uniform_offset }
            }
            Command::Copy { src, dst, dst_offset } => {
                let s = lookup(st, src.buffer)?;
                let (src_offset, size) = slice_range(s.size, &src)?;
                check_copy_range(s.size, src_offset, size, "copy source")?;
                let d = lookup(st, dst)?;
                check_copy_range(d.size, dst_offset, size, "copy destination")?;
                if src.buffer == dst && src_offset < dst_offset + size && dst_offset < src_offset + size {
                    return Err(PluginError::gpu("copy source and destination overlap in the same buffer"));
                }
                Step::Copy { src: s.buffer.clone(), src_offset, dst: d.buffer.clone(), dst_offset, size }
            }
            Command::Write { dst, offset, data_start, data_len } => {
                range(all.bytes.as_slice(), data_start, data_len, "write data")?;
                let d = lookup(st, dst)?;
                check_copy_range(d.size, offset, data_len, "write")?;
                Step::Write {
                    dst: d.buffer.clone(),
                    offset,
                    data: data_start as usize..(data_start + data_len) as usize,
                }
            }
            Command::Clear { dst } => {
                let d = lookup(st, dst.buffer)?;
                let (offset, size) = slice_range(d.size, &dst)?;
                check_copy_range(d.size, offset, size, "clear")?;
                Step::Clear { dst: d.buffer.clone(), offset, size }
            }
            Command::Read { src } => {
                let s = lookup(st, src.buffer)?;
                let (offset, size) = slice_range(s.size, &src)?;
                check_copy_range(s.size, offset, size, "read")?;
                Step::Read { src: s.buffer.clone(), offset, size }
            }
        })
    }
}

/// `items[start..start + len]`, or an error naming what was out of range.
fn range<'a, T>(items: &'a [T], start: u64, len: u64, what: &str) -> Result<&'a [T]> {
    let end = start.checked_add(len).filter(|&e| e <= items.len() as u64);
    match end {
        Some(end) => Ok(&items[start as usize..end as usize]),
        None => Err(PluginError::gpu(format!(
            "{what} {start}..{} are outside the batch's {} entries",
            start.saturating_add(len),
            items.len()
        ))),
    }
}

impl State {
    fn retain_bind_groups(&mut self, keep: impl Fn(&BindEntry) -> bool) {
        for entries in self.bind_groups.values_mut() {
            entries.retain(|e| keep(e));
        }
        self.bind_groups.retain(|_, v| !v.is_empty());
        self.bind_group_count = self.bind_groups.values().map(Vec::len).sum();
    }

    /// The cached bind group for `kernel` over `slices`, created on first use.
    fn bind_group(&mut self, gpu: &GpuDevice, kernel: &CompiledKernel, slices: &[(u64, u64, u64)]) -> &wgpu::BindGroup {
        let arena_generation = if kernel.uniform.is_some() { self.arena_generation } else { 0 };
        let id = kernel.info.id.0;
        let hash = bind_hash(id, arena_generation, slices);
        let found = self.bind_groups.get(&hash).and_then(|v| {
            v.iter().position(|e| e.kernel == id && e.arena_generation == arena_generation && *e.slices == *slices)
        });
        if let Some(i) = found {
            return &self.bind_groups[&hash][i].group;
        }
        if self.bind_group_count >= BIND_GROUP_CACHE_LIMIT {
            self.bind_groups.clear();
            self.bind_group_count = 0;
        }
        let mut entries: Vec<wgpu::BindGroupEntry<'_>> = Vec::with_capacity(slices.len() + 1);
        for (binding, &(buffer, offset, size)) in kernel.storage.iter().zip(slices) {
            entries.push(wgpu::BindGroupEntry {
                binding: *binding,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &self.buffers[&buffer].buffer,
                    offset,
                    size: NonZeroU64::new(size),
                }),
            });
        }
        if let Some((binding, size)) = kernel.uniform {
            let (arena, _) = self.arena.as_ref().expect("a dispatch with uniforms ensured the arena");
            entries.push(wgpu::BindGroupEntry {
                binding,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: arena,
                    offset: 0,
                    size: NonZeroU64::new(size),
                }),
            });
        }
        let group = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(&kernel.info.entry),
            layout: &kernel.layout,
            entries: &entries,
        });
        drop(entries);
        self.bind_group_count += 1;
        let list = self.bind_groups.entry(hash).or_default();
        list.push(BindEntry { kernel: id, arena_generation, slices: slices.into(), group });
        &list.last().expect("just pushed").group
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        for (_, b) in st.buffers.drain() {
            b.buffer.destroy();
        }
    }
}

fn lookup(st: &State, id: BufferId) -> Result<&Buf> {
    st.buffers
        .get(&id.0)
        .ok_or_else(|| PluginError::gpu(format!("unknown buffer id {} (freed, or from another context)", id.0)))
}

/// Offset and size of a slice (`size == 0`: to the end), checked against the buffer.
fn slice_range(buffer_size: u64, s: &BufferSlice) -> Result<(u64, u64)> {
    let size = if s.size == 0 { buffer_size.saturating_sub(s.offset) } else { s.size };
    if s.offset.checked_add(size).is_none_or(|end| end > buffer_size) || size == 0 {
        return Err(PluginError::gpu(format!(
            "range {}..{} is outside buffer {} of {buffer_size} bytes",
            s.offset,
            s.offset.saturating_add(size),
            s.buffer.0
        )));
    }
    Ok((s.offset, size))
}

fn check_copy_range(buffer_size: u64, offset: u64, size: u64, what: &str) -> Result<()> {
    if !offset.is_multiple_of(4) || !size.is_multiple_of(4) {
        return Err(PluginError::gpu(format!("{what}: offset {offset} and size {size} must be multiples of 4 bytes")));
    }
    if offset.checked_add(size).is_none_or(|end| end > buffer_size) {
        return Err(PluginError::gpu(format!(
            "{what}: range {offset}..{} is outside a buffer of {buffer_size} bytes",
            offset.saturating_add(size)
        )));
    }
    Ok(())
}

fn take_staging(st: &mut State, device: &wgpu::Device, size: u64) -> wgpu::Buffer {
    let class = size.next_power_of_two().max(256);
    if let Some(i) = st.staging.iter().position(|b| b.size() == class) {
        return st.staging.swap_remove(i);
    }
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("readback"),
        size: class,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

fn give_back_staging(st: &mut State, buffer: wgpu::Buffer) {
    let pooled: u64 = st.staging.iter().map(|b| b.size()).sum();
    if pooled + buffer.size() <= STAGING_POOL_LIMIT {
        st.staging.push(buffer);
    }
}

fn one_line(e: &wgpu::Error) -> String {
    e.to_string().lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(": ")
}

impl Compute for ComputeContext {
    fn adapter(&self) -> AdapterInfo {
        self.inner.gpu.adapter_info()
    }
    fn compile(&self, source: RStr<'_>, entry: RStr<'_>) -> RResult<KernelInfo, PluginError> {
        self.compile_kernel(source.as_str(), entry.as_str()).into()
    }
    fn create_buffer(&self, size: u64, label: RStr<'_>) -> RResult<BufferId, PluginError> {
        self.create(size, label.as_str()).into()
    }
    fn free_buffer(&self, buffer: BufferId) {
        self.free(buffer)
    }
    fn write_buffer(&self, buffer: BufferId, offset: u64, data: RSlice<'_, u8>) -> RResult<(), PluginError> {
        self.write_now(buffer, offset, data.as_slice()).into()
    }
    fn read_buffer(&self, src: BufferSlice) -> RResult<RVec<u8>, PluginError> {
        let read = [Command::Read { src }];
        let commands = Commands {
            commands: RSlice::from_slice(&read),
            bindings: RSlice::from_slice(&[]),
            bytes: RSlice::from_slice(&[]),
        };
        self.run(commands).map(|mut v| RVec::from(v.pop().unwrap_or_default())).into()
    }
    fn submit(&self, commands: Commands<'_>) -> RResult<RVec<RVec<u8>>, PluginError> {
        self.run(commands).map(|v| v.into_iter().map(RVec::from).collect()).into()
    }
    fn stats(&self) -> ComputeStats {
        let (compiled, hits) = self.inner.gpu.kernel_counts();
        let mut stats = self.state().stats;
        stats.kernels_compiled = compiled;
        stats.kernel_cache_hits = hits;
        stats
    }
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<ComputeContext>();
}
