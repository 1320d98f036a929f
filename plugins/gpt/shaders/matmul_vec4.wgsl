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
// at a fraction of the arithmetic rate. Here each thread keeps a block of C (8 x 8 for nt,
// 16 x 16 for nn and tn) in named registers and every load is a vec4: 16 (nt) or 32 FMAs per
// load. The code is written out in full, one line per accumulator, on purpose: lavapipe does
// not unroll loops over private arrays, and the same kernel written with loops measured 4-5x
// slower. Edit it as a pattern: rows i, column
// quads q (nn, tn: 16 x 4) or columns j (nt: 8 x 8). The plugin uses it on CPU adapters,
// where it is 2-4x faster at every shape GPT uses; 8-thread workgroups would waste GPU SIMD lanes.
//
// Bindings (group 0, in order): a (read, vec4), b (read, vec4), bias (read; read by nt only, bound
// by all), c (read_write); uniform p.
// Workgroup: 8 threads. matmul_nt_v4: each thread 8 rows x 8 columns of C (64 vec4 partial
// sums over k), a workgroup 8 rows x 64 columns, dispatch [ceil(N / 64), ceil(M / 8), 1].
// matmul_nn_v4, matmul_tn_v4: each thread 16 rows x 16 columns (64 vec4 accumulators, 32 FMAs
// per load), a workgroup 16 rows x 128 columns, dispatch [ceil(N / 128), ceil(M / 16), 1].
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

// Every read of B goes through b_at: the f16-weights variant (kernels.rs) changes only B's
// binding and this function, converting each element to f32; the sums stay f32.
fn b_at(i: u32) -> vec4<f32> {
    return b[i];
}
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

fn store(row: u32, col: u32, value: f32) {
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

fn store_quad(row: u32, col: u32, v: vec4<f32>) {
    store(row, col, v.x);
    store(row, col + 1u, v.y);
    store(row, col + 2u, v.z);
    store(row, col + 3u, v.w);
}

fn sum4(v: vec4<f32>) -> f32 {
    return (v.x + v.y) + (v.z + v.w);
}

@compute @workgroup_size(8)
fn matmul_nt_v4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wg.y * 8u;
    let col0 = wg.x * 64u + lid.x * 8u;
    let ar0 = (p.a_off + min(row0 + 0u, p.m - 1u) * p.lda) / 4u;
    let ar1 = (p.a_off + min(row0 + 1u, p.m - 1u) * p.lda) / 4u;
    let ar2 = (p.a_off + min(row0 + 2u, p.m - 1u) * p.lda) / 4u;
    let ar3 = (p.a_off + min(row0 + 3u, p.m - 1u) * p.lda) / 4u;
    let ar4 = (p.a_off + min(row0 + 4u, p.m - 1u) * p.lda) / 4u;
    let ar5 = (p.a_off + min(row0 + 5u, p.m - 1u) * p.lda) / 4u;
    let ar6 = (p.a_off + min(row0 + 6u, p.m - 1u) * p.lda) / 4u;
    let ar7 = (p.a_off + min(row0 + 7u, p.m - 1u) * p.lda) / 4u;
    let br0 = (p.b_off + min(col0 + 0u, p.n - 1u) * p.ldb) / 4u;
    let br1 = (p.b_off + min(col0 + 1u, p.n - 1u) * p.ldb) / 4u;
    let br2 = (p.b_off + min(col0 + 2u, p.n - 1u) * p.ldb) / 4u;
    let br3 = (p.b_off + min(col0 + 3u, p.n - 1u) * p.ldb) / 4u;
    let br4 = (p.b_off + min(col0 + 4u, p.n - 1u) * p.ldb) / 4u;
    let br5 = (p.b_off + min(col0 + 5u, p.n - 1u) * p.ldb) / 4u;
    let br6 = (p.b_off + min(col0 + 6u, p.n - 1u) * p.ldb) / 4u;
    let br7 = (p.b_off + min(col0 + 7u, p.n - 1u) * p.ldb) / 4u;
    var c00 = vec4<f32>(0.0); var c01 = vec4<f32>(0.0); var c02 = vec4<f32>(0.0); var c03 = vec4<f32>(0.0);
    var c04 = vec4<f32>(0.0); var c05 = vec4<f32>(0.0); var c06 = vec4<f32>(0.0); var c07 = vec4<f32>(0.0);
    var c10 = vec4<f32>(0.0); var c11 = vec4<f32>(0.0); var c12 = vec4<f32>(0.0); var c13 = vec4<f32>(0.0);
    var c14 = vec4<f32>(0.0); var c15 = vec4<f32>(0.0); var c16 = vec4<f32>(0.0); var c17 = vec4<f32>(0.0);
    var c20 = vec4<f32>(0.0); var c21 = vec4<f32>(0.0); var c22 = vec4<f32>(0.0); var c23 = vec4<f32>(0.0);
    var c24 = vec4<f32>(0.0); var c25 = vec4<f32>(0.0); var c26 = vec4<f32>(0.0); var c27 = vec4<f32>(0.0);
    var c30 = vec4<f32>(0.0); var c31 = vec4<f32>(0.0); var c32 = vec4<f32>(0.0); var c33 = vec4<f32>(0.0);
    var c34 = vec4<f32>(0.0); var c35 = vec4<f32>(0.0); var c36 = vec4<f32>(0.0); var c37 = vec4<f32>(0.0);
    var c40 = vec4<f32>(0.0); var c41 = vec4<f32>(0.0); var c42 = vec4<f32>(0.0); var c43 = vec4<f32>(0.0);
    var c44 = vec4<f32>(0.0); var c45 = vec4<f32>(0.0); var c46 = vec4<f32>(0.0); var c47 = vec4<f32>(0.0);
    var c50 = vec4<f32>(0.0); var c51 = vec4<f32>(0.0); var c52 = vec4<f32>(0.0); var c53 = vec4<f32>(0.0);
    var c54 = vec4<f32>(0.0); var c55 = vec4<f32>(0.0); var c56 = vec4<f32>(0.0); var c57 = vec4<f32>(0.0);
    var c60 = vec4<f32>(0.0); var c61 = vec4<f32>(0.0); var c62 = vec4<f32>(0.0); var c63 = vec4<f32>(0.0);
    var c64 = vec4<f32>(0.0); var c65 = vec4<f32>(0.0); var c66 = vec4<f32>(0.0); var c67 = vec4<f32>(0.0);
    var c70 = vec4<f32>(0.0); var c71 = vec4<f32>(0.0); var c72 = vec4<f32>(0.0); var c73 = vec4<f32>(0.0);
    var c74 = vec4<f32>(0.0); var c75 = vec4<f32>(0.0); var c76 = vec4<f32>(0.0); var c77 = vec4<f32>(0.0);
    for (var k = 0u; k < p.k / 4u; k++) {
        let b0 = b_at(br0 + k); let b1 = b_at(br1 + k); let b2 = b_at(br2 + k); let b3 = b_at(br3 + k);
        let b4 = b_at(br4 + k); let b5 = b_at(br5 + k); let b6 = b_at(br6 + k); let b7 = b_at(br7 + k);
        let a0 = a[ar0 + k];
        c00 = fma(a0, b0, c00); c01 = fma(a0, b1, c01); c02 = fma(a0, b2, c02); c03 = fma(a0, b3, c03);
        c04 = fma(a0, b4, c04); c05 = fma(a0, b5, c05); c06 = fma(a0, b6, c06); c07 = fma(a0, b7, c07);
        let a1 = a[ar1 + k];
        c10 = fma(a1, b0, c10); c11 = fma(a1, b1, c11); c12 = fma(a1, b2, c12); c13 = fma(a1, b3, c13);
        c14 = fma(a1, b4, c14); c15 = fma(a1, b5, c15); c16 = fma(a1, b6, c16); c17 = fma(a1, b7, c17);
        let a2 = a[ar2 + k];
        c20 = fma(a2, b0, c20); c21 = fma(a2, b1, c21); c22 = fma(a2, b2, c22); c23 = fma(a2, b3, c23);
        c24 = fma(a2, b4, c24); c25 = fma(a2, b5, c25); c26 = fma(a2, b6, c26); c27 = fma(a2, b7, c27);
        let a3 = a[ar3 + k];
        c30 = fma(a3, b0, c30); c31 = fma(a3, b1, c31); c32 = fma(a3, b2, c32); c33 = fma(a3, b3, c33);
        c34 = fma(a3, b4, c34); c35 = fma(a3, b5, c35); c36 = fma(a3, b6, c36); c37 = fma(a3, b7, c37);
        let a4 = a[ar4 + k];
        c40 = fma(a4, b0, c40); c41 = fma(a4, b1, c41); c42 = fma(a4, b2, c42); c43 = fma(a4, b3, c43);
        c44 = fma(a4, b4, c44); c45 = fma(a4, b5, c45); c46 = fma(a4, b6, c46); c47 = fma(a4, b7, c47);
        let a5 = a[ar5 + k];
        c50 = fma(a5, b0, c50); c51 = fma(a5, b1, c51); c52 = fma(a5, b2, c52); c53 = fma(a5, b3, c53);
        c54 = fma(a5, b4, c54); c55 = fma(a5, b5, c55); c56 = fma(a5, b6, c56); c57 = fma(a5, b7, c57);
        let a6 = a[ar6 + k];
        c60 = fma(a6, b0, c60); c61 = fma(a6, b1, c61); c62 = fma(a6, b2, c62); c63 = fma(a6, b3, c63);
        c64 = fma(a6, b4, c64); c65 = fma(a6, b5, c65); c66 = fma(a6, b6, c66); c67 = fma(a6, b7, c67);
        let a7 = a[ar7 + k];
        c70 = fma(a7, b0, c70); c71 = fma(a7, b1, c71); c72 = fma(a7, b2, c72); c73 = fma(a7, b3, c73);
        c74 = fma(a7, b4, c74); c75 = fma(a7, b5, c75); c76 = fma(a7, b6, c76); c77 = fma(a7, b7, c77);
    }
    store_quad(row0 + 0u, col0, vec4<f32>(sum4(c00), sum4(c01), sum4(c02), sum4(c03)));
    store_quad(row0 + 0u, col0 + 4u, vec4<f32>(sum4(c04), sum4(c05), sum4(c06), sum4(c07)));
    store_quad(row0 + 1u, col0, vec4<f32>(sum4(c10), sum4(c11), sum4(c12), sum4(c13)));
    store_quad(row0 + 1u, col0 + 4u, vec4<f32>(sum4(c14), sum4(c15), sum4(c16), sum4(c17)));
    store_quad(row0 + 2u, col0, vec4<f32>(sum4(c20), sum4(c21), sum4(c22), sum4(c23)));
    store_quad(row0 + 2u, col0 + 4u, vec4<f32>(sum4(c24), sum4(c25), sum4(c26), sum4(c27)));
    store_quad(row0 + 3u, col0, vec4<f32>(sum4(c30), sum4(c31), sum4(c32), sum4(c33)));
    store_quad(row0 + 3u, col0 + 4u, vec4<f32>(sum4(c34), sum4(c35), sum4(c36), sum4(c37)));
    store_quad(row0 + 4u, col0, vec4<f32>(sum4(c40), sum4(c41), sum4(c42), sum4(c43)));
    store_quad(row0 + 4u, col0 + 4u, vec4<f32>(sum4(c44), sum4(c45), sum4(c46), sum4(c47)));
    store_quad(row0 + 5u, col0, vec4<f32>(sum4(c50), sum4(c51), sum4(c52), sum4(c53)));
    store_quad(row0 + 5u, col0 + 4u, vec4<f32>(sum4(c54), sum4(c55), sum4(c56), sum4(c57)));
    store_quad(row0 + 6u, col0, vec4<f32>(sum4(c60), sum4(c61), sum4(c62), sum4(c63)));
    store_quad(row0 + 6u, col0 + 4u, vec4<f32>(sum4(c64), sum4(c65), sum4(c66), sum4(c67)));
    store_quad(row0 + 7u, col0, vec4<f32>(sum4(c70), sum4(c71), sum4(c72), sum4(c73)));
    store_quad(row0 + 7u, col0 + 4u, vec4<f32>(sum4(c74), sum4(c75), sum4(c76), sum4(c77)));
}

@compute @workgroup_size(8)
fn matmul_nn_v4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wg.y * 16u;
    let col0 = wg.x * 128u + lid.x * 16u;
    // Column quads past N re-read the last one; their results are not stored.
    let last = p.n / 4u - 1u;
    let q0 = min(col0 / 4u + 0u, last);
    let q1 = min(col0 / 4u + 1u, last);
    let q2 = min(col0 / 4u + 2u, last);
    let q3 = min(col0 / 4u + 3u, last);
    let ar0 = (p.a_off + min(row0 + 0u, p.m - 1u) * p.lda) / 4u;
    let ar1 = (p.a_off + min(row0 + 1u, p.m - 1u) * p.lda) / 4u;
    let ar2 = (p.a_off + min(row0 + 2u, p.m - 1u) * p.lda) / 4u;
    let ar3 = (p.a_off + min(row0 + 3u, p.m - 1u) * p.lda) / 4u;
    let ar4 = (p.a_off + min(row0 + 4u, p.m - 1u) * p.lda) / 4u;
    let ar5 = (p.a_off + min(row0 + 5u, p.m - 1u) * p.lda) / 4u;
    let ar6 = (p.a_off + min(row0 + 6u, p.m - 1u) * p.lda) / 4u;
    let ar7 = (p.a_off + min(row0 + 7u, p.m - 1u) * p.lda) / 4u;
    let ar8 = (p.a_off + min(row0 + 8u, p.m - 1u) * p.lda) / 4u;
    let ar9 = (p.a_off + min(row0 + 9u, p.m - 1u) * p.lda) / 4u;
    let ar10 = (p.a_off + min(row0 + 10u, p.m - 1u) * p.lda) / 4u;
    let ar11 = (p.a_off + min(row0 + 11u, p.m - 1u) * p.lda) / 4u;
    let ar12 = (p.a_off + min(row0 + 12u, p.m - 1u) * p.lda) / 4u;
    let ar13 = (p.a_off + min(row0 + 13u, p.m - 1u) * p.lda) / 4u;
    let ar14 = (p.a_off + min(row0 + 14u, p.m - 1u) * p.lda) / 4u;
    let ar15 = (p.a_off + min(row0 + 15u, p.m - 1u) * p.lda) / 4u;
    var c0_0 = vec4<f32>(0.0); var c0_1 = vec4<f32>(0.0); var c0_2 = vec4<f32>(0.0); var c0_3 = vec4<f32>(0.0);
    var c1_0 = vec4<f32>(0.0); var c1_1 = vec4<f32>(0.0); var c1_2 = vec4<f32>(0.0); var c1_3 = vec4<f32>(0.0);
    var c2_0 = vec4<f32>(0.0); var c2_1 = vec4<f32>(0.0); var c2_2 = vec4<f32>(0.0); var c2_3 = vec4<f32>(0.0);
    var c3_0 = vec4<f32>(0.0); var c3_1 = vec4<f32>(0.0); var c3_2 = vec4<f32>(0.0); var c3_3 = vec4<f32>(0.0);
    var c4_0 = vec4<f32>(0.0); var c4_1 = vec4<f32>(0.0); var c4_2 = vec4<f32>(0.0); var c4_3 = vec4<f32>(0.0);
    var c5_0 = vec4<f32>(0.0); var c5_1 = vec4<f32>(0.0); var c5_2 = vec4<f32>(0.0); var c5_3 = vec4<f32>(0.0);
    var c6_0 = vec4<f32>(0.0); var c6_1 = vec4<f32>(0.0); var c6_2 = vec4<f32>(0.0); var c6_3 = vec4<f32>(0.0);
    var c7_0 = vec4<f32>(0.0); var c7_1 = vec4<f32>(0.0); var c7_2 = vec4<f32>(0.0); var c7_3 = vec4<f32>(0.0);
    var c8_0 = vec4<f32>(0.0); var c8_1 = vec4<f32>(0.0); var c8_2 = vec4<f32>(0.0); var c8_3 = vec4<f32>(0.0);
    var c9_0 = vec4<f32>(0.0); var c9_1 = vec4<f32>(0.0); var c9_2 = vec4<f32>(0.0); var c9_3 = vec4<f32>(0.0);
    var c10_0 = vec4<f32>(0.0); var c10_1 = vec4<f32>(0.0); var c10_2 = vec4<f32>(0.0); var c10_3 = vec4<f32>(0.0);
    var c11_0 = vec4<f32>(0.0); var c11_1 = vec4<f32>(0.0); var c11_2 = vec4<f32>(0.0); var c11_3 = vec4<f32>(0.0);
    var c12_0 = vec4<f32>(0.0); var c12_1 = vec4<f32>(0.0); var c12_2 = vec4<f32>(0.0); var c12_3 = vec4<f32>(0.0);
    var c13_0 = vec4<f32>(0.0); var c13_1 = vec4<f32>(0.0); var c13_2 = vec4<f32>(0.0); var c13_3 = vec4<f32>(0.0);
    var c14_0 = vec4<f32>(0.0); var c14_1 = vec4<f32>(0.0); var c14_2 = vec4<f32>(0.0); var c14_3 = vec4<f32>(0.0);
    var c15_0 = vec4<f32>(0.0); var c15_1 = vec4<f32>(0.0); var c15_2 = vec4<f32>(0.0); var c15_3 = vec4<f32>(0.0);
    for (var k = 0u; k < p.k / 4u; k++) {
        let r0 = (p.b_off + (k * 4u + 0u) * p.ldb) / 4u;
        let b0_0 = b_at(r0 + q0); let b0_1 = b_at(r0 + q1); let b0_2 = b_at(r0 + q2); let b0_3 = b_at(r0 + q3);
        let r1 = (p.b_off + (k * 4u + 1u) * p.ldb) / 4u;
        let b1_0 = b_at(r1 + q0); let b1_1 = b_at(r1 + q1); let b1_2 = b_at(r1 + q2); let b1_3 = b_at(r1 + q3);
        let r2 = (p.b_off + (k * 4u + 2u) * p.ldb) / 4u;
        let b2_0 = b_at(r2 + q0); let b2_1 = b_at(r2 + q1); let b2_2 = b_at(r2 + q2); let b2_3 = b_at(r2 + q3);
        let r3 = (p.b_off + (k * 4u + 3u) * p.ldb) / 4u;
        let b3_0 = b_at(r3 + q0); let b3_1 = b_at(r3 + q1); let b3_2 = b_at(r3 + q2); let b3_3 = b_at(r3 + q3);
        let a0 = a[ar0 + k];
        c0_0 = fma(vec4<f32>(a0.x), b0_0, c0_0); c0_0 = fma(vec4<f32>(a0.y), b1_0, c0_0);
        c0_0 = fma(vec4<f32>(a0.z), b2_0, c0_0); c0_0 = fma(vec4<f32>(a0.w), b3_0, c0_0);
        c0_1 = fma(vec4<f32>(a0.x), b0_1, c0_1); c0_1 = fma(vec4<f32>(a0.y), b1_1, c0_1);
        c0_1 = fma(vec4<f32>(a0.z), b2_1, c0_1); c0_1 = fma(vec4<f32>(a0.w), b3_1, c0_1);
        c0_2 = fma(vec4<f32>(a0.x), b0_2, c0_2); c0_2 = fma(vec4<f32>(a0.y), b1_2, c0_2);
        c0_2 = fma(vec4<f32>(a0.z), b2_2, c0_2); c0_2 = fma(vec4<f32>(a0.w), b3_2, c0_2);
        c0_3 = fma(vec4<f32>(a0.x), b0_3, c0_3); c0_3 = fma(vec4<f32>(a0.y), b1_3, c0_3);
        c0_3 = fma(vec4<f32>(a0.z), b2_3, c0_3); c0_3 = fma(vec4<f32>(a0.w), b3_3, c0_3);
        let a1 = a[ar1 + k];
        c1_0 = fma(vec4<f32>(a1.x), b0_0, c1_0); c1_0 = fma(vec4<f32>(a1.y), b1_0, c1_0);
        c1_0 = fma(vec4<f32>(a1.z), b2_0, c1_0); c1_0 = fma(vec4<f32>(a1.w), b3_0, c1_0);
        c1_1 = fma(vec4<f32>(a1.x), b0_1, c1_1); c1_1 = fma(vec4<f32>(a1.y), b1_1, c1_1);
        c1_1 = fma(vec4<f32>(a1.z), b2_1, c1_1); c1_1 = fma(vec4<f32>(a1.w), b3_1, c1_1);
        c1_2 = fma(vec4<f32>(a1.x), b0_2, c1_2); c1_2 = fma(vec4<f32>(a1.y), b1_2, c1_2);
        c1_2 = fma(vec4<f32>(a1.z), b2_2, c1_2); c1_2 = fma(vec4<f32>(a1.w), b3_2, c1_2);
        c1_3 = fma(vec4<f32>(a1.x), b0_3, c1_3); c1_3 = fma(vec4<f32>(a1.y), b1_3, c1_3);
        c1_3 = fma(vec4<f32>(a1.z), b2_3, c1_3); c1_3 = fma(vec4<f32>(a1.w), b3_3, c1_3);
        let a2 = a[ar2 + k];
        c2_0 = fma(vec4<f32>(a2.x), b0_0, c2_0); c2_0 = fma(vec4<f32>(a2.y), b1_0, c2_0);
        c2_0 = fma(vec4<f32>(a2.z), b2_0, c2_0); c2_0 = fma(vec4<f32>(a2.w), b3_0, c2_0);
        c2_1 = fma(vec4<f32>(a2.x), b0_1, c2_1); c2_1 = fma(vec4<f32>(a2.y), b1_1, c2_1);
        c2_1 = fma(vec4<f32>(a2.z), b2_1, c2_1); c2_1 = fma(vec4<f32>(a2.w), b3_1, c2_1);
        c2_2 = fma(vec4<f32>(a2.x), b0_2, c2_2); c2_2 = fma(vec4<f32>(a2.y), b1_2, c2_2);
        c2_2 = fma(vec4<f32>(a2.z), b2_2, c2_2); c2_2 = fma(vec4<f32>(a2.w), b3_2, c2_2);
        c2_3 = fma(vec4<f32>(a2.x), b0_3, c2_3); c2_3 = fma(vec4<f32>(a2.y), b1_3, c2_3);
        c2_3 = fma(vec4<f32>(a2.z), b2_3, c2_3); c2_3 = fma(vec4<f32>(a2.w), b3_3, c2_3);
        let a3 = a[ar3 + k];
        c3_0 = fma(vec4<f32>(a3.x), b0_0, c3_0); c3_0 = fma(vec4<f32>(a3.y), b1_0, c3_0);
        c3_0 = fma(vec4<f32>(a3.z), b2_0, c3_0); c3_0 = fma(vec4<f32>(a3.w), b3_0, c3_0);
        c3_1 = fma(vec4<f32>(a3.x), b0_1, c3_1); c3_1 = fma(vec4<f32>(a3.y), b1_1, c3_1);
        c3_1 = fma(vec4<f32>(a3.z), b2_1, c3_1); c3_1 = fma(vec4<f32>(a3.w), b3_1, c3_1);
        c3_2 = fma(vec4<f32>(a3.x), b0_2, c3_2); c3_2 = fma(vec4<f32>(a3.y), b1_2, c3_2);
        c3_2 = fma(vec4<f32>(a3.z), b2_2, c3_2); c3_2 = fma(vec4<f32>(a3.w), b3_2, c3_2);
        c3_3 = fma(vec4<f32>(a3.x), b0_3, c3_3); c3_3 = fma(vec4<f32>(a3.y), b1_3, c3_3);
        c3_3 = fma(vec4<f32>(a3.z), b2_3, c3_3); c3_3 = fma(vec4<f32>(a3.w), b3_3, c3_3);
        let a4 = a[ar4 + k];
        c4_0 = fma(vec4<f32>(a4.x), b0_0, c4_0); c4_0 = fma(vec4<f32>(a4.y), b1_0, c4_0);
        c4_0 = fma(vec4<f32>(a4.z), b2_0, c4_0); c4_0 = fma(vec4<f32>(a4.w), b3_0, c4_0);
        c4_1 = fma(vec4<f32>(a4.x), b0_1, c4_1); c4_1 = fma(vec4<f32>(a4.y), b1_1, c4_1);
        c4_1 = fma(vec4<f32>(a4.z), b2_1, c4_1); c4_1 = fma(vec4<f32>(a4.w), b3_1, c4_1);
        c4_2 = fma(vec4<f32>(a4.x), b0_2, c4_2); c4_2 = fma(vec4<f32>(a4.y), b1_2, c4_2);
        c4_2 = fma(vec4<f32>(a4.z), b2_2, c4_2); c4_2 = fma(vec4<f32>(a4.w), b3_2, c4_2);
        c4_3 = fma(vec4<f32>(a4.x), b0_3, c4_3); c4_3 = fma(vec4<f32>(a4.y), b1_3, c4_3);
        c4_3 = fma(vec4<f32>(a4.z), b2_3, c4_3); c4_3 = fma(vec4<f32>(a4.w), b3_3, c4_3);
        let a5 = a[ar5 + k];
        c5_0 = fma(vec4<f32>(a5.x), b0_0, c5_0); c5_0 = fma(vec4<f32>(a5.y), b1_0, c5_0);
        c5_0 = fma(vec4<f32>(a5.z), b2_0, c5_0); c5_0 = fma(vec4<f32>(a5.w), b3_0, c5_0);
        c5_1 = fma(vec4<f32>(a5.x), b0_1, c5_1); c5_1 = fma(vec4<f32>(a5.y), b1_1, c5_1);
        c5_1 = fma(vec4<f32>(a5.z), b2_1, c5_1); c5_1 = fma(vec4<f32>(a5.w), b3_1, c5_1);
        c5_2 = fma(vec4<f32>(a5.x), b0_2, c5_2); c5_2 = fma(vec4<f32>(a5.y), b1_2, c5_2);
        c5_2 = fma(vec4<f32>(a5.z), b2_2, c5_2); c5_2 = fma(vec4<f32>(a5.w), b3_2, c5_2);
        c5_3 = fma(vec4<f32>(a5.x), b0_3, c5_3); c5_3 = fma(vec4<f32>(a5.y), b1_3, c5_3);
        c5_3 = fma(vec4<f32>(a5.z), b2_3, c5_3); c5_3 = fma(vec4<f32>(a5.w), b3_3, c5_3);
        let a6 = a[ar6 + k];
        c6_0 = fma(vec4<f32>(a6.x), b0_0, c6_0); c6_0 = fma(vec4<f32>(a6.y), b1_0, c6_0);
        c6_0 = fma(vec4<f32>(a6.z), b2_0, c6_0); c6_0 = fma(vec4<f32>(a6.w), b3_0, c6_0);
        c6_1 = fma(vec4<f32>(a6.x), b0_1, c6_1); c6_1 = fma(vec4<f32>(a6.y), b1_1, c6_1);
        c6_1 = fma(vec4<f32>(a6.z), b2_1, c6_1); c6_1 = fma(vec4<f32>(a6.w), b3_1, c6_1);
        c6_2 = fma(vec4<f32>(a6.x), b0_2, c6_2); c6_2 = fma(vec4<f32>(a6.y), b1_2, c6_2);
        c6_2 = fma(vec4<f32>(a6.z), b2_2, c6_2); c6_2 = fma(vec4<f32>(a6.w), b3_2, c6_2);
        c6_3 = fma(vec4<f32>(a6.x), b0_3, c6_3); c6_3 = fma(vec4<f32>(a6.y), b1_3, c6_3);
        c6_3 = fma(vec4<f32>(a6.z), b2_3, c6_3); c6_3 = fma(vec4<f32>(a6.w), b3_3, c6_3);
        let a7 = a[ar7 + k];
        c7_0 = fma(vec4<f32>(a7.x), b0_0, c7_0); c7_0 = fma(vec4<f32>(a7.y), b1_0, c7_0);
        c7_0 = fma(vec4<f32>(a7.z), b2_0, c7_0); c7_0 = fma(vec4<f32>(a7.w), b3_0, c7_0);
        c7_1 = fma(vec4<f32>(a7.x), b0_1, c7_1); c7_1 = fma(vec4<f32>(a7.y), b1_1, c7_1);
        c7_1 = fma(vec4<f32>(a7.z), b2_1, c7_1); c7_1 = fma(vec4<f32>(a7.w), b3_1, c7_1);
        c7_2 = fma(vec4<f32>(a7.x), b0_2, c7_2); c7_2 = fma(vec4<f32>(a7.y), b1_2, c7_2);
        c7_2 = fma(vec4<f32>(a7.z), b2_2, c7_2); c7_2 = fma(vec4<f32>(a7.w), b3_2, c7_2);
        c7_3 = fma(vec4<f32>(a7.x), b0_3, c7_3); c7_3 = fma(vec4<f32>(a7.y), b1_3, c7_3);
        c7_3 = fma(vec4<f32>(a7.z), b2_3, c7_3); c7_3 = fma(vec4<f32>(a7.w), b3_3, c7_3);
        let a8 = a[ar8 + k];
        c8_0 = fma(vec4<f32>(a8.x), b0_0, c8_0); c8_0 = fma(vec4<f32>(a8.y), b1_0, c8_0);
        c8_0 = fma(vec4<f32>(a8.z), b2_0, c8_0); c8_0 = fma(vec4<f32>(a8.w), b3_0, c8_0);
        c8_1 = fma(vec4<f32>(a8.x), b0_1, c8_1); c8_1 = fma(vec4<f32>(a8.y), b1_1, c8_1);
        c8_1 = fma(vec4<f32>(a8.z), b2_1, c8_1); c8_1 = fma(vec4<f32>(a8.w), b3_1, c8_1);
        c8_2 = fma(vec4<f32>(a8.x), b0_2, c8_2); c8_2 = fma(vec4<f32>(a8.y), b1_2, c8_2);
        c8_2 = fma(vec4<f32>(a8.z), b2_2, c8_2); c8_2 = fma(vec4<f32>(a8.w), b3_2, c8_2);
        c8_3 = fma(vec4<f32>(a8.x), b0_3, c8_3); c8_3 = fma(vec4<f32>(a8.y), b1_3, c8_3);
        c8_3 = fma(vec4<f32>(a8.z), b2_3, c8_3); c8_3 = fma(vec4<f32>(a8.w), b3_3, c8_3);
        let a9 = a[ar9 + k];
        c9_0 = fma(vec4<f32>(a9.x), b0_0, c9_0); c9_0 = fma(vec4<f32>(a9.y), b1_0, c9_0);
        c9_0 = fma(vec4<f32>(a9.z), b2_0, c9_0); c9_0 = fma(vec4<f32>(a9.w), b3_0, c9_0);
        c9_1 = fma(vec4<f32>(a9.x), b0_1, c9_1); c9_1 = fma(vec4<f32>(a9.y), b1_1, c9_1);
        c9_1 = fma(vec4<f32>(a9.z), b2_1, c9_1); c9_1 = fma(vec4<f32>(a9.w), b3_1, c9_1);
        c9_2 = fma(vec4<f32>(a9.x), b0_2, c9_2); c9_2 = fma(vec4<f32>(a9.y), b1_2, c9_2);
        c9_2 = fma(vec4<f32>(a9.z), b2_2, c9_2); c9_2 = fma(vec4<f32>(a9.w), b3_2, c9_2);
        c9_3 = fma(vec4<f32>(a9.x), b0_3, c9_3); c9_3 = fma(vec4<f32>(a9.y), b1_3, c9_3);
        c9_3 = fma(vec4<f32>(a9.z), b2_3, c9_3); c9_3 = fma(vec4<f32>(a9.w), b3_3, c9_3);
        let a10 = a[ar10 + k];
        c10_0 = fma(vec4<f32>(a10.x), b0_0, c10_0); c10_0 = fma(vec4<f32>(a10.y), b1_0, c10_0);
        c10_0 = fma(vec4<f32>(a10.z), b2_0, c10_0); c10_0 = fma(vec4<f32>(a10.w), b3_0, c10_0);
        c10_1 = fma(vec4<f32>(a10.x), b0_1, c10_1); c10_1 = fma(vec4<f32>(a10.y), b1_1, c10_1);
        c10_1 = fma(vec4<f32>(a10.z), b2_1, c10_1); c10_1 = fma(vec4<f32>(a10.w), b3_1, c10_1);
        c10_2 = fma(vec4<f32>(a10.x), b0_2, c10_2); c10_2 = fma(vec4<f32>(a10.y), b1_2, c10_2);
        c10_2 = fma(vec4<f32>(a10.z), b2_2, c10_2); c10_2 = fma(vec4<f32>(a10.w), b3_2, c10_2);
        c10_3 = fma(vec4<f32>(a10.x), b0_3, c10_3); c10_3 = fma(vec4<f32>(a10.y), b1_3, c10_3);
        c10_3 = fma(vec4<f32>(a10.z), b2_3, c10_3); c10_3 = fma(vec4<f32>(a10.w), b3_3, c10_3);
        let a11 = a[ar11 + k];
        c11_0 = fma(vec4<f32>(a11.x), b0_0, c11_0); c11_0 = fma(vec4<f32>(a11.y), b1_0, c11_0);
        c11_0 = fma(vec4<f32>(a11.z), b2_0, c11_0); c11_0 = fma(vec4<f32>(a11.w), b3_0, c11_0);
        c11_1 = fma(vec4<f32>(a11.x), b0_1, c11_1); c11_1 = fma(vec4<f32>(a11.y), b1_1, c11_1);
        c11_1 = fma(vec4<f32>(a11.z), b2_1, c11_1); c11_1 = fma(vec4<f32>(a11.w), b3_1, c11_1);
        c11_2 = fma(vec4<f32>(a11.x), b0_2, c11_2); c11_2 = fma(vec4<f32>(a11.y), b1_2, c11_2);
        c11_2 = fma(vec4<f32>(a11.z), b2_2, c11_2); c11_2 = fma(vec4<f32>(a11.w), b3_2, c11_2);
        c11_3 = fma(vec4<f32>(a11.x), b0_3, c11_3); c11_3 = fma(vec4<f32>(a11.y), b1_3, c11_3);
        c11_3 = fma(vec4<f32>(a11.z), b2_3, c11_3); c11_3 = fma(vec4<f32>(a11.w), b3_3, c11_3);
        let a12 = a[ar12 + k];
        c12_0 = fma(vec4<f32>(a12.x), b0_0, c12_0); c12_0 = fma(vec4<f32>(a12.y), b1_0, c12_0);
        c12_0 = fma(vec4<f32>(a12.z), b2_0, c12_0); c12_0 = fma(vec4<f32>(a12.w), b3_0, c12_0);
        c12_1 = fma(vec4<f32>(a12.x), b0_1, c12_1); c12_1 = fma(vec4<f32>(a12.y), b1_1, c12_1);
        c12_1 = fma(vec4<f32>(a12.z), b2_1, c12_1); c12_1 = fma(vec4<f32>(a12.w), b3_1, c12_1);
        c12_2 = fma(vec4<f32>(a12.x), b0_2, c12_2); c12_2 = fma(vec4<f32>(a12.y), b1_2, c12_2);
        c12_2 = fma(vec4<f32>(a12.z), b2_2, c12_2); c12_2 = fma(vec4<f32>(a12.w), b3_2, c12_2);
        c12_3 = fma(vec4<f32>(a12.x), b0_3, c12_3); c12_3 = fma(vec4<f32>(a12.y), b1_3, c12_3);
        c12_3 = fma(vec4<f32>(a12.z), b2_3, c12_3); c12_3 = fma(vec4<f32>(a12.w), b3_3, c12_3);
        let a13 = a[ar13 + k];
        c13_0 = fma(vec4<f32>(a13.x), b0_0, c13_0); c13_0 = fma(vec4<f32>(a13.y), b1_0, c13_0);
        c13_0 = fma(vec4<f32>(a13.z), b2_0, c13_0); c13_0 = fma(vec4<f32>(a13.w), b3_0, c13_0);
        c13_1 = fma(vec4<f32>(a13.x), b0_1, c13_1); c13_1 = fma(vec4<f32>(a13.y), b1_1, c13_1);
        c13_1 = fma(vec4<f32>(a13.z), b2_1, c13_1); c13_1 = fma(vec4<f32>(a13.w), b3_1, c13_1);
        c13_2 = fma(vec4<f32>(a13.x), b0_2, c13_2); c13_2 = fma(vec4<f32>(a13.y), b1_2, c13_2);
        c13_2 = fma(vec4<f32>(a13.z), b2_2, c13_2); c13_2 = fma(vec4<f32>(a13.w), b3_2, c13_2);
        c13_3 = fma(vec4<f32>(a13.x), b0_3, c13_3); c13_3 = fma(vec4<f32>(a13.y), b1_3, c13_3);
        c13_3 = fma(vec4<f32>(a13.z), b2_3, c13_3); c13_3 = fma(vec4<f32>(a13.w), b3_3, c13_3);
        let a14 = a[ar14 + k];
        c14_0 = fma(vec4<f32>(a14.x), b0_0, c14_0); c14_0 = fma(vec4<f32>(a14.y), b1_0, c14_0);
        c14_0 = fma(vec4<f32>(a14.z), b2_0, c14_0); c14_0 = fma(vec4<f32>(a14.w), b3_0, c14_0);
        c14_1 = fma(vec4<f32>(a14.x), b0_1, c14_1); c14_1 = fma(vec4<f32>(a14.y), b1_1, c14_1);
        c14_1 = fma(vec4<f32>(a14.z), b2_1, c14_1); c14_1 = fma(vec4<f32>(a14.w), b3_1, c14_1);
        c14_2 = fma(vec4<f32>(a14.x), b0_2, c14_2); c14_2 = fma(vec4<f32>(a14.y), b1_2, c14_2);
        c14_2 = fma(vec4<f32>(a14.z), b2_2, c14_2); c14_2 = fma(vec4<f32>(a14.w), b3_2, c14_2);
        c14_3 = fma(vec4<f32>(a14.x), b0_3, c14_3); c14_3 = fma(vec4<f32>(a14.y), b1_3, c14_3);
        c14_3 = fma(vec4<f32>(a14.z), b2_3, c14_3); c14_3 = fma(vec4<f32>(a14.w), b3_3, c14_3);
        let a15 = a[ar15 + k];
        c15_0 = fma(vec4<f32>(a15.x), b0_0, c15_0); c15_0 = fma(vec4<f32>(a15.y), b1_0, c15_0);
        c15_0 = fma(vec4<f32>(a15.z), b2_0, c15_0); c15_0 = fma(vec4<f32>(a15.w), b3_0, c15_0);
        c15_1 = fma(vec4<f32>(a15.x), b0_1, c15_1); c15_1 = fma(vec4<f32>(a15.y), b1_1, c15_1);
        c15_1 = fma(vec4<f32>(a15.z), b2_1, c15_1); c15_1 = fma(vec4<f32>(a15.w), b3_1, c15_1);
        c15_2 = fma(vec4<f32>(a15.x), b0_2, c15_2); c15_2 = fma(vec4<f32>(a15.y), b1_2, c15_2);
        c15_2 = fma(vec4<f32>(a15.z), b2_2, c15_2); c15_2 = fma(vec4<f32>(a15.w), b3_2, c15_2);
        c15_3 = fma(vec4<f32>(a15.x), b0_3, c15_3); c15_3 = fma(vec4<f32>(a15.y), b1_3, c15_3);
        c15_3 = fma(vec4<f32>(a15.z), b2_3, c15_3); c15_3 = fma(vec4<f32>(a15.w), b3_3, c15_3);
    }
    store_quad(row0 + 0u, col0 + 0u, c0_0);
    store_quad(row0 + 0u, col0 + 4u, c0_1);
    store_quad(row0 + 0u, col0 + 8u, c0_2);
    store_quad(row0 + 0u, col0 + 12u, c0_3);
    store_quad(row0 + 1u, col0 + 0u, c1_0);
    store_quad(row0 + 1u, col0 + 4u, c1_1);
    store_quad(row0 + 1u, col0 + 8u, c1_2);
    store_quad(row0 + 1u, col0 + 12u, c1_3);
    store_quad(row0 + 2u, col0 + 0u, c2_0);
    store_quad(row0 + 2u, col0 + 4u, c2_1);
    store_quad(row0 + 2u, col0 + 8u, c2_2);
    store_quad(row0 + 2u, col0 + 12u, c2_3);
    store_quad(row0 + 3u, col0 + 0u, c3_0);
    store_quad(row0 + 3u, col0 + 4u, c3_1);
    store_quad(row0 + 3u, col0 + 8u, c3_2);
    store_quad(row0 + 3u, col0 + 12u, c3_3);
    store_quad(row0 + 4u, col0 + 0u, c4_0);
    store_quad(row0 + 4u, col0 + 4u, c4_1);
    store_quad(row0 + 4u, col0 + 8u, c4_2);
    store_quad(row0 + 4u, col0 + 12u, c4_3);
    store_quad(row0 + 5u, col0 + 0u, c5_0);
    store_quad(row0 + 5u, col0 + 4u, c5_1);
    store_quad(row0 + 5u, col0 + 8u, c5_2);
    store_quad(row0 + 5u, col0 + 12u, c5_3);
    store_quad(row0 + 6u, col0 + 0u, c6_0);
    store_quad(row0 + 6u, col0 + 4u, c6_1);
    store_quad(row0 + 6u, col0 + 8u, c6_2);
    store_quad(row0 + 6u, col0 + 12u, c6_3);
    store_quad(row0 + 7u, col0 + 0u, c7_0);
    store_quad(row0 + 7u, col0 + 4u, c7_1);
    store_quad(row0 + 7u, col0 + 8u, c7_2);
    store_quad(row0 + 7u, col0 + 12u, c7_3);
    store_quad(row0 + 8u, col0 + 0u, c8_0);
    store_quad(row0 + 8u, col0 + 4u, c8_1);
    store_quad(row0 + 8u, col0 + 8u, c8_2);
    store_quad(row0 + 8u, col0 + 12u, c8_3);
    store_quad(row0 + 9u, col0 + 0u, c9_0);
    store_quad(row0 + 9u, col0 + 4u, c9_1);
    store_quad(row0 + 9u, col0 + 8u, c9_2);
    store_quad(row0 + 9u, col0 + 12u, c9_3);
    store_quad(row0 + 10u, col0 + 0u, c10_0);
    store_quad(row0 + 10u, col0 + 4u, c10_1);
    store_quad(row0 + 10u, col0 + 8u, c10_2);
    store_quad(row0 + 10u, col0 + 12u, c10_3);
    store_quad(row0 + 11u, col0 + 0u, c11_0);
    store_quad(row0 + 11u, col0 + 4u, c11_1);
    store_quad(row0 + 11u, col0 + 8u, c11_2);
    store_quad(row0 + 11u, col0 + 12u, c11_3);
    store_quad(row0 + 12u, col0 + 0u, c12_0);
    store_quad(row0 + 12u, col0 + 4u, c12_1);
    store_quad(row0 + 12u, col0 + 8u, c12_2);
    store_quad(row0 + 12u, col0 + 12u, c12_3);
    store_quad(row0 + 13u, col0 + 0u, c13_0);
    store_quad(row0 + 13u, col0 + 4u, c13_1);
    store_quad(row0 + 13u, col0 + 8u, c13_2);
    store_quad(row0 + 13u, col0 + 12u, c13_3);
    store_quad(row0 + 14u, col0 + 0u, c14_0);
    store_quad(row0 + 14u, col0 + 4u, c14_1);
    store_quad(row0 + 14u, col0 + 8u, c14_2);
    store_quad(row0 + 14u, col0 + 12u, c14_3);
    store_quad(row0 + 15u, col0 + 0u, c15_0);
    store_quad(row0 + 15u, col0 + 4u, c15_1);
    store_quad(row0 + 15u, col0 + 8u, c15_2);
    store_quad(row0 + 15u, col0 + 12u, c15_3);
}

@compute @workgroup_size(8)
fn matmul_tn_v4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wg.y * 16u;
    let col0 = wg.x * 128u + lid.x * 16u;
    // Quads past M or N re-read the last one; their results are not stored.
    let last_m = p.m / 4u - 1u;
    let last_n = p.n / 4u - 1u;
    let m0 = min(row0 / 4u + 0u, last_m);
    let m1 = min(row0 / 4u + 1u, last_m);
    let m2 = min(row0 / 4u + 2u, last_m);
    let m3 = min(row0 / 4u + 3u, last_m);
    let q0 = min(col0 / 4u + 0u, last_n);
    let q1 = min(col0 / 4u + 1u, last_n);
    let q2 = min(col0 / 4u + 2u, last_n);
    let q3 = min(col0 / 4u + 3u, last_n);
    var c0_0 = vec4<f32>(0.0); var c0_1 = vec4<f32>(0.0); var c0_2 = vec4<f32>(0.0); var c0_3 = vec4<f32>(0.0);
    var c1_0 = vec4<f32>(0.0); var c1_1 = vec4<f32>(0.0); var c1_2 = vec4<f32>(0.0); var c1_3 = vec4<f32>(0.0);
    var c2_0 = vec4<f32>(0.0); var c2_1 = vec4<f32>(0.0); var c2_2 = vec4<f32>(0.0); var c2_3 = vec4<f32>(0.0);
    var c3_0 = vec4<f32>(0.0); var c3_1 = vec4<f32>(0.0); var c3_2 = vec4<f32>(0.0); var c3_3 = vec4<f32>(0.0);
    var c4_0 = vec4<f32>(0.0); var c4_1 = vec4<f32>(0.0); var c4_2 = vec4<f32>(0.0); var c4_3 = vec4<f32>(0.0);
    var c5_0 = vec4<f32>(0.0); var c5_1 = vec4<f32>(0.0); var c5_2 = vec4<f32>(0.0); var c5_3 = vec4<f32>(0.0);
    var c6_0 = vec4<f32>(0.0); var c6_1 = vec4<f32>(0.0); var c6_2 = vec4<f32>(0.0); var c6_3 = vec4<f32>(0.0);
    var c7_0 = vec4<f32>(0.0); var c7_1 = vec4<f32>(0.0); var c7_2 = vec4<f32>(0.0); var c7_3 = vec4<f32>(0.0);
    var c8_0 = vec4<f32>(0.0); var c8_1 = vec4<f32>(0.0); var c8_2 = vec4<f32>(0.0); var c8_3 = vec4<f32>(0.0);
    var c9_0 = vec4<f32>(0.0); var c9_1 = vec4<f32>(0.0); var c9_2 = vec4<f32>(0.0); var c9_3 = vec4<f32>(0.0);
    var c10_0 = vec4<f32>(0.0); var c10_1 = vec4<f32>(0.0); var c10_2 = vec4<f32>(0.0); var c10_3 = vec4<f32>(0.0);
    var c11_0 = vec4<f32>(0.0); var c11_1 = vec4<f32>(0.0); var c11_2 = vec4<f32>(0.0); var c11_3 = vec4<f32>(0.0);
    var c12_0 = vec4<f32>(0.0); var c12_1 = vec4<f32>(0.0); var c12_2 = vec4<f32>(0.0); var c12_3 = vec4<f32>(0.0);
    var c13_0 = vec4<f32>(0.0); var c13_1 = vec4<f32>(0.0); var c13_2 = vec4<f32>(0.0); var c13_3 = vec4<f32>(0.0);
    var c14_0 = vec4<f32>(0.0); var c14_1 = vec4<f32>(0.0); var c14_2 = vec4<f32>(0.0); var c14_3 = vec4<f32>(0.0);
    var c15_0 = vec4<f32>(0.0); var c15_1 = vec4<f32>(0.0); var c15_2 = vec4<f32>(0.0); var c15_3 = vec4<f32>(0.0);
    for (var k = 0u; k < p.k; k++) {
        let ra = (p.a_off + k * p.lda) / 4u;
        let rb = (p.b_off + k * p.ldb) / 4u;
        let a0 = a[ra + m0]; let a1 = a[ra + m1]; let a2 = a[ra + m2]; let a3 = a[ra + m3];
        let b0 = b_at(rb + q0); let b1 = b_at(rb + q1); let b2 = b_at(rb + q2); let b3 = b_at(rb + q3);
        c0_0 = fma(vec4<f32>(a0.x), b0, c0_0); c0_1 = fma(vec4<f32>(a0.x), b1, c0_1);
        c0_2 = fma(vec4<f32>(a0.x), b2, c0_2); c0_3 = fma(vec4<f32>(a0.x), b3, c0_3);
        c1_0 = fma(vec4<f32>(a0.y), b0, c1_0); c1_1 = fma(vec4<f32>(a0.y), b1, c1_1);
        c1_2 = fma(vec4<f32>(a0.y), b2, c1_2); c1_3 = fma(vec4<f32>(a0.y), b3, c1_3);
        c2_0 = fma(vec4<f32>(a0.z), b0, c2_0); c2_1 = fma(vec4<f32>(a0.z), b1, c2_1);
        c2_2 = fma(vec4<f32>(a0.z), b2, c2_2); c2_3 = fma(vec4<f32>(a0.z), b3, c2_3);
        c3_0 = fma(vec4<f32>(a0.w), b0, c3_0); c3_1 = fma(vec4<f32>(a0.w), b1, c3_1);
        c3_2 = fma(vec4<f32>(a0.w), b2, c3_2); c3_3 = fma(vec4<f32>(a0.w), b3, c3_3);
        c4_0 = fma(vec4<f32>(a1.x), b0, c4_0); c4_1 = fma(vec4<f32>(a1.x), b1, c4_1);
        c4_2 = fma(vec4<f32>(a1.x), b2, c4_2); c4_3 = fma(vec4<f32>(a1.x), b3, c4_3);
        c5_0 = fma(vec4<f32>(a1.y), b0, c5_0); c5_1 = fma(vec4<f32>(a1.y), b1, c5_1);
        c5_2 = fma(vec4<f32>(a1.y), b2, c5_2); c5_3 = fma(vec4<f32>(a1.y), b3, c5_3);
        c6_0 = fma(vec4<f32>(a1.z), b0, c6_0); c6_1 = fma(vec4<f32>(a1.z), b1, c6_1);
        c6_2 = fma(vec4<f32>(a1.z), b2, c6_2); c6_3 = fma(vec4<f32>(a1.z), b3, c6_3);
        c7_0 = fma(vec4<f32>(a1.w), b0, c7_0); c7_1 = fma(vec4<f32>(a1.w), b1, c7_1);
        c7_2 = fma(vec4<f32>(a1.w), b2, c7_2); c7_3 = fma(vec4<f32>(a1.w), b3, c7_3);
        c8_0 = fma(vec4<f32>(a2.x), b0, c8_0); c8_1 = fma(vec4<f32>(a2.x), b1, c8_1);
        c8_2 = fma(vec4<f32>(a2.x), b2, c8_2); c8_3 = fma(vec4<f32>(a2.x), b3, c8_3);
        c9_0 = fma(vec4<f32>(a2.y), b0, c9_0); c9_1 = fma(vec4<f32>(a2.y), b1, c9_1);
        c9_2 = fma(vec4<f32>(a2.y), b2, c9_2); c9_3 = fma(vec4<f32>(a2.y), b3, c9_3);
        c10_0 = fma(vec4<f32>(a2.z), b0, c10_0); c10_1 = fma(vec4<f32>(a2.z), b1, c10_1);
        c10_2 = fma(vec4<f32>(a2.z), b2, c10_2); c10_3 = fma(vec4<f32>(a2.z), b3, c10_3);
        c11_0 = fma(vec4<f32>(a2.w), b0, c11_0); c11_1 = fma(vec4<f32>(a2.w), b1, c11_1);
        c11_2 = fma(vec4<f32>(a2.w), b2, c11_2); c11_3 = fma(vec4<f32>(a2.w), b3, c11_3);
        c12_0 = fma(vec4<f32>(a3.x), b0, c12_0); c12_1 = fma(vec4<f32>(a3.x), b1, c12_1);
        c12_2 = fma(vec4<f32>(a3.x), b2, c12_2); c12_3 = fma(vec4<f32>(a3.x), b3, c12_3);
        c13_0 = fma(vec4<f32>(a3.y), b0, c13_0); c13_1 = fma(vec4<f32>(a3.y), b1, c13_1);
        c13_2 = fma(vec4<f32>(a3.y), b2, c13_2); c13_3 = fma(vec4<f32>(a3.y), b3, c13_3);
        c14_0 = fma(vec4<f32>(a3.z), b0, c14_0); c14_1 = fma(vec4<f32>(a3.z), b1, c14_1);
        c14_2 = fma(vec4<f32>(a3.z), b2, c14_2); c14_3 = fma(vec4<f32>(a3.z), b3, c14_3);
        c15_0 = fma(vec4<f32>(a3.w), b0, c15_0); c15_1 = fma(vec4<f32>(a3.w), b1, c15_1);
        c15_2 = fma(vec4<f32>(a3.w), b2, c15_2); c15_3 = fma(vec4<f32>(a3.w), b3, c15_3);
    }
    store_quad(row0 + 0u, col0 + 0u, c0_0);
    store_quad(row0 + 0u, col0 + 4u, c0_1);
    store_quad(row0 + 0u, col0 + 8u, c0_2);
    store_quad(row0 + 0u, col0 + 12u, c0_3);
    store_quad(row0 + 1u, col0 + 0u, c1_0);
    store_quad(row0 + 1u, col0 + 4u, c1_1);
    store_quad(row0 + 1u, col0 + 8u, c1_2);
    store_quad(row0 + 1u, col0 + 12u, c1_3);
    store_quad(row0 + 2u, col0 + 0u, c2_0);
    store_quad(row0 + 2u, col0 + 4u, c2_1);
    store_quad(row0 + 2u, col0 + 8u, c2_2);
    store_quad(row0 + 2u, col0 + 12u, c2_3);
    store_quad(row0 + 3u, col0 + 0u, c3_0);
    store_quad(row0 + 3u, col0 + 4u, c3_1);
    store_quad(row0 + 3u, col0 + 8u, c3_2);
    store_quad(row0 + 3u, col0 + 12u, c3_3);
    store_quad(row0 + 4u, col0 + 0u, c4_0);
    store_quad(row0 + 4u, col0 + 4u, c4_1);
    store_quad(row0 + 4u, col0 + 8u, c4_2);
    store_quad(row0 + 4u, col0 + 12u, c4_3);
    store_quad(row0 + 5u, col0 + 0u, c5_0);
    store_quad(row0 + 5u, col0 + 4u, c5_1);
    store_quad(row0 + 5u, col0 + 8u, c5_2);
    store_quad(row0 + 5u, col0 + 12u, c5_3);
    store_quad(row0 + 6u, col0 + 0u, c6_0);
    store_quad(row0 + 6u, col0 + 4u, c6_1);
    store_quad(row0 + 6u, col0 + 8u, c6_2);
    store_quad(row0 + 6u, col0 + 12u, c6_3);
    store_quad(row0 + 7u, col0 + 0u, c7_0);
    store_quad(row0 + 7u, col0 + 4u, c7_1);
    store_quad(row0 + 7u, col0 + 8u, c7_2);
    store_quad(row0 + 7u, col0 + 12u, c7_3);
    store_quad(row0 + 8u, col0 + 0u, c8_0);
    store_quad(row0 + 8u, col0 + 4u, c8_1);
    store_quad(row0 + 8u, col0 + 8u, c8_2);
    store_quad(row0 + 8u, col0 + 12u, c8_3);
    store_quad(row0 + 9u, col0 + 0u, c9_0);
    store_quad(row0 + 9u, col0 + 4u, c9_1);
    store_quad(row0 + 9u, col0 + 8u, c9_2);
    store_quad(row0 + 9u, col0 + 12u, c9_3);
    store_quad(row0 + 10u, col0 + 0u, c10_0);
    store_quad(row0 + 10u, col0 + 4u, c10_1);
    store_quad(row0 + 10u, col0 + 8u, c10_2);
    store_quad(row0 + 10u, col0 + 12u, c10_3);
    store_quad(row0 + 11u, col0 + 0u, c11_0);
    store_quad(row0 + 11u, col0 + 4u, c11_1);
    store_quad(row0 + 11u, col0 + 8u, c11_2);
    store_quad(row0 + 11u, col0 + 12u, c11_3);
    store_quad(row0 + 12u, col0 + 0u, c12_0);
    store_quad(row0 + 12u, col0 + 4u, c12_1);
    store_quad(row0 + 12u, col0 + 8u, c12_2);
    store_quad(row0 + 12u, col0 + 12u, c12_3);
    store_quad(row0 + 13u, col0 + 0u, c13_0);
    store_quad(row0 + 13u, col0 + 4u, c13_1);
    store_quad(row0 + 13u, col0 + 8u, c13_2);
    store_quad(row0 + 13u, col0 + 12u, c13_3);
    store_quad(row0 + 14u, col0 + 0u, c14_0);
    store_quad(row0 + 14u, col0 + 4u, c14_1);
    store_quad(row0 + 14u, col0 + 8u, c14_2);
    store_quad(row0 + 14u, col0 + 12u, c14_3);
    store_quad(row0 + 15u, col0 + 0u, c15_0);
    store_quad(row0 + 15u, col0 + 4u, c15_1);
    store_quad(row0 + 15u, col0 + 8u, c15_2);
    store_quad(row0 + 15u, col0 + 12u, c15_3);
}
