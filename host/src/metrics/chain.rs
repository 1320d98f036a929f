//! A [`Chain`] that times every call the runtime makes and counts the ones
//! that fail, into `neuron_chain_request_duration_seconds{neuron, call}` and
//! `neuron_chain_errors_total{neuron, call}`. It wraps any backend (the
//! embedded chain or a subtensor node), so the backends stay unaware of
//! metrics.

use std::{sync::Arc, time::Instant};

use super::prometheus::{CallLabels, Metrics};
use crate::chain::{
    AccountId, AxonInfo, BlockStream, Chain, ChainError, EpochStatus, Hyperparams, Metagraph, NetUid, StoredCommit,
    TimelockContext,
};

pub struct MeteredChain {
    inner: Arc<dyn Chain>,
    metrics: Arc<Metrics>,
    neuron: String,
}

impl MeteredChain {
    /// `inner`, with its calls recorded under the label `neuron`.
    pub fn wrap(inner: Arc<dyn Chain>, metrics: Arc<Metrics>, neuron: &str) -> Arc<dyn Chain> {
        Arc::new(Self { inner, metrics, neuron: neuron.to_string() })
    }

    async fn timed<T>(
        &self,
        call: &'static str,
        fut: impl std::future::Future<Output = Result<T, ChainError>>,
    ) -> Result<T, ChainError> {
        let labels = CallLabels { neuron: self.neuron.clone(), call: call.to_string() };
        let started = Instant::now();
        let result = fut.await;
        self.metrics.chain_request_duration.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
        if result.is_err() {
            self.metrics.chain_errors.get_or_create(&labels).inc();
        }
        result
    }
}

#[async_trait::async_trait]
impl Chain for MeteredChain {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn hotkey(&self) -> AccountId {
        self.inner.hotkey()
    }
    fn mechanism(&self) -> u8 {
        self.inner.mechanism()
    }
    async fn block(&self) -> Result<u64, ChainError> {
        self.timed("block", self.inner.block()).await
    }
    async fn subscribe_blocks(&self) -> Result<BlockStream, ChainError> {
        self.timed("subscribe_blocks", self.inner.subscribe_blocks()).await
    }
    async fn metagraph(&self, netuid: NetUid) -> Result<Metagraph, ChainError> {
        self.timed("metagraph", self.inner.metagraph(netuid)).await
    }
    async fn hyperparams(&self, netuid: NetUid) -> Result<Hyperparams, ChainError> {
        self.timed("hyperparams", self.inner.hyperparams(netuid)).await
    }
    async fn epoch_status(&self, netuid: NetUid) -> Result<EpochStatus, ChainError> {
        self.timed("epoch_status", self.inner.epoch_status(netuid)).await
    }
    async fn weights(&self, netuid: NetUid) -> Result<Vec<(u16, Vec<(u16, u16)>)>, ChainError> {
        self.timed("weights", self.inner.weights(netuid)).await
    }
    async fn register(&self, netuid: NetUid) -> Result<u16, ChainError> {
        self.timed("register", self.inner.register(netuid)).await
    }
    async fn serve_axon(&self, netuid: NetUid, axon: AxonInfo) -> Result<(), ChainError> {
        self.timed("serve_axon", self.inner.serve_axon(netuid, axon)).await
    }
    async fn set_weights(
        &self,
        netuid: NetUid,
        uids: &[u16],
        weights: &[u16],
        version_key: u64,
    ) -> Result<(), ChainError> {
        self.timed("set_weights", self.inner.set_weights(netuid, uids, weights, version_key)).await
    }
    async fn commit_weights(&self, netuid: NetUid, commit_hash: [u8; 32]) -> Result<(), ChainError> {
        self.timed("commit_weights", self.inner.commit_weights(netuid, commit_hash)).await
    }
    async fn reveal_weights(
        &self,
        netuid: NetUid,
        uids: &[u16],
        weights: &[u16],
        salt: &[u16],
        version_key: u64,
    ) -> Result<(), ChainError> {
        self.timed("reveal_weights", self.inner.reveal_weights(netuid, uids, weights, salt, version_key)).await
    }
    async fn weight_commits(&self, netuid: NetUid) -> Result<Vec<StoredCommit>, ChainError> {
        self.timed("weight_commits", self.inner.weight_commits(netuid)).await
    }
    async fn timelocked_revealed_in(
        &self,
        netuid: NetUid,
        from_block: u64,
        to_block: u64,
    ) -> Result<Option<u64>, ChainError> {
        self.timed("timelocked_revealed_in", self.inner.timelocked_revealed_in(netuid, from_block, to_block)).await
    }
    async fn timelock_context(&self, netuid: NetUid) -> Result<TimelockContext, ChainError> {
        self.timed("timelock_context", self.inner.timelock_context(netuid)).await
    }
    async fn commit_timelocked_weights(
        &self,
        netuid: NetUid,
        mecid: u8,
        commit: &[u8],
        reveal_round: u64,
        commit_reveal_version: u16,
    ) -> Result<(), ChainError> {
        let call = self.inner.commit_timelocked_weights(netuid, mecid, commit, reveal_round, commit_reveal_version);
        self.timed("commit_timelocked_weights", call).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::local::{LocalChain, LocalChainConfig};

    #[tokio::test]
    async fn times_calls_and_counts_failures_by_call() {
        let chain = LocalChain::new(LocalChainConfig::default());
        let metrics = Arc::new(Metrics::new());
        let key = AccountId::from_name("metered");
        let metered = MeteredChain::wrap(Arc::new(chain.client(key, key)), metrics.clone(), "miner1");
        metered.metagraph(1).await.unwrap();
        metered.metagraph(1).await.unwrap();
        // Not registered: the chain refuses these weights.
        assert!(metered.set_weights(1, &[0], &[65535], 0).await.is_err());
        // No such subnet.
        assert!(metered.hyperparams(99).await.is_err());
        let text = metrics.render();
        for expected in [
            "neuron_chain_request_duration_seconds_count{neuron=\"miner1\",call=\"metagraph\"} 2",
            "neuron_chain_request_duration_seconds_count{neuron=\"miner1\",call=\"set_weights\"} 1",
            "neuron_chain_errors_total{neuron=\"miner1\",call=\"set_weights\"} 1",
            "neuron_chain_errors_total{neuron=\"miner1\",call=\"hyperparams\"} 1",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
        assert!(!text.contains("neuron_chain_errors_total{neuron=\"miner1\",call=\"metagraph\"}"), "{text}");
    }
}
