//! The main job: run the neuron(s) the config describes.
//!
//! `role = "subnet"` (the default) runs a whole local subnet on the embedded
//! chain and prints a table per epoch. `role = "miner"` and
//! `role = "validator"` run one neuron with a wallet against a subtensor
//! node (`subtensor.network` / `subtensor.chain_endpoint`). Ctrl-C stops at
//! the end of the current step; the miners' training threads and servers
//! are stopped, the run log flushed and the chain state saved.

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
    error::{Error, Result},
    metrics::{prometheus::Metrics, runlog::RunLog},
    net::ClientConfig,
    runtime::{
        miner::Miner,
        service::SharedModel,
        subnet::{self, format_epoch, start_metrics, PluginSet, SubnetRun, SubnetSummary},
        validator::{EpochReport, Validator},
    },
    wallet::PasswordSource,
};

/// Runs the job on a new multi-threaded runtime.
pub fn run(config: Config) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("neuron-host")
        .build()
        .map_err(|e| Error::Config(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async move {
        let stop = Arc::new(AtomicBool::new(false));
        spawn_interrupt_handler(stop.clone());
        match config.role {
            Role::Subnet => run_subnet(config, stop).await,
            Role::Miner | Role::Validator => run_neuron(config, stop).await,
        }
    })
}

/// The first Ctrl-C (or SIGTERM) asks for a clean stop; the second exits at once.
fn spawn_interrupt_handler(stop: Arc<AtomicBool>) {
    tokio::spawn(async move {
        loop {
            wait_for_interrupt().await;
            if stop.swap(true, Ordering::AcqRel) {
                eprintln!("interrupted twice: exiting without finishing the step");
                std::process::exit(130);
            }
            eprintln!("stopping after the current step (Ctrl-C again to exit at once)");
        }
    });
}

#[cfg(unix)]
async fn wait_for_interrupt() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

#[cfg(not(unix))]
async fn wait_for_interrupt() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn run_subnet(config: Config, stop: Arc<AtomicBool>) -> Result<()> {
    let epochs = config.epochs;
    let print_epoch = |report: &EpochReport| {
        println!("{}", format_epoch(report));
    };
    let summary = SubnetRun {
        config,
        stop,
        on_epoch: Box::new(print_epoch),
        on_metrics: Box::new(|addr| println!("metrics on http://{addr}/metrics")),
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
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .ok_or_else(|| Error::Config("HOME is not set: set checkpoint.path to say where the neuron keeps its files".into()))?;
    Ok(home
        .join(".neuron-host")
        .join(&config.wallet.name)
        .join(&config.wallet.hotkey)
        .join(format!("netuid{}", config.netuid))
        .join(config.role.to_string()))
}

/// One miner or validator with a wallet, on a subtensor node.
async fn run_neuron(config: Config, stop: Arc<AtomicBool>) -> Result<()> {
    let endpoint = match ChainSelection::from_flags(Some(&config.subtensor.network), Some(&config.subtensor.chain_endpoint))
        .map_err(Error::Config)?
    {
        ChainSelection::Node(e) => e,
        ChainSelection::Local => {
            return Err(Error::Config(format!(
                "a lone {} needs a subtensor node: pass --subtensor.network finney|test or --subtensor.chain_endpoint ws://HOST:PORT \
                 (the embedded chain runs with --role subnet)",
                config.role
            )))
        }
    };
    let wallet = config.wallet_config().wallet()?;
    let keypair = Arc::new(wallet.hotkey_keypair(&PasswordSource::EnvironmentOrPrompt)?);
    let dir = neuron_dir(&config)?;
    std::fs::create_dir_all(&dir).map_err(|source| Error::Io { path: dir.clone(), source })?;
    let signer = Arc::new(Sr25519Keypair::from_shared(keypair.clone()).map_err(Error::Config)?);
    let mut node = NodeConfig::new(endpoint);
    node.wait_for = if config.subtensor.wait_for == "finalized" { WaitFor::Finalized } else { WaitFor::InBlock };
    let chain: Arc<dyn Chain> = subtensor::connect(node, signer).await?;

    let plugins = PluginSet::load(&config, config.role == Role::Validator)?;
    let gpu = plugins.open_gpu(&config)?;
    tracing::info!(target: "neuron_host::run", "GPU: {}", gpu.describe());
    let metrics = Arc::new(Metrics::new());
    for p in &plugins.libraries {
        metrics.plugin_info(p.name(), &p.info().version, &p.info().kinds.names().join("+"));
    }
    let _metrics_server = start_metrics(&config, &metrics, &|addr| println!("metrics on http://{addr}/metrics")).await?;
    let run_dir = subnet::run_dir(&config);
    std::fs::create_dir_all(&run_dir).map_err(|source| Error::Io { path: run_dir.clone(), source })?;
    let runlog = Arc::new(Mutex::new(RunLog::open(&run_dir).map_err(|source| Error::Io { path: run_dir.clone(), source })?));
    let model = plugins.model().new_model(&gpu, &config.plugin_section(plugins.model().name()))?;
    let description = model.describe()?;
    let dataset = subnet::open_dataset(&config, &description.tokenizer, description.vocab_size)?;
    let name = format!("{}/{}", config.wallet.name, config.wallet.hotkey);
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
                metrics,
                runlog: Some(runlog.clone()),
                register: false,
            }
            .start()
            .await?;
            println!("{name} is uid {} on subnet {}, serving on {}", handle.uid, config.netuid, handle.addr);
            while !stop.load(Ordering::Acquire) {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            let t = handle.stop().await;
            runlog.lock().unwrap_or_else(|p| p.into_inner()).flush();
            println!("{name}: {} training steps, last loss {:.4}", t.steps, t.last_loss);
            match t.error {
                Some(e) => Err(Error::Config(format!("training stopped: {e}"))),
                None => Ok(()),
            }
        }
        _ => {
            let scorer_plugin = plugins.scorer().expect("a validator loads a scorer");
            let scorer = scorer_plugin.new_scorer(&gpu, &config.plugin_section(scorer_plugin.name()))?;
            let net = config.net_config();
            let summary = Validator {
                name: name.clone(),
                netuid: config.netuid,
                chain,
                keypair,
                model: config.validator.train.then_some(model),
                scorer,
                dataset,
                vocab_size: description.vocab_size,
                seed: config.data.seed,
                settings: config.validator.clone(),
                client: ClientConfig { timeout: Duration::from_secs_f64(config.validator.timeout), ..net.client },
                commits: Arc::new(CommitStore::open(Some(dir.join("commits.json")))?),
                metrics,
                runlog: Some(runlog.clone()),
                epochs: config.epochs,
                stop,
                names: Default::default(),
                register: false,
                on_epoch: Box::new(|report: &EpochReport| println!("{}", format_epoch(report))),
            }
            .run()
            .await?;
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
        if let Some(best) = last.uids.iter().filter(|r| r.role == "miner").max_by(|a, b| a.incentive.total_cmp(&b.incentive)) {
            let name = if best.name.is_empty() { best.hotkey.clone() } else { best.name.clone() };
            println!("highest incentive: {name} (uid {}) {:.4}", best.uid, best.incentive);
        }
    }
    println!("run log in {} (plots: neuron-host report {})", s.run_dir.display(), s.run_dir.display());
}
