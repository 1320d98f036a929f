// Matrix multiply, register-tiled and vectorised: C = A x B (+ bias) (+ C).
//
// Entry points, one per form a linear layer needs (W stored [out, in] as PyTorch's Linear):
//   matmul_nt   C[m, n] = sum_k A[m, k] * B[n, k]      forward       y  = x W^T (+ bias)
//   matmul_nn   C[m, n] = sum_k A[m, k] * B[k, n]      backward      dx = dy W
//   matmul_tn   C[m, n] = sum_k A[k, m] * B[k, n]      backward      dW = dy^T x
//   bias_grad   C[n]    = sum_m A[m, n]                backward      db = column sums of dy
// Every matrix is a row-major view into its bound buffer: element (i, j) of A is
// a[a_off + i * lda + j] (and likewise B, C), so a view can be one tensor of a packed parameter
// buffer, a shard of a split matrix's rows, or a column range of a wider matrix (the logits).
// `accumulate` = 1 adds to C instead of overwriting it; `use_bias` = 1 (matmul_nt only) adds
// bias[bias_off + n]. Each output is summed over k in ascending order: results are
// deterministic, the same on every run.
//
// Bindings (group 0, in order): a (read), b (read), bias (read; matmul_nt only), c (read_write);
// uniform `p`. bias_grad binds a and c only.
// Workgroup: 16 x 16 threads compute a 64 x 64 tile of C; each thread owns a 4 x 4 block held in
// four vec4 accumulators. K advances 16 at a time through workgroup memory (2 x 4 KiB), A's tile
// stored k-major so that one vec4 read gives four rows. Dispatch [ceil(N / 64), ceil(M / 64), 1].
// bias_grad: 64 threads, one column each, dispatch [ceil(N / 64), 1, 1].
// Limits: any M, N, K, ragged edges bounds-checked; offsets and leading dimensions are element
// counts (u32); ceil(M / 64) and ceil(N / 64) at most the adapter's workgroups per dimension.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    lda: u32,
    ldb: u32,
    ldc: u32,
    a_off: u32,
    b_off: u32,
    c_off: u32,
    bias_off: u32,
    accumulate: u32,
    use_bias: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;

// Every read of B goes through b_at: the f16-weights variant (kernels.rs) changes only B's
// binding and this function, converting each element to f32; the sums stay f32.
fn b_at(i: u32) -> f32 {
    return b[i];
}
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

const TILE: u32 = 64u;
const BK: u32 = 16u;
// Row-quads of a tile: TILE / 4.
const Q: u32 = 16u;

// a_tile[k * Q + i / 4][i % 4] = A[row0 + i, k0 + k]; b_tile[k * Q + j / 4][j % 4] = B[k0 + k, col0 + j].
var<workgroup> a_tile: array<vec4<f32>, 256>;
var<workgroup> b_tile: array<vec4<f32>, 256>;
var<private> acc: array<vec4<f32>, 4>;

// A stored [m, k] (row-major): each thread loads four consecutive k of one row.
fn load_a_rows(row0: u32, k0: u32, t: u32) {
    let i = t / 4u;
    let kk = (t % 4u) * 4u;
    let row = row0 + i;
    let base = p.a_off + row * p.lda + k0 + kk;
    for (var j = 0u; j < 4u; j++) {
        var v = 0.0;
        if (row < p.m && k0 + kk + j < p.k) {
            v = a[base + j];
        }
        a_tile[(kk + j) * Q + i / 4u][i % 4u] = v;
    }
}

// A stored [k, m] (A^T row-major): each thread loads four consecutive rows of one k.
fn load_a_cols(row0: u32, k0: u32, t: u32) {
    let kk = t / Q;
    let i = (t % Q) * 4u;
    var v = vec4<f32>(0.0);
    if (k0 + kk < p.k) {
        let base = p.a_off + (k0 + kk) * p.lda + row0 + i;
        for (var j = 0u; j < 4u; j++) {
            if (row0 + i + j < p.m) {
                v[j] = a[base + j];
            }
        }
    }
    a_tile[kk * Q + i / 4u] = v;
}

// B stored [k, n] (row-major): each thread loads four consecutive columns of one k.
fn load_b_rows(col0: u32, k0: u32, t: u32) {
    let kk = t / Q;
    let j0 = (t % Q) * 4u;
    var v = vec4<f32>(0.0);
    if (k0 + kk < p.k) {
        let base = p.b_off + (k0 + kk) * p.ldb + col0 + j0;
        for (var j = 0u; j < 4u; j++) {
            if (col0 + j0 + j < p.n) {
                v[j] = b_at(base + j);
            }
        }
    }
    b_tile[kk * Q + j0 / 4u] = v;
}

// B stored [n, k] (B^T row-major): each thread loads four consecutive k of one column.
fn load_b_cols(col0: u32, k0: u32, t: u32) {
    let j = t / 4u;
    let kk = (t % 4u) * 4u;
    let col = col0 + j;
    let base = p.b_off + col * p.ldb + k0 + kk;
    for (var x = 0u; x < 4u; x++) {
        var v = 0.0;
        if (col < p.n && k0 + kk + x < p.k) {
            v = b_at(base + x);
        }
        b_tile[(kk + x) * Q + j / 4u][j % 4u] = v;
    }
}

fn multiply_tile(tx: u32, ty: u32) {
    for (var kk = 0u; kk < BK; kk++) {
        let av = a_tile[kk * Q + ty];
        let bv = b_tile[kk * Q + tx];
        acc[0] = fma(vec4<f32>(av.x), bv, acc[0]);
        acc[1] = fma(vec4<f32>(av.y), bv, acc[1]);
        acc[2] = fma(vec4<f32>(av.z), bv, acc[2]);
        acc[3] = fma(vec4<f32>(av.w), bv, acc[3]);
    }
}

fn store(row0: u32, col0: u32, tx: u32, ty: u32) {
    for (var i = 0u; i < 4u; i++) {
        let row = row0 + ty * 4u + i;
        if (row >= p.m) {
            return;
        }
        for (var j = 0u; j < 4u; j++) {
            let col = col0 + tx * 4u + j;
            if (col < p.n) {
                let idx = p.c_off + row * p.ldc + col;
                var v = acc[i][j];
                if (p.accumulate != 0u) {
                    v += c[idx];
                }
                c[idx] = v;
            }
        }
    }
}

fn clear_acc() {
    for (var i = 0u; i < 4u; i++) {
        acc[i] = vec4<f32>(0.0);
    }
}

// The tile loop shared by the three forms: A and B stored transposed or not.
fn multiply(wg: vec3<u32>, lid: vec3<u32>, a_transposed: bool, b_transposed: bool) {
    let t = lid.y * 16u + lid.x;
    let row0 = wg.y * TILE;
    let col0 = wg.x * TILE;
    clear_acc();
    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        if (a_transposed) {
            load_a_cols(row0, k0, t);
        } else {
            load_a_rows(row0, k0, t);
        }
        if (b_transposed) {
            load_b_cols(col0, k0, t);
        } else {
            load_b_rows(col0, k0, t);
        }
        workgroupBarrier();
        multiply_tile(lid.x, lid.y);
        workgroupBarrier();
    }
}

@compute @workgroup_size(16, 16)
fn matmul_nt(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    multiply(wg, lid, false, true);
    if (p.use_bias != 0u) {
        var bv = vec4<f32>(0.0);
        for (var j = 0u; j < 4u; j++) {
            let col = wg.x * TILE + lid.x * 4u + j;
            if (col < p.n) {
                bv[j] = bias[p.bias_off + col];
            }
        }
        for (var i = 0u; i < 4u; i++) {
            acc[i] += bv;
        }
    }
    store(wg.y * TILE, wg.x * TILE, lid.x, lid.y);
}

@compute @workgroup_size(16, 16)
fn matmul_nn(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    multiply(wg, lid, false, false);
    store(wg.y * TILE, wg.x * TILE, lid.x, lid.y);
}

@compute @workgroup_size(16, 16)
fn matmul_tn(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    multiply(wg, lid, true, false);
    store(wg.y * TILE, wg.x * TILE, lid.x, lid.y);
}

@compute @workgroup_size(64)
fn bias_grad(@builtin(global_invocation_id) id: vec3<u32>) {
    let col = id.x;
    if (col >= p.n) {
        return;
    }
    var s = 0.0;
    for (var r = 0u; r < p.m; r++) {
        s += a[p.a_off + r * p.lda + col];
    }
    let idx = p.c_off + col;
    if (p.accumulate != 0u) {
        s += c[idx];
    }
    c[idx] = s;
}
