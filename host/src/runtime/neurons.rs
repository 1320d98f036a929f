//! Building neurons, one way for every run: [`NeuronBuilder`] opens what the neurons of a run
//! share (the plugins, the GPU device, the metric families and their server, the run directory
//! with its `config.toml` and run log, the dataset tokenized for the model) and makes each
//! [`Miner`] and [`Validator`] from a few per-neuron facts (name, keys, chain, seed, checkpoint).
//! The local subnet and a lone miner or validator both build their neurons here.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{atomic::AtomicBool, Arc, Mutex, OnceLock},
    time::Duration,
};

use neuron_plugin_api::ModelDescription;

use super::{
    checkpoints::CheckpointPlan,
    miner::Miner,
    plugin_set::PluginSet,
    scorer_slot::{slot_for, ConfigSource},
    service::SharedModel,
    validator::{EpochReport, Validator},
};
use crate::{
    chain::{commits::CommitStore, AccountId, Chain},
    config::{Config, Role},
    data::{Dataset, Tokenizer},
    error::{Error, Result},
    gpu::GpuDevice,
    metrics::{
        chain::MeteredChain,
        prometheus::{Metrics, MetricsServer},
        runlog::RunLog,
    },
    net::ClientConfig,
    plugins::PluginModel,
    record::Recorder,
    wallet::Keypair,
};

/// What the neurons of one run share, and the one place neurons are made.
pub struct NeuronBuilder {
    /// The configuration the run uses (derived values such as `chain.state` filled in).
    pub config: Config,
    /// The configuration as its layers gave it: what a validator's config reload compares with.
    as_loaded: Config,
    pub plugins: PluginSet,
    pub gpu: Arc<GpuDevice>,
    pub metrics: Arc<Metrics>,
    pub run_dir: PathBuf,
    pub runlog: Arc<Mutex<RunLog>>,
    /// The model's description and the dataset tokenized for it, taken from the first model
    /// built (so no model is built only to be described).
    model_data: OnceLock<(ModelDescription, Arc<Dataset>)>,
    _metrics_server: Option<MetricsServer>,
}

/// Who a miner is.
pub struct MinerSpec {
    pub name: String,
    pub keypair: Arc<Keypair>,
    pub chain: Arc<dyn Chain>,
    /// Seed of the model's initial weights (unless its config section sets one) and of the data stream.
    pub seed: u64,
    /// Share of training targets replaced by noise.
    pub noise: f64,
    /// Register when the subnet does not know the hotkey (the embedded chain only).
    pub register: bool,
    pub checkpoint: PathBuf,
}

/// Who a validator is.
pub struct ValidatorSpec {
    pub name: String,
    pub keypair: Arc<Keypair>,
    pub chain: Arc<dyn Chain>,
    /// Seed of the data stream; its own model is seeded from it too.
    pub seed: u64,
    pub register: bool,
    pub checkpoint: PathBuf,
    /// Where pending weight commits are kept across restarts.
    pub commits: PathBuf,
    /// Names to show for hotkeys in the epoch table.
    pub names: HashMap<AccountId, String>,
    pub stop: Arc<AtomicBool>,
    pub on_epoch: Box<dyn Fn(&EpochReport) + Send + Sync>,
    /// The config's sources and the SIGHUP flag, for a scorer that follows config changes.
    pub reload: Option<(ConfigSource, Arc<AtomicBool>)>,
}

impl NeuronBuilder {
    /// Loads the plugins (a scorer too when `need_scorer`), opens the GPU, creates the run
    /// directory with the `config.toml` the run uses and its run log, serves `/metrics` when
    /// `metrics.port` is set (`on_metrics` is told where). The dataset opens with the first model.
    pub async fn open(
        config: Config,
        as_loaded: Config,
        need_scorer: bool,
        metrics: Arc<Metrics>,
        on_metrics: &(dyn Fn(std::net::SocketAddr) + Send + Sync),
    ) -> Result<Self> {
        let plugins = PluginSet::load(&config, need_scorer)?;
        let gpu = plugins.open_gpu(&config)?;
        tracing::info!(target: "neuron_host::runtime", "GPU: {}", gpu.describe());

        let dir = run_dir(&config);
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io { path: dir.clone(), source })?;
        let written = toml::to_string(&config).map_err(|e| Error::Config(format!("cannot write the config: {e}")))?;
        crate::fsutil::write_atomically(&dir.join("config.toml"), written.as_bytes())
            .map_err(|source| Error::Io { path: dir.join("config.toml"), source })?;
        let runlog =
            Arc::new(Mutex::new(RunLog::open(&dir).map_err(|source| Error::Io { path: dir.clone(), source })?));

        for p in &plugins.libraries {
            metrics.plugin_info(p.name(), &p.info().version, &p.info().kinds.names().join("+"));
        }
        let metrics_server = start_metrics(&config, &metrics, on_metrics).await?;
        Ok(Self {
            config,
            as_loaded,
            plugins,
            gpu,
            metrics,
            run_dir: dir,
            runlog,
            model_data: OnceLock::new(),
            _metrics_server: metrics_server,
        })
    }

    /// The model's description and the run's dataset, from `model` the first time (every model
    /// of a run comes from the same plugin and differs only in its seed).
    fn model_data(&self, model: &PluginModel) -> Result<&(ModelDescription, Arc<Dataset>)> {
        if let Some(known) = self.model_data.get() {
            return Ok(known);
        }
        let d = model.describe()?;
        let tokenizer = Tokenizer::from_name(&d.tokenizer)?;
        let dataset = Arc::new(self.config.data.open(&self.config.data.dataset, tokenizer, d.vocab_size)?);
        tracing::info!(
            target: "neuron_host::runtime",
            "model {} ({} parameters, vocab {}), dataset {} ({} tokens){}",
            d.architecture,
            d.parameters,
            d.vocab_size,
            dataset.source(),
            dataset.len(),
            self.plugins.scorer().map(|s| format!(", scorer {}", s.name())).unwrap_or_default()
        );
        Ok(self.model_data.get_or_init(|| (d, dataset)))
    }

    /// A model of the run's plugin whose weights are seeded with `seed` (unless its section sets one).
    fn new_model(&self, seed: u64) -> Result<PluginModel> {
        Ok(self.plugins.model().new_model(&self.gpu, &self.plugins.model_section(&self.config, seed)?)?)
    }

    /// The checkpoint plan of a neuron of `role` saving to `path` (its folder created).
    pub fn checkpoint_plan(&self, path: PathBuf, role: Role) -> Result<CheckpointPlan> {
        let every = match role {
            Role::Miner => self.config.checkpoint.miner_every_steps,
            _ => self.config.checkpoint.validator_every_blocks,
        };
        // Checked before the neuron starts: a neuron that cannot save would lose its work.
        crate::checkpoint::writer::check_destination(&path).map_err(|e| {
            Error::Config(format!("{e}; set checkpoint.path (--checkpoint_path) to a place this user can write"))
        })?;
        Ok(CheckpointPlan {
            path,
            every,
            resume: self.config.checkpoint.resume,
            keep: self.config.checkpoint.keep,
            plugin_version: self.plugins.model().info().version.to_string(),
        })
    }

    /// A miner: its own model (seeded), the run's dataset, metrics and run log, its chain calls metered.
    pub fn miner(&self, spec: MinerSpec) -> Result<Miner> {
        let config = &self.config;
        let model = self.new_model(spec.seed)?;
        let (_, dataset) = self.model_data(&model)?;
        let dataset = dataset.clone();
        Ok(Miner {
            chain: MeteredChain::wrap(spec.chain, self.metrics.clone(), &spec.name),
            keypair: spec.keypair,
            model: SharedModel::new(model)?,
            dataset,
            seed: spec.seed,
            noise: spec.noise,
            settings: config.miner.clone(),
            axon: config.axon.clone(),
            net: config.net_config(),
            metrics: self.metrics.clone(),
            runlog: Some(self.runlog.clone()),
            register: spec.register,
            checkpoint: Some(self.checkpoint_plan(spec.checkpoint, Role::Miner)?),
            netuid: config.netuid,
            name: spec.name,
        })
    }

    /// A validator: its scorer (following config changes when `reload` is given), its own model
    /// when `validator.train` is on, its recorder, pending commits and checkpoint.
    pub fn validator(&self, spec: ValidatorSpec) -> Result<Validator> {
        let config = &self.config;
        let own_model = config.validator.train.then(|| self.new_model(spec.seed ^ OWN_MODEL_SEED_SALT)).transpose()?;
        let (description, dataset) = match &own_model {
            Some(m) => self.model_data(m)?,
            // A scoring-only validator still needs the tokenizer and vocabulary: a model built to
            // be described, unless a miner of the run already was.
            None => match self.model_data.get() {
                Some(known) => known,
                None => self.model_data(&self.new_model(0)?)?,
            },
        };
        let (vocab_size, dataset) = (description.vocab_size, dataset.clone());
        let scorer = self.plugins.new_scorer(&self.gpu, config)?;
        let scorer = slot_for(scorer, &self.plugins, &self.as_loaded, &self.gpu, spec.reload);
        let net = config.net_config();
        Ok(Validator {
            chain: MeteredChain::wrap(spec.chain, self.metrics.clone(), &spec.name),
            keypair: spec.keypair,
            model: own_model,
            scorer,
            recorder: Recorder::from_config(&config.validator.record, &spec.name)?,
            dataset,
            vocab_size,
            seed: spec.seed,
            settings: config.validator.clone(),
            client: ClientConfig { timeout: Duration::from_secs_f64(config.validator.timeout), ..net.client },
            commits: Arc::new(CommitStore::open(Some(spec.commits))?),
            metrics: self.metrics.clone(),
            runlog: Some(self.runlog.clone()),
            epochs: config.epochs,
            stop: spec.stop,
            names: spec.names,
            register: spec.register,
            checkpoint: Some(self.checkpoint_plan(spec.checkpoint, Role::Validator)?),
            on_epoch: spec.on_epoch,
            netuid: config.netuid,
            name: spec.name,
        })
    }

    /// Writes out what the run log holds (at the end of a run).
    pub fn flush_runlog(&self) {
        self.runlog.lock().unwrap_or_else(|p| p.into_inner()).flush();
    }
}

/// Mixed into a validator's seed for its own model's initial weights, so they differ from the
/// miners' even when the seeds coincide.
const OWN_MODEL_SEED_SALT: u64 = 0x5eed;

/// `runs/<UTC date-time>` under the working directory, or `logging.run_dir`.
pub fn run_dir(config: &Config) -> PathBuf {
    if !config.logging.run_dir.is_empty() {
        return PathBuf::from(&config.logging.run_dir);
    }
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    PathBuf::from("runs").join(utc_stamp(secs))
}

/// `YYYYMMDD-HHMMSS` of a Unix time, in UTC.
pub fn utc_stamp(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}-{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

pub async fn start_metrics(
    config: &Config,
    metrics: &Arc<Metrics>,
    on_listen: &(dyn Fn(std::net::SocketAddr) + Send + Sync),
) -> Result<Option<MetricsServer>> {
    if config.metrics.port == 0 {
        return Ok(None);
    }
    let ip: std::net::IpAddr = config
        .metrics
        .ip
        .parse()
        .map_err(|_| Error::Config(format!("metrics.ip `{}` is not an IP address", config.metrics.ip)))?;
    let server = MetricsServer::start(std::net::SocketAddr::new(ip, config.metrics.port), metrics.clone())
        .await
        .map_err(Error::Config)?;
    on_listen(server.addr());
    Ok(Some(server))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_stamps() {
        assert_eq!(utc_stamp(0), "19700101-000000");
        assert_eq!(utc_stamp(951_782_400), "20000229-000000");
        assert_eq!(utc_stamp(1_795_339_425), "20261122-092345");
    }
}
