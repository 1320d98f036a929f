//! What crossing the plugin ABI costs.
//!
//! 1. A no-op trait-object call (`zero_grad` of the fixture model, which does
//!    nothing): through the loaded shared library, against the same kind of
//!    call on a plain `Box<dyn ModelPlugin>` in this process.
//! 2. Recording and submitting dispatches through the compute context,
//!    against the same dispatches recorded directly with wgpu (same kernel,
//!    same pipeline layout with a dynamic uniform offset, bind groups made
//!    ahead of time: the best case for direct use). Only CPU time is timed:
//!    the GPU is drained, untimed, between rounds.
//!
//! Run: `cargo bench -p neuron-e2e --bench abi_overhead`. Prints medians over
//! rounds and the ratios; numbers go to BENCHMARKS.md.

use std::{hint::black_box, num::NonZeroU64, time::Instant};

use neuron_e2e::{gpu, plugin};
use neuron_host::plugins::LoadedPlugin;
use neuron_plugin_api::{
    DType, ForwardOutput, ModelDescription, ModelPlugin, OutputRequest, Result, StateGroup, StepStats, Tensor,
    TensorSpec, TokenBatch,
};

const KERNEL: &str = r#"
// Bench kernel: y[i] = a * x[i] + y[i].
struct P { n: u32, a: f32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: P;
@compute @workgroup_size(64)
fn axpy(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x < p.n) { y[id.x] = p.a * x[id.x] + y[id.x]; }
}
"#;

struct Noop;

impl ModelPlugin for Noop {
    fn describe(&self) -> ModelDescription {
        unreachable!()
    }
    fn forward(&mut self, _: TokenBatch<'_>, _: OutputRequest) -> Result<ForwardOutput> {
        unreachable!()
    }
    fn loss(&mut self, _: TokenBatch<'_>, _: &[u32]) -> Result<f32> {
        unreachable!()
    }
    fn backward(&mut self) -> Result<()> {
        Ok(())
    }
    fn step(&mut self, _: f32) -> Result<StepStats> {
        unreachable!()
    }
    fn zero_grad(&mut self) -> Result<()> {
        Ok(())
    }
    fn state_schema(&self, _: StateGroup) -> Vec<TensorSpec> {
        vec![TensorSpec::new("x", DType::F32, &[])]
    }
    fn export_state(&mut self, _: StateGroup) -> Result<Vec<Tensor>> {
        Ok(Vec::new())
    }
    fn import_state(&mut self, _: StateGroup, _: &[Tensor]) -> Result<()> {
        Ok(())
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let gpu = gpu();
    println!("adapter: {}", gpu.describe());

    // 1. No-op calls.
    let calls = 200_000u32;
    let fixture = LoadedPlugin::load(&plugin("fixture_model")).unwrap();
    let mut across = fixture.new_model(&gpu, "").unwrap();
    let mut local: Box<dyn ModelPlugin> = Box::new(Noop);
    let (mut t_abi, mut t_dyn) = (Vec::new(), Vec::new());
    for _ in 0..15 {
        let t = Instant::now();
        for _ in 0..calls {
            black_box(across.zero_grad()).unwrap();
        }
        t_abi.push(t.elapsed().as_secs_f64() * 1e9 / calls as f64);
        let t = Instant::now();
        for _ in 0..calls {
            black_box(black_box(&mut local).zero_grad()).unwrap();
        }
        t_dyn.push(t.elapsed().as_secs_f64() * 1e9 / calls as f64);
    }
    let (abi, dynamic) = (median(t_abi), median(t_dyn));
    println!("no-op call across the ABI (loaded .so, panic guard included): {abi:.1} ns");
    println!("no-op call on Box<dyn ModelPlugin> in-process:                {dynamic:.1} ns");
    println!("ratio: {:.2}x", abi / dynamic);

    // 2. Dispatch recording.
    let n = 4096u32;
    let dispatches = 1000usize;
    let ctx = gpu.context("bench").into_gpu();
    let kernel = ctx.compile(KERNEL, "axpy").unwrap();
    let x = ctx.buffer_from(&vec![1.0f32; n as usize], "x").unwrap();
    let y = ctx.zeros_f32(n as usize, "y").unwrap();
    #[repr(C)]
    #[derive(Copy, Clone, bytemuck::Pod, bytemuck::Zeroable)]
    struct P {
        n: u32,
        a: f32,
    }
    let groups = [n.div_ceil(64), 1, 1];

    let (device, queue) = gpu.wgpu();
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: None,
        source: wgpu::ShaderSource::Wgsl(KERNEL.into()),
    });
    let entry = |binding, ty, dynamic: bool, min: Option<NonZeroU64>| wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer { ty, has_dynamic_offset: dynamic, min_binding_size: min },
        count: None,
    };
    let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: None,
        entries: &[
            entry(0, wgpu::BufferBindingType::Storage { read_only: true }, false, None),
            entry(1, wgpu::BufferBindingType::Storage { read_only: false }, false, None),
            entry(2, wgpu::BufferBindingType::Uniform, true, NonZeroU64::new(8)),
        ],
    });
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: None,
        bind_group_layouts: &[Some(&layout)],
        immediate_size: 0,
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: None,
        layout: Some(&pipeline_layout),
        module: &module,
        entry_point: Some("axpy"),
        compilation_options: Default::default(),
        cache: None,
    });
    let storage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST;
    let dx = device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: n as u64 * 4,
        usage: storage,
        mapped_at_creation: false,
    });
    let dy = device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: n as u64 * 4,
        usage: storage,
        mapped_at_creation: false,
    });
    let align = device.limits().min_uniform_buffer_offset_alignment as usize;
    let arena = device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: (dispatches * align) as u64,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &layout,
        entries: &[
            wgpu::BindGroupEntry { binding: 0, resource: dx.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 1, resource: dy.as_entire_binding() },
            wgpu::BindGroupEntry {
                binding: 2,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &arena,
                    offset: 0,
                    size: NonZeroU64::new(8),
                }),
            },
        ],
    });
    let drain = || {
        device.poll(wgpu::PollType::wait_indefinitely()).unwrap();
    };

    let (mut t_ctx, mut t_raw) = (Vec::new(), Vec::new());
    for round in 0..25 {
        drain();
        let t = Instant::now();
        let mut b = ctx.batch();
        for i in 0..dispatches {
            b.dispatch_with(&kernel, &[x.all(), y.all()], groups, &P { n, a: i as f32 * 1e-3 });
        }
        b.submit().unwrap();
        let ctx_us = t.elapsed().as_secs_f64() * 1e6 / dispatches as f64;
        drain();

        let t = Instant::now();
        let mut uniforms = vec![0u8; dispatches * align];
        for i in 0..dispatches {
            uniforms[i * align..i * align + 8].copy_from_slice(bytemuck::bytes_of(&P { n, a: i as f32 * 1e-3 }));
        }
        queue.write_buffer(&arena, 0, &uniforms);
        let mut encoder = device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            for i in 0..dispatches {
                pass.set_pipeline(&pipeline);
                pass.set_bind_group(0, &bind_group, &[(i * align) as u32]);
                pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
            }
        }
        queue.submit([encoder.finish()]);
        let raw_us = t.elapsed().as_secs_f64() * 1e6 / dispatches as f64;
        drain();
        if round >= 3 {
            // The first rounds warm caches (bind groups, staging, allocator).
            t_ctx.push(ctx_us);
            t_raw.push(raw_us);
        }
    }
    let (c, r) = (median(t_ctx), median(t_raw));
    println!("dispatch recorded+submitted through the compute context: {c:.2} us");
    println!("dispatch recorded+submitted directly with wgpu:          {r:.2} us");
    println!("ratio: {:.2}x ({dispatches} dispatches per submission, median of {} rounds)", c / r, 22);
}
