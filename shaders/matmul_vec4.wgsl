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
// at a fraction of the arithmetic rate. Here each thread keeps an 8 x 8 block of C in named
// registers and every load is a vec4: 16 FMAs per load. The code is written out in full, one
// line per accumulator, on purpose: lavapipe does not unroll loops over private arrays, and the
// same kernel written with loops measured 4-5x slower. Edit it as a pattern: rows i = 0..7,
// column quads h = 0..1 (nn, tn) or columns j = 0..7 (nt). The plugin uses it on CPU adapters,
// where it is 2-4x faster at every shape GPT uses; 8-thread workgroups would waste GPU SIMD lanes.
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
        let b0 = b[br0 + k]; let b1 = b[br1 + k]; let b2 = b[br2 + k]; let b3 = b[br3 + k];
        let b4 = b[br4 + k]; let b5 = b[br5 + k]; let b6 = b[br6 + k]; let b7 = b[br7 + k];
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
    let row0 = wg.y * 8u;
    let col0 = wg.x * 64u + lid.x * 8u;
    // Column quads past N re-read the last one; their results are not stored.
    let last = p.n / 4u - 1u;
    let q0 = min(col0 / 4u, last);
    let q1 = min(col0 / 4u + 1u, last);
    let ar0 = (p.a_off + min(row0 + 0u, p.m - 1u) * p.lda) / 4u;
    let ar1 = (p.a_off + min(row0 + 1u, p.m - 1u) * p.lda) / 4u;
    let ar2 = (p.a_off + min(row0 + 2u, p.m - 1u) * p.lda) / 4u;
    let ar3 = (p.a_off + min(row0 + 3u, p.m - 1u) * p.lda) / 4u;
    let ar4 = (p.a_off + min(row0 + 4u, p.m - 1u) * p.lda) / 4u;
    let ar5 = (p.a_off + min(row0 + 5u, p.m - 1u) * p.lda) / 4u;
    let ar6 = (p.a_off + min(row0 + 6u, p.m - 1u) * p.lda) / 4u;
    let ar7 = (p.a_off + min(row0 + 7u, p.m - 1u) * p.lda) / 4u;
    var c00 = vec4<f32>(0.0); var c01 = vec4<f32>(0.0);
    var c10 = vec4<f32>(0.0); var c11 = vec4<f32>(0.0);
    var c20 = vec4<f32>(0.0); var c21 = vec4<f32>(0.0);
    var c30 = vec4<f32>(0.0); var c31 = vec4<f32>(0.0);
    var c40 = vec4<f32>(0.0); var c41 = vec4<f32>(0.0);
    var c50 = vec4<f32>(0.0); var c51 = vec4<f32>(0.0);
    var c60 = vec4<f32>(0.0); var c61 = vec4<f32>(0.0);
    var c70 = vec4<f32>(0.0); var c71 = vec4<f32>(0.0);
    for (var k = 0u; k < p.k / 4u; k++) {
        let r0 = (p.b_off + (k * 4u + 0u) * p.ldb) / 4u;
        let b00 = b[r0 + q0]; let b01 = b[r0 + q1];
        let r1 = (p.b_off + (k * 4u + 1u) * p.ldb) / 4u;
        let b10 = b[r1 + q0]; let b11 = b[r1 + q1];
        let r2 = (p.b_off + (k * 4u + 2u) * p.ldb) / 4u;
        let b20 = b[r2 + q0]; let b21 = b[r2 + q1];
        let r3 = (p.b_off + (k * 4u + 3u) * p.ldb) / 4u;
        let b30 = b[r3 + q0]; let b31 = b[r3 + q1];
        let a0 = a[ar0 + k];
        c00 = fma(vec4<f32>(a0.x), b00, c00); c00 = fma(vec4<f32>(a0.y), b10, c00);
        c00 = fma(vec4<f32>(a0.z), b20, c00); c00 = fma(vec4<f32>(a0.w), b30, c00);
        c01 = fma(vec4<f32>(a0.x), b01, c01); c01 = fma(vec4<f32>(a0.y), b11, c01);
        c01 = fma(vec4<f32>(a0.z), b21, c01); c01 = fma(vec4<f32>(a0.w), b31, c01);
        let a1 = a[ar1 + k];
        c10 = fma(vec4<f32>(a1.x), b00, c10); c10 = fma(vec4<f32>(a1.y), b10, c10);
        c10 = fma(vec4<f32>(a1.z), b20, c10); c10 = fma(vec4<f32>(a1.w), b30, c10);
        c11 = fma(vec4<f32>(a1.x), b01, c11); c11 = fma(vec4<f32>(a1.y), b11, c11);
        c11 = fma(vec4<f32>(a1.z), b21, c11); c11 = fma(vec4<f32>(a1.w), b31, c11);
        let a2 = a[ar2 + k];
        c20 = fma(vec4<f32>(a2.x), b00, c20); c20 = fma(vec4<f32>(a2.y), b10, c20);
        c20 = fma(vec4<f32>(a2.z), b20, c20); c20 = fma(vec4<f32>(a2.w), b30, c20);
        c21 = fma(vec4<f32>(a2.x), b01, c21); c21 = fma(vec4<f32>(a2.y), b11, c21);
        c21 = fma(vec4<f32>(a2.z), b21, c21); c21 = fma(vec4<f32>(a2.w), b31, c21);
        let a3 = a[ar3 + k];
        c30 = fma(vec4<f32>(a3.x), b00, c30); c30 = fma(vec4<f32>(a3.y), b10, c30);
        c30 = fma(vec4<f32>(a3.z), b20, c30); c30 = fma(vec4<f32>(a3.w), b30, c30);
        c31 = fma(vec4<f32>(a3.x), b01, c31); c31 = fma(vec4<f32>(a3.y), b11, c31);
        c31 = fma(vec4<f32>(a3.z), b21, c31); c31 = fma(vec4<f32>(a3.w), b31, c31);
        let a4 = a[ar4 + k];
        c40 = fma(vec4<f32>(a4.x), b00, c40); c40 = fma(vec4<f32>(a4.y), b10, c40);
        c40 = fma(vec4<f32>(a4.z), b20, c40); c40 = fma(vec4<f32>(a4.w), b30, c40);
        c41 = fma(vec4<f32>(a4.x), b01, c41); c41 = fma(vec4<f32>(a4.y), b11, c41);
        c41 = fma(vec4<f32>(a4.z), b21, c41); c41 = fma(vec4<f32>(a4.w), b31, c41);
        let a5 = a[ar5 + k];
        c50 = fma(vec4<f32>(a5.x), b00, c50); c50 = fma(vec4<f32>(a5.y), b10, c50);
        c50 = fma(vec4<f32>(a5.z), b20, c50); c50 = fma(vec4<f32>(a5.w), b30, c50);
        c51 = fma(vec4<f32>(a5.x), b01, c51); c51 = fma(vec4<f32>(a5.y), b11, c51);
        c51 = fma(vec4<f32>(a5.z), b21, c51); c51 = fma(vec4<f32>(a5.w), b31, c51);
        let a6 = a[ar6 + k];
        c60 = fma(vec4<f32>(a6.x), b00, c60); c60 = fma(vec4<f32>(a6.y), b10, c60);
        c60 = fma(vec4<f32>(a6.z), b20, c60); c60 = fma(vec4<f32>(a6.w), b30, c60);
        c61 = fma(vec4<f32>(a6.x), b01, c61); c61 = fma(vec4<f32>(a6.y), b11, c61);
        c61 = fma(vec4<f32>(a6.z), b21, c61); c61 = fma(vec4<f32>(a6.w), b31, c61);
        let a7 = a[ar7 + k];
        c70 = fma(vec4<f32>(a7.x), b00, c70); c70 = fma(vec4<f32>(a7.y), b10, c70);
        c70 = fma(vec4<f32>(a7.z), b20, c70); c70 = fma(vec4<f32>(a7.w), b30, c70);
        c71 = fma(vec4<f32>(a7.x), b01, c71); c71 = fma(vec4<f32>(a7.y), b11, c71);
        c71 = fma(vec4<f32>(a7.z), b21, c71); c71 = fma(vec4<f32>(a7.w), b31, c71);
    }
    store_quad(row0 + 0u, col0, c00);
    store_quad(row0 + 0u, col0 + 4u, c01);
    store_quad(row0 + 1u, col0, c10);
    store_quad(row0 + 1u, col0 + 4u, c11);
    store_quad(row0 + 2u, col0, c20);
    store_quad(row0 + 2u, col0 + 4u, c21);
    store_quad(row0 + 3u, col0, c30);
    store_quad(row0 + 3u, col0 + 4u, c31);
    store_quad(row0 + 4u, col0, c40);
    store_quad(row0 + 4u, col0 + 4u, c41);
    store_quad(row0 + 5u, col0, c50);
    store_quad(row0 + 5u, col0 + 4u, c51);
    store_quad(row0 + 6u, col0, c60);
    store_quad(row0 + 6u, col0 + 4u, c61);
    store_quad(row0 + 7u, col0, c70);
    store_quad(row0 + 7u, col0 + 4u, c71);
}

@compute @workgroup_size(8)
fn matmul_tn_v4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wg.y * 8u;
    let col0 = wg.x * 64u + lid.x * 8u;
    // Quads past M or N re-read the last one; their results are not stored.
    let last_m = p.m / 4u - 1u;
    let last_n = p.n / 4u - 1u;
    let m0 = min(row0 / 4u, last_m);
    let m1 = min(row0 / 4u + 1u, last_m);
    let q0 = min(col0 / 4u, last_n);
    let q1 = min(col0 / 4u + 1u, last_n);
    var c00 = vec4<f32>(0.0); var c01 = vec4<f32>(0.0);
    var c10 = vec4<f32>(0.0); var c11 = vec4<f32>(0.0);
    var c20 = vec4<f32>(0.0); var c21 = vec4<f32>(0.0);
    var c30 = vec4<f32>(0.0); var c31 = vec4<f32>(0.0);
    var c40 = vec4<f32>(0.0); var c41 = vec4<f32>(0.0);
    var c50 = vec4<f32>(0.0); var c51 = vec4<f32>(0.0);
    var c60 = vec4<f32>(0.0); var c61 = vec4<f32>(0.0);
    var c70 = vec4<f32>(0.0); var c71 = vec4<f32>(0.0);
    for (var k = 0u; k < p.k; k++) {
        let ra = (p.a_off + k * p.lda) / 4u;
        let rb = (p.b_off + k * p.ldb) / 4u;
        let a0 = a[ra + m0]; let a1 = a[ra + m1];
        let b0 = b[rb + q0]; let b1 = b[rb + q1];
        c00 = fma(vec4<f32>(a0.x), b0, c00); c01 = fma(vec4<f32>(a0.x), b1, c01);
        c10 = fma(vec4<f32>(a0.y), b0, c10); c11 = fma(vec4<f32>(a0.y), b1, c11);
        c20 = fma(vec4<f32>(a0.z), b0, c20); c21 = fma(vec4<f32>(a0.z), b1, c21);
        c30 = fma(vec4<f32>(a0.w), b0, c30); c31 = fma(vec4<f32>(a0.w), b1, c31);
        c40 = fma(vec4<f32>(a1.x), b0, c40); c41 = fma(vec4<f32>(a1.x), b1, c41);
        c50 = fma(vec4<f32>(a1.y), b0, c50); c51 = fma(vec4<f32>(a1.y), b1, c51);
        c60 = fma(vec4<f32>(a1.z), b0, c60); c61 = fma(vec4<f32>(a1.z), b1, c61);
        c70 = fma(vec4<f32>(a1.w), b0, c70); c71 = fma(vec4<f32>(a1.w), b1, c71);
    }
    store_quad(row0 + 0u, col0, c00);
    store_quad(row0 + 0u, col0 + 4u, c01);
    store_quad(row0 + 1u, col0, c10);
    store_quad(row0 + 1u, col0 + 4u, c11);
    store_quad(row0 + 2u, col0, c20);
    store_quad(row0 + 2u, col0 + 4u, c21);
    store_quad(row0 + 3u, col0, c30);
    store_quad(row0 + 3u, col0 + 4u, c31);
    store_quad(row0 + 4u, col0, c40);
    store_quad(row0 + 4u, col0 + 4u, c41);
    store_quad(row0 + 5u, col0, c50);
    store_quad(row0 + 5u, col0 + 4u, c51);
    store_quad(row0 + 6u, col0, c60);
    store_quad(row0 + 6u, col0 + 4u, c61);
    store_quad(row0 + 7u, col0, c70);
    store_quad(row0 + 7u, col0 + 4u, c71);
}
