// The f16 copy of the weights that the f16-weights option (`weights_f16 = true`) reads in the
// forward and input-gradient matmuls (the variants kernels.rs makes of matmul.wgsl and
// matmul_vec4.wgsl, which convert each element back to f32 and sum in f32). The f32 weights stay
// the master copy: AdamW updates them, and this kernel refreshes the copy after every change.
//
//   to_f16   x16[off + i] = f16(clamp(x[off + i], -65504, 65504)), i < n (rounded to nearest;
//            beyond f16's range, the largest finite value of the same sign)
//
// Needs wgpu's SHADER_F16 feature (the model asks for it if available and refuses the option
// without it).
// Bindings (group 0, in order): x (read), x16 (read_write); uniform p.
// Workgroup: 256 threads, one element each, over a 2-D grid of workgroups:
// i = (wg.y * num_workgroups.x + wg.x) * 256 + lid.
// Limits: n < 2^32; the x16 buffer's size is a multiple of 4 bytes (an odd count is padded).

enable f16;

struct Params {
    n: u32,
    off: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> x16: array<f16>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn to_f16(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let i = (wg.y * nwg.x + wg.x) * 256u + lid.x;
    if (i < p.n) {
        x16[p.off + i] = f16(clamp(x[p.off + i], -65504.0, 65504.0));
    }
}
