// How far each miner's next-token distribution is from the miners' average,
// position by position, and how much it exceeds the usual spread.
//
// A miner's top-k answer stands for a distribution over the whole vocabulary:
// q_m(v) = exp(lp_j) for its top-k ids (the last j when an id repeats) and
// rest_m (from topk_cross_entropy.wgsl's position_logprobs: the mass outside
// the top k spread evenly, never below the floor) on every other token. The
// average a(v) = mean_m q_m(v) is built densely over the vocabulary.
//
// Entry points:
//   hellinger        distances[m][p] = sqrt(min(1, 0.5 * sum_v (sqrt q_m(v) - sqrt a(v))^2)),
//                    the Hellinger distance, summed over the whole vocabulary
//                    (no cancellation: each token's term is computed on its own).
//                    Covers positions first .. first + count (a chunk, so that
//                    the dense rows fit in memory).
//   position_spread  spread[p] = (mean_m d[m][p], std_m d[m][p]), std with the
//                    n - 1 divisor (0 for a single miner).
//   miner_excess     excess[m] = mean_p min(10, (max(d - (mean + std) - TOLERANCE, 0) / (std + 1e-9))^3),
//                    0 when fewer than two miners answered.
//
// Bindings (@group(0)):
//   0 ids            array<u32>  miners * positions * k, [m][p][j]; padding id 0xFFFFFFFF
//   1 logprobs       array<f32>  same layout; padding -1e30
//   2 ks             array<u32>  miners: each miner's own k (<= k)
//   3 position_rest  array<f32>  miners * positions, [m][p]
//   4 sqrt_mixture   array<f32>  count * vocab, scratch: sqrt a(v) of each position of the chunk
//   5 stamps         array<atomic<u32>>  count * vocab, scratch: which miner's top k holds v
//   6 distances      array<f32>  miners * positions, [m][p] (written by hellinger)
//   7 params         uniform     miners, positions, k (padded width), vocab, first, count
//   8 spread         array<f32>  2 * positions (written by position_spread)
//   9 excess         array<f32>  miners (written by miner_excess)
// Workgroups:
//   hellinger: 256 threads, one workgroup per position of the chunk (dispatch
//   [count, 1, 1]). Miners are taken one after the other, with barriers
//   between them: a token's average is summed in miner order, and the stamps
//   (integer atomicMax, never float atomics) mark which entry of a miner's top
//   k owns a token. Each distance is a fixed tree reduction. Deterministic.
//   position_spread: 64 threads, one thread per position (dispatch [ceil(positions / 64), 1, 1]).
//   miner_excess: 256 threads, one workgroup per miner (dispatch [miners, 1, 1]),
//   strided positions and a fixed tree reduction.
// Limits: miners and count <= 65535; 2 * miners * k < 2^32 (stamps); the
// scratch rows are count * vocab words each; work is O(positions * miners * (vocab + k)).
// Compiled after workgroup_sum.wgsl (neuron_plugin_api::shaders::WORKGROUP_SUM) (WG, Lane, workgroup_sum) or workgroup_sum_subgroup.wgsl.

struct Params {
    miners: u32,
    positions: u32,
    k: u32,
    vocab: u32,
    first: u32,
    count: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> ids: array<u32>;
@group(0) @binding(1) var<storage, read> logprobs: array<f32>;
@group(0) @binding(2) var<storage, read> ks: array<u32>;
@group(0) @binding(3) var<storage, read> position_rest: array<f32>;
@group(0) @binding(4) var<storage, read_write> sqrt_mixture: array<f32>;
@group(0) @binding(5) var<storage, read_write> stamps: array<atomic<u32>>;
@group(0) @binding(6) var<storage, read_write> distances: array<f32>;
@group(0) @binding(7) var<uniform> params: Params;
@group(0) @binding(8) var<storage, read_write> spread: array<f32>;
@group(0) @binding(9) var<storage, read_write> excess: array<f32>;

// Hellinger distances closer than this to mean + std are rounding, not divergence.
const TOLERANCE: f32 = 1e-4;
const MAX_EXCESS: f32 = 10.0;

// Stamps every token of miner m's top k at p with `stamp0 + j`; afterwards the
// entry whose stamp stands owns the token (the last j when an id repeats).
fn stamp_top_k(row: u32, e0: u32, km: u32, stamp0: u32, lid: u32) {
    for (var j = lid; j < km; j += WG) {
        atomicMax(&stamps[row + ids[e0 + j]], stamp0 + j);
    }
    storageBarrier();
}

@compute @workgroup_size(256)
fn hellinger(@builtin(workgroup_id) wg: vec3<u32>, lane: Lane) {
    let lid = lane.index;
    let p = params.first + wg.x;
    let row = wg.x * params.vocab;
    let miners = params.miners;
    for (var v = lid; v < params.vocab; v += WG) {
        sqrt_mixture[row + v] = 0.0;
        atomicStore(&stamps[row + v], 0u);
    }
    storageBarrier();

    // sum over miners of (q_m(v) - rest_m) / miners, on each miner's own top k
    var rest_sum = 0.0;
    for (var m = 0u; m < miners; m++) {
        let e0 = (m * params.positions + p) * params.k;
        let km = ks[m];
        let stamp0 = m * params.k + 1u;
        let rest = position_rest[m * params.positions + p];
        rest_sum += rest;
        stamp_top_k(row, e0, km, stamp0, lid);
        for (var j = lid; j < km; j += WG) {
            let v = ids[e0 + j];
            if (atomicLoad(&stamps[row + v]) == stamp0 + j) {
                sqrt_mixture[row + v] += (exp(logprobs[e0 + j]) - rest) / f32(miners);
            }
        }
        storageBarrier();
    }
    let rest_mean = rest_sum / f32(miners);
    for (var v = lid; v < params.vocab; v += WG) {
        sqrt_mixture[row + v] = sqrt(max(rest_mean + sqrt_mixture[row + v], 0.0));
    }
    storageBarrier();

    // each miner's distance; stamps of this pass are above every stamp of the first
    let second = miners * params.k;
    for (var m = 0u; m < miners; m++) {
        let e0 = (m * params.positions + p) * params.k;
        let km = ks[m];
        let stamp0 = second + m * params.k + 1u;
        stamp_top_k(row, e0, km, stamp0, lid);
        let sqrt_rest = sqrt(position_rest[m * params.positions + p]);
        var acc = 0.0;
        for (var v = lid; v < params.vocab; v += WG) {
            if (atomicLoad(&stamps[row + v]) < stamp0) {
                let d = sqrt_rest - sqrt_mixture[row + v];
                acc += d * d;
            }
        }
        for (var j = lid; j < km; j += WG) {
            let v = ids[e0 + j];
            if (atomicLoad(&stamps[row + v]) == stamp0 + j) {
                let d = exp(0.5 * logprobs[e0 + j]) - sqrt_mixture[row + v];
                acc += d * d;
            }
        }
        let total = workgroup_sum(lane, acc);
        if (lid == 0u) {
            distances[m * params.positions + p] = sqrt(min(0.5 * total, 1.0));
        }
        storageBarrier();
    }
}

@compute @workgroup_size(64)
fn position_spread(@builtin(global_invocation_id) gid: vec3<u32>) {
    let p = gid.x;
    if (p >= params.positions) {
        return;
    }
    var sum = 0.0;
    for (var m = 0u; m < params.miners; m++) {
        sum += distances[m * params.positions + p];
    }
    let mean = sum / f32(params.miners);
    var squares = 0.0;
    for (var m = 0u; m < params.miners; m++) {
        let d = distances[m * params.positions + p] - mean;
        squares += d * d;
    }
    var deviation = 0.0;
    if (params.miners > 1u) {
        deviation = sqrt(squares / f32(params.miners - 1u));
    }
    spread[2u * p] = mean;
    spread[2u * p + 1u] = deviation;
}

@compute @workgroup_size(256)
fn miner_excess(@builtin(workgroup_id) wg: vec3<u32>, lane: Lane) {
    let lid = lane.index;
    let m = wg.x;
    var acc = 0.0;
    if (m < params.miners && params.miners > 1u) {
        for (var p = lid; p < params.positions; p += WG) {
            let mean = spread[2u * p];
            let deviation = spread[2u * p + 1u];
            let over = max(distances[m * params.positions + p] - (mean + deviation) - TOLERANCE, 0.0) / (deviation + 1e-9);
            acc += min(over * over * over, MAX_EXCESS);
        }
    }
    let total = workgroup_sum(lane, acc);
    if (lid == 0u && m < params.miners) {
        excess[m] = total / f32(params.positions);
    }
}
