//! A whole subnet in one process: the embedded chain, a validator and a few
//! miners, all on one GPU device, talking signed HTTP over loopback.
//!
//! This is what `neuron-host --plugin libgpt.so` runs by default. The
//! validator registers first and is staked; every miner registers; the chain
//! runs a first epoch so the validator holds its permit; then the miners
//! start training and serving and the validator runs its epochs. Miners
//! differ by model seed and by how noisy their training data is, so the
//! validator has something to tell apart, and the chain's Yuma consensus
//! turns its weights into incentive.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use neuron_plugin_api::PluginKinds;

use super::{
    checkpoints::CheckpointPlan,
    miner::{Miner, MinerHandle, TrainSummary},
    progress::{self, clear_progress_line, ProgressSettings},
    scorer_slot::{slot_for, ConfigSource},
    service::SharedModel,
    validator::{EpochReport, Validator, ValidatorSummary},
};
use crate::{
    chain::{
        local::{LocalChain, LocalChainConfig},
        subtensor::commits::CommitStore,
        AccountId,
    },
    config::Config,
    data::{Dataset, Tokenizer},
    error::{Error, Result},
    gpu::{GpuDevice, Requirement},
    metrics::{
        chain::MeteredChain,
        prometheus::{Metrics, MetricsServer},
        runlog::RunLog,
    },
    net::ClientConfig,
    plugins::{load_all, LoadedPlugin, PluginScorer},
    record::Recorder,
    wallet::{Keypair, Scheme},
};

/// The scorer a subnet uses when none is named: the loss-based one, looked
/// for beside the model plugin and beside the executable.
pub const DEFAULT_SCORER_LIBRARY: &str = "scoring_loss";

/// The plugins of a run: the model and the scorer, and the libraries they came from.
pub struct PluginSet {
    pub libraries: Vec<LoadedPlugin>,
    model: usize,
    scorer: Option<usize>,
}

impl PluginSet {
    /// Loads `config.plugins` and `config.scoring`; picks the model plugin and the
    /// scorer (`config.scorer` by name, else the only one given, else the default
    /// found beside the model plugin when `need_scorer`).
    pub fn load(config: &Config, need_scorer: bool) -> Result<Self> {
        if config.plugins.is_empty() {
            return Err(Error::Config(
                "no model plugin given: pass --plugin PATH (for example target/release/libgpt.so), or list `plugins` in the config file"
                    .into(),
            ));
        }
        let mut paths: Vec<PathBuf> = config.plugins.clone();
        paths.extend(config.scoring.iter().cloned());
        let mut libraries = load_all(&paths)?;
        let models: Vec<usize> = (0..libraries.len()).filter(|&i| libraries[i].provides(PluginKinds::MODEL)).collect();
        let model = match models.as_slice() {
            [] => {
                return Err(Error::Config(format!(
                    "none of the plugins given provides a model ({}); pass a model plugin with --plugin",
                    names(&libraries)
                )))
            }
            [one] => *one,
            many => {
                return Err(Error::Config(format!(
                    "more than one model plugin given ({}); a neuron runs one model",
                    many.iter().map(|&i| libraries[i].name()).collect::<Vec<_>>().join(", ")
                )))
            }
        };
        let scorers = |libs: &[LoadedPlugin]| -> Vec<usize> {
            (0..libs.len()).filter(|&i| libs[i].provides(PluginKinds::SCORER)).collect()
        };
        let mut found = scorers(&libraries);
        if found.is_empty() && need_scorer {
            let path = default_scorer_path(libraries[model].path()).ok_or_else(|| {
                Error::Config(format!(
                    "no scoring plugin given and no {} beside {} or the executable; pass --scoring PATH",
                    library_file(DEFAULT_SCORER_LIBRARY),
                    libraries[model].path().display()
                ))
            })?;
            libraries.push(LoadedPlugin::load(&path)?);
            found = scorers(&libraries);
        }
        let scorer = select_scorer(&libraries, &found, &config.scorer)?;
        Ok(Self { libraries, model, scorer })
    }

    pub fn model(&self) -> &LoadedPlugin {
        &self.libraries[self.model]
    }

    pub fn scorer(&self) -> Option<&LoadedPlugin> {
        self.scorer.map(|i| &self.libraries[i])
    }

    /// Opens the GPU with every loaded plugin's requirements.
    pub fn open_gpu(&self, config: &Config) -> Result<Arc<GpuDevice>> {
        let reqs: Vec<Requirement<'_>> =
            self.libraries.iter().map(|p| Requirement { plugin: p.name(), gpu: &p.info().gpu }).collect();
        GpuDevice::open(&config.gpu_options(), &reqs)
    }

    /// The scorer, built with the network preset's values for the scoring keys
    /// its config section leaves out (the chain's own values win elsewhere).
    pub fn new_scorer(&self, gpu: &Arc<GpuDevice>, config: &Config) -> Result<PluginScorer> {
        let plugin =
            self.scorer().ok_or_else(|| Error::Config("no scoring plugin loaded; pass --scoring PATH".into()))?;
        build_scorer(plugin, gpu, config)
    }

    /// The libraries that provide a scorer (the candidates a config reload picks from).
    pub fn scorer_libraries(&self) -> Vec<usize> {
        (0..self.libraries.len()).filter(|&i| self.libraries[i].provides(PluginKinds::SCORER)).collect()
    }

    /// Index in `libraries` of the scorer in use.
    pub fn scorer_index(&self) -> Option<usize> {
        self.scorer
    }

    /// The model plugin's section with `seed` set, unless the section sets it.
    pub fn model_section(&self, config: &Config, seed: u64) -> Result<String> {
        let mut table: toml::Table = config
            .plugin_section(self.model().name())
            .parse()
            .map_err(|e| Error::Config(format!("[plugin.{}] is not valid TOML: {e}", self.model().name())))?;
        table.entry("seed").or_insert(toml::Value::Integer(seed as i64));
        Ok(toml::to_string(&table).unwrap_or_default())
    }
}

/// Picks the scorer among `candidates` (indices into `libraries`): the one
/// called `name`, else the only one; `None` when there is none.
pub fn select_scorer(libraries: &[LoadedPlugin], candidates: &[usize], name: &str) -> Result<Option<usize>> {
    if name.is_empty() {
        return match candidates {
            [] => Ok(None),
            [one] => Ok(Some(*one)),
            many => Err(Error::Config(format!(
                "more than one scorer loaded ({}); name the one to use with --scorer NAME",
                many.iter().map(|&i| libraries[i].name()).collect::<Vec<_>>().join(", ")
            ))),
        };
    }
    candidates.iter().copied().find(|&i| libraries[i].name() == name).map(Some).ok_or_else(|| {
        Error::Config(format!(
            "scorer `{name}` is not among the plugins loaded ({}); load it with --scoring PATH",
            names(libraries)
        ))
    })
}

/// Builds `plugin`'s scorer with its `[plugin.<name>]` section, and the network
/// preset's values for the scoring keys the section leaves out and the scorer knows.
pub fn build_scorer(plugin: &LoadedPlugin, gpu: &Arc<GpuDevice>, config: &Config) -> Result<PluginScorer> {
    let plain = config.plugin_section(plugin.name());
    let scorer = plugin.new_scorer(gpu, &plain)?;
    let known: Vec<String> =
        scorer.describe()?.config.parse::<toml::Table>().map(|t| t.keys().cloned().collect()).unwrap_or_default();
    let with_preset = config.scorer_section(plugin.name(), &known);
    if with_preset.parse::<toml::Table>().ok() == plain.parse::<toml::Table>().ok() {
        return Ok(scorer);
    }
    drop(scorer);
    plugin.new_scorer(gpu, &with_preset)
}

fn names(libraries: &[LoadedPlugin]) -> String {
    libraries.iter().map(|p| p.name()).collect::<Vec<_>>().join(", ")
}

fn library_file(name: &str) -> String {
    format!("{}{name}{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX)
}

fn default_scorer_path(model_plugin: &Path) -> Option<PathBuf> {
    let file = library_file(DEFAULT_SCORER_LIBRARY);
    let beside_model = model_plugin.parent().map(|d| d.join(&file));
    let beside_exe = std::env::current_exe().ok().and_then(|e| e.parent().map(|d| d.join(&file)));
    [beside_model, beside_exe].into_iter().flatten().find(|p| p.is_file())
}

/// The dataset a config names, tokenized the way the model expects.
pub fn open_dataset(config: &Config, tokenizer: &str, vocab: u32) -> Result<Arc<Dataset>> {
    let tokenizer = Tokenizer::from_name(tokenizer)?;
    let data = if config.data.dataset == "builtin" {
        Dataset::builtin(config.data.seed, config.data.builtin_bytes, tokenizer)?
    } else {
        Dataset::from_file(Path::new(&config.data.dataset), tokenizer)?
    };
    data.check_vocab(vocab)?;
    Ok(Arc::new(data))
}

/// A development key, the same on every run (like subtensor's //Alice).
pub fn dev_keypair(name: &str) -> Keypair {
    let seed = AccountId::from_name(&format!("neuron-host local subnet {name}"));
    Keypair::from_seed(&seed.0, Scheme::Sr25519).expect("a 32-byte seed is a valid sr25519 mini secret")
}

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

/// The embedded chain `[chain]` describes: resumed from `chain.state` when
/// that file exists, else new with the one subnet. Returns where to save it.
pub fn local_chain(config: &Config) -> Result<(Arc<LocalChain>, Option<PathBuf>)> {
    let block_time = Duration::from_secs_f64(config.chain.block_time);
    let state_path = (!config.chain.state.is_empty()).then(|| PathBuf::from(&config.chain.state));
    let chain = match &state_path {
        Some(p) if p.exists() && config.checkpoint.resume => LocalChain::load(p, block_time).map_err(Error::Config)?,
        _ => LocalChain::new(LocalChainConfig {
            block_time,
            block_emission: config.chain.block_emission,
            subnets: vec![(config.netuid, config.chain.hyperparams.clone(), None)],
        }),
    };
    Ok((chain, state_path))
}

/// Serves `/metrics` when `metrics.port` is set.
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

/// The checkpoint plan of one neuron of a local subnet, its folder created.
fn neuron_plan(
    dir: &Path,
    name: &str,
    file: &str,
    every: u64,
    config: &Config,
    version: &str,
) -> Result<CheckpointPlan> {
    let folder = dir.join(name);
    std::fs::create_dir_all(&folder).map_err(|source| Error::Io { path: folder.clone(), source })?;
    Ok(CheckpointPlan {
        path: folder.join(file),
        every,
        resume: config.checkpoint.resume,
        keep: config.checkpoint.keep,
        plugin_version: version.to_string(),
    })
}

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
        let plugins = PluginSet::load(&config, true)?;
        let scorer_plugin = plugins.scorer().expect("a subnet loads a scorer");
        let gpu = plugins.open_gpu(&config)?;
        tracing::info!(target: "neuron_host::subnet", "GPU: {}", gpu.describe());

        let dir = run_dir(&config);
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io { path: dir.clone(), source })?;
        let written = toml::to_string(&config).map_err(|e| Error::Config(format!("cannot write the config: {e}")))?;
        crate::fsutil::write_atomically(&dir.join("config.toml"), written.as_bytes())
            .map_err(|source| Error::Io { path: dir.join("config.toml"), source })?;
        let runlog =
            Arc::new(Mutex::new(RunLog::open(&dir).map_err(|source| Error::Io { path: dir.clone(), source })?));

        let metrics = self.metrics.clone();
        for p in &plugins.libraries {
            metrics.plugin_info(p.name(), &p.info().version, &p.info().kinds.names().join("+"));
        }
        let _metrics_server = start_metrics(&config, &metrics, &*self.on_metrics).await?;

        // The chain.
        let netuid = config.netuid;
        let (chain, state_path) = local_chain(&config)?;

        // The neurons' keys and registrations: the validator first, then the miners.
        let mut names = HashMap::new();
        let validator_key = Arc::new(dev_keypair("validator"));
        let owner = dev_keypair("owner").account();
        names.insert(validator_key.account(), "validator".to_string());
        let validator_chain =
            MeteredChain::wrap(Arc::new(chain.client(validator_key.account(), owner)), metrics.clone(), "validator");
        if validator_chain.metagraph(netuid).await?.uid_of(&validator_key.account()).is_none() {
            validator_chain.register(netuid).await?;
            chain
                .add_stake(netuid, validator_key.account(), (config.subnet.validator_stake * 1e9) as u64)
                .map_err(Error::from)?;
        }
        let mut miner_keys = Vec::new();
        for i in 0..config.subnet.miners.len() {
            let name = format!("miner{}", i + 1);
            let key = Arc::new(dev_keypair(&name));
            let client = MeteredChain::wrap(Arc::new(chain.client(key.account(), owner)), metrics.clone(), &name);
            if client.metagraph(netuid).await?.uid_of(&key.account()).is_none() {
                client.register(netuid).await?;
            }
            names.insert(key.account(), name.clone());
            miner_keys.push((name, key, client));
        }
        chain.run_epoch_now(netuid).map_err(Error::from)?;
        let producer = chain.start();

        // The dataset, tokenized for the model.
        let description = {
            let probe = plugins.model().new_model(&gpu, &plugins.model_section(&config, 0)?)?;
            probe.describe()?
        };
        let dataset = open_dataset(&config, &description.tokenizer, description.vocab_size)?;
        tracing::info!(
            target: "neuron_host::subnet",
            "model {} ({} parameters, vocab {}), dataset {} ({} tokens), scorer {}",
            description.architecture,
            description.parameters,
            description.vocab_size,
            dataset.source(),
            dataset.len(),
            scorer_plugin.name()
        );

        // The miners.
        let net = config.net_config();
        let mut miners: Vec<MinerHandle> = Vec::new();
        let mut stop_after: Vec<(u64, Arc<AtomicBool>, String)> = Vec::new();
        for ((name, key, client), profile) in miner_keys.into_iter().zip(&config.subnet.miners) {
            let model = plugins.model().new_model(&gpu, &plugins.model_section(&config, profile.seed)?)?;
            let handle = Miner {
                name: name.clone(),
                netuid,
                chain: client,
                keypair: key,
                model: SharedModel::new(model)?,
                dataset: dataset.clone(),
                seed: profile.seed,
                noise: profile.noise,
                settings: config.miner.clone(),
                axon: config.axon.clone(),
                net: net.clone(),
                metrics: metrics.clone(),
                runlog: Some(runlog.clone()),
                register: true,
                checkpoint: Some(neuron_plan(
                    &checkpoint_dir,
                    &name,
                    "miner_checkpoint.pth",
                    config.checkpoint.miner_every_steps,
                    &config,
                    &plugins.model().info().version,
                )?),
            }
            .start()
            .await;
            let handle = match handle {
                Ok(h) => h,
                Err(e) => {
                    stop_all(miners).await;
                    producer.abort();
                    return Err(e);
                }
            };
            if profile.stop_answering_after > 0 {
                stop_after.push((profile.stop_answering_after, handle.answering.clone(), name));
            }
            miners.push(handle);
        }

        // The validator.
        let own_model = if config.validator.train {
            Some(plugins.model().new_model(&gpu, &plugins.model_section(&config, config.data.seed ^ 0x5eed)?)?)
        } else {
            None
        };
        let scorer = plugins.new_scorer(&gpu, &config)?;
        let scorer = slot_for(scorer, &plugins, &as_loaded, &gpu, self.reload);
        let recorder = Recorder::from_config(&config.validator.record, "validator")?;
        let on_epoch = self.on_epoch;
        let validator = Validator {
            name: "validator".into(),
            netuid,
            chain: validator_chain,
            keypair: validator_key,
            model: own_model,
            scorer,
            recorder,
            dataset: dataset.clone(),
            vocab_size: description.vocab_size,
            seed: config.data.seed ^ 0x7a11,
            settings: config.validator.clone(),
            client: ClientConfig { timeout: Duration::from_secs_f64(config.validator.timeout), ..net.client.clone() },
            commits: Arc::new(CommitStore::open(Some(dir.join("commits.json")))?),
            metrics: metrics.clone(),
            runlog: Some(runlog.clone()),
            epochs: config.epochs,
            stop: self.stop.clone(),
            names: names.clone(),
            register: true,
            checkpoint: Some(neuron_plan(
                &checkpoint_dir,
                "validator",
                "validator_checkpoint.pth",
                config.checkpoint.validator_every_blocks,
                &config,
                &plugins.model().info().version,
            )?),
            on_epoch: Box::new(move |report: &EpochReport| {
                for (after, answering, name) in &stop_after {
                    if report.epoch == *after && answering.swap(false, Ordering::AcqRel) {
                        tracing::info!(target: "neuron_host::subnet", "{name} stops answering queries (subnet.miners: stop_answering_after = {after})");
                    }
                }
                clear_progress_line();
                on_epoch(report);
            }),
        };
        let mut watched = vec!["validator".to_string()];
        watched.extend(miners.iter().map(|m| m.name.clone()));
        let blocks = chain.clone();
        let progress = progress::spawn(
            Box::new(move || blocks.current_block()),
            metrics.clone(),
            Some("validator".into()),
            watched,
            ProgressSettings::from_config(&config),
            self.stop.clone(),
        );
        let result = validator.run().await;
        progress.abort();
        clear_progress_line();

        let mut trained = Vec::new();
        for m in miners {
            let (name, uid) = (m.name.clone(), m.uid);
            trained.push((name, uid, m.stop().await));
        }
        producer.abort();
        if let Some(p) = &state_path {
            chain.save(p).map_err(Error::Config)?;
        }
        runlog.lock().unwrap_or_else(|p| p.into_inner()).flush();
        Ok(SubnetSummary { validator: result?, miners: trained, run_dir: dir, names })
    }
}

async fn stop_all(miners: Vec<MinerHandle>) {
    for m in miners {
        m.stop().await;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_stamps() {
        assert_eq!(utc_stamp(0), "19700101-000000");
        assert_eq!(utc_stamp(951_782_400), "20000229-000000");
        assert_eq!(utc_stamp(1_795_339_425), "20261122-092345");
    }

    #[test]
    fn dev_keys_are_stable_and_distinct() {
        assert_eq!(dev_keypair("miner1").account(), dev_keypair("miner1").account());
        assert_ne!(dev_keypair("miner1").account(), dev_keypair("miner2").account());
    }
}
