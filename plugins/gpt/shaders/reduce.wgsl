// Deterministic reductions to a scalar, for the gradient norm and the mean loss.
//
//   sum_squares_partial  partials[base + w] = sum of x[off + i]^2 over workgroup w's segment
//                        of 4096 elements (each thread 16 of them, strided, then a fixed tree)
//   sum_partial          out[out_index] = scale * sum_i x[off + i], i < n, by one workgroup
//                        (each thread a strided slice in order, then a fixed tree)
// The gradient norm is sum_squares_partial over every gradient buffer into one partials array,
// then sum_partial over the partials; the mean loss is sum_partial over the per-position losses.
// The order of every addition is fixed by the sizes alone: the same inputs give the same bits.
//
// Bindings (group 0, in order): sum_squares_partial x (read), partials (read_write);
// sum_partial x (read), out (read_write); uniform p.
// Workgroup: 256 threads. Dispatch sum_squares_partial [ceil(n / 4096), 1, 1], sum_partial [1, 1, 1].
// Limits: ceil(n / 4096) at most the adapter's workgroups per dimension (268M elements at 65535).

struct Params {
    n: u32,
    off: u32,
    base: u32,
    out_index: u32,
    scale: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> partials: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

const PER_THREAD: u32 = 16u;

// Compiled after workgroup_sum.wgsl (neuron_plugin_api::shaders::WORKGROUP_SUM) (WG, Lane, workgroup_sum) or workgroup_sum_subgroup.wgsl, as plugins/gpt/src/kernels.rs does.

@compute @workgroup_size(256)
fn sum_squares_partial(@builtin(workgroup_id) wg: vec3<u32>, lane: Lane) {
    let lid = lane.index;
    let start = wg.x * WG * PER_THREAD;
    var s = 0.0;
    for (var j = 0u; j < PER_THREAD; j++) {
        let i = start + j * WG + lid;
        if (i < p.n) {
            let v = x[p.off + i];
            s = fma(v, v, s);
        }
    }
    let total = workgroup_sum(lane, s);
    if (lid == 0u) {
        partials[p.base + wg.x] = total;
    }
}

@compute @workgroup_size(256)
fn sum_partial(lane: Lane) {
    let lid = lane.index;
    var s = 0.0;
    for (var i = lid; i < p.n; i += WG) {
        s += x[p.off + i];
    }
    let total = workgroup_sum(lane, s);
    if (lid == 0u) {
        out[p.out_index] = total * p.scale;
    }
}
