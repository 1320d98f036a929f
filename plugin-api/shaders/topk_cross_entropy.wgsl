// Per-miner next-token cross-entropy from top-k responses.
//
// For miner m at position p the miner sent k token ids and their
// log-probabilities (log-softmax over the whole vocabulary). The probability
// it gave the true next token t is:
//   exp(lp_j)                         if ids_j == t for some j < k
//   max(1 - sum_j exp(lp_j), floor) / (vocab - k_m) otherwise: the mass
//                                     outside the top k, spread evenly over
//                                     the other tokens, never below `floor`
// (the last matching j counts when an id repeats).
//
// Entry points:
//   miner_loss         losses[m] = -mean_p log(probability) (nats per token).
//   position_logprobs  per (m, p): position_logp = log(probability) and
//                      position_rest = the probability spread over each token
//                      outside the top k (the second line above, without the
//                      log), for scorers that combine miners position by
//                      position.
//
// Bindings (@group(0)):
//   0 ids            array<u32>  miners * positions * k, row-major [m][p][j]; padding id 0xFFFFFFFF
//   1 logprobs       array<f32>  same layout; padding -1e30
//   2 targets        array<u32>  positions
//   3 ks             array<u32>  miners: each miner's own k (<= k; the rest is padding)
//   4 losses         array<f32>  miners (written by miner_loss)
//   5 params         uniform     miners, positions, k (the padded width), vocab, floor
//   6 position_logp  array<f32>  miners * positions, [m][p] (written by position_logprobs)
//   7 position_rest  array<f32>  miners * positions, [m][p] (written by position_logprobs)
// Workgroups:
//   miner_loss: 256 threads, one workgroup per miner (dispatch [miners, 1, 1]).
//   Each thread sums a strided subset of positions in a fixed order, then
//   workgroup_sum's fixed tree: the result is deterministic.
//   position_logprobs: 64 threads, one thread per position (dispatch
//   [ceil(positions / 64), miners, 1]).
// Limits: miners <= max workgroups per dimension (65535); k * positions per
// miner is unbounded (strided); vocab > k.
// Compiled after workgroup_sum.wgsl (neuron_plugin_api::shaders::WORKGROUP_SUM) (WG, Lane, workgroup_sum) or workgroup_sum_subgroup.wgsl.

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
@group(0) @binding(6) var<storage, read_write> position_logp: array<f32>;
@group(0) @binding(7) var<storage, read_write> position_rest: array<f32>;

struct TargetProbability {
    // log of the probability miner m gave the true token at p
    logp: f32,
    // the probability it spread over each token outside its top k
    rest: f32,
}

fn target_probability(m: u32, p: u32) -> TargetProbability {
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
    let rest = max(1.0 - mass, params.floor) / f32(params.vocab - ks[m]);
    var logp = hit;
    if (!found) {
        logp = log(rest);
    }
    return TargetProbability(logp, rest);
}

@compute @workgroup_size(256)
fn miner_loss(@builtin(workgroup_id) wg: vec3<u32>, lane: Lane) {
    let lid = lane.index;
    let m = wg.x;
    var acc = 0.0;
    if (m < params.miners) {
        for (var p = lid; p < params.positions; p += WG) {
            acc -= target_probability(m, p).logp;
        }
    }
    let total = workgroup_sum(lane, acc);
    if (lid == 0u && m < params.miners) {
        losses[m] = total / f32(params.positions);
    }
}

@compute @workgroup_size(64)
fn position_logprobs(@builtin(global_invocation_id) gid: vec3<u32>) {
    let p = gid.x;
    let m = gid.y;
    if (p >= params.positions || m >= params.miners) {
        return;
    }
    let prob = target_probability(m, p);
    position_logp[m * params.positions + p] = prob.logp;
    position_rest[m * params.positions + p] = prob.rest;
}
