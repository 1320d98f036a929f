// Token + position embedding, forward and a deterministic backward (no atomics).
//
//   embedding_forward       out[p, c] = wte[tokens[p], c] + wpe[p % T, c]
//                           for the positions whose token lies in this dispatch's shard of wte's
//                           rows [row_start, row_start + row_count): a table larger than one
//                           storage binding is split into shards, one dispatch each, and every
//                           position is written by exactly one of them.
//   embedding_backward_wte  dwte[row, c] += sum over the positions p holding token `row` of dx[p, c]
//                           The caller groups positions by token (a CSR index built from the
//                           token ids it uploads: `groups[u] = (token, first, end)` into
//                           `order`, positions ascending); one thread per (group, channel) sums its
//                           group in that order, so every gradient row has one writer.
//   embedding_backward_wpe  dwpe[t, c] += sum_b dx[b * T + t, c]   one thread per (t, c), b in order
// Tables are views into the packed parameter / gradient buffers at wte_off / wpe_off (elements).
//
// Bindings (group 0, in order):
//   embedding_forward       tokens (read), wte (read), wpe (read), out (read_write)
//   embedding_backward_wte  groups (read), order (read), dx (read), grads (read_write)
//   embedding_backward_wpe  dx (read), grads (read_write)
//   and the uniform p in each.
// Workgroup: 256 threads, one (row, channel) each, over a 2-D grid of workgroups
// (i = (wg.y * num_workgroups.x + wg.x) * 256 + lid). Limits: element counts below 2^32.

struct Params {
    positions: u32,
    seq: u32,
    channels: u32,
    row_start: u32,
    row_count: u32,
    wte_off: u32,
    wpe_off: u32,
    group_start: u32,
    group_count: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> tokens: array<u32>;
@group(0) @binding(1) var<storage, read> groups: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> order: array<u32>;
@group(0) @binding(3) var<storage, read> dx: array<f32>;
@group(0) @binding(4) var<storage, read> wte: array<f32>;
@group(0) @binding(5) var<storage, read> wpe: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
@group(0) @binding(7) var<storage, read_write> grads: array<f32>;
@group(0) @binding(8) var<uniform> p: Params;

fn index(wg: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wg.y * nwg.x + wg.x) * 256u + lid.x;
}

@compute @workgroup_size(256)
fn embedding_forward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let i = index(wg, nwg, lid);
    if (i >= p.positions * p.channels) {
        return;
    }
    let pos = i / p.channels;
    let c = i % p.channels;
    let tok = tokens[pos];
    if (tok < p.row_start || tok - p.row_start >= p.row_count) {
        return;
    }
    let t = pos % p.seq;
    out[i] = wte[p.wte_off + (tok - p.row_start) * p.channels + c] + wpe[p.wpe_off + t * p.channels + c];
}

@compute @workgroup_size(256)
fn embedding_backward_wte(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let i = index(wg, nwg, lid);
    if (i >= p.group_count * p.channels) {
        return;
    }
    let g = groups[p.group_start + i / p.channels];
    let c = i % p.channels;
    var s = 0.0;
    for (var j = g.y; j < g.z; j++) {
        s += dx[order[j] * p.channels + c];
    }
    let idx = p.wte_off + (g.x - p.row_start) * p.channels + c;
    grads[idx] += s;
}

@compute @workgroup_size(256)
fn embedding_backward_wpe(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let i = index(wg, nwg, lid);
    if (i >= p.seq * p.channels) {
        return;
    }
    let t = i / p.channels;
    let c = i % p.channels;
    let batch = p.positions / p.seq;
    var s = 0.0;
    for (var b = 0u; b < batch; b++) {
        s += dx[(b * p.seq + t) * p.channels + c];
    }
    grads[p.wpe_off + i] += s;
}
