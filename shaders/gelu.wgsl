// GELU, tanh form (GPT-2's): forward and backward, elementwise.
//
//   gelu_forward   y[i] = 0.5 * x * (1 + tanh(s * (x + 0.044715 x^3))),  s = sqrt(2 / pi)
//   gelu_backward  d[i] = d[i] * gelu'(x[i])   (in place: d holds dy on entry, dx on return)
//                  gelu'(x) = 0.5 (1 + t) + 0.5 x (1 - t^2) s (1 + 3 * 0.044715 x^2),  t = tanh(...)
// tanh is computed as 1 - 2 / (exp(2u) + 1), which saturates cleanly for large |u| on every
// backend (some builtin tanh implementations return NaN for large arguments).
//
// Bindings (group 0, in order): gelu_forward x (read), y (read_write); gelu_backward x (read),
// d (read_write); uniform p.
// Workgroup: 256 threads, one element each, over a 2-D grid of workgroups so that element
// counts above 65535 * 256 still fit: i = (wg.y * num_workgroups.x + wg.x) * 256 + lid.
// Limits: n < 2^32.

struct Params {
    n: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> d: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

const S: f32 = 0.7978845608028654;
const C3: f32 = 0.044715;

fn tanh_stable(u: f32) -> f32 {
    let e = exp(2.0 * clamp(u, -40.0, 40.0));
    return 1.0 - 2.0 / (e + 1.0);
}

fn index(wg: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wg.y * nwg.x + wg.x) * 256u + lid.x;
}

@compute @workgroup_size(256)
fn gelu_forward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let i = index(wg, nwg, lid);
    if (i >= p.n) {
        return;
    }
    let v = x[i];
    y[i] = 0.5 * v * (1.0 + tanh_stable(S * (v + C3 * v * v * v)));
}

@compute @workgroup_size(256)
fn gelu_backward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let i = index(wg, nwg, lid);
    if (i >= p.n) {
        return;
    }
    let v = x[i];
    let t = tanh_stable(S * (v + C3 * v * v * v));
    let grad = 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * S * (1.0 + 3.0 * C3 * v * v);
    d[i] = d[i] * grad;
}
