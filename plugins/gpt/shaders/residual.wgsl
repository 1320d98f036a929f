// Residual add: out[i] = a[i] + b[i] (the transformer's skip connections, forward).
// The backward pass needs no kernel of its own: the residual stream's gradient flows through
// unchanged and the branches accumulate into it (layernorm_backward with accumulate = 1).
//
// Bindings (group 0, in order): a (read), b (read), out (read_write); uniform p.
// Workgroup: 256 threads, one element each, over a 2-D grid of workgroups:
// i = (wg.y * num_workgroups.x + wg.x) * 256 + lid.
// Limits: n < 2^32.

struct Params {
    n: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256)
fn residual_forward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let i = (wg.y * nwg.x + wg.x) * 256u + lid.x;
    if (i < p.n) {
        out[i] = a[i] + b[i];
    }
}
