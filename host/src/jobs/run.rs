//! The main job: run the neuron(s) the config describes.
//!
//! `role = "subnet"` (the default) runs a whole local subnet on the embedded
//! chain and prints a table per epoch. `role = "miner"` and
//! `role = "validator"` run one neuron with a wallet against a subtensor
//! node (`subtensor.network` / `subtensor.chain_endpoint`), or alone on the
//! embedded chain with `subtensor.network = "local"` (registered for free,
//! a development key when the wallet has no hotkey). Ctrl-C stops at
//! the end of the current step; the miners' training threads and servers
//! are stopped, the run log flushed and the chain state saved. SIGHUP asks
//! the validator (of a local subnet, or alone) to read its config again and
//! apply it at the next epoch boundary (`runtime::scorer_slot`).

use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use crate::{
    chain::{
        subtensor::{self, commits::CommitStore, signer::Sr25519Keypair, ChainSelection, NodeConfig, WaitFor},
        Chain,
    },
    config::{Config, Role},
    data::Dataset,
    error::{Error, Result},
    gpu::GpuDevice,
    metrics::{
        chain::MeteredChain,
        prometheus::{neuron, Metrics},
        runlog::RunLog,
    },
    net::ClientConfig,
    plugins::PluginModel,
    record::Recorder,
    runtime::{
        checkpoints::CheckpointPlan,
        miner::Miner,
        progress::{self, clear_progress_line, ProgressSettings},
        scorer_slot::{slot_for, ConfigSource},
        service::SharedModel,
        subnet::{self, format_epoch, start_metrics, PluginSet, SubnetRun, SubnetSummary},
        validator::{EpochReport, Validator},
    },
    wallet::{Keypair, PasswordSource},
};

/// Runs the job on a new multi-threaded runtime. `source` is where `config`
/// came from, read again on SIGHUP or when the file changes.
pub fn run(config: Config, source: ConfigSource) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("neuron-host")
        .build()
        .map_err(|e| Error::Config(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async move {
        let stop = Arc::new(AtomicBool::new(false));
        spawn_interrupt_handler(stop.clone());
        let hangup = Arc::new(AtomicBool::new(false));
        spawn_hangup_handler(hangup.clone(), config.role);
        let reload = Some((source, hangup));
        match config.role {
            Role::Subnet => run_subnet(config, stop, reload).await,
            Role::Miner | Role::Validator => run_neuron(config, stop, reload).await,
        }
    })
}

/// The first Ctrl-C (or SIGTERM) asks for a clean stop; the second exits at once.
fn spawn_interrupt_handler(stop: Arc<AtomicBool>) {
    tokio::spawn(async move {
        let mut interrupts = Interrupts::new();
        loop {
            interrupts.next().await;
            if stop.swap(true, Ordering::AcqRel) {
                eprintln!("interrupted twice: exiting without finishing the step");
                std::process::exit(130);
            }
            eprintln!("stopping after the current step (Ctrl-C again to exit at once)");
        }
    });
}

/// SIGHUP sets `flag`; the validator's scorer slot reads it once per step.
/// Registered once, before anything slow, so a hangup never kills the run.
#[cfg(unix)]
fn spawn_hangup_handler(flag: Arc<AtomicBool>, role: Role) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else { return };
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            if role == Role::Miner {
                tracing::warn!(target: "neuron_host::run", "SIGHUP ignored: a miner reads its config only at start; restart it to change the config");
            } else {
                tracing::info!(target: "neuron_host::run", "SIGHUP: the config is read again and applied at the next epoch boundary");
                flag.store(true, Ordering::Release);
            }
        }
    });
}

#[cfg(not(unix))]
fn spawn_hangup_handler(_flag: Arc<AtomicBool>, _role: Role) {}

/// SIGINT and SIGTERM, listened to from one registration for the whole run.
#[cfg(unix)]
pub(crate) struct Interrupts(Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>);

#[cfg(unix)]
impl Interrupts {
    pub(crate) fn new() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        Self(signal(SignalKind::interrupt()).ok().zip(signal(SignalKind::terminate()).ok()))
    }

    pub(crate) async fn next(&mut self) {
        match &mut self.0 {
            Some((int, term)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            None => std::future::pending::<()>().await,
        }
    }
}

#[cfg(not(unix))]
pub(crate) struct Interrupts;

#[cfg(not(unix))]
impl Interrupts {
    pub(crate) fn new() -> Self {
        Self
    }

    pub(crate) async fn next(&mut self) {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

type ReloadSource = Option<(ConfigSource, Arc<AtomicBool>)>;

async fn run_subnet(config: Config, stop: Arc<AtomicBool>, reload: ReloadSource) -> Result<()> {
    let epochs = config.epochs;
    let print_epoch = |report: &EpochReport| {
        println!("{}", format_epoch(report));
    };
    let summary = SubnetRun {
        config,
        metrics: Arc::new(Metrics::new()),
        stop,
        on_epoch: Box::new(print_epoch),
        on_metrics: Box::new(|addr| println!("metrics on http://{addr}/metrics")),
        reload,
    }
    .run()
    .await?;
    print_summary(&summary, epochs);
    Ok(())
}

/// The directory of one neuron's files (checkpoint, pending weight commits):
/// `~/.neuron-host/<wallet>/<hotkey>/netuid<N>/<role>`, like the SDK's
/// `~/.bittensor/miners/...`.
pub fn neuron_dir(config: &Config) -> Result<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from).ok_or_else(|| {
        Error::Config("HOME is not set: set checkpoint.path to say where the neuron keeps its files".into())
    })?;
    Ok(home
        .join(".neuron-host")
        .join(&config.wallet.name)
        .join(&config.wallet.hotkey)
        .join(format!("netuid{}", config.netuid))
        .join(config.role.to_string()))
}

/// A lone neuron's checkpoint: `checkpoint.path`, else `miner_checkpoint.pth`
/// or `validator_checkpoint.pth` in its directory.
fn neuron_checkpoint(config: &Config, dir: &std::path::Path, plugins: &PluginSet) -> Result<CheckpointPlan> {
    let (file, every) = match config.role {
        Role::Miner => ("miner_checkpoint.pth", config.checkpoint.miner_every_steps),
        _ => ("validator_checkpoint.pth", config.checkpoint.validator_every_blocks),
    };
    let path = if config.checkpoint.path.is_empty() { dir.join(file) } else { PathBuf::from(&config.checkpoint.path) };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| Error::Io { path: parent.to_path_buf(), source })?;
    }
    Ok(CheckpointPlan {
        path,
        every,
        resume: config.checkpoint.resume,
        keep: config.checkpoint.keep,
        plugin_version: plugins.model().info().version.to_string(),
    })
}

/// One miner or validator with a wallet, on a subtensor node.
async fn run_neuron(config: Config, stop: Arc<AtomicBool>, reload: ReloadSource) -> Result<()> {
    let selection = ChainSelection::from_flags(Some(&config.subtensor.network), Some(&config.subtensor.chain_endpoint))
        .map_err(Error::Config)?;
    let wallet = config.wallet_config().wallet()?;
    let on_node = matches!(selection, ChainSelection::Node(_));
    let keypair = if on_node || wallet.hotkey_path().exists() {
        Arc::new(wallet.hotkey_keypair(&PasswordSource::EnvironmentOrPrompt)?)
    } else {
        tracing::info!(target: "neuron_host::run", "no hotkey at {}: the embedded chain uses a development key", wallet.hotkey_path().display());
        Arc::new(subnet::dev_keypair(&config.role.to_string()))
    };
    // Created when something is kept in it: the default checkpoint, a validator's pending commits.
    let dir = neuron_dir(&config)?;
    let mut local = None;
    let chain: Arc<dyn Chain> = match selection {
        ChainSelection::Node(endpoint) => {
            let signer = Arc::new(Sr25519Keypair::from_shared(keypair.clone()).map_err(Error::Config)?);
            let mut node = NodeConfig::new(endpoint);
            node.wait_for =
                if config.subtensor.wait_for == "finalized" { WaitFor::Finalized } else { WaitFor::InBlock };
            subtensor::connect(node, signer).await?
        }
        ChainSelection::Local => {
            // One neuron alone on the embedded chain: it registers itself, and a
            // validator is staked so it holds a permit.
            let (chain, state_path) = subnet::local_chain(&config)?;
            let coldkey = wallet.coldkey_account().unwrap_or_else(|_| subnet::dev_keypair("owner").account());
            let client: Arc<dyn Chain> = Arc::new(chain.client(keypair.account(), coldkey));
            if client.metagraph(config.netuid).await?.uid_of(&keypair.account()).is_none() {
                client.register(config.netuid).await?;
                if config.role == Role::Validator {
                    chain.add_stake(config.netuid, keypair.account(), (config.subnet.validator_stake * 1e9) as u64)?;
                }
            }
            chain.run_epoch_now(config.netuid)?;
            let producer = chain.start();
            local = Some((chain, state_path, producer));
            client
        }
    };
    let plugins = PluginSet::load(&config, config.role == Role::Validator)?;
    let gpu = plugins.open_gpu(&config)?;
    tracing::info!(target: "neuron_host::run", "GPU: {}", gpu.describe());
    let metrics = Arc::new(Metrics::new());
    for p in &plugins.libraries {
        metrics.plugin_info(p.name(), &p.info().version, &p.info().kinds.names().join("+"));
    }
    let _metrics_server =
        start_metrics(&config, &metrics, &|addr| println!("metrics on http://{addr}/metrics")).await?;
    let run_dir = subnet::run_dir(&config);
    std::fs::create_dir_all(&run_dir).map_err(|source| Error::Io { path: run_dir.clone(), source })?;
    let runlog =
        Arc::new(Mutex::new(RunLog::open(&run_dir).map_err(|source| Error::Io { path: run_dir.clone(), source })?));
    let model = plugins.model().new_model(&gpu, &config.plugin_section(plugins.model().name()))?;
    let description = model.describe()?;
    let dataset = subnet::open_dataset(&config, &description.tokenizer, description.vocab_size)?;
    let name = format!("{}/{}", config.wallet.name, config.wallet.hotkey);
    let result = run_role(
        &config,
        name,
        chain,
        keypair,
        plugins,
        gpu,
        model,
        description.vocab_size,
        dataset,
        metrics,
        runlog,
        dir,
        stop,
        reload,
    )
    .await;
    if let Some((chain, state_path, producer)) = local {
        producer.abort();
        if let Some(p) = state_path {
            chain.save(&p).map_err(Error::Config)?;
        }
    }
    result
}

#[allow(clippy::too_many_arguments)]
async fn run_role(
    config: &Config,
    name: String,
    chain: Arc<dyn Chain>,
    keypair: Arc<Keypair>,
    plugins: PluginSet,
    gpu: Arc<GpuDevice>,
    model: PluginModel,
    vocab_size: u32,
    dataset: Arc<Dataset>,
    metrics: Arc<Metrics>,
    runlog: Arc<Mutex<RunLog>>,
    dir: PathBuf,
    stop: Arc<AtomicBool>,
    reload: ReloadSource,
) -> Result<()> {
    let on_node = !config.subtensor.chain_endpoint.is_empty() || config.subtensor.network != "local";
    let chain = MeteredChain::wrap(chain, metrics.clone(), &name);
    match config.role {
        Role::Miner => {
            let handle = Miner {
                name: name.clone(),
                netuid: config.netuid,
                chain,
                keypair,
                model: SharedModel::new(model)?,
                dataset,
                seed: config.data.seed,
                noise: 0.0,
                settings: config.miner.clone(),
                axon: config.axon.clone(),
                net: config.net_config(),
                metrics: metrics.clone(),
                runlog: Some(runlog.clone()),
                register: !on_node,
                checkpoint: Some(neuron_checkpoint(config, &dir, &plugins)?),
            }
            .start()
            .await?;
            println!("{name} is uid {} on subnet {}, serving on {}", handle.uid, config.netuid, handle.addr);
            let progress = progress::spawn(
                Box::new(|| 0),
                metrics.clone(),
                None,
                vec![name.clone()],
                ProgressSettings::from_config(config),
                stop.clone(),
            );
            while !stop.load(Ordering::Acquire) {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            progress.abort();
            clear_progress_line();
            let t = handle.stop().await;
            runlog.lock().unwrap_or_else(|p| p.into_inner()).flush();
            println!("{name}: {} training steps, last loss {:.4}", t.steps, t.last_loss);
            match t.error {
                Some(e) => Err(Error::Config(format!("training stopped: {e}"))),
                None => Ok(()),
            }
        }
        _ => {
            let scorer = plugins.new_scorer(&gpu, config)?;
            let scorer = slot_for(scorer, &plugins, config, &gpu, reload);
            let recorder = Recorder::from_config(&config.validator.record, &name)?;
            let net = config.net_config();
            let blocks = (metrics.clone(), neuron(&name));
            let progress = progress::spawn(
                Box::new(move || blocks.0.block.get_or_create(&blocks.1).get().max(0) as u64),
                metrics.clone(),
                Some(name.clone()),
                vec![name.clone()],
                ProgressSettings::from_config(config),
                stop.clone(),
            );
            let summary = Validator {
                name: name.clone(),
                netuid: config.netuid,
                chain,
                keypair,
                model: config.validator.train.then_some(model),
                scorer,
                recorder,
                dataset,
                vocab_size,
                seed: config.data.seed,
                settings: config.validator.clone(),
                client: ClientConfig { timeout: Duration::from_secs_f64(config.validator.timeout), ..net.client },
                commits: Arc::new(CommitStore::open(Some(dir.join("commits.json")))?),
                metrics,
                runlog: Some(runlog.clone()),
                epochs: config.epochs,
                stop,
                names: Default::default(),
                register: !on_node,
                checkpoint: Some(neuron_checkpoint(config, &dir, &plugins)?),
                on_epoch: Box::new(|report: &EpochReport| {
                    clear_progress_line();
                    println!("{}", format_epoch(report))
                }),
            }
            .run()
            .await;
            progress.abort();
            clear_progress_line();
            let summary = summary?;
            runlog.lock().unwrap_or_else(|p| p.into_inner()).flush();
            println!(
                "{name} (uid {}): {} steps, {} epochs, weights accepted in {}",
                summary.uid,
                summary.steps,
                summary.epochs.len(),
                summary.weights_submitted
            );
            Ok(())
        }
    }
}

fn print_summary(s: &SubnetSummary, epochs: u64) {
    let done = s.validator.epochs.len();
    if epochs > 0 && (done as u64) < epochs {
        println!("stopped after {done} of {epochs} epochs");
    }
    println!(
        "validator (uid {}): {} steps, {} epochs, weights accepted in {}",
        s.validator.uid, s.validator.steps, done, s.validator.weights_submitted
    );
    for (name, uid, t) in &s.miners {
        let error = t.error.as_deref().map(|e| format!(" (stopped: {e})")).unwrap_or_default();
        println!("{name} (uid {uid}): {} training steps, last loss {:.4}{error}", t.steps, t.last_loss);
    }
    if let Some(last) = s.validator.epochs.last() {
        if let Some(best) =
            last.uids.iter().filter(|r| r.role == "miner").max_by(|a, b| a.incentive.total_cmp(&b.incentive))
        {
            let name = if best.name.is_empty() { best.hotkey.clone() } else { best.name.clone() };
            println!("highest incentive: {name} (uid {}) {:.4}", best.uid, best.incentive);
        }
    }
    println!("run log in {} (plots: neuron-host report {})", s.run_dir.display(), s.run_dir.display());
}
