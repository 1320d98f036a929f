//! The miner: trains its model while answering validators' queries with it.
//!
//! Start-up registers the hotkey if the subnet does not know it, serves the
//! model over signed HTTP (only registered callers with a validator permit,
//! unless `[net]` says otherwise), announces the endpoint on chain, and starts
//! the training loop on its own thread: batch, forward, loss, backward,
//! optimizer step with the host's learning-rate schedule.

use std::{
    net::{IpAddr, SocketAddr},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    thread::JoinHandle,
};

use serde_json::json;

use super::{
    checkpoints::{CheckpointPlan, MinerCheckpoint, PluginIdentity, Saver},
    directory::MetagraphDirectory,
    schedule::LrSchedule,
    service::{ModelService, SharedModel},
    training::{TrainedStep, Trainer, TrainerSettings},
};
use crate::{
    chain::{AxonInfo, Chain, NetUid},
    data::Dataset,
    error::{Error, Result},
    metrics::{
        prometheus::{neuron, Metrics},
        runlog::RunLog,
    },
    net::{self, NetConfig, RunningServer},
    wallet::Keypair,
};

/// Everything a miner is made of.
pub struct Miner {
    pub name: String,
    pub netuid: NetUid,
    pub chain: Arc<dyn Chain>,
    pub keypair: Arc<Keypair>,
    pub model: Arc<SharedModel>,
    pub dataset: Arc<Dataset>,
    /// Seed of the miner's data stream.
    pub seed: u64,
    /// Share of targets replaced by random tokens.
    pub noise: f64,
    pub settings: MinerSettings,
    pub axon: AxonSettings,
    pub net: NetConfig,
    pub metrics: Arc<Metrics>,
    pub runlog: Option<Arc<Mutex<RunLog>>>,
    /// Register the hotkey when the subnet does not know it (the local
    /// chain); on a node registration costs TAO and is left to the operator.
    pub register: bool,
    /// Where to save and resume from (None: no checkpoints).
    pub checkpoint: Option<CheckpointPlan>,
}

/// What a miner's training did.
#[derive(Clone, Debug, Default)]
pub struct TrainSummary {
    pub steps: u64,
    pub last_loss: f32,
    pub error: Option<String>,
}

/// A running miner.
pub struct MinerHandle {
    pub name: String,
    pub uid: u16,
    pub addr: SocketAddr,
    pub answering: Arc<AtomicBool>,
    pub global_step: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    trainer: Option<JoinHandle<TrainSummary>>,
    server: Option<RunningServer>,
    refresher: tokio::task::JoinHandle<()>,
}

impl Miner {
    /// Registers (if needed), serves, announces and starts training.
    pub async fn start(self) -> Result<MinerHandle> {
        let hotkey = self.keypair.account();
        let mg = self.chain.metagraph(self.netuid).await?;
        let uid = match mg.uid_of(&hotkey) {
            Some(uid) => uid,
            None if !self.register => return Err(not_registered(&self.keypair, self.netuid)),
            None => {
                let uid = self.chain.register(self.netuid).await?;
                tracing::info!(target: "neuron_host::miner", "{} registered as uid {uid} on subnet {}", self.name, self.netuid);
                uid
            }
        };
        // Resume before serving, so the first answer already comes from the restored model.
        let resumed = match &self.checkpoint {
            Some(plan) => self.model.train(|m| plan.resume_miner(m))?,
            None => None,
        };
        let directory = MetagraphDirectory::new();
        directory.update(&self.chain.metagraph(self.netuid).await?);
        let ip: IpAddr = self
            .axon
            .ip
            .parse()
            .map_err(|_| Error::Config(format!("axon.ip `{}` is not an IP address", self.axon.ip)))?;
        let mut server_config = self.net.server.clone();
        server_config.bind = SocketAddr::new(ip, self.axon.port);
        let answering = Arc::new(AtomicBool::new(true));
        let service = ModelService {
            model: self.model.clone(),
            max_top_k: self.settings.max_top_k,
            answering: answering.clone(),
            metrics: self.metrics.clone(),
            name: self.name.clone(),
        };
        let server = net::serve(server_config, &self.keypair, service, directory.clone()).await?;
        let addr = server.local_addr();
        let announced: IpAddr = if self.axon.external_ip.is_empty() {
            addr.ip()
        } else {
            self.axon.external_ip.parse().map_err(|_| {
                Error::Config(format!("axon.external_ip `{}` is not an IP address", self.axon.external_ip))
            })?
        };
        self.chain.serve_axon(self.netuid, AxonInfo::new(announced, addr.port(), crate_version())).await?;
        tracing::info!(target: "neuron_host::miner", "{} (uid {uid}) serving on {addr}", self.name);

        // Keep the access directory current.
        let refresher = {
            let chain = self.chain.clone();
            let netuid = self.netuid;
            let directory = directory.clone();
            tokio::spawn(async move {
                let Ok(mut blocks) = chain.subscribe_blocks().await else { return };
                while let Some(block) = blocks.next().await {
                    if block.is_ok_and(|b| b % 10 == 0) {
                        if let Ok(mg) = chain.metagraph(netuid).await {
                            directory.update(&mg);
                        }
                    }
                }
            })
        };

        let stop = Arc::new(AtomicBool::new(false));
        let global_step = Arc::new(AtomicU64::new(resumed.as_ref().map_or(0, |c| c.global_step)));
        if let Some(c) = &resumed {
            tracing::info!(target: "neuron_host::miner", "{} resumed from its checkpoint at step {}", self.name, c.global_step);
            self.metrics.global_step.get_or_create(&neuron(&self.name)).set(c.global_step as i64);
        }
        let handle_name = self.name.clone();
        let trainer = if !self.settings.train {
            tracing::info!(target: "neuron_host::miner", "{} serves its model without training it (miner.train = false)", self.name);
            None
        } else {
            let stop = stop.clone();
            let global_step = global_step.clone();
            let name = self.name.clone();
            std::thread::Builder::new()
                .name(format!("{}-train", self.name))
                .spawn(move || train_loop(&self, &stop, &global_step, resumed))
                .map_err(|e| Error::Config(format!("cannot start {name}'s training thread: {e}")))
                .map(Some)?
        };
        Ok(MinerHandle {
            name: handle_name,
            uid,
            addr,
            answering,
            global_step,
            stop,
            trainer,
            server: Some(server),
            refresher,
        })
    }
}

/// The one-line refusal to start an unregistered neuron on a node.
pub fn not_registered(keypair: &Keypair, netuid: NetUid) -> Error {
    Error::Config(format!(
        "hotkey {} is not registered on subnet {netuid}: register it first (btcli subnet register --netuid {netuid}), then start again",
        keypair.ss58()
    ))
}

fn crate_version() -> u32 {
    let v: Vec<u32> = env!("CARGO_PKG_VERSION").split('.').filter_map(|p| p.parse().ok()).collect();
    v.first().copied().unwrap_or(0) * 1_000_000
        + v.get(1).copied().unwrap_or(0) * 1_000
        + v.get(2).copied().unwrap_or(0)
}

fn train_loop(m: &Miner, stop: &AtomicBool, global_step: &AtomicU64, resumed: Option<MinerCheckpoint>) -> TrainSummary {
    let s = &m.settings;
    let settings = TrainerSettings {
        schedule: s.schedule(),
        batch_size: s.batch_size,
        sequence_length: s.sequence_length,
        seed: m.seed,
        noise: m.noise,
    };
    let description = m.model.description();
    let mut trainer =
        Trainer::new(&m.name, "miner.sequence_length", settings, description.vocab_size, description.block_size);
    if let Some(c) = &resumed {
        trainer.resume(c.global_step, c.data, Some(&c.schedule));
    }
    if let Some(plan) = &m.checkpoint {
        match m.model.train(|model| PluginIdentity::of(model, &plan.plugin_version)) {
            Ok(identity) => trainer.save_with(
                Saver::new(plan.path.clone(), plan.keep, m.metrics.clone(), &m.name),
                plan.every,
                identity,
            ),
            Err(e) => {
                tracing::error!(target: "neuron_host::miner", "{}: no checkpoints: cannot describe the model: {e}", m.name)
            }
        }
    }
    let mut summary = TrainSummary::default();
    let label = neuron(&m.name);
    while !stop.load(Ordering::Acquire) {
        let batch = match trainer.next_batch(&m.dataset) {
            Ok(b) => b,
            Err(e) => {
                summary.error = Some(e.to_string());
                break;
            }
        };
        let result = m.model.train(|model| -> Result<(TrainedStep, u64)> {
            let done = trainer.train_on(model, &batch)?;
            Ok((done, model.compute_stats().live_bytes))
        });
        let (done, gpu_bytes) = match result {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(target: "neuron_host::miner", "{}: training stopped: {e}", m.name);
                summary.error = Some(e.to_string());
                break;
            }
        };
        let step = done.step;
        global_step.store(step, Ordering::Release);
        summary.steps += 1;
        summary.last_loss = done.loss;
        done.record(&m.metrics, &label);
        m.metrics.gpu_memory.get_or_create(&label).set(gpu_bytes as i64);
        if let Some(log) = &m.runlog {
            let record = json!({
                "time": unix_time(), "neuron": m.name, "role": "miner", "step": step, "loss": done.loss,
                "lr": done.lr, "grad_norm": done.grad_norm, "tokens_per_s": done.tokens_per_second(), "step_s": done.seconds,
            });
            let prefix = format!("{}/", m.name);
            log.lock().unwrap_or_else(|p| p.into_inner()).step(
                &record,
                step as i64,
                &[
                    (&format!("{prefix}loss"), f64::from(done.loss)),
                    (&format!("{prefix}lr"), done.lr),
                    (&format!("{prefix}tokens_per_s"), done.tokens_per_second()),
                ],
            );
        }
        if s.log_every > 0 && step.is_multiple_of(s.log_every) {
            tracing::info!(target: "neuron_host::miner", "{} step {step} loss {:.4} lr {:.2e} {:.0} tok/s", m.name, done.loss, done.lr, done.tokens_per_second());
        }
        if trainer.save_due() {
            m.model.train(|model| trainer.save_now(model));
        }
    }
    // A clean stop (Ctrl-C, SIGTERM) saves where training ended; a failed step saves nothing new.
    if summary.error.is_none() && summary.steps > 0 {
        m.model.train(|model| trainer.save_now(model));
    }
    trainer.finish_saves();
    summary
}

pub fn unix_time() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

impl MinerHandle {
    /// The flag that ends training: set it to have the miner finish its step and save, ahead of
    /// [`Self::stop`] (a subnet tells every miner at once, before the validator's final save
    /// competes with their training for the GPU).
    pub fn stop_signal(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Stops answering queries (the server keeps running and answers 503).
    pub fn stop_answering(&self) {
        self.answering.store(false, Ordering::Release);
    }

    /// Stops training and serving; returns what training did.
    pub async fn stop(mut self) -> TrainSummary {
        self.stop.store(true, Ordering::Release);
        self.refresher.abort();
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
        let trainer = self.trainer.take();
        tokio::task::spawn_blocking(move || trainer.map(|t| t.join().unwrap_or_default()).unwrap_or_default())
            .await
            .unwrap_or_default()
    }
}

/// Where a neuron serves.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AxonSettings {
    /// Address to listen on.
    pub ip: String,
    /// Port to listen on (0: any free port).
    pub port: u16,
    /// Address announced on chain ("" announces `ip`).
    pub external_ip: String,
}

impl Default for AxonSettings {
    fn default() -> Self {
        Self { ip: "127.0.0.1".into(), port: 0, external_ip: String::new() }
    }
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MinerSettings {
    /// Train the model (false: serve it as it is, e.g. a model loaded from a checkpoint).
    pub train: bool,
    pub batch_size: u32,
    pub sequence_length: u32,
    /// Peak learning rate (after warm-up).
    pub lr: f64,
    pub min_lr: f64,
    pub warmup_steps: u64,
    /// Step at which the cosine decay reaches min_lr (0: no decay).
    pub decay_steps: u64,
    /// Top-k per position a miner is willing to return at most.
    pub max_top_k: u32,
    /// Print a progress line every this many steps (0: never).
    pub log_every: u64,
}

impl Default for MinerSettings {
    fn default() -> Self {
        Self {
            train: true,
            batch_size: 8,
            sequence_length: 64,
            lr: 1e-3,
            min_lr: 1e-4,
            warmup_steps: 20,
            decay_steps: 5000,
            max_top_k: 1024,
            log_every: 50,
        }
    }
}

impl MinerSettings {
    /// The learning-rate schedule these settings describe.
    pub fn schedule(&self) -> LrSchedule {
        LrSchedule { lr: self.lr, min_lr: self.min_lr, warmup_steps: self.warmup_steps, decay_steps: self.decay_steps }
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.batch_size == 0 || self.sequence_length == 0 {
            return Err("miner.batch_size and miner.sequence_length must be at least 1".into());
        }
        self.schedule().validate().map_err(|e| format!("miner: {e}"))
    }
}
