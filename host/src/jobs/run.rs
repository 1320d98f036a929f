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
        Arc,
    },
};

use crate::{
    chain::{
        subtensor::{self, signer::Sr25519Keypair, ChainSelection, NodeConfig},
        Chain,
    },
    config::{Config, Role},
    error::{Error, Result},
    metrics::prometheus::{neuron, Metrics},
    runtime::{
        local_net::{dev_keypair, validator_stake, LocalNet},
        neurons::{MinerSpec, NeuronBuilder, ValidatorSpec},
        progress::{self, clear_progress_line, ProgressSettings},
        scorer_slot::ConfigSource,
        subnet::{format_epoch, SubnetRun, SubnetSummary},
        validator::EpochReport,
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
fn neuron_checkpoint(config: &Config, dir: &std::path::Path) -> PathBuf {
    let file = match config.role {
        Role::Miner => "miner_checkpoint.pth",
        _ => "validator_checkpoint.pth",
    };
    if config.checkpoint.path.is_empty() {
        dir.join(file)
    } else {
        PathBuf::from(&config.checkpoint.path)
    }
}

/// One miner or validator with a wallet, on a subtensor node or alone on the embedded chain.
async fn run_neuron(config: Config, stop: Arc<AtomicBool>, reload: ReloadSource) -> Result<()> {
    let selection = ChainSelection::from_flags(Some(&config.subtensor.network), Some(&config.subtensor.chain_endpoint))
        .map_err(Error::Config)?;
    let wallet = config.wallet_config().wallet()?;
    let on_node = matches!(selection, ChainSelection::Node(_));
    let keypair = if on_node || wallet.hotkey_path().exists() {
        Arc::new(wallet.hotkey_keypair(&PasswordSource::EnvironmentOrPrompt)?)
    } else {
        tracing::info!(target: "neuron_host::run", "no hotkey at {}: the embedded chain uses a development key", wallet.hotkey_path().display());
        Arc::new(dev_keypair(&config.role.to_string()))
    };
    // Created when something is kept in it: the default checkpoint, a validator's pending commits.
    let dir = neuron_dir(&config)?;
    let mut local = None;
    let chain: Arc<dyn Chain> = match selection {
        ChainSelection::Node(endpoint) => {
            let signer = Arc::new(Sr25519Keypair::from_shared(keypair.clone()).map_err(Error::Config)?);
            let mut node = NodeConfig::new(endpoint);
            node.wait_for = config.subtensor.wait_for;
            node.rpc = config.subtensor.rpc;
            node.mechanism = config.validator.mechanism;
            subtensor::connect(node, signer).await?
        }
        ChainSelection::Local if config.validator.mechanism != 0 => {
            return Err(Error::Config(format!(
                "validator.mechanism {}: the embedded chain has one mechanism per subnet; set it to 0",
                config.validator.mechanism
            )));
        }
        ChainSelection::Local => {
            // One neuron alone on the embedded chain: it registers itself, and a
            // validator is staked so it holds a permit.
            let mut net = LocalNet::open(&config)?;
            let coldkey = wallet.coldkey_account().unwrap_or_else(|_| dev_keypair("owner").account());
            let stake = (config.role == Role::Validator).then(|| validator_stake(&config));
            let client = net.enroll(keypair.account(), coldkey, stake).await?;
            net.start()?;
            local = Some(net);
            client
        }
    };
    let need_scorer = config.role == Role::Validator;
    let builder = NeuronBuilder::open(config.clone(), config, need_scorer, Arc::new(Metrics::new()), &|addr| {
        println!("metrics on http://{addr}/metrics")
    })
    .await;
    let result = match builder {
        Ok(builder) => run_role(&builder, chain, keypair, dir, on_node, stop, reload).await,
        Err(e) => Err(e),
    };
    if let Some(net) = local {
        net.stop()?;
    }
    result
}

async fn run_role(
    builder: &NeuronBuilder,
    chain: Arc<dyn Chain>,
    keypair: Arc<Keypair>,
    dir: PathBuf,
    on_node: bool,
    stop: Arc<AtomicBool>,
    reload: ReloadSource,
) -> Result<()> {
    let config = &builder.config;
    let name = format!("{}/{}", config.wallet.name, config.wallet.hotkey);
    let checkpoint = neuron_checkpoint(config, &dir);
    match config.role {
        Role::Miner => {
            let spec = MinerSpec {
                name: name.clone(),
                keypair,
                chain,
                seed: config.data.seed,
                noise: 0.0,
                register: !on_node,
                checkpoint,
            };
            let handle = builder.miner(spec)?.start().await?;
            println!("{name} is uid {} on subnet {}, serving on {}", handle.uid, config.netuid, handle.addr);
            let progress = progress::spawn(
                Box::new(|| 0),
                builder.metrics.clone(),
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
            builder.flush_runlog();
            println!("{name}: {} training steps, last loss {:.4}", t.steps, t.last_loss);
            match t.error {
                Some(e) => Err(Error::Config(format!("training stopped: {e}"))),
                None => Ok(()),
            }
        }
        _ => {
            let blocks = (builder.metrics.clone(), neuron(&name));
            let progress = progress::spawn(
                Box::new(move || blocks.0.block.get_or_create(&blocks.1).get().max(0) as u64),
                builder.metrics.clone(),
                Some(name.clone()),
                vec![name.clone()],
                ProgressSettings::from_config(config),
                stop.clone(),
            );
            let spec = ValidatorSpec {
                name: name.clone(),
                keypair,
                chain,
                seed: config.data.seed,
                register: !on_node,
                checkpoint,
                commits: dir.join("commits.json"),
                names: Default::default(),
                stop,
                on_epoch: Box::new(|report: &EpochReport| {
                    clear_progress_line();
                    println!("{}", format_epoch(report))
                }),
                reload,
            };
            let summary = match builder.validator(spec) {
                Ok(v) => v.run().await,
                Err(e) => Err(e),
            };
            progress.abort();
            clear_progress_line();
            let summary = summary?;
            builder.flush_runlog();
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
            if best.incentive > 0.0 {
                println!("highest incentive: {name} (uid {}) {:.4}", best.uid, best.incentive);
            } else {
                // With commit-reveal the chain sees an epoch's weights only when they are revealed,
                // an epoch or more later: naming a "highest" of all zeros would pick one at random.
                println!("no incentive yet: no miner had earned any by the last epoch (with commit-reveal, weights count only once the chain reveals them, an epoch or more after they are set; run more epochs)");
            }
        }
    }
    println!("run log in {} (plots: neuron-host report {})", s.run_dir.display(), s.run_dir.display());
}
