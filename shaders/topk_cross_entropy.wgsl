// Per-miner next-token cross-entropy from top-k responses.
//
// For miner m at position p the miner sent k token ids and their
// log-probabilities (log-softmax over the whole vocabulary). The probability
// it gave the true next token t is:
//   exp(lp_j)                         if ids_j == t for some j < k
//   max(1 - sum_j exp(lp_j), floor) / (vocab - k_m) otherwise: the mass
//                                     outside the top k, spread evenly over
//                                     the other tokens, never below `floor`
// and losses[m] = -mean_p log(probability) (nats per token).
//
// Bindings (@group(0)):
//   0 ids       array<u32>  miners * positions * k, row-major [m][p][j]; padding id 0xFFFFFFFF
//   1 logprobs  array<f32>  same layout; padding -1e30
//   2 targets   array<u32>  positions
//   3 ks        array<u32>  miners: each miner's own k (<= k; the rest is padding)
//   4 losses    array<f32>  miners (written)
//   5 params    uniform     miners, positions, k (the padded width), vocab, floor
// Workgroup: 256 threads, one workgroup per miner (dispatch [miners, 1, 1]).
// Each thread sums a strided subset of positions in a fixed order, then
// workgroup_sum's fixed tree: the result is deterministic.
// Limits: miners <= max workgroups per dimension (65535); k * positions per
// miner is unbounded (strided); vocab > k.
// Compiled after shaders/workgroup_sum.wgsl (WG, partial, workgroup_sum).

struct Params {
    miners: u32,
    positions: u32,
    k: u32,
    vocab: u32,
    floor: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> ids: array<u32>;
@group(0) @binding(1) var<storage, read> logprobs: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<u32>;
@group(0) @binding(3) var<storage, read> ks: array<u32>;
@group(0) @binding(4) var<storage, read_write> losses: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

@compute @workgroup_size(256)
fn miner_loss(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let m = wg.x;
    var acc = 0.0;
    if (m < params.miners) {
        let rest_tokens = f32(params.vocab - ks[m]);
        for (var p = lid; p < params.positions; p += WG) {
            let base = (m * params.positions + p) * params.k;
            let t = targets[p];
            var hit = -1.0e30;
            var found = false;
            var mass = 0.0;
            for (var j = 0u; j < params.k; j++) {
                let lp = logprobs[base + j];
                mass += exp(lp);
                if (ids[base + j] == t) {
                    hit = lp;
                    found = true;
                }
            }
            var logp = hit;
            if (!found) {
                logp = log(max(1.0 - mass, params.floor) / rest_tokens);
            }
            acc -= logp;
        }
    }
    let total = workgroup_sum(lid, acc);
    if (lid == 0u && m < params.miners) {
        losses[m] = total / f32(params.positions);
    }
}
