//! The conformance suite: what every plugin must do, checked on the built library through the
//! real loader, as the host will load it.
//!
//! For a model:
//!
//! - **model builds**: the constructor takes the given configuration; `describe` gives a usable
//!   vocabulary, context, tokenizer and a configuration that parses as TOML.
//! - **forward**: logits of the declared shape, finite, the same on a second call; top-k ids and
//!   log-probabilities that are the logits' own (sorted, log-softmax), and `last_only` the last row.
//! - **loss agrees with forward**: `loss` is the mean cross-entropy of `forward`'s logits.
//! - **bad input is refused, not a panic**: tokens outside the vocabulary, a sequence longer than
//!   the context, targets outside the vocabulary, state of the wrong shape or with a tensor
//!   missing, gradients imported, an unknown state group, `backward` without a `loss` (each an error, or allowed where
//!   the contract allows it, never a panic), and the model unchanged afterwards.
//! - **gradients** (trainable models): [`check_model_gradients`] (exported gradients against
//!   central differences; `backward` accumulates).
//! - **overfits a tiny batch** (trainable models): a fixed batch of a token-to-token mapping, the
//!   loss at most half its starting value after the configured steps.
//! - **state round-trips**: a trained model's parameters and optimizer state, imported into a
//!   fresh model, give the same outputs and the same next training step; the exported tensors
//!   match `state_schema`.
//! - **deterministic** (unless declared otherwise): two models from one configuration hold the
//!   same parameters and train to the same losses.
//!
//! For a scorer: **scorer builds**, **ranks a better miner higher** (a miner that puts most
//! probability on the truth scores above one that misses it; a timeout and a malformed answer
//! score 0; scores follow the responses when they are reordered), **bad input is refused, not a
//! panic**, **state round-trips**, **deterministic**.
//!
//! Any call that panics fails its check with the panic's message: the guard kept the process
//! alive, but a plugin must return errors.

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::Arc,
};

use neuron_plugin_api::{
    DType, ErrorKind, MinerResponse, OutputRequest, PluginKinds, ResponseStatus, ScoringBatch, StateGroup, Tensor,
    TokenBatch,
};
use neuron_plugin_host::{
    loader::{LoadedPlugin, PluginModel, PluginScorer},
    Error as HostError, GpuDevice,
};

use crate::{
    gradcheck::{check_model_gradients, GradCheck},
    reference::{self, Rng},
};

/// What one check found.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Pass(String),
    Fail(String),
    Skip(String),
}

/// One named check and its outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    pub name: &'static str,
    pub outcome: Outcome,
}

/// Every check run on one plugin library.
#[derive(Clone, Debug)]
pub struct Report {
    pub library: PathBuf,
    /// The plugin's declared name, once it loaded.
    pub plugin: Option<String>,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.failures().next().is_none()
    }
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| matches!(c.outcome, Outcome::Fail(_)))
    }
    /// The outcome of the check called `name`.
    pub fn outcome(&self, name: &str) -> Option<&Outcome> {
        self.checks.iter().find(|c| c.name == name).map(|c| &c.outcome)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.plugin.as_deref().unwrap_or("?");
        writeln!(f, "conformance of plugin {name} ({})", self.library.display())?;
        for c in &self.checks {
            let (tag, text) = match &c.outcome {
                Outcome::Pass(t) => ("ok  ", t),
                Outcome::Fail(t) => ("FAIL", t),
                Outcome::Skip(t) => ("skip", t),
            };
            writeln!(f, "  {tag}  {}: {text}", c.name)?;
        }
        let failed = self.failures().count();
        if failed == 0 {
            write!(
                f,
                "  passed: {} checks",
                self.checks.iter().filter(|c| matches!(c.outcome, Outcome::Pass(_))).count()
            )
        } else {
            write!(f, "  FAILED: {failed} of {} checks", self.checks.len())
        }
    }
}

/// The suite, configured for one plugin library.
#[derive(Clone, Debug)]
pub struct Conformance {
    library: PathBuf,
    model_config: String,
    scorer_config: String,
    learning_rate: f32,
    overfit_steps: u32,
    deterministic: bool,
    gradients: GradCheck,
}

impl Conformance {
    /// The suite for the plugin library at `library` (see [`crate::cdylib`]).
    pub fn new(library: impl Into<PathBuf>) -> Self {
        Self {
            library: library.into(),
            model_config: String::new(),
            scorer_config: String::new(),
            learning_rate: 1e-2,
            overfit_steps: 40,
            deterministic: true,
            gradients: GradCheck::default(),
        }
    }
    /// The model's TOML section (default: empty, the plugin's defaults). Keep the model small:
    /// the suite trains it.
    pub fn model_config(mut self, toml: &str) -> Self {
        self.model_config = toml.to_string();
        self
    }
    /// The scorer's TOML section (default: empty).
    pub fn scorer_config(mut self, toml: &str) -> Self {
        self.scorer_config = toml.to_string();
        self
    }
    /// The learning rate the overfitting and round-trip steps use (default 1e-2, an Adam-scale
    /// rate; a plain-SGD model wants more).
    pub fn learning_rate(mut self, lr: f32) -> Self {
        self.learning_rate = lr;
        self
    }
    /// Steps the model gets to halve its loss on the tiny batch (default 40).
    pub fn overfit_steps(mut self, steps: u32) -> Self {
        self.overfit_steps = steps;
        self
    }
    /// The plugin does not promise that one configuration gives the same model and results.
    pub fn nondeterministic(mut self) -> Self {
        self.deterministic = false;
        self
    }
    /// How the gradient check samples and compares.
    pub fn gradient_check(mut self, options: GradCheck) -> Self {
        self.gradients = options;
        self
    }

    /// Runs every check on the test kit's device (or one opened with the plugin's GPU
    /// requirements when it declares any).
    pub fn run(&self) -> Report {
        self.run_with(None)
    }

    /// Runs every check; models and scorers get contexts on `gpu` when given.
    pub fn run_with(&self, gpu: Option<&Arc<GpuDevice>>) -> Report {
        match LoadedPlugin::load(&self.library) {
            Ok(plugin) => self.run_loaded(&plugin, gpu),
            Err(e) => Report {
                library: self.library.clone(),
                plugin: None,
                checks: vec![Check { name: "loads", outcome: Outcome::Fail(e.to_string()) }],
            },
        }
    }

    /// Runs every check after the loading on a plugin the caller has loaded through the same
    /// loader (as `neuron-host plugin check` does, having loaded them all to refuse duplicates).
    pub fn run_loaded(&self, plugin: &LoadedPlugin, gpu: Option<&Arc<GpuDevice>>) -> Report {
        let mut report = Report { library: plugin.path().to_path_buf(), plugin: None, checks: Vec::new() };
        let info = plugin.info().clone();
        report.plugin = Some(info.name.to_string());
        report.checks.push(Check {
            name: "loads",
            outcome: Outcome::Pass(format!(
                "{} {} ({}), plugin ABI {}",
                info.name,
                info.version,
                info.kinds.names().join(" + "),
                info.abi_version
            )),
        });
        let declared = if info.version.is_empty() {
            Err("declares no version; build it with `Plugin::new(..)` inside export_plugin!, which takes the crate's"
                .to_string())
        } else if info.description.trim().is_empty() || info.description.contains('\n') {
            Err(format!("its description must be one non-empty line, not {:?}", info.description.as_str()))
        } else {
            Ok(format!("{:?}", info.description.as_str()))
        };
        report.checks.push(Check { name: "declares itself", outcome: outcome(declared) });

        let device = match gpu {
            Some(g) => g.clone(),
            // The shared device has no plugin's features; one that asks for any gets its own.
            None => match crate::device_with(&info.name, &info.gpu) {
                Ok(d) => d,
                Err(e) => {
                    report.checks.push(Check { name: "GPU", outcome: Outcome::Fail(e.to_string()) });
                    return report;
                }
            },
        };
        if plugin.provides(PluginKinds::MODEL) {
            ModelChecks { suite: self, plugin, gpu: &device }.run(&mut report.checks);
        }
        if plugin.provides(PluginKinds::SCORER) {
            ScorerChecks { suite: self, plugin, gpu: &device }.run(&mut report.checks);
        }
        report
    }

    /// Runs the suite and panics with the report unless every check passed.
    #[track_caller]
    pub fn assert_passes(&self) -> Report {
        let report = self.run();
        assert!(report.passed(), "{report}");
        report
    }

    pub fn library(&self) -> &Path {
        &self.library
    }
}

fn push(checks: &mut Vec<Check>, name: &'static str, r: Result<String, String>) {
    checks.push(Check { name, outcome: outcome(r) });
}

fn skip(checks: &mut Vec<Check>, name: &'static str, why: &str) {
    checks.push(Check { name, outcome: Outcome::Skip(why.to_string()) });
}

fn outcome(r: Result<String, String>) -> Outcome {
    match r {
        Ok(t) => Outcome::Pass(t),
        Err(t) => Outcome::Fail(t),
    }
}

fn is_panic(e: &HostError) -> bool {
    matches!(e, HostError::Plugin { source, .. } if source.kind == ErrorKind::PANIC)
}

/// A host error as a check's reason; a panic says what to do instead.
fn why(e: HostError) -> String {
    if is_panic(&e) {
        format!("{e} (a plugin must return a PluginError, never panic)")
    } else {
        e.to_string()
    }
}

/// A call the contract requires to fail: it must return an error other than a panic.
fn refused<T>(what: &str, r: Result<T, HostError>) -> Result<(), String> {
    match r {
        Ok(_) => Err(format!("{what} was accepted; it must be refused with an error")),
        Err(e) if is_panic(&e) => Err(format!("{what}: {}", why(e))),
        Err(_) => Ok(()),
    }
}

/// A call that may succeed or fail, but must not panic.
fn no_panic<T>(what: &str, r: Result<T, HostError>) -> Result<(), String> {
    match r {
        Err(e) if is_panic(&e) => Err(format!("{what}: {}", why(e))),
        _ => Ok(()),
    }
}

/// Tokens and targets of a fixed mapping (`t -> 5t + 3` over the first `alphabet` ids), seeded.
fn mapping_batch(seed: u64, positions: usize, alphabet: u32) -> (Vec<u32>, Vec<u32>) {
    let tokens = Rng::new(seed).tokens(positions, alphabet);
    let targets = tokens.iter().map(|&t| (5 * t + 3) % alphabet).collect();
    (tokens, targets)
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// The first tensor that differs between two exports, named.
fn state_difference(a: &[Tensor], b: &[Tensor]) -> Option<String> {
    if a.len() != b.len() {
        return Some(format!("{} tensors against {}", a.len(), b.len()));
    }
    a.iter().zip(b).find(|(x, y)| x != y).map(|(x, y)| {
        if x.name != y.name {
            format!("tensor `{}` where `{}` was expected", y.name, x.name)
        } else {
            format!("tensor `{}` differs", x.name)
        }
    })
}

struct ModelChecks<'a> {
    suite: &'a Conformance,
    plugin: &'a LoadedPlugin,
    gpu: &'a Arc<GpuDevice>,
}

struct Shape {
    vocab: u32,
    block: u32,
}

impl ModelChecks<'_> {
    fn build(&self) -> Result<PluginModel, String> {
        self.plugin.new_model(self.gpu, &self.suite.model_config).map_err(why)
    }

    fn run(&self, checks: &mut Vec<Check>) {
        let (mut model, shape) = match self.build().and_then(|m| {
            let d = m.describe().map_err(why)?;
            check_description(&d)?;
            let shape = Shape { vocab: d.vocab_size, block: d.block_size };
            let text = format!(
                "{}: vocabulary {}, context {}, {} parameters, tokenizer {}",
                d.architecture, d.vocab_size, d.block_size, d.parameters, d.tokenizer
            );
            Ok((m, shape, text))
        }) {
            Ok((m, shape, text)) => {
                push(checks, "model builds", Ok(text));
                (m, shape)
            }
            Err(e) => {
                push(checks, "model builds", Err(e));
                return;
            }
        };
        push(checks, "forward", self.forward(&mut model, &shape));
        push(checks, "loss agrees with forward", self.loss_agrees(&mut model, &shape));
        push(checks, "bad input is refused, not a panic", self.hostile(&mut model, &shape));

        // Trainable, or inference-only?
        let (tokens, targets) = mapping_batch(1, 2 * shape.block.min(8) as usize, shape.vocab.min(16));
        let batch = TokenBatch::new(2, shape.block.min(8), &tokens);
        let trainable = match model.zero_grad().and_then(|_| model.loss(batch, &targets)).and_then(|_| model.backward())
        {
            Ok(()) => true,
            Err(HostError::Plugin { source, .. }) if source.kind == ErrorKind::UNSUPPORTED => false,
            Err(e) => {
                push(checks, "trains", Err(why(e)));
                return;
            }
        };
        if trainable {
            let grads = check_model_gradients(&mut model, batch, &targets, &self.suite.gradients).map(|r| {
                format!("{} coordinates agree with central differences (largest gradient {:.3e})", r.checked, r.largest)
            });
            push(checks, "gradients", grads);
        } else {
            skip(checks, "gradients", "inference-only (backward is unsupported)");
        }
        drop(model);
        let trained = if trainable {
            match self.overfit(&shape) {
                Ok((m, text)) => {
                    push(checks, "overfits a tiny batch", Ok(text));
                    Some(m)
                }
                Err(e) => {
                    push(checks, "overfits a tiny batch", Err(e));
                    None
                }
            }
        } else {
            skip(checks, "overfits a tiny batch", "inference-only");
            None
        };
        push(checks, "state round-trips", self.round_trip(trained, trainable, &shape));
        if self.suite.deterministic {
            push(checks, "deterministic", self.deterministic(trainable, &shape));
        } else {
            skip(checks, "deterministic", "declared nondeterministic");
        }
    }

    fn forward(&self, model: &mut PluginModel, s: &Shape) -> Result<String, String> {
        let (b, t, v) = (2u32, s.block.min(8), s.vocab as usize);
        let tokens = Rng::new(2).tokens((b * t) as usize, s.vocab);
        let batch = TokenBatch::new(b, t, &tokens);
        let out = model.forward(batch, OutputRequest::logits()).map_err(why)?;
        if (out.batch, out.positions, out.vocab_size) != (b, t, s.vocab) || out.logits.len() != (b * t) as usize * v {
            return Err(format!(
                "logits for {b} x {t} tokens came back as {} x {} x {} with {} values",
                out.batch,
                out.positions,
                out.vocab_size,
                out.logits.len()
            ));
        }
        if let Some(i) = out.logits.iter().position(|x| !x.is_finite()) {
            return Err(format!("logit {i} is {}", out.logits[i]));
        }
        let again = model.forward(batch, OutputRequest::logits()).map_err(why)?;
        if bits(&again.logits) != bits(&out.logits) {
            return Err("a second forward pass of the same tokens gave other logits".into());
        }
        let k = 5.min(s.vocab - 1).max(1);
        let top = model.forward(batch, OutputRequest::top_k(k)).map_err(why)?;
        if top.k != k || top.ids.len() != (b * t * k) as usize || top.logprobs.len() != top.ids.len() {
            return Err(format!("top-{k} came back with k = {} and {} ids", top.k, top.ids.len()));
        }
        let lsm = reference::log_softmax(&out.logits, v);
        for row in 0..(b * t) as usize {
            let ids = &top.ids[row * k as usize..(row + 1) * k as usize];
            let lps = &top.logprobs[row * k as usize..(row + 1) * k as usize];
            if let Some(&id) = ids.iter().find(|&&id| id >= s.vocab) {
                return Err(format!("top-k id {id} is outside the vocabulary of {}", s.vocab));
            }
            if lps.windows(2).any(|w| w[0] < w[1]) {
                return Err(format!("position {row}: top-k log-probabilities are not in descending order"));
            }
            let expected: Vec<f32> = ids.iter().map(|&id| lsm[row * v + id as usize]).collect();
            if let Some(d) = reference::worst_difference(lps, &expected, 1e-3, 1e-3) {
                return Err(format!(
                    "position {row}: top-k log-probabilities are not the log-softmax of the logits: {d}"
                ));
            }
            let mut sorted: Vec<f32> = lsm[row * v..(row + 1) * v].to_vec();
            sorted.sort_by(|a, c| c.total_cmp(a));
            if let Some(d) = reference::worst_difference(lps, &sorted[..k as usize], 1e-3, 1e-3) {
                return Err(format!("position {row}: top-k are not the {k} largest log-probabilities: {d}"));
            }
        }
        let last = model.forward(batch, OutputRequest::top_k(k).last_only()).map_err(why)?;
        let ku = k as usize;
        let expected: Vec<u32> = (0..b as usize)
            .flat_map(|i| top.ids[((i + 1) * t as usize - 1) * ku..(i + 1) * t as usize * ku].to_vec())
            .collect();
        if last.positions != 1 || last.ids.as_slice() != expected.as_slice() {
            return Err("top-k of the last position only is not the last row of the full top-k".into());
        }
        Ok(format!("{b} x {t} tokens: logits, top-{k} and last-position outputs agree"))
    }

    fn loss_agrees(&self, model: &mut PluginModel, s: &Shape) -> Result<String, String> {
        let (b, t) = (2u32, s.block.min(8));
        let mut rng = Rng::new(3);
        let tokens = rng.tokens((b * t) as usize, s.vocab);
        let targets = rng.tokens((b * t) as usize, s.vocab);
        let batch = TokenBatch::new(b, t, &tokens);
        let logits = model.forward(batch, OutputRequest::logits()).map_err(why)?.logits;
        let loss = model.loss(batch, &targets).map_err(why)?;
        let expected = reference::cross_entropy(&logits, &targets, s.vocab as usize);
        // Written so that a NaN loss fails too.
        let agrees = (loss as f64 - expected).abs() <= 1e-4 * expected.abs() + 1e-4;
        if !agrees {
            return Err(format!("loss() is {loss}, the mean cross-entropy of forward()'s logits is {expected:.6}"));
        }
        Ok(format!("{loss:.5} (CPU reference {expected:.5})"))
    }

    fn hostile(&self, model: &mut PluginModel, s: &Shape) -> Result<String, String> {
        let t = s.block.min(8);
        let tokens = Rng::new(4).tokens(t as usize, s.vocab);
        let batch = TokenBatch::new(1, t, &tokens);
        let before = model.forward(batch, OutputRequest::logits()).map_err(why)?.logits;
        let state = model.export_state(StateGroup::MODEL).map_err(why)?;

        let mut outside = tokens.clone();
        outside[0] = s.vocab;
        refused(
            "forward with a token id equal to the vocabulary size",
            model.forward(TokenBatch::new(1, t, &outside), OutputRequest::logits()),
        )?;
        let long = Rng::new(5).tokens(s.block as usize + 1, s.vocab);
        refused(
            "forward of a sequence one token longer than the context",
            model.forward(TokenBatch::new(1, s.block + 1, &long), OutputRequest::logits()),
        )?;
        let mut targets = tokens.clone();
        targets[t as usize - 1] = s.vocab + 7;
        refused("loss with a target outside the vocabulary", model.loss(batch, &targets))?;
        no_panic("backward after a forward, with no loss", model.backward())?;
        no_panic("zero_grad", model.zero_grad())?;
        no_panic("state_schema of an unknown state group", model.state_schema(StateGroup(99)))?;
        no_panic("export_state of an unknown state group", model.export_state(StateGroup(99)))?;
        if let Some(first) = state.first() {
            let mut wrong = state.clone();
            let mut shape: Vec<u64> = first.shape.to_vec();
            shape.push(1);
            shape[0] += 1;
            wrong[0] = Tensor { shape: shape.into_iter().collect(), ..first.clone() };
            refused(
                &format!("import_state(MODEL) with `{}` of the wrong shape", first.name),
                model.import_state(StateGroup::MODEL, &wrong),
            )?;
            refused(
                &format!("import_state(MODEL) without `{}`", first.name),
                model.import_state(StateGroup::MODEL, &state[1..]),
            )?;
            let mut retyped = state.clone();
            retyped[0] = Tensor { dtype: DType::I64, ..first.clone() };
            refused(
                &format!("import_state(MODEL) with `{}` as int64", first.name),
                model.import_state(StateGroup::MODEL, &retyped),
            )?;
        }
        refused(
            "import_state(GRADIENTS) (gradients are export-only)",
            model.import_state(StateGroup::GRADIENTS, &state),
        )?;
        let mut extra = state.clone();
        extra.push(Tensor::f32("not.a.parameter", &[1], &[0.0]));
        refused(
            "import_state(MODEL) with a tensor the model does not have",
            model.import_state(StateGroup::MODEL, &extra),
        )?;

        let after = model.forward(batch, OutputRequest::logits()).map_err(why)?.logits;
        if bits(&after) != bits(&before) {
            return Err("refused calls changed the model: its logits differ afterwards (check everything before changing anything)".into());
        }
        Ok("every refusal an error, and the model unchanged".into())
    }

    /// One training step on `tokens`/`targets`; the loss before it.
    fn train_step(&self, model: &mut PluginModel, batch: TokenBatch<'_>, targets: &[u32]) -> Result<f32, String> {
        model.train_step(batch, targets, self.suite.learning_rate).map(|(loss, _)| loss).map_err(why)
    }

    fn overfit(&self, s: &Shape) -> Result<(PluginModel, String), String> {
        let mut model = self.build()?;
        let t = s.block.min(16);
        let (tokens, targets) = mapping_batch(6, 2 * t as usize, s.vocab.min(16));
        let batch = TokenBatch::new(2, t, &tokens);
        let mut first = None;
        for _ in 0..self.suite.overfit_steps {
            let loss = self.train_step(&mut model, batch, &targets)?;
            if !loss.is_finite() {
                return Err(format!("the loss became {loss}"));
            }
            first.get_or_insert(loss);
        }
        let last = model.loss(batch, &targets).map_err(why)?;
        let first = first.unwrap_or(last);
        let text = format!(
            "loss {first:.4} -> {last:.4} in {} steps at learning rate {}",
            self.suite.overfit_steps, self.suite.learning_rate
        );
        let halved = last <= 0.5 * first; // false for NaN
        if !halved {
            return Err(format!("{text}; it must at least halve (is the gradient or the optimizer wrong, or the learning rate too small for it?)"));
        }
        Ok((model, text))
    }

    fn round_trip(&self, trained: Option<PluginModel>, trainable: bool, s: &Shape) -> Result<String, String> {
        let mut source = match trained {
            Some(m) => m,
            None if trainable => return Err("skipped: the model did not train".into()),
            None => self.build()?,
        };
        let groups: &[StateGroup] =
            if trainable { &[StateGroup::MODEL, StateGroup::OPTIMIZER] } else { &[StateGroup::MODEL] };
        let mut exported = Vec::new();
        for &g in groups {
            let state = source.export_state(g).map_err(why)?;
            let schema = source.state_schema(g).map_err(why)?;
            let specs: Vec<_> = state.iter().map(Tensor::spec).collect();
            if specs != schema {
                return Err(format!(
                    "export_state({}) does not match state_schema({0}) (names, dtypes, shapes, order)",
                    g.0
                ));
            }
            if let Some(t) = state.iter().find(|t| Some(t.data.len() as u64) != t.spec().byte_len()) {
                return Err(format!(
                    "exported tensor `{}` holds {} bytes for shape {:?}",
                    t.name,
                    t.data.len(),
                    t.shape.as_slice()
                ));
            }
            exported.push((g, state));
        }
        let mut copy = self.build()?;
        for (g, state) in &exported {
            copy.import_state(*g, state).map_err(why)?;
            let back = copy.export_state(*g).map_err(why)?;
            if let Some(d) = state_difference(state, &back) {
                return Err(format!("state group {} exported after import differs: {d}", g.0));
            }
        }
        let t = s.block.min(16);
        let (tokens, targets) = mapping_batch(6, 2 * t as usize, s.vocab.min(16));
        let batch = TokenBatch::new(2, t, &tokens);
        let a = source.forward(batch, OutputRequest::logits()).map_err(why)?.logits;
        let b = copy.forward(batch, OutputRequest::logits()).map_err(why)?.logits;
        if bits(&a) != bits(&b) {
            return Err("a fresh model with the imported state gives other logits".into());
        }
        if trainable {
            let la = self.train_step(&mut source, batch, &targets)?;
            let lb = self.train_step(&mut copy, batch, &targets)?;
            let pa = source.export_state(StateGroup::MODEL).map_err(why)?;
            let pb = copy.export_state(StateGroup::MODEL).map_err(why)?;
            if la.to_bits() != lb.to_bits() {
                return Err(format!("the next step's loss differs after import: {la} and {lb}"));
            }
            if let Some(d) = state_difference(&pa, &pb) {
                return Err(format!("after one more step from imported parameters and optimizer state: {d}"));
            }
            Ok(format!(
                "{} parameter and optimizer tensors; the next step is identical",
                exported.iter().map(|(_, s)| s.len()).sum::<usize>()
            ))
        } else {
            Ok(format!("{} parameter tensors; outputs identical", exported[0].1.len()))
        }
    }

    fn deterministic(&self, trainable: bool, s: &Shape) -> Result<String, String> {
        let mut a = self.build()?;
        let mut b = self.build()?;
        let pa = a.export_state(StateGroup::MODEL).map_err(why)?;
        let pb = b.export_state(StateGroup::MODEL).map_err(why)?;
        let hint = "seed every random draw from the configuration, or declare the plugin nondeterministic";
        if let Some(d) = state_difference(&pa, &pb) {
            return Err(format!("two models from one configuration differ: {d}; {hint}"));
        }
        if trainable {
            let t = s.block.min(16);
            let (tokens, targets) = mapping_batch(7, 2 * t as usize, s.vocab.min(16));
            let batch = TokenBatch::new(2, t, &tokens);
            for step in 0..2 {
                let la = self.train_step(&mut a, batch, &targets)?;
                let lb = self.train_step(&mut b, batch, &targets)?;
                if la.to_bits() != lb.to_bits() {
                    return Err(format!("step {step}: two identical models' losses differ ({la} and {lb}); {hint}"));
                }
            }
            Ok("identical parameters and losses over 2 training steps".into())
        } else {
            Ok("identical parameters".into())
        }
    }
}

fn check_description(d: &neuron_plugin_api::ModelDescription) -> Result<(), String> {
    if d.vocab_size < 2 {
        return Err(format!("describe() declares a vocabulary of {}", d.vocab_size));
    }
    if d.block_size == 0 {
        return Err("describe() declares a context of 0 tokens".into());
    }
    if !matches!(d.tokenizer.as_str(), "bytes" | "gpt2") {
        return Err(format!("describe() names tokenizer `{}`; the host has `bytes` and `gpt2`", d.tokenizer));
    }
    neuron_plugin_api::toml::from_str::<neuron_plugin_api::toml::Table>(&d.config)
        .map_err(|e| format!("describe()'s config is not TOML: {}", e.to_string().lines().next().unwrap_or("")))?;
    Ok(())
}

struct ScorerChecks<'a> {
    suite: &'a Conformance,
    plugin: &'a LoadedPlugin,
    gpu: &'a Arc<GpuDevice>,
}

/// A scoring step: 2 x 8 positions over a vocabulary of 64, and answers of known quality.
struct Step {
    tokens: Vec<u32>,
    targets: Vec<u32>,
}

const VOCAB: u32 = 64;

impl Step {
    fn new(seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        Self { tokens: rng.tokens(16, VOCAB), targets: rng.tokens(16, VOCAB) }
    }
    fn batch(&self) -> ScoringBatch<'_> {
        ScoringBatch {
            tokens: TokenBatch::new(2, 8, &self.tokens),
            targets: self.targets.as_slice().into(),
            vocab_size: VOCAB,
        }
    }
    /// uid 0 puts 0.85 on the truth; uid 1 misses it with 0.8 of its mass; uid 2 timed out;
    /// uid 3 sent ids outside the vocabulary.
    fn responses(&self) -> Vec<MinerResponse> {
        let k = 4usize;
        let others = |t: u32, j: usize| (t + 1 + j as u32) % VOCAB;
        let answer = |uid: u16, hit: bool| {
            let mut ids = Vec::new();
            let mut lps = Vec::new();
            for &t in &self.targets {
                if hit {
                    ids.push(t);
                    lps.push(0.85f32.ln());
                    for j in 0..k - 1 {
                        ids.push(others(t, j));
                        lps.push(0.04f32.ln());
                    }
                } else {
                    for j in 0..k {
                        ids.push(others(t, j));
                        lps.push(0.2f32.ln());
                    }
                }
            }
            MinerResponse {
                uid,
                status: ResponseStatus::OK,
                k: k as u32,
                ids: ids.into(),
                logprobs: lps.into(),
                latency_s: 0.05,
            }
        };
        let timeout = MinerResponse {
            uid: 2,
            status: ResponseStatus::TIMEOUT,
            k: 0,
            ids: Default::default(),
            logprobs: Default::default(),
            latency_s: 1.0,
        };
        let mut malformed = answer(3, true);
        malformed.ids = malformed.ids.iter().map(|&i| i + VOCAB).collect();
        vec![answer(0, true), answer(1, false), timeout, malformed]
    }
}

impl ScorerChecks<'_> {
    fn build(&self) -> Result<PluginScorer, String> {
        self.plugin.new_scorer(self.gpu, &self.suite.scorer_config).map_err(why)
    }

    fn run(&self, checks: &mut Vec<Check>) {
        let mut scorer = match self.build().and_then(|s| {
            let d = s.describe().map_err(why)?;
            if d.policy.trim().is_empty() {
                return Err("describe() names no policy".into());
            }
            neuron_plugin_api::toml::from_str::<neuron_plugin_api::toml::Table>(&d.config).map_err(|e| {
                format!("describe()'s config is not TOML: {}", e.to_string().lines().next().unwrap_or(""))
            })?;
            Ok((s, d.policy.to_string()))
        }) {
            Ok((s, policy)) => {
                checks.push(Check { name: "scorer builds", outcome: Outcome::Pass(format!("policy {policy}")) });
                s
            }
            Err(e) => {
                checks.push(Check { name: "scorer builds", outcome: Outcome::Fail(e) });
                return;
            }
        };
        checks.push(Check { name: "ranks a better miner higher", outcome: outcome(self.ranks(&mut scorer)) });
        checks.push(Check { name: "bad input is refused, not a panic", outcome: outcome(self.hostile(&mut scorer)) });
        checks.push(Check { name: "scorer state round-trips", outcome: outcome(self.round_trip(&mut scorer)) });
        let det = if self.suite.deterministic {
            outcome(self.deterministic())
        } else {
            Outcome::Skip("declared nondeterministic".into())
        };
        checks.push(Check { name: "scorer is deterministic", outcome: det });
    }

    fn ranks(&self, scorer: &mut PluginScorer) -> Result<String, String> {
        let step = Step::new(8);
        let responses = step.responses();
        let s = scorer.score(step.batch(), &responses).map_err(why)?;
        let scores = s.scores.as_slice();
        if let Some(i) = scores.iter().position(|x| !x.is_finite() || *x < 0.0) {
            return Err(format!(
                "score of uid {} is {}; scores must be finite and not negative",
                responses[i].uid, scores[i]
            ));
        }
        let ranked = scores[0] > scores[1];
        if !ranked {
            return Err(format!(
                "the miner giving the truth 0.85 scores {}, not above the one that misses it ({})",
                scores[0], scores[1]
            ));
        }
        if scores[2] != 0.0 || scores[3] != 0.0 {
            return Err(format!(
                "a timed-out miner scores {} and a malformed answer {}; both must score 0",
                scores[2], scores[3]
            ));
        }
        let reversed: Vec<MinerResponse> = responses.iter().rev().cloned().collect();
        let r = scorer.score(step.batch(), &reversed).map_err(why)?;
        let back: Vec<f32> = r.scores.iter().rev().copied().collect();
        if let Some(d) = reference::worst_difference(&back, scores, 1e-5, 1e-7) {
            return Err(format!("reordering the responses changed the scores: {d}"));
        }
        Ok(format!("good {:.4} > poor {:.4}; timeout and malformed 0", scores[0], scores[1]))
    }

    fn hostile(&self, scorer: &mut PluginScorer) -> Result<String, String> {
        let step = Step::new(9);
        let responses = step.responses();
        let before = scorer.score(step.batch(), &responses).map_err(why)?;
        let mut bad = Step::new(9);
        bad.targets[0] = VOCAB + 1;
        refused("score with a target outside the vocabulary", scorer.score(bad.batch(), &responses))?;
        let mut short = step.responses();
        short[0].ids = short[0].ids.iter().copied().take(3).collect();
        let s = scorer
            .score(step.batch(), &short)
            .map_err(|e| format!("an answer of the wrong length must score 0, not fail the step: {}", why(e)))?;
        if s.scores[0] != 0.0 {
            return Err(format!("an answer of the wrong length scores {}; it must score 0", s.scores[0]));
        }
        no_panic("score with no responses", scorer.score(step.batch(), &[]))?;
        refused(
            "import_state with a tensor the scorer does not have",
            scorer.import_state(&[Tensor::f32("not.a.state", &[2], &[1.0, 2.0])]),
        )?;
        let after = scorer.score(step.batch(), &responses).map_err(why)?;
        if !self.suite.deterministic || bits(&after.scores) == bits(&before.scores) {
            Ok("every refusal an error, bad answers scored 0, the scorer unchanged".into())
        } else {
            Err("refused calls changed the scorer: the same step scores differently afterwards".into())
        }
    }

    fn round_trip(&self, scorer: &mut PluginScorer) -> Result<String, String> {
        let state = scorer.export_state().map_err(why)?;
        let mut copy = self.build()?;
        copy.import_state(&state).map_err(why)?;
        let back = copy.export_state().map_err(why)?;
        if let Some(d) = state_difference(&state, &back) {
            return Err(format!("the state exported after import differs: {d}"));
        }
        let step = Step::new(10);
        let a = scorer.score(step.batch(), &step.responses()).map_err(why)?;
        let b = copy.score(step.batch(), &step.responses()).map_err(why)?;
        if bits(&a.scores) != bits(&b.scores) {
            return Err("a fresh scorer with the imported state scores the same step differently".into());
        }
        Ok(format!("{} state tensors; the next step scores identically", state.len()))
    }

    fn deterministic(&self) -> Result<String, String> {
        let (mut a, mut b) = (self.build()?, self.build()?);
        for seed in [11, 12] {
            let step = Step::new(seed);
            let sa = a.score(step.batch(), &step.responses()).map_err(why)?;
            let sb = b.score(step.batch(), &step.responses()).map_err(why)?;
            if bits(&sa.scores) != bits(&sb.scores) {
                return Err("two scorers from one configuration score the same steps differently".into());
            }
        }
        Ok("identical scores over 2 steps".into())
    }
}
