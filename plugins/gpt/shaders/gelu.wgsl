// GELU, tanh form (GPT-2's): forward and backward, elementwise.
//
//   gelu_forward   y[i] = 0.5 * x * (1 + tanh(s * (x + 0.044715 x^3))),  s = sqrt(2 / pi)
//   gelu_backward  d[i] = d[i] * gelu'(x[i])   (in place: d holds dy on entry, dx on return)
//                  gelu'(x) = 0.5 (1 + t) + 0.5 x (1 - t^2) s (1 + 3 * 0.044715 x^2),  t = tanh(...)
// Computed through the identity 0.5 (1 + tanh(u)) = sigmoid(2u): y = x sigmoid(2u) and
// gelu'(x) = s + x * 2 s (1 - s) * sqrt(2/pi) (1 + 3 * 0.044715 x^2), s = sigmoid(2u), with s and
// 1 - s each from its own exp, so neither tail loses precision to cancellation (1 + tanh(u) for
// u << 0 would) and nothing overflows (u is clamped to +-40, where s is exactly 0 or 1 in f32).
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

// (sigmoid(2u), sigmoid(-2u)) for u = sqrt(2/pi) (x + 0.044715 x^3).
fn gate(x: f32) -> vec2<f32> {
    let u = clamp(S * (x + C3 * x * x * x), -40.0, 40.0);
    return vec2<f32>(1.0 / (1.0 + exp(-2.0 * u)), 1.0 / (1.0 + exp(2.0 * u)));
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
    y[i] = v * gate(v).x;
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
    let s = gate(v);
    let grad = s.x + v * 2.0 * s.x * s.y * S * (1.0 + 3.0 * C3 * v * v);
    d[i] = d[i] * grad;
}
