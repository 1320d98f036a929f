// Matrix multiply, vec4 fast path: the same three forms as matmul.wgsl, for operands whose
// contiguous dimension is a multiple of 4 (the caller checks; it uses matmul.wgsl otherwise).
//
//   matmul_nt_v4   C[m, n] = sum_k A[m, k] * B[n, k]   (+ bias[n])   needs K, lda, ldb, a_off, b_off % 4 == 0
//   matmul_nn_v4   C[m, n] = sum_k A[m, k] * B[k, n]                 needs K, N, lda, ldb, a_off, b_off % 4 == 0
//   matmul_tn_v4   C[m, n] = sum_k A[k, m] * B[k, n]                 needs M, N, lda, ldb, a_off, b_off % 4 == 0
// Views, `accumulate` and `use_bias` mean what they mean in matmul.wgsl, and the uniform block is
// the same. Each output's sum runs over k in ascending order (within a vec4 lane for nt, whose
// four partial sums are added at the end): deterministic.
//
// Why a second kernel: on CPU adapters (Mesa's lavapipe) every storage or workgroup load costs
// far more than an FMA, so the shared-memory tile of matmul.wgsl (one load per two FMAs) runs
// at a fraction of the arithmetic rate. Here each thread keeps an 8 x 8 block of C in registers
// and every load is a vec4, 16 FMAs per load; the rows of a workgroup's block depend only on
// the workgroup id, so those loads are the same for all its threads. Measured on lavapipe it
// wins once K is a few hundred (its epilogue of 64 stores per thread dominates short sums); the
// plugin uses it there and on CPU adapters only, since 8-thread workgroups waste GPU SIMD lanes.
//
// Bindings (group 0, in order): a (read, vec4), b (read, vec4), bias (read; nt only), c
// (read_write); uniform p.
// Workgroup: 8 threads, each 8 rows x 8 columns of C: a workgroup covers 8 rows x 64 columns.
// Dispatch [ceil(N / 64), ceil(M / 8), 1].
// Limits: as matmul.wgsl; ceil(M / 8) at most the adapter's workgroups per dimension.

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

@group(0) @binding(0) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

// Accumulators: acc[i * 2 + h] holds row i, columns 4h .. 4h + 3 of the thread's block
// (for matmul_nt_v4: acc[i * 8 + j] holds four k-partial sums of (row i, column j)).
var<private> acc: array<vec4<f32>, 64>;

fn clear_acc() {
    for (var i = 0u; i < 64u; i++) {
        acc[i] = vec4<f32>(0.0);
    }
}

fn store(row0: u32, col0: u32, i: u32, j: u32, value: f32) {
    let row = row0 + i;
    let col = col0 + j;
    if (row < p.m && col < p.n) {
        let idx = p.c_off + row * p.ldc + col;
        var v = value;
        if (p.use_bias != 0u) {
            v += bias[p.bias_off + col];
        }
        if (p.accumulate != 0u) {
            v += c[idx];
        }
        c[idx] = v;
    }
}

// Stores the [8 rows][2 vec4] accumulator layout.
fn store_rows(row0: u32, col0: u32) {
    for (var i = 0u; i < 8u; i++) {
        for (var j = 0u; j < 8u; j++) {
            store(row0, col0, i, j, acc[i * 2u + j / 4u][j % 4u]);
        }
    }
}

@compute @workgroup_size(8)
fn matmul_nt_v4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wg.y * 8u;
    let col0 = wg.x * 64u + lid.x * 8u;
    var ar: array<u32, 8>;
    var br: array<u32, 8>;
    for (var i = 0u; i < 8u; i++) {
        ar[i] = (p.a_off + min(row0 + i, p.m - 1u) * p.lda) / 4u;
        br[i] = (p.b_off + min(col0 + i, p.n - 1u) * p.ldb) / 4u;
    }
    clear_acc();
    for (var k = 0u; k < p.k / 4u; k++) {
        var bv: array<vec4<f32>, 8>;
        for (var j = 0u; j < 8u; j++) {
            bv[j] = b[br[j] + k];
        }
        for (var i = 0u; i < 8u; i++) {
            let av = a[ar[i] + k];
            for (var j = 0u; j < 8u; j++) {
                acc[i * 8u + j] = fma(av, bv[j], acc[i * 8u + j]);
            }
        }
    }
    for (var i = 0u; i < 8u; i++) {
        for (var j = 0u; j < 8u; j++) {
            let s = acc[i * 8u + j];
            store(row0, col0, i, j, (s.x + s.y) + (s.z + s.w));
        }
    }
}

@compute @workgroup_size(8)
fn matmul_nn_v4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wg.y * 8u;
    let col0 = wg.x * 64u + lid.x * 8u;
    // Column quads past N re-read the last one; their results are not stored.
    let last_quad = p.n / 4u - 1u;
    let q0 = min(col0 / 4u, last_quad);
    let q1 = min(col0 / 4u + 1u, last_quad);
    var ar: array<u32, 8>;
    for (var i = 0u; i < 8u; i++) {
        ar[i] = (p.a_off + min(row0 + i, p.m - 1u) * p.lda) / 4u;
    }
    clear_acc();
    for (var k = 0u; k < p.k / 4u; k++) {
        var bv: array<vec4<f32>, 8>;
        for (var kk = 0u; kk < 4u; kk++) {
            let base = (p.b_off + (k * 4u + kk) * p.ldb) / 4u;
            bv[kk * 2u] = b[base + q0];
            bv[kk * 2u + 1u] = b[base + q1];
        }
        for (var i = 0u; i < 8u; i++) {
            let av = a[ar[i] + k];
            for (var kk = 0u; kk < 4u; kk++) {
                acc[i * 2u] = fma(vec4<f32>(av[kk]), bv[kk * 2u], acc[i * 2u]);
                acc[i * 2u + 1u] = fma(vec4<f32>(av[kk]), bv[kk * 2u + 1u], acc[i * 2u + 1u]);
            }
        }
    }
    store_rows(row0, col0);
}

@compute @workgroup_size(8)
fn matmul_tn_v4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wg.y * 8u;
    let col0 = wg.x * 64u + lid.x * 8u;
    let last_quad_m = p.m / 4u - 1u;
    let last_quad_n = p.n / 4u - 1u;
    let m0 = min(row0 / 4u, last_quad_m);
    let m1 = min(row0 / 4u + 1u, last_quad_m);
    let q0 = min(col0 / 4u, last_quad_n);
    let q1 = min(col0 / 4u + 1u, last_quad_n);
    clear_acc();
    for (var k = 0u; k < p.k; k++) {
        let abase = (p.a_off + k * p.lda) / 4u;
        let bbase = (p.b_off + k * p.ldb) / 4u;
        let a0 = a[abase + m0];
        let a1 = a[abase + m1];
        let b0 = b[bbase + q0];
        let b1 = b[bbase + q1];
        for (var i = 0u; i < 4u; i++) {
            acc[i * 2u] = fma(vec4<f32>(a0[i]), b0, acc[i * 2u]);
            acc[i * 2u + 1u] = fma(vec4<f32>(a0[i]), b1, acc[i * 2u + 1u]);
            acc[(i + 4u) * 2u] = fma(vec4<f32>(a1[i]), b0, acc[(i + 4u) * 2u]);
            acc[(i + 4u) * 2u + 1u] = fma(vec4<f32>(a1[i]), b1, acc[(i + 4u) * 2u + 1u]);
        }
    }
    store_rows(row0, col0);
}
