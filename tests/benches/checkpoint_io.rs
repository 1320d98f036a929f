//! Checkpoint save and restore speed against the disk's own sequential write
//! speed, and training step time while a save is in flight against without.
//!
//! 1. For the GPT `nano` and `gpt2` (124M) states — model, Adam's two moments
//!    and the step, with the plugin's exact tensor names and shapes, filled
//!    with synthetic values (building and training gpt2 on a software GPU is
//!    impractical; the bytes written are the same) — the runtime's
//!    `save_atomically` of the value the loop hands over (temp file, fsync,
//!    `.prev`, rename, directory fsync) and `load_with_fallback` +
//!    `MinerCheckpoint::from_value`, against writing the same number of bytes
//!    to a file in the same directory with 1 MiB writes and one fsync (each
//!    round's pair gives a ratio; the median is quoted). The deletion of the
//!    checkpoint that drops out of the kept ones, which the writer does after
//!    reporting the save, is timed apart, as the baseline's own deletion is
//!    not timed. With what building the value costs the loop (`MinerCheckpoint::to_value`) and
//!    what encoding alone costs the writer (into a sink, no disk).
//! 2. The real GPT plugin (`nano`) training: median step time with no save,
//!    and with the gpt2-sized save running on the writer thread the whole time
//!    (re-requested whenever one finishes); plus what the loop itself pays per
//!    snapshot (`MinerCheckpoint::capture`: GPU read-back of model and optimizer).
//!
//! Run: `cargo bench -p neuron-e2e --bench checkpoint_io` (NEURON_BENCH_DIR
//! picks the disk, default the system temp dir; NEURON_BENCH_PART=io or
//! =train runs one part). Numbers go to BENCHMARKS.md.

use std::{
    io::Write,
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use neuron_e2e::{gpu, plugin, probe};
use neuron_host::{
    checkpoint::writer::{load_with_fallback, save_atomically},
    data::{BatchSampler, SamplerState},
    metrics::prometheus::Metrics,
    plugins::LoadedPlugin,
    runtime::{
        checkpoints::{DataPosition, MinerCheckpoint, PluginIdentity, Saver},
        schedule::LrSchedule,
    },
};
use neuron_plugin_api::{Tensor, TokenBatch};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The GPT plugin's parameter names and shapes for (layers, embd, context, vocab).
fn gpt_shapes(l: u64, c: u64, t: u64, v: u64) -> Vec<(String, Vec<u64>)> {
    let mut s = vec![("transformer.wte.weight".to_string(), vec![v, c]), ("transformer.wpe.weight".into(), vec![t, c])];
    for i in 0..l {
        let p = format!("transformer.h.{i}.");
        for (n, shape) in [
            ("ln_1.weight", vec![c]),
            ("ln_1.bias", vec![c]),
            ("attn.c_attn.weight", vec![3 * c, c]),
            ("attn.c_attn.bias", vec![3 * c]),
            ("attn.c_proj.weight", vec![c, c]),
            ("attn.c_proj.bias", vec![c]),
            ("ln_2.weight", vec![c]),
            ("ln_2.bias", vec![c]),
            ("mlp.c_fc.weight", vec![4 * c, c]),
            ("mlp.c_fc.bias", vec![4 * c]),
            ("mlp.c_proj.weight", vec![c, 4 * c]),
            ("mlp.c_proj.bias", vec![c]),
        ] {
            s.push((format!("{p}{n}"), shape));
        }
    }
    s.push(("transformer.ln_f.weight".into(), vec![c]));
    s.push(("transformer.ln_f.bias".into(), vec![c]));
    s
}

fn synthetic(shapes: &[(String, Vec<u64>)]) -> MinerCheckpoint {
    let tensor = |name: String, shape: &[u64], x: f32| {
        let n = shape.iter().product::<u64>() as usize;
        Tensor::f32(name, shape, &vec![x; n])
    };
    let model = shapes.iter().map(|(n, s)| tensor(n.clone(), s, 0.02)).collect();
    let mut optimizer: Vec<Tensor> = shapes.iter().map(|(n, s)| tensor(format!("{n}.exp_avg"), s, 1e-3)).collect();
    optimizer.extend(shapes.iter().map(|(n, s)| tensor(format!("{n}.exp_avg_sq"), s, 1e-6)));
    optimizer.push(Tensor::i64_scalar("step", 1000));
    MinerCheckpoint {
        plugin: PluginIdentity {
            name: "gpt".into(),
            version: "0.1.0".into(),
            architecture: "gpt".into(),
            config: String::new(),
        },
        model,
        optimizer,
        schedule: LrSchedule::default(),
        global_step: 1000,
        data: DataPosition { sampler: SamplerState { seed: 1, step: 1000 }, noise_state: 0 },
    }
}

fn bytes_of(c: &MinerCheckpoint) -> u64 {
    c.model.iter().chain(&c.optimizer).map(|t| t.data.len() as u64).sum()
}

/// Seconds to write `bytes` sequentially (1 MiB writes) and fsync.
fn sequential_write(dir: &Path, bytes: u64) -> f64 {
    let path = dir.join("sequential.bin");
    let block = vec![0x5au8; 1 << 20];
    let started = Instant::now();
    let mut f = std::fs::File::create(&path).unwrap();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        f.write_all(&block[..n]).unwrap();
        left -= n as u64;
    }
    f.sync_all().unwrap();
    let s = started.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(&path).unwrap();
    s
}

/// A `Write + Seek` that keeps nothing: the encoder's own cost, without the disk.
struct Sink(u64, u64);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        self.1 = self.1.max(self.0);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl std::io::Seek for Sink {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        self.0 = match pos {
            std::io::SeekFrom::Start(n) => n,
            std::io::SeekFrom::End(d) => (self.1 as i64 + d) as u64,
            std::io::SeekFrom::Current(d) => (self.0 as i64 + d) as u64,
        };
        Ok(self.0)
    }
}

fn save_restore(name: &str, c: &MinerCheckpoint, dir: &Path, rounds: usize) {
    let path = dir.join(format!("{name}_checkpoint.pth"));
    let bytes = bytes_of(c);
    let (mut disk, mut build, mut encode, mut save, mut load) = (vec![], vec![], vec![], vec![], vec![]);
    // Each round's save against the bare write just before it: the pair shares the disk's mood.
    let (mut ratio, mut retire) = (vec![], vec![]);
    let mut file_bytes = 0;
    for _ in 0..rounds {
        disk.push(sequential_write(dir, bytes));
        // What the loop's thread pays after the GPU read-back: the value handed to the writer
        // (the exported tensors move into it).
        let owned = c.clone();
        let started = Instant::now();
        let value = owned.into_value();
        build.push(started.elapsed().as_secs_f64());
        // The writer thread's CPU work alone: pickle, zip framing and CRC-32 into a sink.
        let started = Instant::now();
        neuron_host::checkpoint::pth::save(&value, "bench", Sink(0, 0)).unwrap();
        encode.push(started.elapsed().as_secs_f64());
        // The writer thread's whole save: temp file, fsync, .prev, rename, directory fsync.
        let started = Instant::now();
        let saved = save_atomically(&path, &value, 1).unwrap();
        save.push(started.elapsed().as_secs_f64());
        file_bytes = saved.size;
        // Then, on the writer thread after the save is reported, the checkpoint that dropped
        // out of the kept ones is deleted.
        let started = Instant::now();
        drop(saved);
        retire.push(started.elapsed().as_secs_f64());
        ratio.push(disk.last().unwrap() / save.last().unwrap() * file_bytes as f64 / bytes as f64);
        drop(value);
        let started = Instant::now();
        let (v, _) = load_with_fallback(&path).unwrap().unwrap();
        let back = MinerCheckpoint::from_owned(v).unwrap();
        load.push(started.elapsed().as_secs_f64());
        assert_eq!(back.model.len(), c.model.len());
    }
    let (disk, build, encode, save, load, ratio, retire) =
        (median(disk), median(build), median(encode), median(save), median(load), median(ratio), median(retire));
    let mb = |s: f64| file_bytes as f64 / s / 1e6;
    println!(
        "{name:5} {:>7.1} MB file: save {:.3} s ({:.0} MB/s), restore {:.3} s ({:.0} MB/s); sequential write {:.3} s ({:.0} MB/s); save/disk {:.2} (median of the rounds' ratios); then deleting the oldest {:.3} s; value built on the loop {:.3} s; encoding alone {:.3} s ({:.0} MB/s)",
        file_bytes as f64 / 1e6,
        save,
        mb(save),
        load,
        mb(load),
        disk,
        bytes as f64 / disk / 1e6,
        ratio,
        retire,
        build,
        encode,
        mb(encode),
    );
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(neuron_host::checkpoint::writer::prev_path(&path));
}

fn main() {
    std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir().join("neuron-host-no-display"));
    let base = std::env::var_os("NEURON_BENCH_DIR").map(std::path::PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(base).unwrap();
    println!("directory {}", dir.path().display());

    // NEURON_BENCH_PART=io or =train runs one part only.
    let part = std::env::var("NEURON_BENCH_PART").unwrap_or_default();
    // 1. Save and restore against the disk.
    let big = synthetic(&gpt_shapes(12, 768, 1024, 50257));
    if part != "train" {
        let nano = synthetic(&gpt_shapes(4, 128, 64, 256));
        save_restore("nano", &nano, dir.path(), 31);
        save_restore("gpt2", &big, dir.path(), 5);
    }
    if part == "io" {
        return;
    }

    // 2. Training with a save in flight.
    let gpu = gpu();
    let gpt = LoadedPlugin::load(&plugin("gpt")).unwrap();
    let mut model = gpt.new_model(&gpu, "preset = \"nano\"\nseed = 1\n").unwrap();
    let data = probe::dataset();
    let mut sampler = BatchSampler::new(1, 8, 64);
    let mut step = |model: &mut neuron_host::plugins::PluginModel| {
        let b = sampler.next_batch(&data).unwrap();
        let started = Instant::now();
        model.zero_grad().unwrap();
        model.loss(TokenBatch::new(b.batch, b.seq, &b.tokens), &b.targets).unwrap();
        model.backward().unwrap();
        model.step(1e-3).unwrap();
        started.elapsed().as_secs_f64()
    };
    for _ in 0..3 {
        step(&mut model);
    }
    let id = PluginIdentity::of(&model, &gpt.info().version).unwrap();
    let mut capture = vec![];
    for i in 0..5 {
        let started = Instant::now();
        let position = DataPosition { sampler: SamplerState { seed: 1, step: i }, noise_state: 0 };
        let v = MinerCheckpoint::capture(&mut model, &id, &LrSchedule::default(), i, position).unwrap();
        capture.push(started.elapsed().as_secs_f64());
        drop(v);
    }
    let value = big.to_value();
    drop(big);
    let saver_path = dir.path().join("inflight_checkpoint.pth");
    let mut saver = Saver::new(saver_path.clone(), 1, Arc::new(Metrics::new()), "bench");
    // Rounds of 8 steps without and 8 with, side by side; this shared VM drifts by more than the
    // effect between minutes, so the figure is the median of the rounds' own ratios.
    let (mut without, mut with, mut ratios) = (vec![], vec![], vec![]);
    let mut requested = 0u64;
    for _ in 0..5 {
        let (mut round_without, mut round_with) = (vec![], vec![]);
        for _ in 0..8 {
            round_without.push(step(&mut model));
        }
        for _ in 0..8 {
            if saver.written() == Some(requested) || requested == 0 {
                requested += 1;
                saver.request(Ok(value.clone()), requested);
                std::thread::sleep(Duration::from_millis(50)); // the writer has started
            }
            round_with.push(step(&mut model));
        }
        without.extend_from_slice(&round_without);
        with.extend_from_slice(&round_with);
        ratios.push(median(round_with) / median(round_without));
    }
    println!(
        "nano training step: {:.1} ms without a save, {:.1} ms with a gpt2-sized save in flight ({requested} saves): {:.3}x (median of 5 rounds' ratios; rounds {}); capture (GPU read-back, paid by the loop per snapshot) {:.1} ms",
        median(without) * 1e3,
        median(with) * 1e3,
        median(ratios.clone()),
        ratios.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>().join(" "),
        median(capture) * 1e3
    );
    saver.finish();
}
