//! Kernel throughput on the machine's adapter: matmul GFLOP/s at 256..2048 against a
//! one-output-per-thread kernel in the same run, and the elementwise/reduction kernels a training
//! step runs over every parameter. Run: `cargo bench -p neuron-plugin-gpt --bench kernels`.

use std::time::Instant;

use gpt::kernels::{AdamWParams, CrossEntropyParams, Form, Kernels, View, MATMUL};
use neuron_plugin_api::{shaders::Reduction, Gpu, Kernel};

/// The baseline: each thread computes one output with a plain loop over k.
const NAIVE: &str = r#"
// Baseline matmul for the benchmark: one output per thread, no tiling.
struct Params { m: u32, n: u32, k: u32, lda: u32, ldb: u32, ldc: u32, a_off: u32, b_off: u32, c_off: u32, bias_off: u32, accumulate: u32, use_bias: u32 }
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
@compute @workgroup_size(16, 16)
fn naive(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x >= p.n || id.y >= p.m) { return; }
    var s = 0.0;
    for (var k = 0u; k < p.k; k++) { s += a[id.y * p.lda + k] * b[id.x * p.ldb + k]; }
    c[id.y * p.ldc + id.x] = s;
}
"#;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median seconds of `rounds` runs of `record` (each run one submission, waited for).
fn time(gpu: &Gpu, rounds: usize, record: impl Fn(&mut neuron_plugin_api::Batch<'_>)) -> f64 {
    let sync = gpu.zeros_f32(1, "sync").unwrap();
    let run = || {
        let mut b = gpu.batch();
        record(&mut b);
        b.read(sync.all());
        b.submit().unwrap();
    };
    run();
    median(
        (0..rounds)
            .map(|_| {
                let t = Instant::now();
                run();
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

fn main() {
    // The device the host opens for the plugin: with SUBGROUP where the adapter offers it.
    let device = neuron_plugin_testkit::device_for(&gpt::plugin());
    let gpu = device.context("bench").into_gpu();
    println!("adapter: {}", device.describe());
    let mut k = Kernels::new(&gpu, Reduction::for_gpu(&gpu)).unwrap();
    let naive: Kernel = gpu.compile(NAIVE, "naive").unwrap();
    let _ = MATMUL;
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let want = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    // Kernel development: MATMUL_VARIANT=file.wgsl[:entry[:rows,cols]] times a C = A B^T variant
    // (same bindings and uniforms as matmul_nt) against the shipped kernel.
    if let Ok(spec) = std::env::var("MATMUL_VARIANT") {
        let mut parts = spec.split(':');
        let source = std::fs::read_to_string(parts.next().unwrap()).unwrap();
        let entry = parts.next().unwrap_or("matmul_nt").to_string();
        let tile: Vec<u32> = parts.next().unwrap_or("64,64").split(',').map(|t| t.parse().unwrap()).collect();
        let variant = gpu.compile(&source, &entry).unwrap();
        for n in [512u32, 1024] {
            let a = gpu.buffer_from(&vec![0.5f32; (n * n) as usize], "a").unwrap();
            let b = gpu.buffer_from(&vec![0.25f32; (n * n) as usize], "b").unwrap();
            let c = gpu.zeros_f32((n * n) as usize, "c").unwrap();
            let flops = 2.0 * f64::from(n).powi(3);
            let p = gpt::kernels::MatmulParams { m: n, n, k: n, lda: n, ldb: n, ldc: n, ..Default::default() };
            let shipped = time(&gpu, 3, |bt| {
                let v = |x: &neuron_plugin_api::Buffer| View::new(x.all(), 0, n);
                k.matmul(bt, Form::Nt, v(&a), v(&b), v(&c), [n, n, n], false, None);
            });
            let var = time(&gpu, 3, |bt| {
                let bindings = if variant.info().bindings.len() == 3 {
                    vec![a.all(), b.all(), c.all()]
                } else {
                    vec![a.all(), b.all(), a.all(), c.all()]
                };
                bt.dispatch_with(&variant, &bindings, [n.div_ceil(tile[1]), n.div_ceil(tile[0]), 1], &p);
            });
            let got: Vec<f32> = gpu.read(&c).unwrap();
            assert!(
                (got[0] - 0.125 * n as f32).abs() < 1e-3 && (got[(n * n - 1) as usize] - 0.125 * n as f32).abs() < 1e-3,
                "variant is wrong: {}",
                got[0]
            );
            println!("n={n}: shipped {:.2} GFLOP/s, variant {:.2} GFLOP/s", flops / shipped / 1e9, flops / var / 1e9);
        }
        return;
    }
    // MATMUL_SHAPES="m,n,k;...": every form at those shapes, both kernels (for tuning).
    if let Ok(shapes) = std::env::var("MATMUL_SHAPES") {
        for shape in shapes.split(';') {
            let d: Vec<u32> = shape.split(',').map(|x| x.parse().unwrap()).collect();
            let (m, n, kk) = (d[0], d[1], d[2]);
            let size = (m.max(n).max(kk) as usize).pow(2);
            let a = gpu.buffer_from(&vec![0.5f32; size], "a").unwrap();
            let b = gpu.buffer_from(&vec![0.25f32; size], "b").unwrap();
            let c = gpu.zeros_f32((m * n) as usize, "c").unwrap();
            for form in [Form::Nt, Form::Nn, Form::Tn] {
                let (lda, ldb) = match form {
                    Form::Nt => (kk, kk),
                    Form::Nn => (kk, n),
                    Form::Tn => (m, n),
                };
                let mut line = format!("{m}x{n}x{kk} {form:?}:");
                for vec4 in [true, false] {
                    k.vec4 = vec4;
                    let t = time(&gpu, 5, |bt| {
                        k.matmul(
                            bt,
                            form,
                            View::new(a.all(), 0, lda),
                            View::new(b.all(), 0, ldb),
                            View::new(c.all(), 0, n),
                            [m, n, kk],
                            false,
                            None,
                        );
                    });
                    line += &format!(
                        " {} {:.2} ms ({:.2} GFLOP/s)",
                        if vec4 { "vec4" } else { "tiled" },
                        t * 1e3,
                        2.0 * f64::from(m) * f64::from(n) * f64::from(kk) / t / 1e9
                    );
                }
                println!("{line}");
            }
        }
        return;
    }
    if want("matmul") {
        // C = A B^T (the forward form) at n x n x n; the model uses the vec4 kernel whenever
        // operands are 4-aligned (all of GPT's forward matmuls), the tiled kernel otherwise.
        println!("| n | vec4 NT | vec4 NN | vec4 TN | tiled NT | one-output-per-thread NT | vec4 NT / baseline |");
        println!("|---|---|---|---|---|---|---|");
        // MATMUL_SIZES="1024,2048,4096,8192" (what `cargo xtask bench-gpu` asks a GPU for).
        let sizes: Vec<u32> = std::env::var("MATMUL_SIZES").map_or_else(
            |_| vec![256, 512, 1024, 2048],
            |s| s.split(',').map(|n| n.trim().parse().expect("MATMUL_SIZES is n,n,...")).collect(),
        );
        for n in sizes {
            let a = gpu.buffer_from(&vec![0.5f32; (n * n) as usize], "a").unwrap();
            let b = gpu.buffer_from(&vec![0.25f32; (n * n) as usize], "b").unwrap();
            let c = gpu.zeros_f32((n * n) as usize, "c").unwrap();
            let rounds = if n >= 2048 { 3 } else { 5 };
            let flops = 2.0 * f64::from(n).powi(3);
            let mut run = |form: Form, vec4: bool| {
                k.vec4 = vec4;
                time(&gpu, rounds, |bt| {
                    let v = |x: &neuron_plugin_api::Buffer| View::new(x.all(), 0, n);
                    k.matmul(bt, form, v(&a), v(&b), v(&c), [n, n, n], false, None);
                })
            };
            let (nt, nn, tn, tiled) =
                (run(Form::Nt, true), run(Form::Nn, true), run(Form::Tn, true), run(Form::Nt, false));
            let p = gpt::kernels::MatmulParams { m: n, n, k: n, lda: n, ldb: n, ldc: n, ..Default::default() };
            let base_rounds = if n >= 1024 { 1 } else { 3 };
            let base = time(&gpu, base_rounds, |bt| {
                bt.dispatch_with(&naive, &[a.all(), b.all(), c.all()], [n / 16, n / 16, 1], &p);
            });
            let g = |t: f64| flops / t / 1e9;
            println!(
                "| {n} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1}x |",
                g(nt),
                g(nn),
                g(tn),
                g(tiled),
                g(base),
                base / nt
            );
            // One line a script reads (cargo xtask bench-gpu): the best form the model uses.
            println!(
                "RESULT matmul n={n} nt={:.2} nn={:.2} tn={:.2} tiled={:.2} baseline={:.2}",
                g(nt),
                g(nn),
                g(tn),
                g(tiled),
                g(base)
            );
        }
    }
    if want("f16") {
        // The forward and input-gradient forms with B, the weights, read from f16
        // (`weights_f16`) against f32 B, at n x n x n, each kernel family in the same run.
        if gpu.adapter().has_feature("SHADER_F16") {
            k.enable_half_weights(&gpu).unwrap();
        }
        match &k.half {
            None => println!("f16 weights: the adapter has no SHADER_F16"),
            Some(h) => {
                println!("| n | form | kernels | f32 weights GFLOP/s | f16 weights GFLOP/s | f16 / f32 |");
                println!("|---|---|---|---|---|---|");
                let sizes: Vec<u32> = std::env::var("MATMUL_SIZES").map_or_else(
                    |_| vec![512, 1024],
                    |s| s.split(',').map(|n| n.trim().parse().expect("MATMUL_SIZES is n,n,...")).collect(),
                );
                for n in sizes {
                    let a = gpu.buffer_from(&vec![0.5f32; (n * n) as usize], "a").unwrap();
                    let b = gpu.buffer_from(&vec![0.25f32; (n * n) as usize], "b").unwrap();
                    // 0.25 in f16 (0x3400), two to a word.
                    let b16 = gpu.buffer_from(&vec![0x3400_3400u32; (n * n / 2) as usize], "b16").unwrap();
                    let c = gpu.zeros_f32((n * n) as usize, "c").unwrap();
                    let rounds = if n >= 2048 { 3 } else { 5 };
                    let flops = 2.0 * f64::from(n).powi(3);
                    for (vec4, family) in [(true, "vec4"), (false, "tiled")] {
                        for form in [Form::Nt, Form::Nn] {
                            k.vec4 = vec4;
                            let v = |x: &neuron_plugin_api::Buffer| View::new(x.all(), 0, n);
                            let full = time(&gpu, rounds, |bt| {
                                k.matmul(bt, form, v(&a), v(&b), v(&c), [n, n, n], false, None);
                            });
                            let half = time(&gpu, rounds, |bt| {
                                k.matmul_half_b(h, bt, form, v(&a), v(&b16), v(&c), [n, n, n], false, None);
                            });
                            let g = |t: f64| flops / t / 1e9;
                            println!(
                                "| {n} | {form:?} | {family} | {:.2} | {:.2} | {:.2}x |",
                                g(full),
                                g(half),
                                full / half
                            );
                            println!(
                                "RESULT f16 n={n} form={form:?} kernels={family} f32={:.2} f16={:.2}",
                                g(full),
                                g(half)
                            );
                        }
                    }
                }
            }
        }
    }
    if want("step") {
        let n = 30_000_000u32;
        let g = gpu.buffer_from(&vec![1e-3f32; n as usize], "g").unwrap();
        let w = gpu.zeros_f32(n as usize, "w").unwrap();
        let m = gpu.zeros_f32(n as usize, "m").unwrap();
        let v = gpu.zeros_f32(n as usize, "v").unwrap();
        let partials = gpu.zeros_f32(n.div_ceil(4096) as usize, "partials").unwrap();
        let scalars = gpu.zeros_f32(4, "scalars").unwrap();
        let norm = time(&gpu, 3, |b| {
            let count = k.sum_squares(b, g.all(), 0, n, partials.all(), 0);
            k.sum(b, partials.all(), count, 1.0, scalars.all(), 0);
        });
        let p =
            AdamWParams { n, lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, bc1: 0.1, bc2: 0.05, ..Default::default() };
        let adam = time(&gpu, 3, |b| k.adamw(b, [g.all(), scalars.all(), w.all(), m.all(), v.all()], &p));
        let gelu = time(&gpu, 3, |b| k.gelu_forward(b, g.all(), w.all(), n));
        println!(
            "over {n} floats: gradient norm {:.0} ms, AdamW {:.0} ms, GELU {:.0} ms",
            norm * 1e3,
            adam * 1e3,
            gelu * 1e3
        );
    }
    if want("reduce") {
        // The kernels that sum over a workgroup, compiled after each prelude the device runs:
        // the gradient norm over 30M floats, and the loss (logsumexp, max and sum over the row)
        // and top-8 of 64 rows of GPT-2's vocabulary.
        let n = 30_000_000u32;
        let (rows, vocab) = (64u32, 50257u32);
        let g = gpu.buffer_from(&vec![1e-3f32; n as usize], "g").unwrap();
        let partials = gpu.zeros_f32(n.div_ceil(4096) as usize, "partials").unwrap();
        let scalars = gpu.zeros_f32(4, "scalars").unwrap();
        let logits: Vec<f32> = (0..rows * vocab).map(|i| ((i % 977) as f32) * 1e-3).collect();
        let logits = gpu.buffer_from(&logits, "logits").unwrap();
        let targets = gpu.buffer_from(&vec![7u32; rows as usize], "targets").unwrap();
        let losses = gpu.zeros_f32(rows as usize, "losses").unwrap();
        let ids = gpu.buffer_from(&vec![0u32; rows as usize * 8], "ids").unwrap();
        let logprobs = gpu.zeros_f32(rows as usize * 8, "logprobs").unwrap();
        let offered = Reduction::for_gpu(&gpu);
        println!("| reduction | gradient norm, 30M floats | loss, 64 x 50257 | top-8, 64 x 50257 |");
        println!("|---|---|---|---|");
        let mut tree: Option<[f64; 3]> = None;
        for reduction in [Reduction::Tree, Reduction::Subgroup] {
            if reduction == Reduction::Subgroup && offered != Reduction::Subgroup {
                println!("| subgroup | adapter lacks SUBGROUP | | |");
                continue;
            }
            let k = Kernels::new(&gpu, reduction).unwrap();
            let norm = time(&gpu, 5, |b| {
                let count = k.sum_squares(b, g.all(), 0, n, partials.all(), 0);
                k.sum(b, partials.all(), count, 1.0, scalars.all(), 0);
            });
            // write_grad off: the logits stay as they are for every round.
            let p = CrossEntropyParams { rows, vocab, k: 8, scale: 1.0, ..Default::default() };
            let loss = time(&gpu, 5, |b| {
                b.dispatch_with(&k.cross_entropy, &[targets.all(), logits.all(), losses.all()], [rows, 1, 1], &p);
            });
            let top = time(&gpu, 5, |b| {
                b.dispatch_with(&k.top_k, &[logits.all(), ids.all(), logprobs.all()], [rows, 1, 1], &p);
            });
            let times = [norm, loss, top];
            let cell = |i: usize| match tree {
                Some(t) => format!("{:.2} ms ({:.2}x the tree)", times[i] * 1e3, t[i] / times[i]),
                None => format!("{:.2} ms", times[i] * 1e3),
            };
            println!("| {reduction:?} | {} | {} | {} |", cell(0), cell(1), cell(2));
            println!(
                "RESULT reduce {reduction:?} norm_ms={:.3} loss_ms={:.3} topk_ms={:.3}",
                norm * 1e3,
                loss * 1e3,
                top * 1e3
            );
            tree.get_or_insert(times);
        }
    }
}
