// Top-k hit rate (the scorer template).
//
// For miner m: hit_rate[m] = the fraction of positions p whose target is among the k ids the
// miner sent for p. Padding ids (0xFFFFFFFF, see TopKAnswers) never equal a target.
//
// Entry point:
//   hits   one thread per miner (workgroup 64, dispatch [ceil(miners / 64), 1, 1]); each thread
//          walks its positions in order, so the result is deterministic.
//
// Bindings (@group(0)):
//   0 ids       array<u32>  miners * positions * k, row-major [m][p][j] (TopKAnswers::ids)
//   1 targets   array<u32>  positions
//   2 hit_rate  array<f32>  miners (written)
//   3 params    uniform     miners, positions, k (the padded width)
// Limits: miners <= 65535 * 64; positions * k per miner unbounded (a loop).

struct Params {
    miners: u32,
    positions: u32,
    k: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> ids: array<u32>;
@group(0) @binding(1) var<storage, read> targets: array<u32>;
@group(0) @binding(2) var<storage, read_write> hit_rate: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(64)
fn hits(@builtin(global_invocation_id) id: vec3<u32>) {
    let m = id.x;
    if (m >= params.miners) {
        return;
    }
    var count = 0u;
    for (var p = 0u; p < params.positions; p++) {
        let truth = targets[p];
        let row = (m * params.positions + p) * params.k;
        for (var j = 0u; j < params.k; j++) {
            if (ids[row + j] == truth) {
                count += 1u;
                break;
            }
        }
    }
    hit_rate[m] = f32(count) / f32(params.positions);
}
