// Scaling-law Shapley values of the kept miners: each miner's own value,
// plus its share of the pairwise synergies, divided by its divergence penalty.
//
// Entry points:
//   pair_losses     for kept miners a <= b, the next-token cross-entropy of
//                   their mixture (the average of their two distributions):
//                   pair_loss[a][b] = pair_loss[b][a]
//                     = -mean_p log((exp(la_p) + exp(lb_p)) / 2),
//                   with la_p = position_logp[kept[a]][p]. The diagonal is a
//                   miner's own loss. Where la_p == lb_p the term is la_p
//                   exactly, so two identical answers have a pair loss equal,
//                   bit for bit, to their own losses.
//   shapley_values  for each kept miner a, with N(L, s) = (8.8e13 * max(L, min_loss)^(-1/0.076))^s
//                   (Kaplan et al.'s parameter count for loss L, raised to s):
//                     base_a    = N(L_aa, scaling_law_power)
//                     synergy_a = sum_{b != a} max(N(L_ab, s') - N(min(L_aa, L_bb), s'), 0) / 2 / n
//                                 with s' = synergy_scaling_law_power, n = kept miners
//                     value_a   = (base_a + synergy_a) / (1 + logits_divergence * excess[kept[a]])
//                   computed as exp(s * (ln 8.8e13 - ln(max(L, min_loss)) / 0.076)).
//
// Bindings (@group(0)):
//   0 position_logp  array<f32>  miners * positions, [m][p] (topk_cross_entropy.wgsl)
//   1 kept           array<u32>  n: the row of each kept miner
//   2 pair_loss      array<f32>  n * n (written by pair_losses)
//   3 excess         array<f32>  miners (topk_divergence.wgsl's miner_excess)
//   4 values         array<f32>  3 * n: value, then base, then synergy (written by shapley_values)
//   5 params         uniform     n, positions, the two powers, logits_divergence, min_loss
// Workgroups:
//   pair_losses: 256 threads, one workgroup per pair (dispatch [n, n, 1];
//   workgroups with a > b return at once), strided positions and a fixed tree
//   reduction. shapley_values: 64 threads, one thread per kept miner (dispatch
//   [ceil(n / 64), 1, 1]), pairs summed in a fixed order. Deterministic.
// Compiled after workgroup_sum.wgsl (neuron_plugin_api::shaders::WORKGROUP_SUM) (WG, Lane, workgroup_sum) or workgroup_sum_subgroup.wgsl.
// Limits: n <= 65535; the caller keeps s * (ln 8.8e13 - ln(min_loss) / 0.076)
// small enough (<= 85) for the values to stay finite in f32.

struct Params {
    kept: u32,
    positions: u32,
    scaling_law_power: f32,
    synergy_scaling_law_power: f32,
    logits_divergence: f32,
    min_loss: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> position_logp: array<f32>;
@group(0) @binding(1) var<storage, read> kept: array<u32>;
@group(0) @binding(2) var<storage, read_write> pair_loss: array<f32>;
@group(0) @binding(3) var<storage, read> excess: array<f32>;
@group(0) @binding(4) var<storage, read_write> values: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

// ln(8.8e13): Kaplan et al.'s N_c, the parameter count at a loss of 1 nat.
const LN_PARAMS_AT_ONE_NAT: f32 = 32.108359;
// Kaplan et al.'s alpha_N: loss = (N_c / N)^alpha_N.
const ALPHA: f32 = 0.076;

@compute @workgroup_size(256)
fn pair_losses(@builtin(workgroup_id) wg: vec3<u32>, lane: Lane) {
    let lid = lane.index;
    let a = wg.x;
    let b = wg.y;
    if (a > b || b >= params.kept) {
        return;
    }
    let ra = kept[a] * params.positions;
    let rb = kept[b] * params.positions;
    var acc = 0.0;
    for (var p = lid; p < params.positions; p += WG) {
        let la = position_logp[ra + p];
        let lb = position_logp[rb + p];
        var mixed = la;
        if (la != lb) {
            mixed = max(la, lb) + log(0.5 + 0.5 * exp(-abs(la - lb)));
        }
        acc -= mixed;
    }
    let total = workgroup_sum(lane, acc);
    if (lid == 0u) {
        let loss = total / f32(params.positions);
        pair_loss[a * params.kept + b] = loss;
        pair_loss[b * params.kept + a] = loss;
    }
}

// The parameter count a loss stands for, raised to `power`.
fn scaled_params(loss: f32, power: f32) -> f32 {
    return exp(power * (LN_PARAMS_AT_ONE_NAT - log(max(loss, params.min_loss)) / ALPHA));
}

@compute @workgroup_size(64)
fn shapley_values(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n = params.kept;
    let a = gid.x;
    if (a >= n) {
        return;
    }
    let own = pair_loss[a * n + a];
    let base = scaled_params(own, params.scaling_law_power);
    var synergy = 0.0;
    for (var b = 0u; b < n; b++) {
        if (b != a) {
            let expected = min(own, pair_loss[b * n + b]);
            let measured = pair_loss[a * n + b];
            let s = params.synergy_scaling_law_power;
            synergy += max(scaled_params(measured, s) - scaled_params(expected, s), 0.0);
        }
    }
    synergy = synergy * 0.5 / f32(n);
    values[a] = (base + synergy) / (1.0 + params.logits_divergence * excess[kept[a]]);
    values[n + a] = base;
    values[2u * n + a] = synergy;
}
