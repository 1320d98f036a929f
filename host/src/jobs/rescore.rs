//! `neuron-host rescore`: replays a validator's record (`record`) through one
//! or more scoring policies offline and shows, per epoch and uid, the weights
//! each policy would have set and the incentive each miner would have got for
//! them from Yuma consensus (`chain::yuma::epoch`).
//!
//! Each policy gets a fresh scorer on this machine's GPU and its own
//! [`ScoreBook`], fed exactly as the live validator fed its own: the record's
//! first snapshot (scores, failed queries in a row), then per step the
//! recorded batch and responses through the scorer, each outcome folded in
//! with the moving-average weight and zero-after-misses rule the step records;
//! per epoch the book realigned to the recorded metagraph and the weights
//! computed by the same code as the validator's (`runtime::scoring`) with the
//! recorded pipeline and limits. Re-scoring with the live policy and its
//! recorded configuration therefore gives back the weights that were set.
//!
//! What the replay does not model: a scorer switch with `on_scorer_switch =
//! "reset"` during the record (each policy scores the whole record), and the
//! scores a restarted validator restored from a checkpoint (a later snapshot
//! realigns the hotkeys; the policy's own scores carry on). A record whose
//! oldest segments were rotated out starts from the live validator's scores
//! at its first snapshot.
//!
//! Incentive: Yuma with this validator's weights as the only weights, the
//! recorded stake, registrations, activity cutoff and consensus parameters;
//! the validator's permit as recorded, or, when the chain had granted none
//! yet, the top `max_allowed_validators` by stake (what its first epoch grants).

use std::{path::PathBuf, sync::Arc};

use neuron_plugin_api::{ScoringBatch, TokenBatch};
use serde_json::{json, Value};

use crate::{
    chain::{yuma, AccountId, Metagraph, NeuronInfo},
    config::Config,
    error::{Error, Result},
    gpu::GpuDevice,
    plugins::{load_all, LoadedPlugin, PluginScorer},
    record::{EpochRecord, Frame, RecordReader, Snapshot, StepRecord},
    runtime::{
        plugin_set::{build_scorer, open_gpu},
        scoring::{epoch_weights, outcome, WeightRules},
    },
    scores::ScoreBook,
};

pub struct RescoreOptions {
    pub record: PathBuf,
    /// Scoring plugin libraries, one policy each, in column order.
    pub scoring: Vec<PathBuf>,
    /// A config file whose `[plugin.<name>]` sections configure the policies.
    pub scorer_config: Option<PathBuf>,
    /// Replay up to a frame cut short at the end of the record.
    pub allow_partial: bool,
    /// Print JSON instead of tables.
    pub json: bool,
}

/// One policy's result for one epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyEpoch {
    pub uids: Vec<u16>,
    pub weights: Vec<u16>,
    /// Why the pipeline produced no weights.
    pub error: Option<String>,
    /// Per uid of the recorded metagraph, in [0, 1].
    pub incentive: Vec<f64>,
}

/// One recorded epoch and what each policy made of it.
#[derive(Clone, Debug)]
pub struct ReplayedEpoch {
    pub record: EpochRecord,
    pub policies: Vec<PolicyEpoch>,
}

pub struct Policy {
    pub name: String,
    pub path: PathBuf,
    /// Where its configuration came from, and the configuration it described.
    pub config_source: String,
    pub config: String,
    scorer: PluginScorer,
    book: Option<ScoreBook>,
}

/// What a replay read and produced.
pub struct Replay {
    pub policies: Vec<Policy>,
    pub steps: u64,
    pub segments: usize,
    pub epochs: Vec<ReplayedEpoch>,
    pub partial_tail: Option<String>,
}

fn metagraph_of(netuid: u16, hotkeys: impl Iterator<Item = AccountId>) -> Metagraph {
    let neurons = hotkeys.enumerate().map(|(uid, hotkey)| NeuronInfo::bare(uid as u16, hotkey, hotkey)).collect();
    Metagraph { netuid, block: 0, neurons }
}

impl Policy {
    fn snapshot(&mut self, s: &Snapshot) {
        let book = self.book.get_or_insert_with(|| ScoreBook::new(1.0));
        let first = book.is_empty();
        book.resync(&metagraph_of(s.netuid, s.hotkeys.iter().copied()));
        if first {
            book.restore(&s.hotkeys, &s.scores);
            book.restore_misses(&s.misses);
        }
    }

    fn step(&mut self, step: &StepRecord) -> Result<()> {
        let book = self.book.as_mut().ok_or_else(|| Error::Data("record: a step comes before any snapshot".into()))?;
        book.set_alpha(step.alpha);
        book.set_zero_after_misses(step.zero_after_misses);
        let responses: Vec<_> = step.responses.iter().map(|r| r.to_response()).collect();
        let batch = ScoringBatch {
            tokens: TokenBatch::new(step.batch, step.seq_len, &step.tokens),
            targets: step.targets.as_slice().into(),
            vocab_size: step.vocab_size,
        };
        let scores = self
            .scorer
            .score(batch, &responses)
            .map_err(|e| Error::Data(format!("policy {} failed on recorded step {}: {e}", self.name, step.step)))?;
        if scores.scores.len() != responses.len() || scores.losses.len() != responses.len() {
            return Err(Error::Data(format!(
                "policy {} returned {} scores and {} losses for {} responses at step {}",
                self.name,
                scores.scores.len(),
                scores.losses.len(),
                responses.len(),
                step.step
            )));
        }
        for (i, r) in responses.iter().enumerate() {
            book.record(r.uid, outcome(r.status, scores.scores[i], scores.losses[i], r.latency_s));
        }
        Ok(())
    }

    fn epoch(&mut self, e: &EpochRecord, netuid: u16) -> PolicyEpoch {
        let book = self.book.get_or_insert_with(|| ScoreBook::new(1.0));
        book.resync(&metagraph_of(netuid, e.neurons.iter().map(|n| n.hotkey)));
        let rules = WeightRules {
            pipeline: e.pipeline,
            min_allowed_weights: e.hyperparams.min_allowed_weights,
            max_weight_limit: e.hyperparams.max_weight_limit,
            exclude_quantile: e.exclude_quantile,
        };
        match epoch_weights(book, e.own_uid, rules) {
            Ok((uids, weights)) => {
                let incentive = incentive(e, &uids, &weights);
                PolicyEpoch { uids, weights, error: None, incentive }
            }
            Err(err) => PolicyEpoch {
                uids: vec![],
                weights: vec![],
                error: Some(err.to_string()),
                incentive: vec![0.0; e.neurons.len()],
            },
        }
    }
}

/// Each uid's incentive, in [0, 1], if the recorded validator had set
/// `weights` on `uids` at the end of epoch `e` and it were the only validator.
pub fn incentive(e: &EpochRecord, uids: &[u16], weights: &[u16]) -> Vec<f64> {
    let n = e.neurons.len();
    let hp = &e.hyperparams;
    let own = e.own_uid as usize;
    let stake: Vec<u64> = e.neurons.iter().map(|nr| nr.stake).collect();
    let registered: Vec<u64> = e.neurons.iter().map(|nr| nr.registered_at).collect();
    let mut last_update: Vec<u64> = e.neurons.iter().map(|nr| nr.last_update).collect();
    if own < n {
        last_update[own] = e.block;
    }
    let mut permits: Vec<bool> = e.neurons.iter().map(|nr| nr.validator_permit).collect();
    if !permits.iter().any(|&p| p) {
        let mut by_stake: Vec<usize> = (0..n).filter(|&i| stake[i] > 0).collect();
        by_stake.sort_by_key(|&i| (std::cmp::Reverse(stake[i]), i));
        for &i in by_stake.iter().take(usize::from(hp.max_allowed_validators)) {
            permits[i] = true;
        }
    }
    let mut rows = vec![Vec::new(); n];
    if own < n {
        rows[own] = uids.iter().copied().zip(weights.iter().copied()).collect();
    }
    let bonds = vec![Vec::new(); n];
    let out = yuma::epoch(&yuma::EpochInput {
        current_block: e.block,
        tempo: u64::from(hp.tempo),
        last_epoch_block: 0,
        activity_cutoff: hp.activity_cutoff,
        last_update: &last_update,
        block_at_registration: &registered,
        stake: &stake,
        min_stake: hp.min_stake,
        validator_permit: &permits,
        max_allowed_validators: hp.max_allowed_validators,
        weights: &rows,
        bonds: &bonds,
        kappa: hp.kappa,
        bonds_penalty: hp.bonds_penalty,
        bonds_moving_average: hp.bonds_moving_average,
        yuma3: hp.yuma3,
        owner_uid: None,
        emission: 1_000_000_000,
    });
    out.incentive.iter().map(|&x| f64::from(x) / f64::from(u16::MAX)).collect()
}

/// The scorer configuration a policy starts from: its section of
/// `--scorer-config`, else the configuration the record says the live scorer
/// of the same name ran with, else the plugin's defaults.
fn policy_config(
    plugin: &LoadedPlugin,
    file: Option<&(PathBuf, Config)>,
    recorded: &[(String, String)],
) -> Result<(Config, String)> {
    let name = plugin.name();
    if let Some((path, config)) = file {
        if config.plugin.contains_key(name) {
            return Ok((config.clone(), format!("[plugin.{name}] of {}", path.display())));
        }
    }
    if let Some((_, text)) = recorded.iter().find(|(scorer, _)| scorer == name) {
        let table: toml::Table = text.parse().map_err(|e| {
            Error::Data(format!("record: the configuration recorded for scorer {name} is not TOML: {e}"))
        })?;
        let mut config = Config::default();
        config.plugin.insert(name.to_string(), toml::Value::Table(table));
        return Ok((config, "recorded with the live scorer".into()));
    }
    Ok((Config::default(), "plugin defaults".into()))
}

/// Replays the record through every policy.
pub fn replay(options: &RescoreOptions) -> Result<Replay> {
    if options.scoring.is_empty() {
        return Err(Error::Config("rescore needs at least one policy: pass --scoring PATH (repeatable)".into()));
    }
    // First pass: the live scorers and their configurations, and that the record reads whole.
    let mut recorded: Vec<(String, String)> = Vec::new();
    let mut netuid = 0u16;
    {
        let mut reader = RecordReader::open(&options.record, options.allow_partial)?;
        while let Some(frame) = reader.next_frame()? {
            match frame {
                Frame::Epoch(e) if !recorded.iter().any(|(s, _)| *s == e.scorer) => {
                    recorded.push((e.scorer, e.scorer_config))
                }
                Frame::Snapshot(s) => netuid = s.netuid,
                _ => {}
            }
        }
    }
    let file = match &options.scorer_config {
        Some(path) => Some((path.clone(), Config::load(Some(path))?)),
        None => None,
    };
    let libraries = load_all(&options.scoring)?;
    for lib in &libraries {
        if !lib.provides(neuron_plugin_api::PluginKinds::SCORER) {
            return Err(Error::Config(format!(
                "{} ({}) provides no scorer; --scoring takes scoring plugins",
                lib.path().display(),
                lib.name()
            )));
        }
    }
    let gpu: Arc<GpuDevice> = open_gpu(file.as_ref().map_or(&Config::default(), |(_, c)| c), &libraries)?;
    let mut policies = Vec::new();
    for lib in &libraries {
        let (config, config_source) = policy_config(lib, file.as_ref(), &recorded)?;
        let scorer = build_scorer(lib, &gpu, &config)?;
        let config = scorer.describe().map(|d| d.config.to_string()).unwrap_or_default();
        policies.push(Policy {
            name: lib.name().to_string(),
            path: lib.path().to_path_buf(),
            config_source,
            config,
            scorer,
            book: None,
        });
    }

    let mut reader = RecordReader::open(&options.record, options.allow_partial)?;
    let mut steps = 0;
    let mut epochs = Vec::new();
    while let Some(frame) = reader.next_frame()? {
        match frame {
            Frame::Snapshot(s) => {
                netuid = s.netuid;
                policies.iter_mut().for_each(|p| p.snapshot(&s));
            }
            Frame::Step(step) => {
                steps += 1;
                for p in &mut policies {
                    p.step(&step)?;
                }
            }
            Frame::Epoch(e) => {
                let results = policies.iter_mut().map(|p| p.epoch(&e, netuid)).collect();
                epochs.push(ReplayedEpoch { record: e, policies: results });
            }
        }
    }
    Ok(Replay {
        policies,
        steps,
        segments: reader.segments(),
        epochs,
        partial_tail: reader.partial_tail().map(str::to_string),
    })
}

fn weight_of(uids: &[u16], weights: &[u16], uid: u16) -> u16 {
    uids.iter().position(|&u| u == uid).map_or(0, |i| weights[i])
}

/// The replay as JSON.
pub fn to_json(options: &RescoreOptions, r: &Replay) -> Value {
    let policies: Vec<Value> = r
        .policies
        .iter()
        .map(|p| json!({"name": p.name, "path": p.path, "config_source": p.config_source, "config": p.config}))
        .collect();
    let epochs: Vec<Value> = r
        .epochs
        .iter()
        .map(|e| {
            let rec = &e.record;
            json!({
                "epoch": rec.epoch,
                "block": rec.block,
                "own_uid": rec.own_uid,
                "recorded": {
                    "scorer": rec.scorer,
                    "outcome": rec.outcome.name(),
                    "uids": rec.uids,
                    "weights": rec.weights,
                    "incentive": rec.neurons.iter().map(|n| n.incentive).collect::<Vec<_>>(),
                },
                "policies": e.policies.iter().zip(&r.policies).map(|(pe, p)| json!({
                    "name": p.name,
                    "uids": pe.uids,
                    "weights": pe.weights,
                    "error": pe.error,
                    "incentive": pe.incentive,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "record": options.record,
        "segments": r.segments,
        "steps": r.steps,
        "partial_tail": r.partial_tail,
        "policies": policies,
        "epochs": epochs,
    })
}

/// The replay as one table per epoch: weight per policy, then incentive per policy.
pub fn to_table(options: &RescoreOptions, r: &Replay) -> String {
    let mut out = format!(
        "record {}: {} segment(s), {} steps, {} epochs\n",
        options.record.display(),
        r.segments,
        r.steps,
        r.epochs.len()
    );
    let letters: Vec<String> = (0..r.policies.len())
        .map(|i| char::from_u32(u32::from(b'A') + i as u32).map_or_else(|| format!("P{i}"), String::from))
        .collect();
    for (p, letter) in r.policies.iter().zip(&letters) {
        out.push_str(&format!("  {letter} = {} ({}; configuration: {})\n", p.name, p.path.display(), p.config_source));
    }
    if let Some(tail) = &r.partial_tail {
        out.push_str(&format!("  note: {tail}\n"));
    }
    for e in &r.epochs {
        let rec = &e.record;
        out.push_str(&format!(
            "\nepoch {}  block {}  validator uid {}  live scorer {}  weights {}\n",
            rec.epoch,
            rec.block,
            rec.own_uid,
            rec.scorer,
            rec.outcome.name()
        ));
        for (pe, letter) in e.policies.iter().zip(&letters) {
            if let Some(err) = &pe.error {
                out.push_str(&format!("  {letter}: no weights: {err}\n"));
            }
        }
        let mut head = format!("{:>5} {:>8}", "uid", "recorded");
        for l in &letters {
            head.push_str(&format!(" {:>8}", format!("weight {l}")));
        }
        head.push_str(" |");
        for l in &letters {
            head.push_str(&format!(" {:>11}", format!("incentive {l}")));
        }
        out.push_str(&head);
        out.push('\n');
        for uid in 0..rec.neurons.len() as u16 {
            if uid == rec.own_uid {
                continue;
            }
            let mut line = format!("{uid:>5} {:>8}", weight_of(&rec.uids, &rec.weights, uid));
            for pe in &e.policies {
                line.push_str(&format!(" {:>8}", weight_of(&pe.uids, &pe.weights, uid)));
            }
            line.push_str(" |");
            for pe in &e.policies {
                line.push_str(&format!(" {:>11.4}", pe.incentive.get(uid as usize).copied().unwrap_or(0.0)));
            }
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

pub fn run(options: &RescoreOptions) -> Result<()> {
    let replay = replay(options)?;
    if options.json {
        println!("{}", to_json(options, &replay));
    } else {
        print!("{}", to_table(options, &replay));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::format::tests::sample_epoch;

    #[test]
    fn incentive_follows_the_validators_weights_and_grants_a_first_permit() {
        let mut e = sample_epoch();
        // uid 0 the validator with all the stake, uids 1 and 2 miners.
        for (i, n) in e.neurons.iter_mut().enumerate() {
            n.stake = if i == 0 { 5_000_000_000 } else { 0 };
            n.validator_permit = false;
            n.last_update = 0;
        }
        // No permit recorded yet: the one the chain's first epoch grants by stake.
        let inc = incentive(&e, &[1, 2], &[65535, 21845]);
        assert_eq!(inc[0], 0.0);
        assert!((inc[1] - 0.75).abs() < 1e-3 && (inc[2] - 0.25).abs() < 1e-3, "{inc:?}");
        let swapped = incentive(&e, &[1, 2], &[21845, 65535]);
        assert!(swapped[2] > swapped[1], "{swapped:?}");
        // A permit recorded for another neuron: this validator's weights count for nothing.
        e.neurons[1].validator_permit = true;
        assert!(incentive(&e, &[1, 2], &[65535, 21845]).iter().all(|&x| x == 0.0));
    }
}
