//! `neuron-host train`, `eval` and `sample`: a model plugin on its own, without a subnet.
//!
//! `train` runs the miner's [`Trainer`] (the same step, learning-rate schedule, data stream and
//! checkpoints) over the training part of a dataset, and every `eval_every` steps estimates the loss on both parts with
//! [`estimate_loss`] (the same batches every time). `eval` runs that estimate on a saved model,
//! `sample` generates text with the model's forward pass.
//!
//! Output is for people (progress lines) or, with `--json`, one JSON object per line on stdout.

use std::{
    io::{IsTerminal, Write},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Instant,
};

use neuron_plugin_api::{OutputRequest, TokenBatch};
use serde_json::{json, Value};

use crate::{
    checkpoint::writer::{check_destination, load_with_fallback},
    config::Config,
    data::{Dataset, Tokenizer},
    error::{Error, Result},
    metrics::prometheus::Metrics,
    plugins::PluginModel,
    runtime::{
        checkpoints::{CheckpointPlan, MinerCheckpoint, PluginIdentity, Saver},
        plugin_set::PluginSet,
        schedule::LrSchedule,
        training::{estimate_loss, Estimate, EvalWindows, Trainer, TrainerSettings},
    },
};

/// Mixed into the seed of the evaluation sampler, so the batches a loss is estimated on are not
/// the first training batches.
pub const EVAL_SEED_SALT: u64 = 0xE7A1_5EED;

/// The evaluation sampler's seed for a run seeded with `seed`.
pub fn eval_seed(seed: u64) -> u64 {
    seed ^ EVAL_SEED_SALT
}

/// Where the model comes from: a plugin, its configuration section, a seed.
pub struct ModelSource {
    pub config: Config,
    /// The plugin's `preset` key, when given on the command line.
    pub preset: Option<String>,
    /// Seed of the model's initial weights (unless its config section sets one) and of the data
    /// stream.
    pub seed: u64,
    /// The model's whole configuration section, replacing the config file's, the preset and the
    /// seed (a checkpoint's saved configuration).
    pub section: Option<String>,
}

/// A model built from a plugin, with its tokenizer.
pub struct BuiltModel {
    pub plugins: PluginSet,
    pub model: PluginModel,
    pub vocab: u32,
    pub block_size: u32,
    pub tokenizer: Tokenizer,
    pub parameters: u64,
    /// The effective configuration the plugin reports (presets expanded).
    pub description_config: String,
    /// The plugin's version, saved in checkpoints.
    pub plugin_version: String,
}

impl ModelSource {
    /// Loads the plugin, opens the GPU and builds the model.
    pub fn build(&self) -> Result<BuiltModel> {
        self.build_with(&toml::Table::new())
    }

    /// [`Self::build`] with `overrides` set in the plugin's section over the config file's, the
    /// preset and the seed (an imported model's shape).
    pub fn build_with(&self, overrides: &toml::Table) -> Result<BuiltModel> {
        let plugins = PluginSet::load(&self.config, false)?;
        let gpu = plugins.open_gpu(&self.config)?;
        let mut table: toml::Table = plugins
            .model_section(&self.config, self.seed)?
            .parse()
            .map_err(|e| Error::Config(format!("[plugin.{}] is not valid TOML: {e}", plugins.model().name())))?;
        if let Some(preset) = &self.preset {
            table.insert("preset".into(), toml::Value::String(preset.clone()));
        }
        table.extend(overrides.clone());
        let section = match &self.section {
            Some(saved) => saved.clone(),
            None => toml::to_string(&table).unwrap_or_default(),
        };
        let model = plugins.model().new_model(&gpu, &section)?;
        let d = model.describe()?;
        let tokenizer = Tokenizer::from_name(d.tokenizer.as_str())?;
        if tokenizer.vocab_size() > d.vocab_size {
            return Err(Error::Config(format!(
                "plugin {} declares the {} tokenizer ({} ids) but a vocabulary of only {}; fix the plugin's configuration",
                plugins.model().name(),
                tokenizer.name(),
                tokenizer.vocab_size(),
                d.vocab_size
            )));
        }
        Ok(BuiltModel {
            vocab: d.vocab_size,
            block_size: d.block_size,
            tokenizer,
            parameters: d.parameters,
            description_config: d.config.to_string(),
            plugin_version: plugins.model().info().version.to_string(),
            plugins,
            model,
        })
    }
}

/// The training data and the validation data: a separate file, or the last `val_fraction` of
/// the dataset (nanoGPT's split: the same tokens on every run).
pub fn split_data(
    dataset: &str,
    val_dataset: Option<&str>,
    val_fraction: f64,
    config: &Config,
    tokenizer: Tokenizer,
    vocab: u32,
) -> Result<(Dataset, Dataset)> {
    let data = config.data.open(dataset, tokenizer, vocab)?;
    match val_dataset {
        Some(v) => Ok((data, config.data.open(v, tokenizer, vocab)?)),
        None => {
            if !(val_fraction > 0.0 && val_fraction < 1.0) {
                return Err(Error::Config(format!(
                    "--val-fraction must be between 0 and 1 (exclusive), got {val_fraction}; or pass --val-dataset PATH"
                )));
            }
            Ok(data.split(val_fraction))
        }
    }
}

/// Lines for people or JSON lines for programs, on stdout.
pub struct Output {
    pub json: bool,
    /// Rewrite the progress line in place (stdout is a terminal and not JSON).
    live: bool,
    /// A progress line is showing and needs a newline before the next permanent line.
    dirty: bool,
}

impl Output {
    pub fn new(json: bool) -> Self {
        Self { json, live: !json && std::io::stdout().is_terminal(), dirty: false }
    }

    /// A permanent line: `text` for people, `record` for programs.
    pub fn line(&mut self, text: &str, record: Value) {
        let mut out = std::io::stdout().lock();
        if self.json {
            let _ = writeln!(out, "{record}");
        } else {
            if self.dirty {
                let _ = write!(out, "\r\x1b[2K");
                self.dirty = false;
            }
            let _ = writeln!(out, "{text}");
        }
        let _ = out.flush();
    }

    /// A progress line: rewritten in place on a terminal, printed when `permanent` otherwise.
    pub fn progress(&mut self, text: &str, record: Value, permanent: bool) {
        if self.live {
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "\r\x1b[2K{text}");
            let _ = out.flush();
            self.dirty = true;
        } else if permanent {
            self.line(text, record);
        }
    }

    pub fn finish(&mut self) {
        if self.dirty {
            println!();
            self.dirty = false;
        }
    }
}

/// What `train` does.
pub struct TrainOptions {
    pub dataset: String,
    pub val_dataset: Option<String>,
    pub val_fraction: f64,
    /// Steps to train to (a global step count: a resumed run stops at the same step).
    pub steps: u64,
    pub batch_size: u32,
    /// Tokens per sequence (None: the model's context).
    pub sequence_length: Option<u32>,
    pub schedule: LrSchedule,
    /// Estimate the losses every this many steps (0: only at the start and the end).
    pub eval_every: u64,
    pub eval_batches: u32,
    /// Print a training line every this many steps (0: only evaluations).
    pub log_every: u64,
    /// Checkpoint file (the miner's format); saved every `save_every` steps and at the end.
    pub checkpoint: Option<PathBuf>,
    /// Steps between saves (0: only at the end or when interrupted).
    pub save_every: u64,
    /// Continue from the checkpoint when it exists.
    pub resume: bool,
    /// Previous checkpoints kept beside it (`checkpoint.keep`).
    pub keep: usize,
}

/// What `train` ended with.
#[derive(Clone, Debug, Default)]
pub struct TrainReport {
    pub step: u64,
    pub train_loss: f64,
    pub val_loss: f64,
}

/// The warm-up of a `train` run of `steps` steps: `--warmup` as given (refused, naming both
/// flags, when it is longer than the run), else the configured one (`miner.warmup_steps`) capped
/// to a tenth of a run shorter than it, with a note, so `train --steps 12` just works.
pub fn warmup_for(flag: Option<u64>, configured: u64, steps: u64) -> Result<u64> {
    match flag {
        Some(w) if w > steps => Err(Error::Config(format!(
            "--warmup {w} is longer than the run (--steps {steps}); pass a --warmup of at most {steps}"
        ))),
        Some(w) => Ok(w),
        None if configured > steps => {
            let capped = steps / 10;
            eprintln!(
                "note: the configured warm-up (miner.warmup_steps = {configured}) is longer than --steps {steps}; warming up for {capped} steps (pass --warmup to choose)"
            );
            Ok(capped)
        }
        None => Ok(configured),
    }
}

/// Trains a model plugin on a dataset.
pub fn train(source: &ModelSource, options: &TrainOptions, out: &mut Output) -> Result<TrainReport> {
    options
        .schedule
        .validate()
        .map_err(|e| Error::Config(format!("learning-rate schedule: {e} (--lr, --min-lr, --warmup)")))?;
    if options.steps == 0 {
        return Err(Error::Config("--steps must be at least 1".into()));
    }
    if options.batch_size == 0 {
        return Err(Error::Config("--batch-size must be at least 1".into()));
    }
    // Before the plugin loads and anything trains: a run that cannot save would lose its work.
    if let Some(path) = &options.checkpoint {
        check_destination(path)
            .map_err(|e| Error::Config(format!("--checkpoint: {e}; choose another --checkpoint path")))?;
    }
    let BuiltModel { plugins, mut model, vocab, block_size, tokenizer, parameters, plugin_version, .. } =
        source.build()?;
    let seq = options.sequence_length.unwrap_or(block_size);
    if seq == 0 || seq > block_size {
        return Err(Error::Config(format!(
            "--seq-len {seq} must be between 1 and the model's context of {block_size} tokens"
        )));
    }
    let (train_data, val_data) = split_data(
        &options.dataset,
        options.val_dataset.as_deref(),
        options.val_fraction,
        &source.config,
        tokenizer,
        vocab,
    )?;
    let batch = options.batch_size;
    let settings = TrainerSettings {
        schedule: options.schedule,
        batch_size: batch,
        sequence_length: seq,
        seed: source.seed,
        noise: 0.0,
    };
    let mut trainer = Trainer::new("train", "--seq-len", settings, vocab, block_size);
    let live = PluginIdentity::of(&model, &plugin_version)?;
    let plan = options.checkpoint.as_ref().map(|path| CheckpointPlan {
        path: path.clone(),
        every: options.save_every,
        resume: options.resume,
        keep: options.keep,
        plugin_version: plugin_version.clone(),
    });
    if let Some(plan) = &plan {
        if let Some(c) = plan.resume_miner(&mut model)? {
            if c.data.sampler.seed != source.seed {
                return Err(Error::Config(format!(
                    "{} was trained with seed {}, this run has seed {}; pass --seed {} to continue it, or --no-resume",
                    plan.path.display(),
                    c.data.sampler.seed,
                    source.seed,
                    c.data.sampler.seed
                )));
            }
            if c.schedule != options.schedule {
                out.line(
                    &format!(
                        "note: the checkpoint was trained with the learning-rate schedule {:?}; this run's {:?} is followed from step {}",
                        c.schedule, options.schedule, c.global_step
                    ),
                    json!({"event": "note", "schedule": options.schedule, "saved": c.schedule}),
                );
            }
            trainer.resume(c.global_step, c.data, None);
            out.line(
                &format!("resumed from {} at step {}", plan.path.display(), c.global_step),
                json!({"event": "resumed", "step": c.global_step, "path": plan.path.display().to_string()}),
            );
        }
        trainer.save_with(
            Saver::new(plan.path.clone(), plan.keep, Arc::new(Metrics::new()), "train"),
            options.save_every,
            live,
        );
    }
    let mut step = trainer.global_step();
    let schedule = options.schedule;
    let save = |trainer: &mut Trainer, model: &mut PluginModel, out: &mut Output| {
        if let Some(step) = trainer.save_now(model) {
            let saver = trainer.saver().expect("a trainer that saved has a saver");
            // What is on disk so far, and how many requests a newer one replaced while the
            // writer was busy (saves slower than the interval).
            let (saved, superseded) = (saver.written(), saver.superseded());
            out.line(
                &format!("checkpoint at step {step} -> {}", saver.path().display()),
                json!({"event": "checkpoint", "step": step, "path": saver.path().display().to_string(),
                       "saved": saved, "superseded": superseded}),
            );
        }
    };
    out.line(
        &format!(
            "training {} ({} parameters) on {} ({} tokens), validating on {} ({} tokens); batch {batch} x {seq} tokens, {} steps",
            plugins.model().name(),
            parameters,
            train_data.source(),
            train_data.len(),
            val_data.source(),
            val_data.len(),
            options.steps
        ),
        json!({
            "event": "start", "plugin": plugins.model().name(), "parameters": parameters,
            "train_data": train_data.source(), "train_tokens": train_data.len(),
            "val_data": val_data.source(), "val_tokens": val_data.len(),
            "batch_size": batch, "sequence_length": seq, "steps": options.steps, "start_step": step,
            "seed": source.seed, "schedule": schedule,
        }),
    );
    let stop = interrupt_flag();
    let windows = EvalWindows::Sampled { seed: eval_seed(source.seed), batches: options.eval_batches.max(1) };
    let started = Instant::now();
    let mut report = TrainReport { step, ..TrainReport::default() };
    // Throughput since the last evaluation: tokens trained and the time spent training them.
    let (mut window_tokens, mut window_secs) = (0u64, 0f64);
    let evaluate = |model: &mut PluginModel,
                    step: u64,
                    window_tokens: &mut u64,
                    window_secs: &mut f64,
                    out: &mut Output|
     -> Result<(f64, f64)> {
        let eval_started = Instant::now();
        let tr: Estimate = estimate_loss(model, &train_data, windows, batch, seq)?;
        let va: Estimate = estimate_loss(model, &val_data, windows, batch, seq)?;
        let tps = if *window_secs > 0.0 { *window_tokens as f64 / *window_secs } else { 0.0 };
        out.line(
            &format!(
                "step {step:>6}  train loss {:.4}  val loss {:.4}  (ppl {:.2})  {}  [{:.1}s]",
                tr.loss,
                va.loss,
                va.perplexity(),
                if *window_tokens > 0 { format!("{tps:.0} tok/s") } else { "no steps yet".into() },
                started.elapsed().as_secs_f64()
            ),
            json!({
                "event": "eval", "step": step, "train_loss": tr.loss, "val_loss": va.loss,
                "val_perplexity": va.perplexity(), "eval_tokens": va.tokens, "tokens_per_s": tps,
                "eval_s": eval_started.elapsed().as_secs_f64(), "elapsed_s": started.elapsed().as_secs_f64(),
            }),
        );
        *window_tokens = 0;
        *window_secs = 0.0;
        Ok((tr.loss, va.loss))
    };
    let mut last_eval = None;
    let mut interrupted = false;
    if step < options.steps || step == 0 {
        let (t, v) = evaluate(&mut model, step, &mut window_tokens, &mut window_secs, out)?;
        report = TrainReport { step, train_loss: t, val_loss: v };
        last_eval = Some(step);
    }
    while step < options.steps {
        if stop.load(Ordering::Acquire) {
            out.finish();
            out.line(&format!("interrupted at step {step}"), json!({"event": "interrupted", "step": step}));
            interrupted = true;
            break;
        }
        let b = trainer.next_batch(&train_data)?;
        let done = trainer.train_on(&mut model, &b)?;
        if !done.loss.is_finite() {
            return Err(Error::Data(format!(
                "the training loss became {} at step {step}; lower the learning rate (--lr) or raise the warm-up (--warmup)",
                done.loss
            )));
        }
        step = done.step;
        window_tokens += done.tokens;
        window_secs += done.seconds;
        let tps = done.tokens_per_second();
        let permanent = options.log_every > 0 && step.is_multiple_of(options.log_every);
        out.progress(
            &format!("step {step:>6}/{}  loss {:.4}  lr {:.2e}  {tps:.0} tok/s", options.steps, done.loss, done.lr),
            json!({
                "event": "train", "step": step, "loss": done.loss, "lr": done.lr,
                "grad_norm": done.grad_norm, "tokens_per_s": tps, "step_s": done.seconds,
            }),
            permanent,
        );
        if (options.eval_every > 0 && step.is_multiple_of(options.eval_every)) || step == options.steps {
            let (t, v) = evaluate(&mut model, step, &mut window_tokens, &mut window_secs, out)?;
            report = TrainReport { step, train_loss: t, val_loss: v };
            last_eval = Some(step);
        }
        // (Not at the last step: the final save below covers it.)
        if step < options.steps && trainer.save_due() {
            save(&mut trainer, &mut model, out);
        }
    }
    // The last state is saved whether the run finished or was interrupted, and is on disk
    // before the job reports success.
    save(&mut trainer, &mut model, out);
    if let Some(path) = trainer.saver().map(|s| s.path().to_path_buf()) {
        let finished = trainer.finish_saves().expect("a trainer with a saver finishes it");
        if finished.written != Some(step) {
            let why = finished.last_error.unwrap_or_else(|| "no error recorded".into());
            let fix = if why.contains("No space left") {
                "free space on that disk or choose another --checkpoint path"
            } else {
                "choose another --checkpoint path"
            };
            return Err(Error::Config(format!(
                "cannot save the checkpoint {} at step {step}: {why}; {fix} and run again",
                path.display()
            )));
        }
    }
    if last_eval != Some(step) {
        let (t, v) = evaluate(&mut model, step, &mut window_tokens, &mut window_secs, out)?;
        report = TrainReport { step, train_loss: t, val_loss: v };
    }
    out.finish();
    out.line(
        &format!(
            "done: step {}  val loss {:.4}  in {:.1}s",
            report.step,
            report.val_loss,
            started.elapsed().as_secs_f64()
        ),
        json!({
            "event": "done", "step": report.step, "train_loss": report.train_loss, "val_loss": report.val_loss,
            "elapsed_s": started.elapsed().as_secs_f64(),
        }),
    );
    if interrupted {
        // Not finished: a script running `train && eval` must not go on.
        return Err(Error::Interrupted(match &options.checkpoint {
            Some(p) => format!(
                "interrupted at step {step} of {}; saved in {}: run the same command again to continue",
                options.steps,
                p.display()
            ),
            None => format!(
                "interrupted at step {step} of {}; nothing was saved (pass --checkpoint FILE to be able to continue)",
                options.steps
            ),
        }));
    }
    Ok(report)
}

/// A flag set by the first Ctrl-C or SIGTERM (the job then stops after the current step); a
/// second one exits at once.
fn interrupt_flag() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let spawned = std::thread::Builder::new().name("interrupts".into()).spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        rt.block_on(async move {
            let mut interrupts = super::run::Interrupts::new();
            loop {
                interrupts.next().await;
                if flag.swap(true, Ordering::AcqRel) {
                    eprintln!("interrupted twice: exiting without finishing the step");
                    std::process::exit(130);
                }
                eprintln!("stopping after the current step (Ctrl-C again to exit at once)");
            }
        });
    });
    if let Err(e) = spawned {
        tracing::warn!(target: "neuron_host::train", "cannot watch for Ctrl-C ({e}); it will stop the job at once");
    }
    stop
}

/// What `eval` measures.
pub struct EvalOptions {
    pub dataset: String,
    /// Evaluate only the last `val_fraction` of the dataset (the validation part `train` split
    /// off); 0: all of it.
    pub val_fraction: f64,
    /// Sampled batches (None: every token once, in consecutive windows).
    pub batches: Option<u32>,
    pub batch_size: u32,
    pub sequence_length: Option<u32>,
}

/// Mean cross-entropy and perplexity of a model over a dataset.
pub fn eval(model: &mut BuiltModel, source: &ModelSource, options: &EvalOptions, out: &mut Output) -> Result<Estimate> {
    let seq = options.sequence_length.unwrap_or(model.block_size);
    if seq == 0 || seq > model.block_size {
        return Err(Error::Config(format!(
            "--seq-len {seq} must be between 1 and the model's context of {} tokens",
            model.block_size
        )));
    }
    if options.batch_size == 0 {
        return Err(Error::Config("--batch-size must be at least 1".into()));
    }
    let data = source.config.data.open(&options.dataset, model.tokenizer, model.vocab)?;
    let data = if options.val_fraction > 0.0 {
        if options.val_fraction >= 1.0 {
            return Err(Error::Config(format!(
                "--val-fraction must be below 1, got {}; 0 evaluates the whole dataset",
                options.val_fraction
            )));
        }
        data.split(options.val_fraction).1
    } else {
        data
    };
    let windows = match options.batches {
        Some(0) => {
            return Err(Error::Config("--batches must be at least 1 (leave it out for the whole dataset)".into()))
        }
        Some(n) => EvalWindows::Sampled { seed: eval_seed(source.seed), batches: n },
        None => EvalWindows::Whole,
    };
    let started = Instant::now();
    let e = estimate_loss(&mut model.model, &data, windows, options.batch_size, seq)?;
    let secs = started.elapsed().as_secs_f64();
    out.line(
        &format!(
            "{}: loss {:.4} nats/token, perplexity {:.3} over {} tokens in {} batches ({:.0} tok/s)",
            data.source(),
            e.loss,
            e.perplexity(),
            e.tokens,
            e.batches,
            e.tokens as f64 / secs.max(1e-9)
        ),
        json!({
            "event": "eval", "data": data.source(), "loss": e.loss, "perplexity": e.perplexity(),
            "tokens": e.tokens, "batches": e.batches, "batch_size": options.batch_size, "sequence_length": seq,
            "eval_s": secs,
        }),
    );
    Ok(e)
}

/// How `sample` picks tokens.
#[derive(Clone, Debug)]
pub struct SampleOptions {
    pub prompt: String,
    pub tokens: u32,
    /// Softmax temperature; 0 takes the most likely token every time.
    pub temperature: f64,
    /// Sample among the `top_k` most likely tokens only (None: all).
    pub top_k: Option<u32>,
    pub seed: u64,
}

/// A small seeded generator (splitmix64) for sampling.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Picks the next token from one row of logits.
pub fn pick(logits: &[f32], temperature: f64, top_k: Option<u32>, u: f64) -> u32 {
    let argmax = || {
        let mut best = 0;
        for (i, &l) in logits.iter().enumerate() {
            if l > logits[best] {
                best = i;
            }
        }
        best as u32
    };
    if temperature <= 0.0 {
        return argmax();
    }
    let mut order: Vec<u32> = (0..logits.len() as u32).collect();
    if let Some(k) = top_k {
        let k = (k as usize).clamp(1, logits.len());
        // Highest first; ties keep the lower id first.
        order.sort_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]).then(a.cmp(&b)));
        order.truncate(k);
    }
    let max = order.iter().map(|&i| f64::from(logits[i as usize])).fold(f64::NEG_INFINITY, f64::max);
    let weights: Vec<f64> =
        order.iter().map(|&i| ((f64::from(logits[i as usize]) - max) / temperature).exp()).collect();
    let total: f64 = weights.iter().sum();
    let mut target = u * total;
    for (&id, &w) in order.iter().zip(&weights) {
        if target < w {
            return id;
        }
        target -= w;
    }
    *order.last().unwrap_or(&0)
}

/// Generates `tokens` tokens after the prompt, streaming each as it comes. Returns the ids.
pub fn sample(model: &mut BuiltModel, options: &SampleOptions, out: &mut Output) -> Result<Vec<u32>> {
    if !(options.temperature.is_finite() && options.temperature >= 0.0) {
        return Err(Error::Config(format!(
            "--temperature must be 0 (always the most likely token) or positive, got {}",
            options.temperature
        )));
    }
    if options.top_k == Some(0) {
        return Err(Error::Config("--top-k must be at least 1 (leave it out to sample from every token)".into()));
    }
    let mut context = model.tokenizer.encode(&options.prompt);
    if context.is_empty() {
        return Err(Error::Config(
            "the prompt is empty after tokenization; pass --prompt TEXT (the default is a newline)".into(),
        ));
    }
    if let Some(bad) = context.iter().find(|&&t| t >= model.vocab) {
        return Err(Error::Config(format!("prompt token {bad} is outside the model's vocabulary of {}", model.vocab)));
    }
    let mut rng = Rng(options.seed);
    let mut generated: Vec<u32> = Vec::with_capacity(options.tokens as usize);
    let mut shown = 0usize; // bytes of the decoded text already written
    if !out.json {
        print!("{}", options.prompt);
        let _ = std::io::stdout().flush();
    }
    let started = Instant::now();
    for i in 0..options.tokens {
        let window = &context[context.len().saturating_sub(model.block_size as usize)..];
        let o = model
            .model
            .forward(TokenBatch::new(1, window.len() as u32, window), OutputRequest::logits().last_only())?;
        let row = o.logits.as_slice();
        if row.len() != model.vocab as usize {
            return Err(Error::Config(format!(
                "plugin {} returned {} logits for the last position, expected its vocabulary of {}",
                model.model.plugin(),
                row.len(),
                model.vocab
            )));
        }
        let id = pick(row, options.temperature, options.top_k, rng.next_f64());
        context.push(id);
        generated.push(id);
        // Decode what has come so far, holding back an incomplete UTF-8 sequence at the end.
        let text = model.tokenizer.decode(&generated)?;
        let settled = text.trim_end_matches('\u{FFFD}').len().max(shown);
        let delta = &text[shown..settled];
        if out.json {
            out.line("", json!({"event": "token", "index": i, "id": id, "text": delta}));
        } else if !delta.is_empty() {
            print!("{delta}");
            let _ = std::io::stdout().flush();
        }
        shown = settled;
    }
    let text = model.tokenizer.decode(&generated)?;
    let secs = started.elapsed().as_secs_f64();
    if out.json {
        out.line(
            "",
            json!({
                "event": "done", "prompt": options.prompt, "text": text, "ids": generated,
                "tokens_per_s": generated.len() as f64 / secs.max(1e-9),
            }),
        );
    } else {
        println!("{}", &text[shown..]);
        eprintln!("{} tokens in {:.2}s ({:.1} tok/s)", generated.len(), secs, generated.len() as f64 / secs.max(1e-9));
    }
    Ok(generated)
}

/// The plugin library to load for a model: `--plugin` when given.
pub fn plugin_paths(plugin: Option<PathBuf>) -> Result<Vec<PathBuf>> {
    plugin.map(|p| vec![p]).ok_or_else(|| {
        Error::Config("no model plugin given: pass --plugin PATH (for example target/release/libgpt.so)".into())
    })
}

/// Loads a checkpoint file (the previous one when the current one is damaged) as a value.
pub fn load_checkpoint(path: &Path) -> Result<crate::checkpoint::pickle::Value> {
    match load_with_fallback(path) {
        Ok(Some((value, _))) => Ok(value),
        Ok(None) => Err(Error::Config(format!(
            "{}: no such checkpoint; write one with `neuron-host train --checkpoint {}`",
            path.display(),
            path.display()
        ))),
        Err(e) => Err(Error::Config(format!("cannot read the checkpoint: {e}"))),
    }
}

/// Reads a checkpoint `train` or a miner saved (the previous file when the current one is
/// damaged), without a model yet.
pub fn read_checkpoint(path: &Path) -> Result<MinerCheckpoint> {
    MinerCheckpoint::from_owned(load_checkpoint(path)?).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
}

/// The library of plugin `name` beside the executable (`libgpt.so` for `gpt`), for a checkpoint
/// read without `--plugin`.
pub fn plugin_beside_executable(name: &str) -> Result<PathBuf> {
    let file = format!("{}{}{}", std::env::consts::DLL_PREFIX, name.replace('-', "_"), std::env::consts::DLL_SUFFIX);
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join(&file)))
        .filter(|p| p.is_file())
        .ok_or_else(|| {
            Error::Config(format!(
                "the checkpoint's model comes from plugin `{name}` and there is no {file} beside the executable; pass --plugin PATH"
            ))
        })
}

/// Builds the model a checkpoint was saved from (its saved configuration) and loads its weights.
pub fn restore_model(checkpoint: &mut MinerCheckpoint, path: &Path, source: &ModelSource) -> Result<BuiltModel> {
    let mut built = source.build()?;
    let live = PluginIdentity::of(&built.model, &built.plugin_version)?;
    checkpoint.check(&built.model, &live).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    checkpoint.apply(&mut built.model)?;
    Ok(built)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temperature_zero_and_top_one_take_the_argmax() {
        let logits = [0.1f32, 2.0, -1.0, 1.9];
        for u in [0.0, 0.3, 0.999] {
            assert_eq!(pick(&logits, 0.0, None, u), 1);
            assert_eq!(pick(&logits, 5.0, Some(1), u), 1);
        }
    }

    #[test]
    fn sampling_follows_the_softmax_and_top_k_cuts_the_tail() {
        // Probabilities at temperature 1: softmax of ln(1), ln(2), ln(7) = 0.1, 0.2, 0.7.
        let logits = [0f32, 2f32.ln(), 7f32.ln()];
        assert_eq!(pick(&logits, 1.0, None, 0.05), 0);
        assert_eq!(pick(&logits, 1.0, None, 0.15), 1);
        assert_eq!(pick(&logits, 1.0, None, 0.5), 2);
        // Top-2 keeps ids 2 and 1 (7/9 and 2/9), the most likely first.
        assert_eq!(pick(&logits, 1.0, Some(2), 0.7), 2);
        assert_eq!(pick(&logits, 1.0, Some(2), 0.8), 1);
        let mut rng = Rng(3);
        let n = 20_000;
        let ones = (0..n).filter(|_| pick(&logits, 1.0, None, rng.next_f64()) == 1).count();
        assert!((ones as f64 / n as f64 - 0.2).abs() < 0.02, "{ones}");
    }

    #[test]
    fn a_short_run_caps_the_configured_warm_up_and_refuses_a_longer_flag() {
        assert_eq!(warmup_for(None, 20, 12).unwrap(), 1, "a tenth of the run");
        assert_eq!(warmup_for(None, 20, 1000).unwrap(), 20);
        assert_eq!(warmup_for(Some(5), 20, 12).unwrap(), 5);
        let e = warmup_for(Some(50), 20, 12).unwrap_err().to_string();
        assert!(e.contains("--warmup 50") && e.contains("--steps 12"), "{e}");
    }
}
