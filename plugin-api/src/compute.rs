//! The GPU compute context: implemented by the host, used by plugins.
//!
//! Plugins never link wgpu. They hand WGSL source to [`Gpu::compile`], get
//! opaque buffer handles from [`Gpu::buffer`], and record dispatches, copies,
//! writes and reads into a [`Batch`] that the host submits as one GPU
//! submission with one readback at the end.
//!
//! # Kernel conventions
//!
//! - All bindings live in `@group(0)`.
//! - Storage buffers (`var<storage, read>` / `var<storage, read_write>`) that the
//!   entry point uses are bound, in ascending `@binding` order, from the
//!   `bindings` slice of a dispatch.
//! - At most one `var<uniform>` per entry point; its bytes come from the
//!   dispatch's `uniforms` and must be exactly the struct's WGSL size.
//! - A buffer may not be bound both read-only and read-write in one dispatch
//!   (WebGPU's usage rules); keep parameters and gradients in separate buffers.
//! - Between dispatches of one batch the host orders memory accesses: a
//!   dispatch sees everything earlier commands wrote.

use abi_stable::{
    sabi_trait,
    std_types::{RArc, RResult, RSlice, RStr, RString, RVec},
    StableAbi,
};
use bytemuck::Pod;

use crate::{PluginError, Result};

/// A compiled kernel (WGSL module + entry point), cached by the host.
#[repr(transparent)]
#[derive(StableAbi, Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct KernelId(pub u64);

/// A GPU storage buffer owned by the compute context that created it.
#[repr(transparent)]
#[derive(StableAbi, Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct BufferId(pub u64);

/// A byte range of a buffer. `size == 0` means "to the end of the buffer".
#[repr(C)]
#[derive(StableAbi, Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct BufferSlice {
    pub buffer: BufferId,
    pub offset: u64,
    pub size: u64,
}

/// One storage binding an entry point uses.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct KernelBinding {
    pub binding: u32,
    pub name: RString,
    pub read_only: bool,
}

/// What the host learned compiling a kernel.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct KernelInfo {
    pub id: KernelId,
    pub entry: RString,
    pub workgroup_size: [u32; 3],
    /// Storage bindings in the order a dispatch must pass them.
    pub bindings: RVec<KernelBinding>,
    /// Size in bytes of the entry point's uniform block, 0 if it has none.
    pub uniform_size: u32,
    /// The uniform block's members as the WGSL lays them out (name, offset, size), in order.
    pub uniform_members: RVec<UniformMember>,
}

/// One member of a kernel's uniform struct, as WGSL's layout rules place it.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct UniformMember {
    pub name: RString,
    pub offset: u32,
    pub size: u32,
}

/// The limits of the device the host opened (the adapter's own limits).
#[repr(C)]
#[derive(StableAbi, Copy, Clone, Debug, PartialEq, Eq)]
pub struct DeviceLimits {
    pub max_buffer_size: u64,
    pub max_storage_buffer_binding_size: u64,
    pub min_storage_buffer_offset_alignment: u32,
    pub max_storage_buffers_per_shader_stage: u32,
    pub max_compute_workgroup_storage_size: u32,
    pub max_compute_invocations_per_workgroup: u32,
    pub max_compute_workgroup_size: [u32; 3],
    pub max_compute_workgroups_per_dimension: u32,
    pub subgroup_min_size: u32,
    pub subgroup_max_size: u32,
}

/// The adapter behind the compute context.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct AdapterInfo {
    pub name: RString,
    /// "vulkan", "metal", "dx12", "gl".
    pub backend: RString,
    /// "discrete", "integrated", "virtual", "cpu", "other".
    pub device_type: RString,
    pub driver: RString,
    pub limits: DeviceLimits,
    /// Enabled wgpu feature names, e.g. "SHADER_F16".
    pub features: RVec<RString>,
}

impl AdapterInfo {
    /// Whether the device has wgpu feature `name` (e.g. "SUBGROUP", "SHADER_F16") enabled: what a
    /// plugin that asked for it with `use_feature_if_available` chooses its path by.
    pub fn has_feature(&self, name: &str) -> bool {
        self.features.iter().any(|f| f.as_str() == name)
    }
}

/// Counters of a compute context (and, for kernels, of the whole process).
#[repr(C)]
#[derive(StableAbi, Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct ComputeStats {
    /// Kernels compiled by the process (each source+entry once).
    pub kernels_compiled: u64,
    /// Compile requests answered from the cache, process-wide.
    pub kernel_cache_hits: u64,
    /// Submissions made through this context.
    pub submissions: u64,
    /// Dispatches recorded through this context.
    pub dispatches: u64,
    /// Live buffers created through this context.
    pub live_buffers: u64,
    /// Bytes in live buffers created through this context.
    pub live_bytes: u64,
    /// High-water mark of `live_bytes`.
    pub peak_bytes: u64,
}

/// One command of a batch. Commands are plain data: a dispatch's bindings
/// and uniform bytes, and a write's data, live in the arrays of
/// [`Commands`] and are referred to by range, so recording a dispatch
/// allocates nothing.
#[repr(C, u8)]
#[derive(StableAbi, Copy, Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Dispatch {
        kernel: KernelId,
        /// Range in [`Commands::bindings`].
        bindings_start: u32,
        bindings_len: u32,
        workgroups: [u32; 3],
        /// Range in [`Commands::bytes`].
        uniforms_start: u32,
        uniforms_len: u32,
    },
    /// Copies `src` to `dst` at `dst_offset` (4-byte aligned).
    Copy { src: BufferSlice, dst: BufferId, dst_offset: u64 },
    /// Writes `bytes[data_start..data_start + data_len]` into a buffer, ordered with the other commands.
    Write { dst: BufferId, offset: u64, data_start: u64, data_len: u64 },
    /// Fills a range with zeros.
    Clear { dst: BufferSlice },
    /// Reads a range back; results come back in the order of the reads.
    Read { src: BufferSlice },
}

/// A recorded batch as it crosses the boundary: the commands and the arrays
/// their ranges point into.
#[repr(C)]
#[derive(StableAbi, Copy, Clone, Debug)]
pub struct Commands<'a> {
    pub commands: RSlice<'a, Command>,
    pub bindings: RSlice<'a, BufferSlice>,
    pub bytes: RSlice<'a, u8>,
}

/// The host side of the GPU, as a plugin sees it. Plugins use it through
/// [`Gpu`]; the host implements it.
#[sabi_trait]
pub trait Compute: Send + Sync + Clone {
    fn adapter(&self) -> AdapterInfo;

    /// Compiles `entry` of a WGSL module (or returns the cached kernel: each
    /// source + entry compiles once per process).
    fn compile(&self, source: RStr<'_>, entry: RStr<'_>) -> RResult<KernelInfo, PluginError>;

    /// A zero-filled storage buffer of `size` bytes (rounded up to 4).
    fn create_buffer(&self, size: u64, label: RStr<'_>) -> RResult<BufferId, PluginError>;

    fn free_buffer(&self, buffer: BufferId);

    /// Writes bytes now (queue-ordered before the next submission).
    fn write_buffer(&self, buffer: BufferId, offset: u64, data: RSlice<'_, u8>) -> RResult<(), PluginError>;

    fn read_buffer(&self, src: BufferSlice) -> RResult<RVec<u8>, PluginError>;

    /// Records every command into one submission; returns what the `Read`
    /// commands read, in order. Blocks only when there is something to read.
    fn submit(&self, commands: Commands<'_>) -> RResult<RVec<RVec<u8>>, PluginError>;

    #[sabi(last_prefix_field)]
    fn stats(&self) -> ComputeStats;
}

/// The compute context as it crosses the boundary.
pub type ComputeBox = Compute_TO<'static, RArc<()>>;

/// A plugin's handle on the host's GPU. Cheap to clone.
#[derive(Clone)]
pub struct Gpu {
    raw: ComputeBox,
}

impl Gpu {
    pub fn from_raw(raw: ComputeBox) -> Self {
        Self { raw }
    }
    pub fn raw(&self) -> &ComputeBox {
        &self.raw
    }
    pub fn adapter(&self) -> AdapterInfo {
        self.raw.adapter()
    }
    pub fn stats(&self) -> ComputeStats {
        self.raw.stats()
    }

    /// Compiles (or fetches from the cache) `entry` of the WGSL `source`.
    pub fn compile(&self, source: &str, entry: &str) -> Result<Kernel> {
        self.raw.compile(source.into(), entry.into()).into_result().map(|info| Kernel { info })
    }

    /// Compiles a declared kernel and checks its bindings and uniform layout against the WGSL
    /// (see [`KernelDecl`](crate::KernelDecl)); a mismatch is an error naming the first difference.
    pub fn kernel(&self, decl: crate::KernelDecl<'_>) -> Result<Kernel> {
        let kernel = self.compile(decl.source(), decl.entry())?;
        decl.check(kernel.info())?;
        Ok(kernel)
    }

    /// A zero-filled buffer of `bytes` bytes, freed when the returned handle drops.
    pub fn buffer(&self, bytes: u64, label: &str) -> Result<Buffer> {
        let id = self.raw.create_buffer(bytes, label.into()).into_result()?;
        Ok(Buffer { id, size: bytes.div_ceil(4) * 4, gpu: self.clone() })
    }

    /// A buffer holding `values`.
    pub fn buffer_from<T: Pod>(&self, values: &[T], label: &str) -> Result<Buffer> {
        let bytes: &[u8] = bytemuck::cast_slice(values);
        let buf = self.buffer(bytes.len() as u64, label)?;
        self.write(&buf, 0, values)?;
        Ok(buf)
    }

    /// A buffer of `len` zeroed `f32`s.
    pub fn zeros_f32(&self, len: usize, label: &str) -> Result<Buffer> {
        self.buffer((len * 4) as u64, label)
    }

    /// Writes `values` at byte `offset`.
    pub fn write<T: Pod>(&self, buffer: &Buffer, offset: u64, values: &[T]) -> Result<()> {
        let bytes: &[u8] = bytemuck::cast_slice(values);
        if bytes.is_empty() {
            return Ok(());
        }
        self.raw.write_buffer(buffer.id, offset, RSlice::from_slice(bytes)).into_result()
    }

    /// Reads the whole buffer as `T`s.
    pub fn read<T: Pod>(&self, buffer: &Buffer) -> Result<Vec<T>> {
        self.read_slice(buffer.all())
    }

    /// Reads a range as `T`s.
    pub fn read_slice<T: Pod>(&self, slice: BufferSlice) -> Result<Vec<T>> {
        let bytes = self.raw.read_buffer(slice).into_result()?;
        cast_vec(&bytes)
    }

    /// Starts recording a batch of commands.
    pub fn batch(&self) -> Batch<'_> {
        Batch { gpu: self, recorded: Recorded::default() }
    }

    /// Submits a recorded batch (see [`Batch::finish`]); it can be submitted again.
    pub fn submit(&self, recorded: &Recorded) -> Result<Readback> {
        self.raw.submit(recorded.as_commands()).into_result().map(Readback)
    }
}

fn cast_vec<T: Pod>(bytes: &[u8]) -> Result<Vec<T>> {
    let size = std::mem::size_of::<T>();
    if size == 0 || !bytes.len().is_multiple_of(size) {
        return Err(PluginError::gpu(format!(
            "read {} bytes, not a whole number of {}-byte elements",
            bytes.len(),
            size
        )));
    }
    Ok(bytemuck::pod_collect_to_vec(bytes))
}

/// A compiled kernel.
#[derive(Clone, Debug)]
pub struct Kernel {
    info: KernelInfo,
}

impl Kernel {
    pub fn id(&self) -> KernelId {
        self.info.id
    }
    pub fn info(&self) -> &KernelInfo {
        &self.info
    }
    pub fn workgroup_size(&self) -> [u32; 3] {
        self.info.workgroup_size
    }
}

/// A storage buffer; freed on the GPU when dropped.
pub struct Buffer {
    id: BufferId,
    size: u64,
    gpu: Gpu,
}

impl Buffer {
    pub fn id(&self) -> BufferId {
        self.id
    }
    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }
    /// The whole buffer.
    pub fn all(&self) -> BufferSlice {
        BufferSlice { buffer: self.id, offset: 0, size: self.size }
    }
    /// `size` bytes from `offset`.
    pub fn range(&self, offset: u64, size: u64) -> BufferSlice {
        BufferSlice { buffer: self.id, offset, size }
    }
}

impl std::fmt::Debug for Buffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Buffer({}, {} bytes)", self.id.0, self.size)
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        self.gpu.raw.free_buffer(self.id);
    }
}

impl From<&Buffer> for BufferSlice {
    fn from(b: &Buffer) -> Self {
        b.all()
    }
}

/// Position of a read in a batch's [`Readback`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ReadToken(usize);

/// Commands recorded once, to submit any number of times with [`Gpu::submit`].
#[derive(Clone, Debug, Default)]
pub struct Recorded {
    commands: RVec<Command>,
    bindings: RVec<BufferSlice>,
    bytes: RVec<u8>,
    reads: usize,
}

impl Recorded {
    pub fn as_commands(&self) -> Commands<'_> {
        Commands {
            commands: self.commands.as_rslice(),
            bindings: self.bindings.as_rslice(),
            bytes: self.bytes.as_rslice(),
        }
    }
    pub fn len(&self) -> usize {
        self.commands.len()
    }
    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }
    /// Number of reads; [`Readback`]s of this batch hold this many results.
    pub fn reads(&self) -> usize {
        self.reads
    }
}

/// Commands recorded for one submission.
pub struct Batch<'g> {
    gpu: &'g Gpu,
    recorded: Recorded,
}

impl<'g> Batch<'g> {
    /// Records a dispatch of `kernel` over `workgroups`, binding `bindings` (in
    /// the kernel's binding order) and `uniforms` (the uniform block's bytes,
    /// empty when the kernel has none).
    pub fn dispatch(
        &mut self,
        kernel: &Kernel,
        bindings: &[BufferSlice],
        workgroups: [u32; 3],
        uniforms: &[u8],
    ) -> &mut Self {
        let r = &mut self.recorded;
        let command = Command::Dispatch {
            kernel: kernel.id(),
            bindings_start: r.bindings.len() as u32,
            bindings_len: bindings.len() as u32,
            workgroups,
            uniforms_start: r.bytes.len() as u32,
            uniforms_len: uniforms.len() as u32,
        };
        r.bindings.extend_from_slice(bindings);
        r.bytes.extend_from_slice(uniforms);
        r.commands.push(command);
        self
    }

    /// [`Batch::dispatch`] with a `Pod` uniform struct.
    pub fn dispatch_with<U: Pod>(
        &mut self,
        kernel: &Kernel,
        bindings: &[BufferSlice],
        workgroups: [u32; 3],
        uniforms: &U,
    ) -> &mut Self {
        self.dispatch(kernel, bindings, workgroups, bytemuck::bytes_of(uniforms))
    }

    pub fn copy(&mut self, src: BufferSlice, dst: &Buffer, dst_offset: u64) -> &mut Self {
        self.recorded.commands.push(Command::Copy { src, dst: dst.id(), dst_offset });
        self
    }

    pub fn write<T: Pod>(&mut self, dst: &Buffer, offset: u64, values: &[T]) -> &mut Self {
        let r = &mut self.recorded;
        let data: &[u8] = bytemuck::cast_slice(values);
        r.commands.push(Command::Write {
            dst: dst.id(),
            offset,
            data_start: r.bytes.len() as u64,
            data_len: data.len() as u64,
        });
        r.bytes.extend_from_slice(data);
        self
    }

    pub fn clear(&mut self, dst: BufferSlice) -> &mut Self {
        self.recorded.commands.push(Command::Clear { dst });
        self
    }

    /// Schedules a read of `src` after everything recorded so far.
    pub fn read(&mut self, src: BufferSlice) -> ReadToken {
        self.recorded.commands.push(Command::Read { src });
        self.recorded.reads += 1;
        ReadToken(self.recorded.reads - 1)
    }

    pub fn len(&self) -> usize {
        self.recorded.len()
    }
    pub fn is_empty(&self) -> bool {
        self.recorded.is_empty()
    }

    /// The recorded commands, to submit later (possibly many times) with [`Gpu::submit`].
    pub fn finish(self) -> Recorded {
        self.recorded
    }

    /// Submits everything as one GPU submission.
    pub fn submit(self) -> Result<Readback> {
        self.gpu.submit(&self.recorded)
    }
}

/// The bytes a batch's reads returned.
pub struct Readback(RVec<RVec<u8>>);

impl Readback {
    pub fn bytes(&self, token: ReadToken) -> &[u8] {
        &self.0[token.0]
    }
    pub fn get<T: Pod>(&self, token: ReadToken) -> Result<Vec<T>> {
        cast_vec(self.bytes(token))
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
