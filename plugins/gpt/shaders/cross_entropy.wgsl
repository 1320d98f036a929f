// The classifier's end: softmax cross-entropy fused forward/backward, and top-k log-probabilities.
//
//   cross_entropy  per row r of logits [rows, V]:
//                  lse = logsumexp(logits[r]);  losses[off + r] = lse - logits[r, targets[off + r]]
//                  if write_grad: logits[r, v] = (softmax(logits[r])[v] - [v == target]) * scale
//                  (in place: the logits become dlogits, scale = 1 / positions for a mean loss)
//   top_k          per row: the k largest logits, best first, ties to the lower id, as
//                  ids[(off + r) * k + i] and logprobs[(off + r) * k + i] = logit - logsumexp(row)
//                  (each of the k rounds finds the best entry ranked after the previous winner in
//                  the order (value desc, id asc): no sorting, no scratch, logits untouched)
// Sums and maxima over the row come from the prelude (a fixed tree, or subgroup operations where
// the device has them); the top-k rounds use their own fixed tree: deterministic.
//
// Bindings (group 0, in order): cross_entropy targets (read), logits (read_write), losses
// (read_write); top_k scores (read), ids (read_write), logprobs (read_write); uniform p.
// Workgroup: 256 threads per row, striding over the vocabulary; dispatch [rows, 1, 1].
// Limits: rows at most the adapter's workgroups per dimension; top_k costs k passes over the row
// (meant for small k); targets must be < V (the caller checks).

struct Params {
    rows: u32,
    vocab: u32,
    row_offset: u32,
    write_grad: u32,
    k: u32,
    scale: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> targets: array<u32>;
@group(0) @binding(1) var<storage, read_write> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> losses: array<f32>;
@group(0) @binding(3) var<storage, read> scores: array<f32>;
@group(0) @binding(4) var<storage, read_write> ids: array<u32>;
@group(0) @binding(5) var<storage, read_write> logprobs: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

// Compiled after workgroup_sum.wgsl (neuron_plugin_api::shaders::WORKGROUP_SUM) (WG, Lane, workgroup_sum, workgroup_max) or workgroup_sum_subgroup.wgsl, as plugins/gpt/src/kernels.rs does.
const NEG: f32 = -3.4e38;
const NONE: u32 = 0xffffffffu;

var<workgroup> red: array<f32, 256>;
var<workgroup> red_i: array<u32, 256>;

@compute @workgroup_size(256)
fn cross_entropy(@builtin(workgroup_id) wg: vec3<u32>, lane: Lane) {
    let lid = lane.index;
    let base = wg.x * p.vocab;
    var m = NEG;
    for (var v = lid; v < p.vocab; v += WG) {
        m = max(m, logits[base + v]);
    }
    m = workgroup_max(lane, m);
    let tgt = targets[p.row_offset + wg.x];
    // Read before the last reduction's barriers: nothing writes the row until after them.
    let target_logit = logits[base + tgt];
    var s = 0.0;
    for (var v = lid; v < p.vocab; v += WG) {
        s += exp(logits[base + v] - m);
    }
    let lse = m + log(workgroup_sum(lane, s));
    if (lid == 0u) {
        losses[p.row_offset + wg.x] = lse - target_logit;
    }
    if (p.write_grad != 0u) {
        for (var v = lid; v < p.vocab; v += WG) {
            var g = exp(logits[base + v] - lse);
            if (v == tgt) {
                g -= 1.0;
            }
            logits[base + v] = g * p.scale;
        }
    }
}

// Whether (x, i) ranks before (y, j): larger value first, then lower id.
fn ranks_before(x: f32, i: u32, y: f32, j: u32) -> bool {
    return x > y || (x == y && i < j);
}

@compute @workgroup_size(256)
fn top_k(@builtin(workgroup_id) wg: vec3<u32>, lane: Lane) {
    let lid = lane.index;
    let base = wg.x * p.vocab;
    var m = NEG;
    for (var v = lid; v < p.vocab; v += WG) {
        m = max(m, scores[base + v]);
    }
    m = workgroup_max(lane, m);
    var s = 0.0;
    for (var v = lid; v < p.vocab; v += WG) {
        s += exp(scores[base + v] - m);
    }
    let lse = m + log(workgroup_sum(lane, s));
    var prev_v = 0.0;
    var prev_i = NONE;
    for (var round = 0u; round < p.k; round++) {
        var best_v = NEG;
        var best_i = NONE;
        for (var v = lid; v < p.vocab; v += WG) {
            let x = scores[base + v];
            let after_prev = prev_i == NONE || ranks_before(prev_v, prev_i, x, v);
            if (after_prev && (best_i == NONE || ranks_before(x, v, best_v, best_i))) {
                best_v = x;
                best_i = v;
            }
        }
        red[lid] = best_v;
        red_i[lid] = best_i;
        workgroupBarrier();
        for (var st = WG / 2u; st > 0u; st >>= 1u) {
            if (lid < st) {
                let ov = red[lid + st];
                let oi = red_i[lid + st];
                if (oi != NONE && (red_i[lid] == NONE || ranks_before(ov, oi, red[lid], red_i[lid]))) {
                    red[lid] = ov;
                    red_i[lid] = oi;
                }
            }
            workgroupBarrier();
        }
        prev_v = red[0];
        prev_i = red_i[0];
        workgroupBarrier();
        if (lid == 0u) {
            ids[(p.row_offset + wg.x) * p.k + round] = prev_i;
            logprobs[(p.row_offset + wg.x) * p.k + round] = prev_v - lse;
        }
    }
}
