//! The validator: queries miners, scores their answers, trains its own model
//! on the same batches, and at the end of each epoch sets weights on chain.
//!
//! A step: a batch from the dataset; a rotating sample of miners queried
//! over signed HTTP for top-k per position; the scorer plugin's scoring pass;
//! each uid's moving-average score and statistics updated; the validator's
//! own model trained on the batch (reset now and then so it does not
//! converge too far). An epoch ends after `epoch_length` blocks (the subnet's
//! tempo by default) or a time limit: the scores go through the SDK's weight
//! pipeline, are set on chain (committed when the subnet uses commit-reveal,
//! retried on rate limits), the metagraph is read again (a replaced hotkey's
//! score restarts from zero, arrays grow with the subnet), and the epoch
//! counter goes up.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use neuron_plugin_api::{OutputRequest, ResponseStatus, ScoringBatch, StateGroup, Tensor, TokenBatch};
use serde_json::json;

use super::{
    checkpoints::{CheckpointPlan, PluginIdentity, Saver, ValidatorCheckpoint},
    epoch::EpochClock,
    miner::unix_time,
    schedule::LrSchedule,
    scorer_slot::ScorerSlot,
    scoring::{epoch_weights, outcome, WeightRules},
    training::{Trainer, TrainerSettings},
};
use crate::{
    chain::{
        commits::CommitStore,
        policy::{reveal_due, submit_weights_with_policy, CommitReveal, WeightsOutcome, WeightsPolicy, WeightsRetry},
        AccountId, Chain, Metagraph, NetUid,
    },
    data::Dataset,
    error::{Error, Result},
    metrics::{
        prometheus::{neuron, Metrics, OutcomeLabels, ReasonLabels, UidLabels},
        runlog::RunLog,
    },
    net::{Client, ClientConfig, ForwardQuery, Peer},
    plugins::PluginModel,
    record::{
        BookState, EpochRecord, RecordSettings, RecordedNeuron, RecordedResponse, Recorder, StepRecord,
        WeightsOutcomeCode,
    },
    scores::{Outcome, ScoreBook},
    wallet::Keypair,
    weights::WeightsPipeline,
};

/// How many blocks before a timelocked commit's predicted reveal block its reveal event is looked for.
const REVEAL_SCAN_SLACK_BLOCKS: u64 = 2;
/// How many timelocked commits a validator watches for their reveal at once.
const MAX_REVEALS_WATCHED: usize = 8;

/// Everything a validator is made of.
pub struct Validator {
    pub name: String,
    pub netuid: NetUid,
    pub chain: Arc<dyn Chain>,
    pub keypair: Arc<Keypair>,
    /// The validator's own model, trained on each batch (None: scoring only).
    pub model: Option<PluginModel>,
    /// The scoring policy; swapped at an epoch boundary when the config changes.
    pub scorer: ScorerSlot,
    /// Records steps and epochs for `neuron-host rescore` (or does nothing).
    pub recorder: Recorder,
    pub dataset: Arc<Dataset>,
    pub vocab_size: u32,
    pub seed: u64,
    pub settings: ValidatorSettings,
    pub client: ClientConfig,
    pub commits: Arc<CommitStore>,
    pub metrics: Arc<Metrics>,
    pub runlog: Option<Arc<Mutex<RunLog>>>,
    /// Stop after this many epochs of this run (0: until stopped); a resumed validator runs that
    /// many more.
    pub epochs: u64,
    pub stop: Arc<AtomicBool>,
    /// Names to show for hotkeys in reports (a local subnet knows its neurons).
    pub names: HashMap<AccountId, String>,
    /// Register the hotkey when the subnet does not know it (local chain only).
    pub register: bool,
    /// Called with each epoch's report (the console prints it).
    pub on_epoch: Box<dyn Fn(&EpochReport) + Send + Sync>,
    /// Where to save and resume from (None: no checkpoints).
    pub checkpoint: Option<CheckpointPlan>,
}

/// One uid at the end of an epoch.
#[derive(Clone, Debug, serde::Serialize)]
pub struct EpochRow {
    pub uid: u16,
    pub hotkey: String,
    pub name: String,
    pub role: &'static str,
    pub loss: f32,
    pub score: f32,
    /// Share of the weights this validator set on it this epoch.
    pub weight: f32,
    pub incentive: f64,
    pub dividends: f64,
    pub emission: u64,
    pub stake: u64,
    pub queried: u64,
    pub answered: u64,
}

/// What an epoch did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct EpochReport {
    pub neuron: String,
    pub epoch: u64,
    pub block: u64,
    pub steps: u64,
    /// "set", "committed ...", or why nothing was set, as the epoch's line shows it.
    pub weights: String,
    /// What became of the weights, for code to act on (`weights` is for people).
    #[serde(skip)]
    pub outcome: WeightsOutcomeCode,
    /// The scorer that scored this epoch's steps.
    pub scorer: String,
    /// A scorer switch that took effect at the end of this epoch ("a → b, scores kept").
    pub scorer_switch: Option<String>,
    /// Scorer switches so far in this run.
    pub scorer_switches: u64,
    /// What a config re-read at the end of this epoch did (null when none was due).
    pub config_reload: Option<String>,
    pub uids: Vec<EpochRow>,
}

/// What the whole run did.
#[derive(Clone, Debug, Default)]
pub struct ValidatorSummary {
    pub uid: u16,
    pub steps: u64,
    pub epochs: Vec<EpochReport>,
    /// Epochs whose weights the chain accepted (set or committed).
    pub weights_submitted: u64,
}

/// Follows the chain's blocks into an atomic the loop reads.
fn track_blocks(chain: Arc<dyn Chain>, block: Arc<AtomicU64>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Ok(mut blocks) = chain.subscribe_blocks().await else { return };
        while let Some(b) = blocks.next().await {
            if let Ok(b) = b {
                block.fetch_max(b, Ordering::AcqRel);
            }
        }
    })
}

struct Loop {
    uid: u16,
    book: ScoreBook,
    candidates: Vec<Peer>,
    cursor: usize,
    initial_state: Option<Vec<Tensor>>,
    steps: u64,
    epochs: u64,
    /// Checkpoints: the writer, the block of the last save, the last weights set.
    saver: Option<Saver>,
    saved_block: u64,
    last_weights: Vec<f32>,
    /// Weights the node was unreachable for, sent again when it answers within their epoch.
    retry: WeightsRetry,
    /// Timelocked commits whose reveal is not confirmed yet: the block the chain reveals each
    /// from, its epoch (at most [`MAX_REVEALS_WATCHED`]).
    timelocked: std::collections::VecDeque<(u64, u64)>,
}

impl Validator {
    pub async fn run(mut self) -> Result<ValidatorSummary> {
        let hotkey = self.keypair.account();
        let mg = self.chain.metagraph(self.netuid).await?;
        let uid = match mg.uid_of(&hotkey) {
            Some(uid) => uid,
            None if !self.register => return Err(super::miner::not_registered(&self.keypair, self.netuid)),
            None => self.chain.register(self.netuid).await?,
        };
        let mg = self.chain.metagraph(self.netuid).await?;
        let hp = self.chain.hyperparams(self.netuid).await?;
        let client = Client::new(self.keypair.clone(), self.client.clone())?;
        let block = Arc::new(AtomicU64::new(self.chain.block().await?));
        let tracker = track_blocks(self.chain.clone(), block.clone());
        let length = if self.settings.epoch_length > 0 { self.settings.epoch_length } else { u64::from(hp.tempo) };
        let limit =
            (self.settings.epoch_time_limit > 0.0).then(|| Duration::from_secs_f64(self.settings.epoch_time_limit));
        let mut clock = EpochClock::new(length, limit, block.load(Ordering::Acquire));
        let label = neuron(&self.name);
        let block_size = match &self.model {
            Some(m) => m.describe()?.block_size,
            None => 0,
        };
        // The own model's rate is constant: it is reset every `model_reset_every` steps instead of decayed.
        let lr = self.settings.lr;
        let settings = TrainerSettings {
            schedule: LrSchedule { lr, min_lr: lr, warmup_steps: 0, decay_steps: 0 },
            batch_size: self.settings.batch_size,
            sequence_length: self.settings.sequence_length,
            seed: self.seed,
            noise: 0.0,
        };
        let mut trainer = Trainer::new(&self.name, "validator.sequence_length", settings, self.vocab_size, block_size);
        let initial_state = match (&mut self.model, self.settings.model_reset_every) {
            (Some(m), n) if n > 0 => Some(tokio::task::block_in_place(|| m.export_state(StateGroup::MODEL))?),
            _ => None,
        };
        let mut l = Loop {
            uid,
            book: ScoreBook::new(self.settings.alpha).with_zero_after_misses(self.settings.zero_after_misses),
            candidates: Vec::new(),
            cursor: 0,
            initial_state,
            steps: 0,
            epochs: 0,
            saver: None,
            saved_block: block.load(Ordering::Acquire),
            last_weights: Vec::new(),
            retry: WeightsRetry::default(),
            timelocked: Default::default(),
        };
        l.book.resync(&mg);
        let resumed_epoch = self.resume_checkpoint(&mut l, &mut trainer, block.load(Ordering::Acquire))?;
        // Published after resuming, so whoever watches (the progress line) sees the epoch the
        // run continues from by the time the epoch's length appears.
        self.metrics.epoch.get_or_create(&label).set(resumed_epoch as i64);
        self.metrics.epoch_start_block.get_or_create(&label).set(clock.start_block() as i64);
        self.metrics.epoch_length_blocks.get_or_create(&label).set(length as i64);
        self.refresh_candidates(&mut l, &mg);
        tracing::info!(target: "neuron_host::validator", "{} (uid {uid}) validating subnet {}: epochs of {length} blocks", self.name, self.netuid);

        let mut summary = ValidatorSummary { uid, ..Default::default() };
        let mut last_block = block.load(Ordering::Acquire);
        let mut epoch = resumed_epoch;
        while !self.stop.load(Ordering::Acquire) {
            let now = block.load(Ordering::Acquire);
            if now != last_block {
                last_block = now;
                self.metrics.block.get_or_create(&label).set(now as i64);
                if let Err(e) = reveal_due(self.chain.as_ref(), &self.commits, self.netuid).await {
                    tracing::warn!(target: "neuron_host::validator", "{}: revealing committed weights failed: {e}", self.name);
                }
                self.retry_weights(&mut l).await;
                self.checkpoint_if_due(&mut l, &trainer, now, epoch);
            }
            if clock.is_over(now) {
                if let Some(lost) = l.retry.expire() {
                    tracing::error!(target: "neuron_host::validator", "{}: the weights of epoch {lost} were never set: the node stayed unreachable until the epoch ended", self.name);
                }
                let report = match self.end_epoch(&mut l, epoch + 1, now).await {
                    Ok(report) => report,
                    // The node went away as the epoch ended: the epoch ends when it answers again.
                    Err(Error::Chain(e)) if WeightsRetry::is_retryable(&e) => {
                        tracing::warn!(target: "neuron_host::validator", "{}: cannot end epoch {} yet: {e}", self.name, epoch + 1);
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                epoch += 1;
                if matches!(report.outcome, WeightsOutcomeCode::Set | WeightsOutcomeCode::Committed) {
                    summary.weights_submitted += 1;
                }
                (self.on_epoch)(&report);
                summary.epochs.push(report);
                clock.restart(block.load(Ordering::Acquire));
                self.metrics.epoch_start_block.get_or_create(&label).set(clock.start_block() as i64);
                // `epochs` counts this run's epochs: a resumed subnet runs that many more.
                if self.epochs > 0 && epoch - resumed_epoch >= self.epochs {
                    break;
                }
                continue;
            }
            if l.candidates.is_empty() {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            self.step(&mut l, &mut trainer, &client, now).await?;
        }
        tracker.abort();
        self.finish_checkpoints(&mut l, &trainer, block.load(Ordering::Acquire), epoch);
        summary.steps = l.steps;
        Ok(summary)
    }

    /// Whether the timelocked commits waiting for their reveal have been revealed and applied
    /// by the chain (their `TimelockedWeightsRevealed` events), for those whose reveal block has
    /// passed: notes for the epoch's report (`None` while none is due or known). Past its reveal
    /// epoch without the event, a commit was dropped (the pulse never came, or the weights were
    /// refused). The validator's epochs need not line up with the chain's, so a commit may be
    /// checked at more than one epoch end.
    async fn timelocked_revealed(&self, l: &mut Loop, block: u64, tempo: u64) -> Option<String> {
        let mut notes = Vec::new();
        let mut waiting = std::collections::VecDeque::new();
        while let Some((reveal_block, epoch)) = l.timelocked.pop_front() {
            if block < reveal_block {
                waiting.push_back((reveal_block, epoch));
                continue;
            }
            // The window the chain reveals in: its reveal epoch, from a little before the
            // predicted block (the old block rule counts epochs one block differently).
            let from = reveal_block.saturating_sub(REVEAL_SCAN_SLACK_BLOCKS.min(tempo / 2));
            let to = reveal_block + tempo;
            let past_window = block > to;
            match self.chain.timelocked_revealed_in(self.netuid, from, to).await {
                Ok(Some(at)) => notes.push(format!("epoch {epoch}'s weights revealed by the chain at block {at}")),
                Ok(None) if past_window => {
                    tracing::error!(target: "neuron_host::validator", "{}: epoch {epoch}'s timelocked weights were not revealed by the chain in their reveal epoch (blocks {from} to {to}): no TimelockedWeightsRevealed event for this hotkey; the chain dropped them", self.name);
                    notes.push(format!("epoch {epoch}'s weights NOT revealed"));
                }
                Err(e) if past_window => {
                    tracing::warn!(target: "neuron_host::validator", "{}: cannot tell whether epoch {epoch}'s timelocked weights were revealed: {e}", self.name);
                    notes.push(format!("epoch {epoch}'s reveal not checked"));
                }
                Ok(None) | Err(_) => waiting.push_back((reveal_block, epoch)),
            }
        }
        l.timelocked = waiting;
        (!notes.is_empty()).then(|| notes.join("; "))
    }

    fn weights_policy(&self) -> WeightsPolicy {
        WeightsPolicy { commit_reveal: self.settings.commit_reveal, ..WeightsPolicy::default() }
    }

    /// Sends again weights the node was unreachable for (see [`WeightsRetry`]).
    async fn retry_weights(&self, l: &mut Loop) {
        let Some((epoch, done)) = l
            .retry
            .retry(self.chain.as_ref(), &self.commits, self.netuid, self.settings.version_key, &self.weights_policy())
            .await
        else {
            return;
        };
        let label = neuron(&self.name);
        match done {
            Ok(outcome) => {
                self.metrics.weights_set.get_or_create(&label).inc();
                tracing::info!(target: "neuron_host::validator", "{}: the weights of epoch {epoch} were {outcome} once the node answered again", self.name);
            }
            Err(e) => {
                tracing::error!(target: "neuron_host::validator", "{}: the weights of epoch {epoch}, sent again, were refused: {e}", self.name)
            }
        }
    }

    fn refresh_candidates(&self, l: &mut Loop, mg: &Metagraph) {
        l.candidates = mg
            .neurons
            .iter()
            .filter(|n| n.uid != l.uid)
            .filter_map(|n| n.axon.map(|a| Peer { uid: n.uid, addr: SocketAddr::new(a.ip, a.port), hotkey: n.hotkey }))
            .collect();
        // A fixed, seeded rotation so every miner is queried as often as the others.
        let mut state = self.seed | 1;
        for i in (1..l.candidates.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            l.candidates.swap(i, (state % (i as u64 + 1)) as usize);
        }
        l.cursor = 0;
    }

    async fn step(&mut self, l: &mut Loop, trainer: &mut Trainer, client: &Client, block: u64) -> Result<()> {
        let started = Instant::now();
        let batch = trainer.next_batch(&self.dataset)?;
        let take = (self.settings.sample_size as usize).min(l.candidates.len());
        let peers: Vec<Peer> = (0..take).map(|i| l.candidates[(l.cursor + i) % l.candidates.len()].clone()).collect();
        l.cursor = (l.cursor + take) % l.candidates.len().max(1);
        let tokens = TokenBatch::new(batch.batch, batch.seq, &batch.tokens);
        let query = ForwardQuery::new(tokens, OutputRequest::top_k(self.settings.top_k));
        let query_started = Instant::now();
        let answers = client.forward_all(&peers, &query).await;
        let query_s = query_started.elapsed().as_secs_f64();
        let scoring_started = Instant::now();
        let responses: Vec<_> = answers.iter().zip(&peers).map(|(a, p)| a.to_miner_response(p.uid)).collect();
        self.scorer.poll();
        let scores = tokio::task::block_in_place(|| {
            self.scorer.score(
                &self.name,
                ScoringBatch { tokens, targets: batch.targets.as_slice().into(), vocab_size: self.vocab_size },
                &responses,
            )
        })?;
        let mut plugin_s = scoring_started.elapsed().as_secs_f64();
        // Recording hook: the step as the scorer saw it, before the book takes it in.
        let state = BookState { netuid: self.netuid, own_uid: l.uid, steps: l.steps, epochs: l.epochs, book: &l.book };
        self.recorder.step(state, || StepRecord {
            step: l.steps + 1,
            block,
            vocab_size: self.vocab_size,
            alpha: l.book.alpha(),
            zero_after_misses: l.book.zero_after_misses(),
            batch: batch.batch,
            seq_len: batch.seq,
            tokens: batch.tokens.clone(),
            targets: batch.targets.clone(),
            responses: responses
                .iter()
                .enumerate()
                .map(|(i, r)| RecordedResponse::from_response(r, scores.scores[i], scores.losses[i]))
                .collect(),
        });
        let label = neuron(&self.name);
        for (i, r) in responses.iter().enumerate() {
            let outcome = outcome(r.status, scores.scores[i], scores.losses[i], r.latency_s);
            let name = match outcome {
                Outcome::Answered { .. } => "answered",
                Outcome::Timeout => "timeout",
                Outcome::Malformed => "malformed",
                Outcome::Error => "error",
            };
            self.metrics
                .queries
                .get_or_create(&OutcomeLabels { neuron: self.name.clone(), outcome: name.into() })
                .inc();
            self.metrics.query_latency.get_or_create(&label).observe(f64::from(r.latency_s));
            l.book.record(r.uid, outcome);
        }
        let mut own_loss = f32::NAN;
        if let Some(model) = &mut self.model {
            let done = tokio::task::block_in_place(|| trainer.train_on(model, &batch))?;
            own_loss = done.loss;
            plugin_s += done.seconds;
            l.steps += 1;
            if let Some(initial) = &l.initial_state {
                if l.steps.is_multiple_of(self.settings.model_reset_every) {
                    tokio::task::block_in_place(|| model.import_state(StateGroup::MODEL, initial))?;
                    tracing::info!(target: "neuron_host::validator", "{}: own model reset after {} steps", self.name, l.steps);
                }
            }
        } else {
            l.steps += 1;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let positions = f64::from(batch.batch) * f64::from(batch.seq);
        self.metrics.step_duration.get_or_create(&label).observe(elapsed);
        self.metrics.tokens_per_second.get_or_create(&label).set(positions / elapsed.max(1e-9));
        self.metrics.global_step.get_or_create(&label).set(l.steps as i64);
        if own_loss.is_finite() {
            self.metrics.loss.get_or_create(&label).set(f64::from(own_loss));
        }
        let gpu_bytes =
            self.scorer.compute_stats().live_bytes + self.model.as_ref().map_or(0, |m| m.compute_stats().live_bytes);
        self.metrics.gpu_memory.get_or_create(&label).set(gpu_bytes as i64);
        if let Some(log) = &self.runlog {
            let answered = responses.iter().filter(|r| r.status == ResponseStatus::OK).count();
            let record = json!({
                "time": unix_time(), "neuron": self.name, "role": "validator", "step": l.steps, "block": block, "scorer": self.scorer.name(),
                "loss": own_loss.is_finite().then_some(own_loss), "queried": responses.len(), "answered": answered, "step_s": elapsed,
                "query_s": query_s, "plugin_s": plugin_s,
            });
            let tag = format!("{}/loss", self.name);
            let scalars: Vec<(&str, f64)> =
                if own_loss.is_finite() { vec![(tag.as_str(), f64::from(own_loss))] } else { vec![] };
            log.lock().unwrap_or_else(|p| p.into_inner()).step(&record, l.steps as i64, &scalars);
        }
        Ok(())
    }

    async fn end_epoch(&mut self, l: &mut Loop, epoch: u64, block: u64) -> Result<EpochReport> {
        let hp = self.chain.hyperparams(self.netuid).await?;
        let mg = self.chain.metagraph(self.netuid).await?;
        let previous_n = l.book.len();
        for reset in l.book.resync(&mg) {
            tracing::info!(target: "neuron_host::validator", "{}: uid {reset} has a new hotkey; its score starts again from zero", self.name);
        }
        self.metrics.truncate_uids(&self.name, mg.len(), previous_n);
        self.refresh_candidates(l, &mg);
        let n = mg.len();
        let rules = WeightRules {
            pipeline: self.settings.weights_pipeline,
            min_allowed_weights: hp.min_allowed_weights,
            max_weight_limit: hp.max_weight_limit,
            exclude_quantile: self.settings.exclude_quantile,
        };
        let revealed = self.timelocked_revealed(l, block, u64::from(hp.tempo)).await;
        let mut shares = vec![0f32; n];
        let mut emitted: (Vec<u16>, Vec<u16>) = Default::default();
        let mut code = WeightsOutcomeCode::NotSet;
        let weights = match epoch_weights(&l.book, l.uid, rules) {
            Err(e) => format!("not set: {e}"),
            Ok((set_uids, values)) => {
                let total: f64 = values.iter().map(|&v| f64::from(v)).sum();
                for (&u, &v) in set_uids.iter().zip(&values) {
                    shares[u as usize] = (f64::from(v) / total.max(1.0)) as f32;
                }
                let label = neuron(&self.name);
                let outcome = match submit_weights_with_policy(
                    self.chain.as_ref(),
                    &self.commits,
                    self.netuid,
                    &set_uids,
                    &values,
                    self.settings.version_key,
                    &self.weights_policy(),
                )
                .await
                {
                    Ok(WeightsOutcome::Set) => {
                        self.metrics.weights_set.get_or_create(&label).inc();
                        code = WeightsOutcomeCode::Set;
                        "set".to_string()
                    }
                    Ok(outcome @ (WeightsOutcome::Committed { .. } | WeightsOutcome::Timelocked { .. })) => {
                        self.metrics.weights_set.get_or_create(&label).inc();
                        code = WeightsOutcomeCode::Committed;
                        if let WeightsOutcome::Timelocked { reveal_block, .. } = outcome {
                            if l.timelocked.len() >= MAX_REVEALS_WATCHED {
                                l.timelocked.pop_front();
                            }
                            l.timelocked.push_back((reveal_block, epoch));
                        }
                        outcome.to_string()
                    }
                    Err(e) if WeightsRetry::is_retryable(&e) => {
                        tracing::warn!(target: "neuron_host::validator", "{}: weights not sent, the node is unreachable: {e}; they are sent again when it answers, while this epoch lasts", self.name);
                        l.retry.keep(set_uids.clone(), values.clone(), epoch);
                        "unsent: node unreachable (retried while the epoch lasts)".to_string()
                    }
                    Err(e) => {
                        code = WeightsOutcomeCode::Refused;
                        let reason = e.dispatch_error().map(|d| d.name().to_string()).unwrap_or_else(|| "other".into());
                        self.metrics
                            .weights_refused
                            .get_or_create(&ReasonLabels { neuron: self.name.clone(), reason })
                            .inc();
                        tracing::error!(target: "neuron_host::validator", "{}: weights not set: {e}", self.name);
                        format!("refused: {e}")
                    }
                };
                emitted = (set_uids, values);
                outcome
            }
        };
        let weights = match revealed {
            Some(note) => format!("{weights}; {note}"),
            None => weights,
        };
        l.last_weights = shares.clone();
        let rows: Vec<EpochRow> = mg
            .neurons
            .iter()
            .map(|nr| {
                let u = nr.uid as usize;
                let stats = &l.book.stats()[u];
                EpochRow {
                    uid: nr.uid,
                    hotkey: nr.hotkey.to_ss58(),
                    name: self.names.get(&nr.hotkey).cloned().unwrap_or_default(),
                    role: if nr.uid == l.uid || nr.validator_permit && nr.axon.is_none() {
                        "validator"
                    } else {
                        "miner"
                    },
                    loss: stats.avg_loss,
                    score: l.book.scores()[u],
                    weight: shares[u],
                    incentive: nr.incentive,
                    dividends: nr.dividends,
                    emission: nr.emission,
                    stake: nr.stake,
                    queried: stats.queried,
                    answered: stats.answered,
                }
            })
            .collect();
        for r in &rows {
            let labels = UidLabels { neuron: self.name.clone(), uid: r.uid.to_string() };
            self.metrics.uid_score.get_or_create(&labels).set(f64::from(r.score));
            self.metrics.uid_weight.get_or_create(&labels).set(f64::from(r.weight));
        }
        self.metrics.epoch.get_or_create(&neuron(&self.name)).set(epoch as i64);
        // Recording hook: what replaying this epoch's weights needs.
        l.epochs = epoch;
        let state = BookState { netuid: self.netuid, own_uid: l.uid, steps: l.steps, epochs: epoch, book: &l.book };
        self.recorder.epoch(state, || EpochRecord {
            epoch,
            block,
            own_uid: l.uid,
            pipeline: rules.pipeline,
            outcome: code,
            exclude_quantile: rules.exclude_quantile,
            scorer: self.scorer.name().to_string(),
            scorer_config: self.scorer.config_text().to_string(),
            hyperparams: hp.clone(),
            neurons: mg
                .neurons
                .iter()
                .map(|nr| RecordedNeuron {
                    hotkey: nr.hotkey,
                    stake: nr.stake,
                    validator_permit: nr.validator_permit,
                    last_update: nr.last_update,
                    registered_at: nr.registered_at,
                    incentive: nr.incentive,
                })
                .collect(),
            uids: emitted.0.clone(),
            weights: emitted.1.clone(),
        });
        // Swapping hook: a re-read config takes effect here, after this epoch's weights.
        let boundary = self.scorer.at_boundary(&self.name, epoch, &mut self.settings, &mut l.book);
        let report = EpochReport {
            neuron: self.name.clone(),
            epoch,
            block,
            steps: l.steps,
            weights,
            outcome: code,
            scorer: boundary.scorer,
            scorer_switch: boundary.switch,
            scorer_switches: self.scorer.switches(),
            config_reload: boundary.reload,
            uids: rows,
        };
        if let Some(log) = &self.runlog {
            let scalars: Vec<(String, f64)> = report
                .uids
                .iter()
                .flat_map(|r| {
                    [
                        (format!("uid{}/score", r.uid), f64::from(r.score)),
                        (format!("uid{}/weight", r.uid), f64::from(r.weight)),
                        (format!("uid{}/incentive", r.uid), r.incentive),
                        (format!("uid{}/dividends", r.uid), r.dividends),
                    ]
                })
                .collect();
            let refs: Vec<(&str, f64)> = scalars.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            let mut record = serde_json::to_value(&report).map_err(|e| Error::Config(e.to_string()))?;
            record["time"] = json!(unix_time());
            log.lock().unwrap_or_else(|p| p.into_inner()).epoch(&record, epoch as i64, &refs);
        }
        Ok(report)
    }
}

// ---- checkpoints (see runtime::checkpoints) ----

impl Validator {
    fn model_identity(&self) -> Option<PluginIdentity> {
        let (plan, model) = (self.checkpoint.as_ref()?, self.model.as_ref()?);
        match PluginIdentity::of(model, &plan.plugin_version) {
            Ok(id) => Some(id),
            Err(e) => {
                tracing::error!(target: "neuron_host::checkpoint", "{}: cannot describe the own model: {e}", self.name);
                None
            }
        }
    }

    /// Restores the own model, the scorer, the scores and statistics (of the
    /// uids whose hotkey is unchanged), the step and the data position, before
    /// the first save; starts the writer. Returns the epoch to continue from.
    fn resume_checkpoint(&mut self, l: &mut Loop, trainer: &mut Trainer, chain_block: u64) -> Result<u64> {
        let Some(plan) = self.checkpoint.clone() else { return Ok(0) };
        let mut epoch = 0;
        if let Some(value) = plan.load()? {
            let identity = self.model_identity();
            let c = tokio::task::block_in_place(|| {
                ValidatorCheckpoint::restore(
                    self.model.as_mut().zip(identity.as_ref()),
                    self.scorer.scorer_mut(),
                    value,
                )
            })
            .map_err(|e| Error::Config(format!("cannot resume from {}: {e}", plan.path.display())))?;
            l.book.restore(&c.hotkeys, &c.scores);
            l.book.restore_stats(&c.hotkeys, &c.stats);
            l.last_weights = vec![0.0; l.book.len()];
            for (uid, (hk, &w)) in c.hotkeys.iter().zip(&c.weights).enumerate() {
                if l.book.hotkeys().get(uid) == Some(hk) {
                    l.last_weights[uid] = w;
                }
            }
            let kept = c.hotkeys.iter().enumerate().filter(|(u, hk)| l.book.hotkeys().get(*u) == Some(hk)).count();
            l.steps = c.global_step;
            trainer.resume(c.global_step, c.data, None);
            epoch = c.epoch;
            tracing::info!(target: "neuron_host::validator", "{} resumed from its checkpoint of block {} (epoch {}, step {}): scores of {kept} of {} uids kept", self.name, c.block, c.epoch, c.global_step, c.hotkeys.len());
            if c.block > chain_block {
                tracing::warn!(target: "neuron_host::validator", "{}'s checkpoint {} is of block {} but the chain is at block {chain_block}: the chain is behind the neurons' checkpoints (a local chain whose state file was lost or is older, or another chain); scores and steps carry on, the chain's stakes and weights are its own", self.name, plan.path.display(), c.block);
            }
        }
        l.saver = Some(Saver::new(plan.path.clone(), plan.keep, self.metrics.clone(), &self.name));
        Ok(epoch)
    }

    fn snapshot(&mut self, l: &mut Loop, trainer: &Trainer, block: u64, epoch: u64) {
        let identity = self.model_identity();
        let Some(saver) = l.saver.as_mut() else { return };
        let model = self.model.as_mut().zip(identity.as_ref());
        let captured = tokio::task::block_in_place(|| {
            ValidatorCheckpoint::capture(
                model,
                self.scorer.scorer_mut(),
                l.steps,
                block,
                epoch,
                l.book.hotkeys(),
                l.book.scores(),
                &l.last_weights,
                l.book.stats(),
                trainer.data_position(),
            )
        });
        saver.request(captured, block);
        l.saved_block = block;
    }

    /// Saves when the chain's block crossed a multiple of the interval since the last save.
    fn checkpoint_if_due(&mut self, l: &mut Loop, trainer: &Trainer, block: u64, epoch: u64) {
        let every = self.checkpoint.as_ref().map_or(0, |p| p.every);
        if every > 0 && block / every > l.saved_block / every {
            self.snapshot(l, trainer, block, epoch);
        } else if let Some(saver) = l.saver.as_mut() {
            saver.record();
        }
    }

    /// A clean stop saves where the validator is and waits for the file.
    fn finish_checkpoints(&mut self, l: &mut Loop, trainer: &Trainer, block: u64, epoch: u64) {
        if l.saver.is_some() {
            self.snapshot(l, trainer, block, epoch);
        }
        if let Some(saver) = l.saver.take() {
            saver.finish();
        }
    }
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ValidatorSettings {
    /// Sequences per step (the network preset's value unless set).
    pub batch_size: u32,
    /// Tokens per sequence (the network preset's value unless set).
    pub sequence_length: u32,
    /// Miners queried per step.
    pub sample_size: u32,
    /// Top-k asked of each miner per position.
    pub top_k: u32,
    /// Seconds a miner has to answer.
    pub timeout: f64,
    /// Weight of a step's score in each uid's moving average.
    pub alpha: f32,
    /// Failed queries in a row after which a uid's score is set to zero (0: never).
    pub zero_after_misses: u32,
    /// Train the validator's own model on each batch.
    pub train: bool,
    pub lr: f64,
    /// Reset the validator's model every this many steps (0: never).
    pub model_reset_every: u64,
    /// Blocks per epoch (0: the subnet's tempo).
    pub epoch_length: u64,
    /// Seconds after which an epoch ends even if its blocks have not passed (0: none).
    pub epoch_time_limit: f64,
    /// legacy (bittensor <= 10's process_weights_for_netuid) or sdk11.
    pub weights_pipeline: WeightsPipeline,
    /// Legacy pipeline: drop this lowest quantile of weights (u16 proportion).
    pub exclude_quantile: u16,
    pub version_key: u64,
    /// Where the subnet uses commit-reveal: "timelock" (encrypted to a drand round, revealed
    /// by the chain; the SDK v11's way) or "hash" (revealed by this validator).
    pub commit_reveal: CommitReveal,
    /// The mechanism (weight vector) of the subnet this validator reads and sets weights for
    /// (a real chain only: the embedded chain has one mechanism per subnet).
    pub mechanism: u8,
    /// `[validator.record]`: what the validator saw, for `neuron-host rescore`.
    pub record: RecordSettings,
}

impl Default for ValidatorSettings {
    fn default() -> Self {
        Self {
            batch_size: 4,
            sequence_length: 64,
            sample_size: 16,
            top_k: 16,
            timeout: 12.0,
            alpha: 0.1,
            zero_after_misses: 8,
            train: true,
            lr: 1e-3,
            model_reset_every: 0,
            epoch_length: 0,
            epoch_time_limit: 0.0,
            weights_pipeline: WeightsPipeline::Legacy,
            exclude_quantile: 0,
            version_key: 0,
            commit_reveal: CommitReveal::Timelock,
            mechanism: 0,
            record: RecordSettings::default(),
        }
    }
}

impl ValidatorSettings {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if !(self.alpha > 0.0 && self.alpha <= 1.0) {
            return Err(format!("validator.alpha must be in (0, 1], got {}", self.alpha));
        }
        if !(self.timeout > 0.0 && self.timeout.is_finite()) {
            return Err(format!("validator.timeout must be a positive number of seconds, got {}", self.timeout));
        }
        if self.batch_size == 0 || self.sequence_length == 0 {
            return Err("validator.batch_size and validator.sequence_length must be at least 1".into());
        }
        if self.top_k == 0 || self.sample_size == 0 {
            return Err("validator.top_k and validator.sample_size must be at least 1".into());
        }
        self.record.validate()
    }
}
