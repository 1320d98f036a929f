//! A whole subnet in one process: the embedded chain, a validator and a few
//! miners, all on one GPU device, talking signed HTTP over loopback.
//!
//! This is what `neuron-host --plugin libgpt.so` runs by default. The
//! validator registers first and is staked; every miner registers; the chain
//! runs a first epoch so the validator holds its permit; then the miners
//! start training and serving and the validator runs its epochs. Miners
//! differ by model seed and by how noisy their training data is, so the
//! validator has something to tell apart, and the chain's Yuma consensus
//! turns its weights into incentive. When the validator's last epoch ends the
//! miners are stopped (and save) together, so stopping takes about as long
//! for hundreds of miners as for one.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
};

use super::{
    local_net::{dev_keypair, validator_stake, LocalNet},
    miner::{Miner, MinerHandle, TrainSummary},
    neurons::{MinerSpec, NeuronBuilder, ValidatorSpec},
    progress::{self, clear_progress_line, ProgressSettings},
    scorer_slot::ConfigSource,
    validator::{EpochReport, ValidatorSummary},
};
use crate::{
    chain::AccountId,
    config::Config,
    error::{Error, Result},
    metrics::prometheus::Metrics,
};

/// What a local subnet run did.
pub struct SubnetSummary {
    pub validator: ValidatorSummary,
    pub miners: Vec<(String, u16, TrainSummary)>,
    pub run_dir: PathBuf,
    pub names: HashMap<AccountId, String>,
}

/// How to run a local subnet beyond its config.
pub struct SubnetRun {
    pub config: Config,
    /// The metric families every neuron of the subnet records into.
    pub metrics: Arc<Metrics>,
    /// Set to stop early (Ctrl-C).
    pub stop: Arc<AtomicBool>,
    /// Called with each epoch's report.
    pub on_epoch: Box<dyn Fn(&EpochReport) + Send + Sync>,
    /// Called once the metrics server listens.
    pub on_metrics: Box<dyn Fn(std::net::SocketAddr) + Send + Sync>,
    /// Where the config came from and the SIGHUP flag: the validator's scorer
    /// then follows config changes at epoch boundaries (None: fixed).
    pub reload: Option<(ConfigSource, Arc<AtomicBool>)>,
}

/// Where a local subnet keeps its checkpoints: `checkpoint.path` (a
/// directory here), else `~/.neuron-host/local/netuid<N>/`. Each neuron has
/// its own folder in it (`miner1/miner_checkpoint.pth`,
/// `validator/validator_checkpoint.pth`) and the chain's state is
/// `chain.state` there unless `chain.state` says otherwise, so a restart with
/// no flags resumes the same subnet.
pub fn subnet_checkpoint_dir(config: &Config) -> Result<PathBuf> {
    if !config.checkpoint.path.is_empty() {
        return Ok(PathBuf::from(&config.checkpoint.path));
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).ok_or_else(|| {
        Error::Config("HOME is not set: set checkpoint.path to say where the local subnet keeps its checkpoints".into())
    })?;
    Ok(home.join(".neuron-host").join("local").join(format!("netuid{}", config.netuid)))
}

/// A local subnet's miners share `[axon]`, so a port given there is the first miner's and the
/// others serve on the ports after it (port 0: each its own free port).
fn with_own_port(mut miner: Miner, index: usize, config: &Config) -> Result<Miner> {
    let base = config.axon.port;
    if base != 0 {
        let count = config.subnet.miners.len();
        let last = u32::from(base) + count as u32 - 1;
        if last > u32::from(u16::MAX) {
            return Err(Error::Config(format!(
                "--axon.port {base}: a local subnet's {count} miners serve on ports {base} to {last}, past 65535; choose a lower --axon.port"
            )));
        }
        miner.axon.port = base + index as u16;
    }
    Ok(miner)
}

/// The seed of a local subnet validator's data stream (its own model's weights derive from it).
const VALIDATOR_SEED_SALT: u64 = 0x7a11;

impl SubnetRun {
    pub async fn run(self) -> Result<SubnetSummary> {
        let mut config = self.config;
        // The config as its layers give it, before the run fills in derived
        // values (chain.state): what a reload is compared with.
        let as_loaded = config.clone();
        let checkpoint_dir = subnet_checkpoint_dir(&config)?;
        if config.chain.state.is_empty() {
            config.chain.state = checkpoint_dir.join("chain.state").to_string_lossy().into_owned();
        }
        std::fs::create_dir_all(&checkpoint_dir)
            .map_err(|source| Error::Io { path: checkpoint_dir.clone(), source })?;
        let builder = NeuronBuilder::open(config, as_loaded, true, self.metrics.clone(), &*self.on_metrics).await?;
        let config = &builder.config;

        // The chain, and the neurons' keys and registrations: the validator first, then the miners.
        let mut net = LocalNet::open(config)?;
        let owner = dev_keypair("owner").account();
        let mut names = HashMap::new();
        let validator_key = Arc::new(dev_keypair("validator"));
        names.insert(validator_key.account(), "validator".to_string());
        let validator_chain = net.enroll(validator_key.account(), owner, Some(validator_stake(config))).await?;
        let mut miner_keys = Vec::new();
        for i in 0..config.subnet.miners.len() {
            let name = format!("miner{}", i + 1);
            let key = Arc::new(dev_keypair(&name));
            let chain = net.enroll(key.account(), owner, None).await?;
            names.insert(key.account(), name.clone());
            miner_keys.push((name, key, chain));
        }
        net.start()?;

        // The miners.
        let mut miners: Vec<MinerHandle> = Vec::new();
        let mut stop_after: Vec<(u64, Arc<AtomicBool>, String)> = Vec::new();
        for ((name, keypair, chain), profile) in miner_keys.into_iter().zip(&config.subnet.miners) {
            let spec = MinerSpec {
                checkpoint: checkpoint_dir.join(&name).join("miner_checkpoint.pth"),
                name: name.clone(),
                keypair,
                chain,
                seed: profile.seed,
                noise: profile.noise,
                register: true,
            };
            let handle = match builder.miner(spec).and_then(|m| with_own_port(m, miners.len(), config)) {
                Ok(miner) => miner.start().await,
                Err(e) => Err(e),
            };
            let handle = match handle {
                Ok(h) => h,
                Err(e) => {
                    stop_all(miners).await;
                    return Err(e);
                }
            };
            if profile.stop_answering_after > 0 {
                stop_after.push((profile.stop_answering_after, handle.answering.clone(), name));
            }
            miners.push(handle);
        }

        // Every miner is told to stop as soon as the run ends (the last epoch's report, or Ctrl-C),
        // so their last steps and saves overlap the validator's final save instead of competing
        // with a subnet still training.
        let miner_stops: Vec<Arc<AtomicBool>> = miners.iter().map(MinerHandle::stop_signal).collect();
        let stop_miners = {
            let stops = miner_stops.clone();
            move || stops.iter().for_each(|s| s.store(true, Ordering::Release))
        };
        let ctrl_c = {
            let (stop, stop_miners) = (self.stop.clone(), stop_miners.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Acquire) {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                stop_miners();
            })
        };
        // `epochs` counts this run's epochs (the chain's counter may have resumed further on).
        let (run_epochs, ended) = (config.epochs, AtomicU64::new(0));

        // The validator.
        let on_epoch = self.on_epoch;
        let validator = builder.validator(ValidatorSpec {
            name: "validator".into(),
            keypair: validator_key,
            chain: validator_chain,
            seed: config.data.seed ^ VALIDATOR_SEED_SALT,
            register: true,
            checkpoint: checkpoint_dir.join("validator").join("validator_checkpoint.pth"),
            commits: builder.run_dir.join("commits.json"),
            names: names.clone(),
            stop: self.stop.clone(),
            on_epoch: Box::new(move |report: &EpochReport| {
                for (after, answering, name) in &stop_after {
                    if report.epoch == *after && answering.swap(false, Ordering::AcqRel) {
                        tracing::info!(target: "neuron_host::subnet", "{name} stops answering queries (subnet.miners: stop_answering_after = {after})");
                    }
                }
                if run_epochs > 0 && ended.fetch_add(1, Ordering::AcqRel) + 1 >= run_epochs {
                    stop_miners();
                }
                clear_progress_line();
                on_epoch(report);
            }),
            reload: self.reload,
        });
        let validator = match validator {
            Ok(v) => v,
            Err(e) => {
                ctrl_c.abort();
                stop_all(miners).await;
                return Err(e);
            }
        };
        let mut watched = vec!["validator".to_string()];
        watched.extend(miners.iter().map(|m| m.name.clone()));
        let blocks = net.chain.clone();
        let progress = progress::spawn(
            Box::new(move || blocks.current_block()),
            self.metrics.clone(),
            Some("validator".into()),
            watched,
            ProgressSettings::from_config(config),
            self.stop.clone(),
        );
        let result = validator.run().await;
        progress.abort();
        clear_progress_line();

        ctrl_c.abort();
        let trained = stop_all(miners).await;
        net.stop()?;
        builder.flush_runlog();
        Ok(SubnetSummary { validator: result?, miners: trained, run_dir: builder.run_dir.clone(), names })
    }
}

/// Stops every miner at once (each finishes its step and saves its checkpoint) and returns what
/// each trained, in the miners' order.
async fn stop_all(miners: Vec<MinerHandle>) -> Vec<(String, u16, TrainSummary)> {
    let stopping: Vec<_> = miners
        .into_iter()
        .map(|m| {
            let (name, uid) = (m.name.clone(), m.uid);
            (name, uid, tokio::spawn(m.stop()))
        })
        .collect();
    let mut trained = Vec::with_capacity(stopping.len());
    for (name, uid, task) in stopping {
        trained.push((name, uid, task.await.unwrap_or_default()));
    }
    trained
}

/// An epoch as a table for the console.
pub fn format_epoch(report: &EpochReport) -> String {
    let mut out = format!(
        "epoch {} at block {} ({} validator steps): weights {}\n",
        report.epoch, report.block, report.steps, report.weights
    );
    out.push_str(&format!(
        "  {:>4}  {:<10} {:<9} {:>8} {:>8} {:>7} {:>9} {:>9} {:>12} {:>9}\n",
        "uid", "name", "role", "loss", "score", "weight", "incentive", "dividends", "stake (TAO)", "answered"
    ));
    for r in &report.uids {
        let name = if r.name.is_empty() { r.hotkey.chars().take(10).collect::<String>() } else { r.name.clone() };
        let loss = if r.loss.is_finite() && r.queried > 0 { format!("{:.3}", r.loss) } else { "-".into() };
        out.push_str(&format!(
            "  {:>4}  {:<10} {:<9} {:>8} {:>8.4} {:>7.3} {:>9.4} {:>9.4} {:>12.3} {:>9}\n",
            r.uid,
            name,
            r.role,
            loss,
            r.score,
            r.weight,
            r.incentive,
            r.dividends,
            r.stake as f64 / 1e9,
            format!("{}/{}", r.answered, r.queried)
        ));
    }
    if let Some(switch) = &report.scorer_switch {
        out.push_str(&format!("  scorer switched for the next epoch: {switch}\n"));
    }
    out
}

/// One miner of the local subnet.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MinerProfile {
    /// Model seed.
    pub seed: u64,
    /// Share of training targets replaced by random tokens (0: clean data).
    pub noise: f64,
    /// Stop answering queries after this many epochs (0: never); to see a miner fall.
    pub stop_answering_after: u64,
}

impl Default for MinerProfile {
    fn default() -> Self {
        Self { seed: 1, noise: 0.0, stop_answering_after: 0 }
    }
}

/// The local subnet (`role = "subnet"`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubnetSettings {
    /// One entry per miner: different seeds and data quality, so they differ.
    pub miners: Vec<MinerProfile>,
    /// The validator's stake, in TAO.
    pub validator_stake: f64,
}

impl Default for SubnetSettings {
    fn default() -> Self {
        Self {
            miners: vec![
                MinerProfile { seed: 11, noise: 0.0, stop_answering_after: 0 },
                MinerProfile { seed: 12, noise: 0.3, stop_answering_after: 0 },
                MinerProfile { seed: 13, noise: 0.7, stop_answering_after: 0 },
            ],
            validator_stake: 1000.0,
        }
    }
}

impl SubnetSettings {
    pub fn validate(&self) -> std::result::Result<(), String> {
        for (i, m) in self.miners.iter().enumerate() {
            if !(0.0..=1.0).contains(&m.noise) {
                return Err(format!("subnet.miners[{i}].noise must be between 0 and 1, got {}", m.noise));
            }
        }
        Ok(())
    }
}
