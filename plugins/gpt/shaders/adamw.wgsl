// AdamW with a global-norm gradient clip (PyTorch's torch.optim.AdamW and
// clip_grad_norm_ semantics), elementwise over one packed parameter range.
//
//   norm  = sqrt(scalars[0])   (the squared global gradient norm, reduced on the GPU beforehand)
//   clip  = max_norm / (norm + 1e-6) if max_norm > 0 and norm > max_norm, else 1
//   g     = grad[i] * clip
//   m     = beta1 * m + (1 - beta1) * g;   v = beta2 * v + (1 - beta2) * g^2
//   param = param - lr * weight_decay * param               (decoupled decay, before the update)
//   param = param - lr * (m / bc1) / (sqrt(v / bc2) + eps)  bc1 = 1 - beta1^t, bc2 = 1 - beta2^t
// The clip factor is computed here from the GPU-side norm, so clipping needs no readback.
//
// Bindings (group 0, in order): grads (read), scalars (read), params, m, v (read_write); uniform p.
// Workgroup: 256 threads, one element each, over a 2-D grid of workgroups
// (i = (wg.y * num_workgroups.x + wg.x) * 256 + lid), elements off .. off + n.
// Limits: n < 2^32.

struct Params {
    n: u32,
    off: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    bc1: f32,
    bc2: f32,
    max_norm: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> grads: array<f32>;
@group(0) @binding(1) var<storage, read> scalars: array<f32>;
@group(0) @binding(2) var<storage, read_write> params: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

@compute @workgroup_size(256)
fn adamw(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let j = (wg.y * nwg.x + wg.x) * 256u + lid.x;
    if (j >= p.n) {
        return;
    }
    let i = p.off + j;
    let norm = sqrt(scalars[0]);
    var clip = 1.0;
    if (p.max_norm > 0.0 && norm > p.max_norm) {
        clip = p.max_norm / (norm + 1e-6);
    }
    let g = grads[i] * clip;
    let mi = p.beta1 * m[i] + (1.0 - p.beta1) * g;
    let vi = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    var w = params[i];
    w -= p.lr * p.weight_decay * w;
    w -= p.lr * (mi / p.bc1) / (sqrt(vi / p.bc2) + p.eps);
    params[i] = w;
}
