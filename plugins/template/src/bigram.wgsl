// Bigram language model kernels (the template plugin).
//
// The model is one table W[vocab, vocab]: the logits for the token after t are
// row t of W. Training is plain SGD on mean next-token cross-entropy.
//
// Entry points (all over a 1-D grid, workgroup 64, bounds-checked):
//   gather         logits[p, v] = W[tokens[p], v]             one thread per (p, v)
//   cross_entropy  losses[p] = logsumexp(logits[p]) - logits[p, targets[p]];
//                  dlogits[p, v] = (softmax(logits[p])[v] - [v == targets[p]]) / positions
//                                                             one thread per position p
//   accumulate     grad[r, v] += sum over p with tokens[p] == r of dlogits[p, v]
//                                                             one thread per table entry (r, v);
//                  deterministic: each thread sums its own entry in position order, no atomics
//   sgd            W -= lr * grad                              one thread per table entry
//
// Bindings: @group(0); uniform `params` with the sizes and the learning rate.
// Limits: positions * vocab and vocab * vocab must stay below 65535 * 64 threads
// (the caller checks); accumulate costs vocab^2 * positions reads, fine for a
// template, not for a large vocabulary.

struct Params {
    positions: u32,
    vocab: u32,
    lr: f32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> tokens: array<u32>;
@group(0) @binding(1) var<storage, read_write> table: array<f32>;
@group(0) @binding(2) var<storage, read_write> logits: array<f32>;
@group(0) @binding(3) var<storage, read> targets: array<u32>;
@group(0) @binding(4) var<storage, read_write> losses: array<f32>;
@group(0) @binding(5) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(6) var<storage, read_write> grad: array<f32>;
@group(0) @binding(7) var<uniform> params: Params;

@compute @workgroup_size(64)
fn gather(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    if (i >= params.positions * params.vocab) {
        return;
    }
    let p = i / params.vocab;
    let v = i % params.vocab;
    logits[i] = table[tokens[p] * params.vocab + v];
}

@compute @workgroup_size(64)
fn cross_entropy(@builtin(global_invocation_id) id: vec3<u32>) {
    let p = id.x;
    if (p >= params.positions) {
        return;
    }
    let row = p * params.vocab;
    var m = logits[row];
    for (var v = 1u; v < params.vocab; v++) {
        m = max(m, logits[row + v]);
    }
    var s = 0.0;
    for (var v = 0u; v < params.vocab; v++) {
        s += exp(logits[row + v] - m);
    }
    let log_z = m + log(s);
    let t = targets[p];
    losses[p] = log_z - logits[row + t];
    let scale = 1.0 / f32(params.positions);
    for (var v = 0u; v < params.vocab; v++) {
        var g = exp(logits[row + v] - log_z);
        if (v == t) {
            g -= 1.0;
        }
        dlogits[row + v] = g * scale;
    }
}

@compute @workgroup_size(64)
fn accumulate(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    if (i >= params.vocab * params.vocab) {
        return;
    }
    let r = i / params.vocab;
    let v = i % params.vocab;
    var acc = 0.0;
    for (var p = 0u; p < params.positions; p++) {
        if (tokens[p] == r) {
            acc += dlogits[p * params.vocab + v];
        }
    }
    grad[i] += acc;
}

@compute @workgroup_size(64)
fn sgd(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    if (i >= params.vocab * params.vocab) {
        return;
    }
    table[i] -= params.lr * grad[i];
}
