//! A model shared between a miner's training loop and the queries it answers.
//!
//! Training and answering take turns on one lock. A query announces itself
//! before waiting, and the training loop yields while any query waits, so
//! answering never starves behind a long run of training steps.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use neuron_plugin_api::{ForwardOutput, ModelDescription, OutputKind};

use crate::{
    metrics::prometheus::{neuron, Metrics},
    net::{Caller, ForwardQuery, ForwardService, ModelSummary, ServiceError},
    plugins::PluginModel,
};

pub struct SharedModel {
    model: Mutex<PluginModel>,
    waiting: AtomicUsize,
    description: ModelDescription,
}

impl SharedModel {
    pub fn new(model: PluginModel) -> crate::Result<Arc<Self>> {
        let description = model.describe()?;
        Ok(Arc::new(Self { model: Mutex::new(model), waiting: AtomicUsize::new(0), description }))
    }

    pub fn description(&self) -> &ModelDescription {
        &self.description
    }

    /// Runs `f` for the training loop, after any waiting query.
    pub fn train<R>(&self, f: impl FnOnce(&mut PluginModel) -> R) -> R {
        while self.waiting.load(Ordering::Acquire) > 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut m = self.model.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut m)
    }

    /// Runs `f` for a query, ahead of the training loop.
    pub fn query<R>(&self, f: impl FnOnce(&mut PluginModel) -> R) -> R {
        self.waiting.fetch_add(1, Ordering::AcqRel);
        let mut m = self.model.lock().unwrap_or_else(|p| p.into_inner());
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        f(&mut m)
    }
}

/// What a miner serves: forward passes of its current model.
pub struct ModelService {
    pub model: Arc<SharedModel>,
    /// The largest top-k it returns.
    pub max_top_k: u32,
    /// Cleared when the miner stops answering (queries then get 503).
    pub answering: Arc<AtomicBool>,
    /// Where the time spent computing answers is recorded, and under which neuron.
    pub metrics: Arc<Metrics>,
    pub name: String,
}

impl ForwardService for ModelService {
    fn forward(
        &self,
        _caller: &Caller,
        query: ForwardQuery,
    ) -> impl std::future::Future<Output = Result<ForwardOutput, ServiceError>> + Send {
        let model = self.model.clone();
        let answering = self.answering.load(Ordering::Acquire);
        let max_k = self.max_top_k;
        let timer = self.metrics.forward_duration.get_or_create(&neuron(&self.name)).clone();
        async move {
            if !answering {
                return Err(ServiceError::Unavailable("this neuron is not answering queries".into()));
            }
            let d = model.description();
            if query.seq_len > d.block_size {
                return Err(ServiceError::BadQuery(format!(
                    "sequences of {} tokens exceed this model's context of {}",
                    query.seq_len, d.block_size
                )));
            }
            if let Some(t) = query.tokens.iter().find(|&&t| t >= d.vocab_size) {
                return Err(ServiceError::BadQuery(format!("token {t} is outside the vocabulary of {}", d.vocab_size)));
            }
            let request = query.output_request();
            if request.kind == OutputKind::TOP_K && (request.k == 0 || request.k > max_k) {
                return Err(ServiceError::BadQuery(format!("top-k must be between 1 and {max_k}, got {}", request.k)));
            }
            tokio::task::spawn_blocking(move || {
                model.query(|m| {
                    let started = std::time::Instant::now();
                    let out = m.forward(query.token_batch(), query.output_request());
                    timer.observe(started.elapsed().as_secs_f64());
                    out
                })
            })
            .await
            .map_err(|e| ServiceError::Internal(format!("forward task failed: {e}")))?
            .map_err(|e| ServiceError::Internal(e.to_string()))
        }
    }

    fn summary(&self) -> ModelSummary {
        let d = self.model.description();
        ModelSummary { architecture: d.architecture.to_string(), vocab_size: d.vocab_size, max_seq_len: d.block_size }
    }
}
