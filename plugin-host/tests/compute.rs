//! WGSL through the compute context, on whatever adapter the machine has
//! (lavapipe in CI): results against CPU references, the kernel cache,
//! compiler errors, and refusal of bad commands without panics.

use std::sync::{Arc, OnceLock};

use neuron_plugin_api::{BufferSlice, ErrorKind, Gpu};
use neuron_plugin_host::gpu::{GpuDevice, GpuOptions};

fn device() -> Arc<GpuDevice> {
    static GPU: OnceLock<Arc<GpuDevice>> = OnceLock::new();
    GPU.get_or_init(|| GpuDevice::open(&GpuOptions::from_env(), &[]).expect("a GPU adapter")).clone()
}

fn ctx() -> Gpu {
    device().context("test").into_gpu()
}

/// Row-wise weighted sum with a uniform block: out[r] = scale * sum_c m[r, c] * w[c] + bias.
const ROWDOT: &str = r#"
// Test kernel: scaled row dot products.
struct Params { rows: u32, cols: u32, scale: f32, bias: f32 }
@group(0) @binding(0) var<storage, read> m: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(32)
fn rowdot(@builtin(global_invocation_id) id: vec3<u32>) {
    let r = id.x;
    if (r >= p.rows) { return; }
    var acc = 0.0;
    for (var c = 0u; c < p.cols; c++) { acc += m[r * p.cols + c] * w[c]; }
    out[r] = p.scale * acc + p.bias;
}

@compute @workgroup_size(64)
fn double_in_place(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x < arrayLength(&out)) { out[id.x] = 2.0 * out[id.x]; }
}
"#;

#[repr(C)]
#[derive(Copy, Clone, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    scale: f32,
    bias: f32,
}

fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n).map(|i| (((i as u32).wrapping_mul(2654435761) ^ seed) % 1000) as f32 / 500.0 - 1.0).collect()
}

#[test]
fn a_kernel_matches_its_cpu_reference_on_ragged_sizes() {
    let gpu = ctx();
    let k = gpu.compile(ROWDOT, "rowdot").unwrap();
    assert_eq!(k.workgroup_size(), [32, 1, 1]);
    assert_eq!(
        k.info().bindings.iter().map(|b| (b.name.as_str(), b.read_only)).collect::<Vec<_>>(),
        [("m", true), ("w", true), ("out", false)]
    );
    assert_eq!(k.info().uniform_size, 16);
    for (rows, cols) in [(1usize, 1usize), (33, 7), (100, 129), (257, 3)] {
        let m = values(rows * cols, 7);
        let w = values(cols, 11);
        let mb = gpu.buffer_from(&m, "m").unwrap();
        let wb = gpu.buffer_from(&w, "w").unwrap();
        let ob = gpu.zeros_f32(rows, "out").unwrap();
        let mut b = gpu.batch();
        b.dispatch_with(
            &k,
            &[mb.all(), wb.all(), ob.all()],
            [(rows as u32).div_ceil(32), 1, 1],
            &Params { rows: rows as u32, cols: cols as u32, scale: 0.5, bias: 0.25 },
        );
        let r = b.read(ob.all());
        let got: Vec<f32> = b.submit().unwrap().get(r).unwrap();
        for row in 0..rows {
            let want = 0.5 * (0..cols).map(|c| f64::from(m[row * cols + c]) * f64::from(w[c])).sum::<f64>() + 0.25;
            assert!(
                (f64::from(got[row]) - want).abs() <= 1e-5 * (1.0 + want.abs()),
                "{rows}x{cols} row {row}: {} vs {want}",
                got[row]
            );
        }
    }
}

#[test]
fn commands_in_a_batch_run_in_order_with_one_readback() {
    let gpu = ctx();
    let rowdot = gpu.compile(ROWDOT, "rowdot").unwrap();
    let double = gpu.compile(ROWDOT, "double_in_place").unwrap();
    assert_eq!(double.info().uniform_size, 0);
    let m = gpu.buffer_from(&[1.0f32, 2.0, 3.0, 4.0], "m").unwrap();
    let w = gpu.buffer_from(&[1.0f32, 1.0], "w").unwrap();
    let out = gpu.zeros_f32(2, "out").unwrap();
    let copy = gpu.zeros_f32(4, "copy").unwrap();
    let mut b = gpu.batch();
    b.dispatch_with(
        &rowdot,
        &[m.all(), w.all(), out.all()],
        [1, 1, 1],
        &Params { rows: 2, cols: 2, scale: 1.0, bias: 0.0 },
    );
    let first = b.read(out.all());
    b.dispatch(&double, &[out.all()], [1, 1, 1], &[]);
    b.copy(out.all(), &copy, 8);
    b.write(&w, 0, &[10.0f32, 0.0]);
    b.dispatch_with(
        &rowdot,
        &[m.all(), w.all(), out.all()],
        [1, 1, 1],
        &Params { rows: 2, cols: 2, scale: 1.0, bias: 1.0 },
    );
    let last = b.read(out.all());
    let copied = b.read(copy.all());
    b.clear(copy.range(8, 4));
    let cleared = b.read(copy.all());
    let rb = b.submit().unwrap();
    assert_eq!(rb.get::<f32>(first).unwrap(), [3.0, 7.0]);
    assert_eq!(rb.get::<f32>(copied).unwrap(), [0.0, 0.0, 6.0, 14.0], "the copy saw the doubled values");
    assert_eq!(rb.get::<f32>(last).unwrap(), [11.0, 31.0], "the batched write landed before the last dispatch");
    assert_eq!(rb.get::<f32>(cleared).unwrap(), [0.0, 0.0, 0.0, 14.0]);
}

#[test]
fn a_second_compile_of_the_same_source_hits_the_cache() {
    let a = ctx();
    let b = ctx();
    let source = format!("{ROWDOT}\n// cache test\n");
    let before = a.stats();
    let k1 = a.compile(&source, "rowdot").unwrap();
    let mid = a.stats();
    let k2 = b.compile(&source, "rowdot").unwrap();
    let after = b.stats();
    assert_eq!(k1.id(), k2.id(), "same kernel from another context");
    assert!(mid.kernels_compiled > before.kernels_compiled);
    assert_eq!(after.kernels_compiled, mid.kernels_compiled, "no second compilation");
    assert!(after.kernel_cache_hits > mid.kernel_cache_hits);
    let k3 = a.compile(&source, "double_in_place").unwrap();
    assert_ne!(k1.id(), k3.id(), "another entry point is another kernel");
}

#[test]
fn a_wgsl_syntax_error_comes_back_with_the_message_and_line() {
    let gpu = ctx();
    let source = "// broken kernel\n@group(0) @binding(0) var<storage, read_write> a: array<f32>;\n@compute @workgroup_size(64)\nfn main(@builtin(global_invocation_id) id: vec3<u32>) {\n    a[id.x] = a[id.x] + ;\n}\n";
    let err = gpu.compile(source, "main").unwrap_err();
    assert_eq!(err.kind, ErrorKind::GPU);
    assert!(err.message.contains("WGSL error in kernel `main` (broken kernel) at line 5"), "{err}");
    assert!(err.message.contains("expected"), "the compiler's message: {err}");
    assert!(!err.message.contains('\n'), "{err}");
}

#[test]
fn a_type_error_and_a_missing_entry_point_are_errors() {
    let gpu = ctx();
    let source = "@group(0) @binding(0) var<storage, read_write> a: array<f32>;\n@compute @workgroup_size(1)\nfn main() {\n    a[0] = 1u;\n}\n";
    let err = gpu.compile(source, "main").unwrap_err();
    assert!(err.message.contains("at line 4"), "{err}");
    let err = gpu.compile(ROWDOT, "nope").unwrap_err();
    assert!(err.message.contains("no compute entry point `nope` (it has: rowdot, double_in_place)"), "{err}");
    let err = gpu
        .compile("@group(1) @binding(0) var<storage, read_write> a: array<f32>;\n@compute @workgroup_size(1) fn main() { a[0] = 1.0; }", "main")
        .unwrap_err();
    assert!(err.message.contains("put every binding in @group(0)"), "{err}");
}

#[test]
fn bad_commands_are_refused_with_a_reason() {
    let gpu = ctx();
    let k = gpu.compile(ROWDOT, "rowdot").unwrap();
    let m = gpu.zeros_f32(16, "m").unwrap();
    let out = gpu.zeros_f32(4, "out").unwrap();
    let p = Params { rows: 4, cols: 4, scale: 1.0, bias: 0.0 };
    let submit_err = |f: &dyn Fn(&mut neuron_plugin_api::Batch<'_>)| {
        let mut b = gpu.batch();
        f(&mut b);
        let err = b.submit().err().expect("refused");
        assert_eq!(err.kind, ErrorKind::GPU);
        err.message.to_string()
    };
    let e = submit_err(&|b| {
        b.dispatch_with(&k, &[m.all(), out.all()], [1, 1, 1], &p);
    });
    assert!(e.contains("uses 3 storage bindings, the dispatch passed 2"), "{e}");
    let e = submit_err(&|b| {
        b.dispatch(&k, &[m.all(), m.all(), out.all()], [1, 1, 1], &[0u8; 12]);
    });
    assert!(e.contains("takes 16 uniform bytes, the dispatch passed 12"), "{e}");
    let e = submit_err(&|b| {
        b.dispatch_with(&k, &[m.range(0, 128), m.all(), out.all()], [1, 1, 1], &p);
    });
    assert!(e.contains("outside buffer"), "{e}");
    let e = submit_err(&|b| {
        b.dispatch_with(&k, &[m.range(4, 32), m.all(), out.all()], [1, 1, 1], &p);
    });
    assert!(e.contains("storage offset alignment"), "{e}");
    let e = submit_err(&|b| {
        b.dispatch_with(&k, &[m.all(), m.all(), out.all()], [u32::MAX, 1, 1], &p);
    });
    assert!(e.contains("exceeds the adapter's limit"), "{e}");
    let e = submit_err(&|b| {
        b.read(BufferSlice { buffer: neuron_plugin_api::BufferId(999_999), offset: 0, size: 0 });
    });
    assert!(e.contains("unknown buffer id 999999"), "{e}");
    let e = submit_err(&|b| {
        b.copy(m.range(0, 6), &out, 0);
    });
    assert!(e.contains("multiples of 4"), "{e}");
    let e = submit_err(&|b| {
        b.copy(m.range(0, 32), &m, 16);
    });
    assert!(e.contains("overlap"), "{e}");
    let err = gpu.buffer(u64::MAX / 2, "huge").unwrap_err();
    assert!(err.message.contains("exceeds the adapter's max_buffer_size"), "{err}");
}

#[test]
fn a_binding_over_the_storage_limit_is_refused_before_the_gpu_sees_it() {
    let dev = device();
    let limit = dev.adapter_info().limits.max_storage_buffer_binding_size;
    let max_buffer = dev.adapter_info().limits.max_buffer_size;
    if limit + 4 > max_buffer {
        // Adapters where one buffer cannot exceed the binding limit cannot hit this case.
        return;
    }
    let gpu = ctx();
    let k = gpu.compile(ROWDOT, "double_in_place").unwrap();
    let big = gpu.buffer(limit + 256, "big").unwrap();
    let mut b = gpu.batch();
    b.dispatch(&k, &[big.all()], [1, 1, 1], &[]);
    let err = b.submit().err().unwrap();
    assert!(err.message.contains("exceed the adapter's storage binding limit"), "{err}");
    // A split binding within the limit works.
    let mut b = gpu.batch();
    b.dispatch(&k, &[big.range(256, 1024)], [1, 1, 1], &[]);
    b.submit().unwrap();
}

#[test]
fn buffers_are_accounted_and_freed() {
    let gpu = ctx();
    let s0 = gpu.stats();
    let a = gpu.buffer(1000, "a").unwrap();
    let b = gpu.buffer(24, "b").unwrap();
    let s1 = gpu.stats();
    assert_eq!(s1.live_buffers, s0.live_buffers + 2);
    assert_eq!(s1.live_bytes, s0.live_bytes + 1000 + 24);
    drop(a);
    let s2 = gpu.stats();
    assert_eq!(s2.live_bytes, s0.live_bytes + 24);
    assert_eq!(s2.peak_bytes, s1.live_bytes);
    let id = b.id();
    drop(b);
    let err = gpu.read_slice::<f32>(BufferSlice { buffer: id, offset: 0, size: 0 }).unwrap_err();
    assert!(err.message.contains("unknown buffer id"), "{err}");
}

#[test]
fn many_threads_and_contexts_submit_at_once() {
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                let gpu = ctx();
                let k = gpu.compile(ROWDOT, "rowdot").unwrap();
                let m = gpu.buffer_from(&[1.0f32; 8], "m").unwrap();
                let w = gpu.buffer_from(&[1.0f32; 4], "w").unwrap();
                let out = gpu.zeros_f32(2, "out").unwrap();
                for i in 0..40 {
                    let bias = (t * 1000 + i) as f32;
                    let mut b = gpu.batch();
                    // Several dispatches with different uniforms in one submission.
                    for j in 0..3 {
                        b.dispatch_with(
                            &k,
                            &[m.all(), w.all(), out.all()],
                            [1, 1, 1],
                            &Params { rows: 2, cols: 4, scale: j as f32, bias },
                        );
                    }
                    let r = b.read(out.all());
                    let got: Vec<f32> = b.submit().unwrap().get(r).unwrap();
                    assert_eq!(got, [8.0 + bias, 8.0 + bias], "thread {t} round {i}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}
