// LayerNorm over the last dimension (eps 1e-5, as PyTorch's default), forward and backward.
//
//   layernorm_forward     mean[r] = sum_c x[r, c] / C;  rstd[r] = 1 / sqrt(sum_c (x - mean)^2 / C + eps)
//                         y[r, c] = (x[r, c] - mean[r]) * rstd[r] * w[c] + b[c]
//   layernorm_backward    g = dy * w;  xhat = (x - mean) * rstd
//                         dx[r, c] (+)= rstd * (g - mean_c(g) - xhat * mean_c(g * xhat))
//                         (`accumulate` = 1 adds into dx: the residual stream's gradient)
//   layernorm_param_grad  dw[c] += sum_r dy[r, c] * xhat[r, c];  db[c] += sum_r dy[r, c]
// w and b are views into the packed parameter buffer at w_off / b_off; dw and db into the packed
// gradient buffer at the same offsets. Means and variances are two-pass, reductions are fixed
// trees and column sums run over rows in order: deterministic.
//
// Bindings (group 0, in order):
//   layernorm_forward     x (read), params (read), y, mean, rstd (read_write); uniform p
//   layernorm_backward    dy, x, params, mean, rstd (read), dx (read_write); uniform p
//   layernorm_param_grad  dy, x, mean, rstd (read), grads (read_write); uniform p
// Workgroup: forward/backward 64 threads per row, dispatch [rows, 1, 1]; param_grad one thread
// per column, 64 per workgroup, dispatch [ceil(C / 64), 1, 1].
// Limits: rows at most the adapter's workgroups per dimension (65535 on most adapters).

struct Params {
    rows: u32,
    cols: u32,
    w_off: u32,
    b_off: u32,
    accumulate: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> params: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> mean_out: array<f32>;
@group(0) @binding(5) var<storage, read_write> rstd_out: array<f32>;
@group(0) @binding(6) var<storage, read> mean_in: array<f32>;
@group(0) @binding(7) var<storage, read> rstd_in: array<f32>;
@group(0) @binding(8) var<storage, read_write> dx: array<f32>;
@group(0) @binding(9) var<storage, read_write> grads: array<f32>;
@group(0) @binding(10) var<uniform> p: Params;

const WG: u32 = 64u;
const EPS: f32 = 1e-5;

var<workgroup> red: array<f32, 64>;

// Sum of `v` over the workgroup, in a fixed tree order. Call from uniform control flow.
fn workgroup_sum(v: f32, lid: u32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            red[lid] += red[lid + s];
        }
        workgroupBarrier();
    }
    let total = red[0];
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(64)
fn layernorm_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let base = wg.x * p.cols;
    let n = f32(p.cols);
    var s = 0.0;
    for (var c = lid.x; c < p.cols; c += WG) {
        s += x[base + c];
    }
    let mean = workgroup_sum(s, lid.x) / n;
    var v = 0.0;
    for (var c = lid.x; c < p.cols; c += WG) {
        let d = x[base + c] - mean;
        v += d * d;
    }
    let rstd = inverseSqrt(workgroup_sum(v, lid.x) / n + EPS);
    for (var c = lid.x; c < p.cols; c += WG) {
        y[base + c] = (x[base + c] - mean) * rstd * params[p.w_off + c] + params[p.b_off + c];
    }
    if (lid.x == 0u) {
        mean_out[wg.x] = mean;
        rstd_out[wg.x] = rstd;
    }
}

@compute @workgroup_size(64)
fn layernorm_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = wg.x;
    let base = r * p.cols;
    let mean = mean_in[r];
    let rstd = rstd_in[r];
    var sg = 0.0;
    var sgx = 0.0;
    for (var c = lid.x; c < p.cols; c += WG) {
        let g = dy[base + c] * params[p.w_off + c];
        sg += g;
        sgx += g * (x[base + c] - mean) * rstd;
    }
    let n = f32(p.cols);
    let mean_g = workgroup_sum(sg, lid.x) / n;
    let mean_gx = workgroup_sum(sgx, lid.x) / n;
    for (var c = lid.x; c < p.cols; c += WG) {
        let g = dy[base + c] * params[p.w_off + c];
        let xhat = (x[base + c] - mean) * rstd;
        var d = rstd * (g - mean_g - xhat * mean_gx);
        if (p.accumulate != 0u) {
            d += dx[base + c];
        }
        dx[base + c] = d;
    }
}

@compute @workgroup_size(64)
fn layernorm_param_grad(@builtin(global_invocation_id) id: vec3<u32>) {
    let c = id.x;
    if (c >= p.cols) {
        return;
    }
    var sw = 0.0;
    var sb = 0.0;
    for (var r = 0u; r < p.rows; r++) {
        let d = dy[r * p.cols + c];
        sw += d * (x[r * p.cols + c] - mean_in[r]) * rstd_in[r];
        sb += d;
    }
    grads[p.w_off + c] += sw;
    grads[p.b_off + c] += sb;
}
