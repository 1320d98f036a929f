//! Every kernel of `shaders/` against a plain f64 CPU reference, on seeded random inputs whose
//! sizes are not multiples of the kernels' tiles. Tolerances are stated at each check: absolute
//! + relative, sized for f32 arithmetic over the reduction lengths used.

mod common;

use common::*;
use gpt::kernels::{
    AdamWParams, AttentionParams, CrossEntropyParams, EmbeddingParams, Form, Kernels, LayerNormParams, View,
};
use neuron_plugin_api::{bytemuck::Pod, shaders::Reduction, Buffer, Gpu};

struct Fixture {
    gpu: Gpu,
    k: Kernels,
}

fn fixture() -> Fixture {
    fixture_with(Reduction::Tree)
}

fn fixture_with(reduction: Reduction) -> Fixture {
    let gpu = gpu();
    let k = Kernels::new(&gpu, reduction).unwrap();
    Fixture { gpu, k }
}

/// One fixture per reduction prelude the device can run (the tree; subgroups where enabled, as
/// on lavapipe): the kernels that sum over a workgroup are checked on each.
fn fixtures() -> Vec<Fixture> {
    let all = reductions(&gpu());
    if is_lavapipe() {
        assert!(all.contains(&Reduction::Subgroup), "lavapipe offers SUBGROUP: the subgroup path must be checked here");
    }
    all.into_iter().map(fixture_with).collect()
}

impl Fixture {
    fn buf<T: Pod>(&self, v: &[T]) -> Buffer {
        self.gpu.buffer_from(v, "test").unwrap()
    }
    fn read(&self, b: &Buffer) -> Vec<f32> {
        self.gpu.read(b).unwrap()
    }
}

fn view(b: &Buffer, off: u32, ld: u32) -> View {
    View::new(b.all(), off, ld)
}

#[test]
fn matmul_all_forms_match_on_ragged_sizes_with_offsets_and_accumulation() {
    // Tolerance 1e-5 + 1e-4 |ref|: inputs in [-1, 1], K up to 150 f32 products.
    // Both kernels: matmul.wgsl (any shape; here at odd offsets and leading dimensions) and the
    // vec4 fast path (4-aligned operands, ragged M and N). And where the device has SHADER_F16
    // (lavapipe does), the f16-weights variants of the two forms that read weights (Nt, Nn):
    // B uploaded as f16, the reference on B rounded to f16, the same tolerance (the sums are f32).
    let mut f = fixture();
    let has_f16 = f.gpu.adapter().has_feature("SHADER_F16");
    if is_lavapipe() {
        assert!(has_f16, "lavapipe offers SHADER_F16: the f16-weights kernels must be checked here");
    }
    if has_f16 {
        f.k.enable_half_weights(&f.gpu).unwrap();
    }
    let mut r = Rand::new(1);
    let shapes = [
        (1u32, 1u32, 1u32, false),
        (65, 33, 17, false),
        (130, 70, 150, false),
        (3, 200, 5, false),
        (64, 64, 64, false),
    ];
    let aligned = [(4u32, 4u32, 4u32, true), (12, 68, 20, true), (132, 76, 152, true), (64, 64, 64, true)];
    for &(m, n, k, fast) in shapes.iter().chain(&aligned) {
        f.k.vec4 = fast;
        for (form, half_b) in [Form::Nt, Form::Nn, Form::Tn]
            .into_iter()
            .flat_map(|form| [(form, false), (form, true)])
            .filter(|&(form, half_b)| !half_b || (has_f16 && form != Form::Tn))
        {
            // A, B and C live at offsets inside wider matrices (leading dimension + 3, or + 4).
            let (a_rows, a_cols) = if form == Form::Tn { (k, m) } else { (m, k) };
            let (b_rows, b_cols) = if form == Form::Nt { (n, k) } else { (k, n) };
            let pad = if fast { 4 } else { 3 };
            let (lda, ldb, ldc) = (a_cols + pad, b_cols + pad, n + 3);
            let (a_off, b_off, c_off) = if fast { (8, 4, 2) } else { (5, 7, 2) };
            let a = r.vec((a_off + a_rows * lda) as usize, 1.0);
            let mut b = r.vec((b_off + b_rows * ldb) as usize, 1.0);
            // f16 weights: what the kernel reads is B rounded to f16, so the reference uses that.
            let b16: Vec<u16> = b.iter().map(|&x| half::f16::from_f32(x).to_bits()).chain([0]).collect();
            if half_b {
                b = b16.iter().take(b.len()).map(|&h| half::f16::from_bits(h).to_f32()).collect();
            }
            let c0 = r.vec((c_off + m * ldc) as usize, 1.0);
            let bias = r.vec(n as usize + 4, 1.0);
            let use_bias = form == Form::Nt;
            let bias = if use_bias { bias } else { vec![0.0; bias.len()] };
            for accumulate in [false, true] {
                // The f16 copy padded to whole 4-byte words, as the model pads it.
                let bb = if half_b { f.buf(&b16[..b16.len() & !1]) } else { f.buf(&b) };
                let (ab, cb, biasb) = (f.buf(&a), f.buf(&c0), f.buf(&bias));
                let mut batch = f.gpu.batch();
                let bias_view = use_bias.then(|| view(&biasb, 4, 0));
                let (av, bv, cv) = (view(&ab, a_off, lda), view(&bb, b_off, ldb), view(&cb, c_off, ldc));
                match (half_b, &f.k.half) {
                    (true, Some(h)) => {
                        f.k.matmul_half_b(h, &mut batch, form, av, bv, cv, [m, n, k], accumulate, bias_view)
                    }
                    _ => f.k.matmul(&mut batch, form, av, bv, cv, [m, n, k], accumulate, bias_view),
                }
                batch.submit().unwrap();
                let mut want = f64s(&c0);
                for i in 0..m {
                    for j in 0..n {
                        let mut s = 0.0;
                        for x in 0..k {
                            let av = if form == Form::Tn {
                                a[(a_off + x * lda + i) as usize]
                            } else {
                                a[(a_off + i * lda + x) as usize]
                            };
                            let bv = if form == Form::Nt {
                                b[(b_off + j * ldb + x) as usize]
                            } else {
                                b[(b_off + x * ldb + j) as usize]
                            };
                            s += f64::from(av) * f64::from(bv);
                        }
                        if use_bias {
                            s += f64::from(bias[4 + j as usize]);
                        }
                        let idx = (c_off + i * ldc + j) as usize;
                        want[idx] = if accumulate { want[idx] + s } else { s };
                    }
                }
                let what = format!("{form:?} {m}x{n}x{k} vec4={fast} acc={accumulate} f16_weights={half_b}");
                assert_close(&what, &f.read(&cb), &want, 1e-5, 1e-4);
            }
        }
    }
}

#[test]
fn bias_grad_sums_columns() {
    // Tolerance 1e-5 + 1e-5 |ref|: 77 rows.
    let f = fixture();
    let mut r = Rand::new(2);
    let (rows, cols) = (77u32, 45u32);
    let dy = r.vec((rows * cols) as usize, 1.0);
    let out0 = r.vec(cols as usize + 1, 1.0);
    let (dyb, outb) = (f.buf(&dy), f.buf(&out0));
    let mut b = f.gpu.batch();
    f.k.bias_grad(&mut b, view(&dyb, 0, cols), view(&outb, 1, 0), rows, cols);
    b.submit().unwrap();
    let mut want = f64s(&out0);
    for c in 0..cols as usize {
        want[1 + c] += (0..rows as usize).map(|r| f64::from(dy[r * cols as usize + c])).sum::<f64>();
    }
    assert_close("bias_grad", &f.read(&outb), &want, 1e-5, 1e-5);
}

#[test]
fn layernorm_forward_backward_and_parameter_gradients() {
    // Tolerance 1e-5 + 1e-4 |ref| (rows of up to 200 values, unit-scale inputs).
    let f = fixture();
    let mut r = Rand::new(3);
    for &(rows, cols) in &[(5u32, 37u32), (3, 200), (1, 1)] {
        let (n, c) = ((rows * cols) as usize, cols as usize);
        let x: Vec<f32> = r.vec(n, 2.0).iter().map(|v| v + 0.5).collect();
        let dy = r.vec(n, 1.0);
        // Parameters at offsets in a packed buffer: weight at 3, bias at 3 + cols + 2.
        let (w_off, b_off) = (3u32, 5 + cols);
        let params = r.vec((b_off + cols) as usize, 1.0);
        let grads0 = r.vec(params.len(), 1.0);
        let dx0 = r.vec(n, 1.0);
        let (xb, pb, yb, mb, sb, dyb, dxb, gb) = (
            f.buf(&x),
            f.buf(&params),
            f.buf(&vec![0.0f32; n]),
            f.buf(&vec![0.0f32; rows as usize]),
            f.buf(&vec![0.0f32; rows as usize]),
            f.buf(&dy),
            f.buf(&dx0),
            f.buf(&grads0),
        );
        let p = LayerNormParams { rows, cols, w_off, b_off, accumulate: 1, ..Default::default() };
        let mut b = f.gpu.batch();
        b.dispatch_with(&f.k.layernorm_forward, &[xb.all(), pb.all(), yb.all(), mb.all(), sb.all()], [rows, 1, 1], &p);
        b.dispatch_with(
            &f.k.layernorm_backward,
            &[dyb.all(), xb.all(), pb.all(), mb.all(), sb.all(), dxb.all()],
            [rows, 1, 1],
            &p,
        );
        b.dispatch_with(
            &f.k.layernorm_param_grad,
            &[dyb.all(), xb.all(), mb.all(), sb.all(), gb.all()],
            [cols.div_ceil(64), 1, 1],
            &p,
        );
        b.submit().unwrap();
        let (xd, pd) = (f64s(&x), f64s(&params));
        let (w, bias) = (&pd[w_off as usize..w_off as usize + c], &pd[b_off as usize..b_off as usize + c]);
        let (y, means, rstds) = layernorm(&xd, w, bias, c);
        assert_close("layernorm y", &f.read(&yb), &y, 1e-5, 1e-4);
        assert_close("layernorm rstd", &f.read(&sb), &rstds, 1e-5, 1e-4);
        let (mut dx, mut grads) = (f64s(&dx0), f64s(&grads0));
        for row in 0..rows as usize {
            let xhat: Vec<f64> = (0..c).map(|j| (xd[row * c + j] - means[row]) * rstds[row]).collect();
            let g: Vec<f64> = (0..c).map(|j| f64::from(dy[row * c + j]) * w[j]).collect();
            let mg = g.iter().sum::<f64>() / c as f64;
            let mgx = g.iter().zip(&xhat).map(|(a, b)| a * b).sum::<f64>() / c as f64;
            for j in 0..c {
                dx[row * c + j] += rstds[row] * (g[j] - mg - xhat[j] * mgx);
                grads[w_off as usize + j] += f64::from(dy[row * c + j]) * xhat[j];
                grads[b_off as usize + j] += f64::from(dy[row * c + j]);
            }
        }
        assert_close("layernorm dx", &f.read(&dxb), &dx, 1e-4, 1e-4);
        assert_close("layernorm dw, db", &f.read(&gb), &grads, 1e-5, 1e-4);
    }
}

#[test]
fn gelu_and_residual_are_exact_elementwise_including_saturation() {
    // Tolerance 1e-6 + 1e-5 |ref|; inputs include +-40 where tanh saturates.
    let f = fixture();
    let mut r = Rand::new(4);
    let n = 1000u32;
    let mut x = r.vec(n as usize, 5.0);
    x[..4].copy_from_slice(&[40.0, -40.0, 0.0, 1e-3]);
    let d0 = r.vec(n as usize, 1.0);
    let other = r.vec(n as usize, 1.0);
    let (xb, yb, db, ob, sb) =
        (f.buf(&x), f.buf(&vec![0.0f32; n as usize]), f.buf(&d0), f.buf(&other), f.buf(&vec![0.0f32; n as usize]));
    let mut b = f.gpu.batch();
    f.k.gelu_forward(&mut b, xb.all(), yb.all(), n);
    f.k.gelu_backward(&mut b, xb.all(), db.all(), n);
    f.k.residual(&mut b, xb.all(), ob.all(), sb.all(), n);
    b.submit().unwrap();
    let want: Vec<f64> = x.iter().map(|&v| gelu(f64::from(v))).collect();
    assert_close("gelu", &f.read(&yb), &want, 1e-6, 1e-5);
    let want: Vec<f64> = x.iter().zip(&d0).map(|(&v, &d)| f64::from(d) * gelu_grad(f64::from(v))).collect();
    assert_close("gelu backward", &f.read(&db), &want, 1e-6, 1e-5);
    let want: Vec<f64> = x.iter().zip(&other).map(|(&a, &b)| f64::from(a) + f64::from(b)).collect();
    assert_close("residual", &f.read(&sb), &want, 0.0, 1e-7);
}

/// dqkv of causal attention given dy, in f64.
fn attention_backward(qkv: &[f64], dy: &[f64], b: usize, t: usize, c: usize, h: usize) -> Vec<f64> {
    let hs = c / h;
    let scale = 1.0 / (hs as f64).sqrt();
    let mut d = vec![0.0; qkv.len()];
    let ix = |bb: usize, tt: usize, part: usize, hh: usize, k: usize| (bb * t + tt) * 3 * c + part * c + hh * hs + k;
    for bb in 0..b {
        for hh in 0..h {
            for tq in 0..t {
                let sc: Vec<f64> = (0..=tq)
                    .map(|s| (0..hs).map(|k| qkv[ix(bb, tq, 0, hh, k)] * qkv[ix(bb, s, 1, hh, k)]).sum::<f64>() * scale)
                    .collect();
                let m = sc.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = sc.iter().map(|v| (v - m).exp()).sum();
                let p: Vec<f64> = sc.iter().map(|v| (v - m).exp() / z).collect();
                let g = |k: usize| dy[(bb * t + tq) * c + hh * hs + k];
                let dp: Vec<f64> = (0..=tq).map(|s| (0..hs).map(|k| g(k) * qkv[ix(bb, s, 2, hh, k)]).sum()).collect();
                let dot: f64 = p.iter().zip(&dp).map(|(a, b)| a * b).sum();
                for s in 0..=tq {
                    let ds = p[s] * (dp[s] - dot);
                    for k in 0..hs {
                        d[ix(bb, tq, 0, hh, k)] += scale * ds * qkv[ix(bb, s, 1, hh, k)];
                        d[ix(bb, s, 1, hh, k)] += scale * ds * qkv[ix(bb, tq, 0, hh, k)];
                        d[ix(bb, s, 2, hh, k)] += p[s] * g(k);
                    }
                }
            }
        }
    }
    d
}

#[test]
fn attention_forward_and_backward_match_the_reference() {
    // Tolerance 1e-5 + 1e-3 |ref|: softmax over up to 70 keys, head sizes 12 and 64 (the limit),
    // sequence lengths that are not multiples of the 64-query blocks or 32-key tiles.
    let f = fixture();
    let mut r = Rand::new(5);
    for &(b, t, c, h) in &[(2u32, 70u32, 24u32, 2u32), (1, 40, 128, 2), (3, 1, 8, 4)] {
        let (bt, cc) = ((b * t) as usize, c as usize);
        let qkv = r.vec(bt * 3 * cc, 1.5);
        let dy = r.vec(bt * cc, 1.0);
        let bht = (b * h * t) as usize;
        let (qb, yb, lb, dyb, ddb, dqb) = (
            f.buf(&qkv),
            f.buf(&vec![0.0f32; bt * cc]),
            f.buf(&vec![0.0f32; bht]),
            f.buf(&dy),
            f.buf(&vec![0.0f32; bht]),
            f.buf(&vec![0.0f32; bt * 3 * cc]),
        );
        let hs = c / h;
        let p = AttentionParams {
            batch: b,
            seq: t,
            heads: h,
            head_size: hs,
            channels: c,
            scale: 1.0 / (hs as f32).sqrt(),
            ..Default::default()
        };
        let groups = [t.div_ceil(64), b * h, 1];
        let mut batch = f.gpu.batch();
        batch.dispatch_with(&f.k.attention_forward, &[qb.all(), yb.all(), lb.all()], groups, &p);
        batch.dispatch_with(
            &f.k.attention_backward_prep,
            &[dyb.all(), yb.all(), ddb.all()],
            [(b * h * t).div_ceil(64), 1, 1],
            &p,
        );
        let bufs = [qb.all(), dyb.all(), lb.all(), ddb.all(), dqb.all()];
        batch.dispatch_with(&f.k.attention_backward_dq, &bufs, groups, &p);
        batch.dispatch_with(&f.k.attention_backward_dkv, &bufs, groups, &p);
        batch.submit().unwrap();
        let (qd, dyd) = (f64s(&qkv), f64s(&dy));
        let (y, lse) = attention(&qd, b as usize, t as usize, cc, h as usize);
        let what = format!("attention B={b} T={t} C={c} H={h}");
        assert_close(&format!("{what} y"), &f.read(&yb), &y, 1e-5, 1e-3);
        assert_close(&format!("{what} lse"), &f.read(&lb), &lse, 1e-5, 1e-4);
        let want = attention_backward(&qd, &dyd, b as usize, t as usize, cc, h as usize);
        assert_close(&format!("{what} dqkv"), &f.read(&dqb), &want, 1e-5, 1e-3);
    }
}

#[test]
fn cross_entropy_gives_loss_and_dlogits_and_top_k_ranks_with_ties() {
    // Tolerance 1e-5 + 1e-5 |ref| over a 300-entry vocabulary (not a multiple of 256 threads).
    for f in fixtures() {
        let mut r = Rand::new(6);
        let (rows, v) = (5u32, 300u32);
        let mut logits = r.vec((rows * v) as usize, 4.0);
        // Ties: row 0 has three equal maxima; top-k must give the lower ids first.
        for i in [7usize, 150, 299] {
            logits[i] = 9.0;
        }
        let targets: Vec<u32> = vec![0, 0, 5, 299, 42, 7, 1];
        let (tb, lb, lossb) = (f.buf(&targets), f.buf(&logits), f.buf(&[0.0f32; 7]));
        let k = 4u32;
        let (sb, ib, pb) = (
            f.buf(&logits),
            f.buf(&vec![0u32; (rows * k) as usize + 8]),
            f.buf(&vec![0.0f32; (rows * k) as usize + 8]),
        );
        // Rows are the chunk at offset 2 of the targets and losses (as the model's logit chunks are).
        let p =
            CrossEntropyParams { rows, vocab: v, row_offset: 2, write_grad: 1, k, scale: 0.25, ..Default::default() };
        let mut b = f.gpu.batch();
        b.dispatch_with(&f.k.cross_entropy, &[tb.all(), lb.all(), lossb.all()], [rows, 1, 1], &p);
        b.dispatch_with(&f.k.top_k, &[sb.all(), ib.all(), pb.all()], [rows, 1, 1], &p);
        b.submit().unwrap();
        let (mut losses, mut dlogits) = (vec![0.0; 7], vec![0.0; logits.len()]);
        for row in 0..rows as usize {
            let lr = &logits[row * v as usize..(row + 1) * v as usize];
            let m = lr.iter().fold(f32::MIN, |a, &b| a.max(b)) as f64;
            let lse = m + lr.iter().map(|&x| (f64::from(x) - m).exp()).sum::<f64>().ln();
            let tgt = targets[2 + row] as usize;
            losses[2 + row] = lse - f64::from(lr[tgt]);
            for (j, &x) in lr.iter().enumerate() {
                dlogits[row * v as usize + j] = ((f64::from(x) - lse).exp() - if j == tgt { 1.0 } else { 0.0 }) * 0.25;
            }
        }
        assert_close("losses", &f.read(&lossb), &losses, 1e-5, 1e-5);
        assert_close("dlogits", &f.read(&lb), &dlogits, 1e-6, 1e-5);
        let ids: Vec<u32> = f.gpu.read(&ib).unwrap();
        let lps = f.read(&pb);
        for row in 0..rows as usize {
            let o = (2 + row) * k as usize;
            let (want_ids, want_lps) =
                neuron_plugin_api::top_k_logprobs(&logits[row * v as usize..(row + 1) * v as usize], k as usize);
            assert_eq!(&ids[o..o + k as usize], &want_ids[..], "row {row}");
            assert_close("top-k logprobs", &lps[o..o + k as usize], &f64s(&want_lps), 1e-5, 1e-5);
        }
        assert_eq!(&ids[8..11], &[7, 150, 299], "ties go to the lower id first");
    }
}

#[test]
fn embedding_forward_and_backward_over_a_split_table() {
    // Exact up to f32 rounding of the sums (tolerance 1e-6 + 1e-6 |ref|). The 50-row table is
    // split into rows 0..23 and 23..50 held in two buffers, at offsets, as the model packs it.
    let f = fixture();
    let mut r = Rand::new(7);
    let (b, t, c, vocab) = (3u32, 7u32, 10u32, 50u32);
    let (bt, cc) = ((b * t) as usize, c as usize);
    let mut tokens: Vec<u32> = (0..bt).map(|_| r.below(vocab)).collect();
    tokens[..4].copy_from_slice(&[22, 23, 22, 49]);
    let wte = r.vec(vocab as usize * cc, 1.0);
    let wpe = r.vec(t as usize * cc, 1.0);
    let split = 23usize;
    let shard0: Vec<f32> = [vec![0.5; 4], wte[..split * cc].to_vec()].concat();
    let shard1: Vec<f32> = [vec![0.5; 6], wte[split * cc..].to_vec(), wpe.clone()].concat();
    let wpe_off = (6 + (vocab as usize - split) * cc) as u32;
    let (s0, s1, tokb, outb) = (f.buf(&shard0), f.buf(&shard1), f.buf(&tokens), f.buf(&vec![0.0f32; bt * cc]));
    let dx = r.vec(bt * cc, 1.0);
    let (g0, g1, dxb) = (f.buf(&vec![0.0f32; shard0.len()]), f.buf(&vec![0.0f32; shard1.len()]), f.buf(&dx));
    // The CSR index the model builds: positions grouped by token, ascending.
    let mut order: Vec<u32> = (0..bt as u32).collect();
    order.sort_by_key(|&p| (tokens[p as usize], p));
    let mut groups: Vec<u32> = Vec::new();
    for (i, &p) in order.iter().enumerate() {
        let tok = tokens[p as usize];
        if groups.len() >= 4 && groups[groups.len() - 4] == tok {
            let n = groups.len();
            groups[n - 2] = i as u32 + 1;
        } else {
            groups.extend([tok, i as u32, i as u32 + 1, 0]);
        }
    }
    let first_in_1 = groups.chunks(4).position(|g| g[0] >= split as u32).unwrap() as u32;
    let ngroups = (groups.len() / 4) as u32;
    let (grb, ordb) = (f.buf(&groups), f.buf(&order));
    let mut batch = f.gpu.batch();
    let pieces = [
        (&s0, &g0, 0u32, split as u32, 4u32, 0u32, first_in_1),
        (&s1, &g1, split as u32, vocab - split as u32, 6, first_in_1, ngroups - first_in_1),
    ];
    for &(shard, grads, row_start, row_count, off, gs, gc) in &pieces {
        let p = EmbeddingParams {
            positions: bt as u32,
            seq: t,
            channels: c,
            row_start,
            row_count,
            wte_off: off,
            wpe_off,
            group_start: gs,
            group_count: gc,
            ..Default::default()
        };
        batch.dispatch_with(
            &f.k.embedding_forward,
            &[tokb.all(), shard.all(), s1.all(), outb.all()],
            f.k.embedding_grid(bt as u32 * c),
            &p,
        );
        batch.dispatch_with(
            &f.k.embedding_backward_wte,
            &[grb.all(), ordb.all(), dxb.all(), grads.all()],
            f.k.embedding_grid(gc * c),
            &p,
        );
    }
    let p = EmbeddingParams { positions: bt as u32, seq: t, channels: c, wpe_off, ..Default::default() };
    batch.dispatch_with(&f.k.embedding_backward_wpe, &[dxb.all(), g1.all()], f.k.embedding_grid(t * c), &p);
    batch.submit().unwrap();
    let want: Vec<f64> = (0..bt * cc)
        .map(|i| {
            f64::from(wte[tokens[i / cc] as usize * cc + i % cc]) + f64::from(wpe[(i / cc % t as usize) * cc + i % cc])
        })
        .collect();
    assert_close("embedding", &f.read(&outb), &want, 1e-6, 1e-6);
    let (mut dwte, mut dwpe) = (vec![0.0f64; vocab as usize * cc], vec![0.0f64; t as usize * cc]);
    for (pos, &tok) in tokens.iter().enumerate() {
        for j in 0..cc {
            dwte[tok as usize * cc + j] += f64::from(dx[pos * cc + j]);
            dwpe[(pos % t as usize) * cc + j] += f64::from(dx[pos * cc + j]);
        }
    }
    let got0 = f.read(&g0);
    let got1 = f.read(&g1);
    let got_wte: Vec<f32> = [&got0[4..], &got1[6..6 + (vocab as usize - split) * cc]].concat();
    assert_close("dwte", &got_wte, &dwte, 1e-6, 1e-6);
    assert_close("dwpe", &got1[wpe_off as usize..], &dwpe, 1e-6, 1e-6);
    assert!(got0[..4].iter().chain(&got1[..6]).all(|&g| g == 0.0), "nothing outside the tables is written");
}

#[test]
fn gradient_norm_and_adamw_with_clipping_and_decay() {
    // Norm over 10000 + 70 elements in two buffers (ragged against the 4096-element segments),
    // tolerance 1e-6 relative; AdamW two steps with the clip active, tolerance 1e-6 + 1e-5 |ref|.
    for f in fixtures() {
        let mut r = Rand::new(8);
        let (n0, n1) = (10_000usize, 70usize);
        let g0 = r.vec(n0, 0.1);
        let g1 = r.vec(n1, 0.1);
        let w0 = r.vec(n0, 1.0);
        let (gb0, gb1) = (f.buf(&g0), f.buf(&g1));
        let (wb, mb, vb) = (f.buf(&w0), f.buf(&vec![0.0f32; n0]), f.buf(&vec![0.0f32; n0]));
        let (partials, scalars) = (f.buf(&[0.0f32; 8]), f.buf(&[0.0f32; 4]));
        let (lr, b1, b2, eps, wd, clip) = (1e-2f32, 0.9f32, 0.95f32, 1e-8f32, 0.1f32, 1.0f32);
        let (mut w, mut m, mut v) = (f64s(&w0), vec![0.0; n0], vec![0.0; n0]);
        let norm2: f64 = g0.iter().chain(&g1).map(|&g| f64::from(g) * f64::from(g)).sum();
        let norm = norm2.sqrt();
        assert!(norm > f64::from(clip), "the test means to clip");
        for step in 1..=2 {
            let mut b = f.gpu.batch();
            let mut base = f.k.sum_squares(&mut b, gb0.all(), 0, n0 as u32, partials.all(), 0);
            base += f.k.sum_squares(&mut b, gb1.all(), 0, n1 as u32, partials.all(), base);
            assert_eq!(base, 4);
            f.k.sum(&mut b, partials.all(), base, 1.0, scalars.all(), 0);
            // Decay on the first 6000 elements only, as the model splits a shard.
            for (off, n, decay) in [(0u32, 6000u32, wd), (6000, n0 as u32 - 6000, 0.0)] {
                let p = AdamWParams {
                    n,
                    off,
                    lr,
                    beta1: b1,
                    beta2: b2,
                    eps,
                    weight_decay: decay,
                    bc1: 1.0 - b1.powi(step),
                    bc2: 1.0 - b2.powi(step),
                    max_norm: clip,
                    ..Default::default()
                };
                f.k.adamw(&mut b, [gb0.all(), scalars.all(), wb.all(), mb.all(), vb.all()], &p);
            }
            let rd = b.read(scalars.range(0, 4));
            let got = b.submit().unwrap().get::<f32>(rd).unwrap()[0];
            assert!((f64::from(got) - norm2).abs() <= 1e-6 * norm2, "squared norm {got} vs {norm2}");
            let scale = f64::from(clip) / (norm + 1e-6);
            let (lr, b1, b2) = (f64::from(lr), f64::from(b1), f64::from(b2));
            for i in 0..n0 {
                let g = f64::from(g0[i]) * scale;
                m[i] = b1 * m[i] + (1.0 - b1) * g;
                v[i] = b2 * v[i] + (1.0 - b2) * g * g;
                if i < 6000 {
                    w[i] -= lr * f64::from(wd) * w[i];
                }
                let (mh, vh) = (m[i] / (1.0 - b1.powi(step)), v[i] / (1.0 - b2.powi(step)));
                w[i] -= lr * mh / (vh.sqrt() + f64::from(eps));
            }
        }
        assert_close("adamw params", &f.read(&wb), &w, 1e-6, 1e-5);
        assert_close("adamw exp_avg", &f.read(&mb), &m, 1e-9, 1e-5);
        assert_close("adamw exp_avg_sq", &f.read(&vb), &v, 1e-12, 1e-5);
    }
}
