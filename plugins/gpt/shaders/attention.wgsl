// Causal multi-head self-attention, fused forward and backward (flash-attention style).
//
// qkv is [B, T, 3C] as GPT-2's c_attn writes it: q, k, v of head h at columns h*hs, C + h*hs and
// 2C + h*hs; y and dy are [B, T, C] with the heads side by side; lse and dd are [B, H, T].
//   attention_forward        y[t] = sum_{s<=t} softmax_s(scale * q_t . k_s) v_s,
//                            lse[t] = logsumexp_{s<=t}(scale * q_t . k_s)      (saved for backward)
//   attention_backward_prep  dd[t] = dy_t . y_t
//   attention_backward_dq    dq_t = scale * sum_{s<=t} P_ts (dy_t . v_s - dd_t) k_s
//   attention_backward_dkv   dk_s = scale * sum_{t>=s} P_ts (dy_t . v_s - dd_t) q_t,
//                            dv_s = sum_{t>=s} P_ts dy_t,   with P_ts = exp(scale q_t . k_s - lse_t)
// Scores are never written to memory: the forward pass keeps a running max and sum (online
// softmax) over tiles of keys; the backward passes recompute P from q, k and the saved lse.
// dq and dk/dv are separate passes so that every output has one writer and a fixed summation
// order: no atomics, deterministic.
//
// Bindings (group 0, in order):
//   attention_forward        qkv (read), y, lse (read_write)
//   attention_backward_prep  dy (read), y (read), dd (read_write)
//   attention_backward_dq    qkv, dy, lse, dd (read), dqkv (read_write)
//   attention_backward_dkv   qkv, dy, lse, dd (read), dqkv (read_write)
//   and the uniform p in each.
// Workgroup: 64 threads, one query (forward, dq) or one key (dkv) each; tiles of 32 rows of k/v
// (or q/dy) staged in workgroup memory (16 KiB). Dispatch [ceil(T / 64), B * H, 1];
// prep: one thread per (b, h, t), dispatch [ceil(B * H * T / 64), 1, 1].
// Limits: head size at most 64 (GPT-2's); B * H at most the adapter's workgroups per dimension.

struct Params {
    batch: u32,
    seq: u32,
    heads: u32,
    head_size: u32,
    channels: u32,
    scale: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> qkv: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> lse_in: array<f32>;
@group(0) @binding(3) var<storage, read> dd_in: array<f32>;
@group(0) @binding(4) var<storage, read> y_in: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;
@group(0) @binding(6) var<storage, read_write> lse: array<f32>;
@group(0) @binding(7) var<storage, read_write> dd: array<f32>;
@group(0) @binding(8) var<storage, read_write> dqkv: array<f32>;
@group(0) @binding(9) var<uniform> p: Params;

const HS: u32 = 64u;
const QB: u32 = 64u;
const KB: u32 = 32u;

var<workgroup> tile_a: array<f32, 2048>;
var<workgroup> tile_b: array<f32, 2048>;
var<workgroup> tile_lse: array<f32, 32>;
var<workgroup> tile_dd: array<f32, 32>;

// Index of q[b, t, h, 0] in qkv; k and v follow at + C and + 2C.
fn qkv_row(b: u32, t: u32, h: u32) -> u32 {
    return (b * p.seq + t) * 3u * p.channels + h * p.head_size;
}

// Index of y[b, t, h, 0] (and dy).
fn y_row(b: u32, t: u32, h: u32) -> u32 {
    return (b * p.seq + t) * p.channels + h * p.head_size;
}

// Stages rows s0 .. s0 + KB of k (tile_a) and v (tile_b) of head h; zeros past the end.
fn stage_kv(b: u32, h: u32, s0: u32, lid: u32) {
    let hs = p.head_size;
    for (var i = lid; i < KB * hs; i += QB) {
        let j = i / hs;
        let d = i % hs;
        var kv = 0.0;
        var vv = 0.0;
        if (s0 + j < p.seq) {
            let base = qkv_row(b, s0 + j, h) + p.channels + d;
            kv = qkv[base];
            vv = qkv[base + p.channels];
        }
        tile_a[j * HS + d] = kv;
        tile_b[j * HS + d] = vv;
    }
}

@compute @workgroup_size(64)
fn attention_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let bh = wg.y;
    let b = bh / p.heads;
    let h = bh % p.heads;
    let hs = p.head_size;
    let t = wg.x * QB + lid.x;
    let live = t < p.seq;
    var q: array<f32, 64>;
    var o: array<f32, 64>;
    if (live) {
        let base = qkv_row(b, t, h);
        for (var d = 0u; d < hs; d++) {
            q[d] = qkv[base + d] * p.scale;
            o[d] = 0.0;
        }
    }
    var m = -1e30;
    var l = 0.0;
    let end = min(wg.x * QB + QB, p.seq);
    for (var s0 = 0u; s0 < end; s0 += KB) {
        stage_kv(b, h, s0, lid.x);
        workgroupBarrier();
        if (live && s0 <= t) {
            let n = min(KB, t + 1u - s0);
            var sc: array<f32, 32>;
            var mt = m;
            for (var j = 0u; j < n; j++) {
                var dot = 0.0;
                for (var d = 0u; d < hs; d++) {
                    dot = fma(q[d], tile_a[j * HS + d], dot);
                }
                sc[j] = dot;
                mt = max(mt, dot);
            }
            let corr = exp(m - mt);
            l *= corr;
            for (var d = 0u; d < hs; d++) {
                o[d] *= corr;
            }
            for (var j = 0u; j < n; j++) {
                let pj = exp(sc[j] - mt);
                l += pj;
                for (var d = 0u; d < hs; d++) {
                    o[d] = fma(pj, tile_b[j * HS + d], o[d]);
                }
            }
            m = mt;
        }
        workgroupBarrier();
    }
    if (live) {
        let base = y_row(b, t, h);
        for (var d = 0u; d < hs; d++) {
            y[base + d] = o[d] / l;
        }
        lse[bh * p.seq + t] = m + log(l);
    }
}

@compute @workgroup_size(64)
fn attention_backward_prep(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    if (i >= p.batch * p.heads * p.seq) {
        return;
    }
    let bh = i / p.seq;
    let t = i % p.seq;
    let base = y_row(bh / p.heads, t, bh % p.heads);
    var s = 0.0;
    for (var d = 0u; d < p.head_size; d++) {
        s = fma(dy[base + d], y_in[base + d], s);
    }
    dd[i] = s;
}

@compute @workgroup_size(64)
fn attention_backward_dq(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let bh = wg.y;
    let b = bh / p.heads;
    let h = bh % p.heads;
    let hs = p.head_size;
    let t = wg.x * QB + lid.x;
    let live = t < p.seq;
    var q: array<f32, 64>;
    var g: array<f32, 64>;
    var dq: array<f32, 64>;
    var lse_t = 0.0;
    var dd_t = 0.0;
    if (live) {
        let qb = qkv_row(b, t, h);
        let yb = y_row(b, t, h);
        for (var d = 0u; d < hs; d++) {
            q[d] = qkv[qb + d] * p.scale;
            g[d] = dy[yb + d];
            dq[d] = 0.0;
        }
        lse_t = lse_in[bh * p.seq + t];
        dd_t = dd_in[bh * p.seq + t];
    }
    let end = min(wg.x * QB + QB, p.seq);
    for (var s0 = 0u; s0 < end; s0 += KB) {
        stage_kv(b, h, s0, lid.x);
        workgroupBarrier();
        if (live && s0 <= t) {
            let n = min(KB, t + 1u - s0);
            for (var j = 0u; j < n; j++) {
                var sc = 0.0;
                var dp = 0.0;
                for (var d = 0u; d < hs; d++) {
                    sc = fma(q[d], tile_a[j * HS + d], sc);
                    dp = fma(g[d], tile_b[j * HS + d], dp);
                }
                let ds = exp(sc - lse_t) * (dp - dd_t);
                for (var d = 0u; d < hs; d++) {
                    dq[d] = fma(ds, tile_a[j * HS + d], dq[d]);
                }
            }
        }
        workgroupBarrier();
    }
    if (live) {
        let qb = qkv_row(b, t, h);
        for (var d = 0u; d < hs; d++) {
            dqkv[qb + d] = dq[d] * p.scale;
        }
    }
}

@compute @workgroup_size(64)
fn attention_backward_dkv(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let bh = wg.y;
    let b = bh / p.heads;
    let h = bh % p.heads;
    let hs = p.head_size;
    let s = wg.x * QB + lid.x;
    let live = s < p.seq;
    var k: array<f32, 64>;
    var v: array<f32, 64>;
    var dk: array<f32, 64>;
    var dv: array<f32, 64>;
    if (live) {
        let kb = qkv_row(b, s, h) + p.channels;
        for (var d = 0u; d < hs; d++) {
            k[d] = qkv[kb + d];
            v[d] = qkv[kb + p.channels + d];
            dk[d] = 0.0;
            dv[d] = 0.0;
        }
    }
    // Queries t >= s: the first query block that can see this block's keys is its own.
    for (var t0 = wg.x * QB; t0 < p.seq; t0 += KB) {
        for (var i = lid.x; i < KB * hs; i += QB) {
            let j = i / hs;
            let d = i % hs;
            var qv = 0.0;
            var gv = 0.0;
            if (t0 + j < p.seq) {
                qv = qkv[qkv_row(b, t0 + j, h) + d] * p.scale;
                gv = dy[y_row(b, t0 + j, h) + d];
            }
            tile_a[j * HS + d] = qv;
            tile_b[j * HS + d] = gv;
        }
        if (lid.x < KB) {
            var lv = 0.0;
            var dv_ = 0.0;
            if (t0 + lid.x < p.seq) {
                lv = lse_in[bh * p.seq + t0 + lid.x];
                dv_ = dd_in[bh * p.seq + t0 + lid.x];
            }
            tile_lse[lid.x] = lv;
            tile_dd[lid.x] = dv_;
        }
        workgroupBarrier();
        if (live) {
            for (var j = 0u; j < KB; j++) {
                let t = t0 + j;
                if (t >= s && t < p.seq) {
                    var sc = 0.0;
                    var dp = 0.0;
                    for (var d = 0u; d < hs; d++) {
                        sc = fma(tile_a[j * HS + d], k[d], sc);
                        dp = fma(tile_b[j * HS + d], v[d], dp);
                    }
                    let pj = exp(sc - tile_lse[j]);
                    let ds = pj * (dp - tile_dd[j]);
                    for (var d = 0u; d < hs; d++) {
                        dv[d] = fma(pj, tile_b[j * HS + d], dv[d]);
                        dk[d] = fma(ds, tile_a[j * HS + d], dk[d]);
                    }
                }
            }
        }
        workgroupBarrier();
    }
    if (live) {
        let kb = qkv_row(b, s, h) + p.channels;
        for (var d = 0u; d < hs; d++) {
            dqkv[kb + d] = dk[d];
            dqkv[kb + p.channels + d] = dv[d];
        }
    }
}
