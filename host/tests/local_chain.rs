//! The embedded chain: every `set_weights` rule accepted once and refused once
//! with subtensor's error name, the rules' order, commit-reveal, registration
//! when full, epochs, block subscriptions, and saving/resuming its state.

use std::sync::Arc;

use neuron_host::chain::{
    commit::commit_hash,
    local::{LocalChain, LocalChainConfig, LocalClient},
    AccountId, AxonInfo, Chain, DispatchError, Hyperparams,
};

const NET: u16 = 1;

fn params() -> Hyperparams {
    Hyperparams {
        tempo: 10,
        weights_rate_limit: 0,
        min_allowed_weights: 1,
        immunity_period: 0,
        ..Hyperparams::default()
    }
}

struct Net {
    chain: Arc<LocalChain>,
    /// uids 0 and 1 are validators (stake), 2 and 3 miners.
    clients: Vec<LocalClient>,
}

async fn subnet(p: Hyperparams) -> Net {
    let chain = LocalChain::new(LocalChainConfig { subnets: vec![(NET, p, None)], ..LocalChainConfig::default() });
    let mut clients = Vec::new();
    for (i, name) in ["validator-a", "validator-b", "miner-a", "miner-b"].iter().enumerate() {
        let c = chain.client(AccountId::from_name(name), AccountId::from_name("owner"));
        assert_eq!(c.register(NET).await.unwrap(), i as u16);
        clients.push(c);
    }
    chain.add_stake(NET, clients[0].hotkey(), 600_000_000_000).unwrap();
    chain.add_stake(NET, clients[1].hotkey(), 400_000_000_000).unwrap();
    // One tempo: the first epoch hands out validator permits.
    for _ in 0..10 {
        chain.produce_block();
    }
    chain.produce_block();
    Net { chain, clients }
}

async fn refused(c: &LocalClient, uids: &[u16], w: &[u16], key: u64) -> DispatchError {
    c.set_weights(NET, uids, w, key).await.expect_err("refused").dispatch_error().expect("a named dispatch error")
}

#[tokio::test]
async fn permits_go_to_staked_neurons_at_the_first_epoch() {
    let net = subnet(params()).await;
    let mg = net.clients[0].metagraph(NET).await.unwrap();
    assert_eq!(mg.neurons.iter().map(|n| n.validator_permit).collect::<Vec<_>>(), [true, true, false, false]);
    assert_eq!(net.clients[0].epoch_status(NET).await.unwrap().epoch_index, 1);
}

#[tokio::test]
async fn lengths_must_match() {
    let net = subnet(params()).await;
    assert_eq!(refused(&net.clients[0], &[2, 3], &[1], 0).await, DispatchError::WeightVecNotEqualSize);
    net.clients[0].set_weights(NET, &[2, 3], &[1, 1], 0).await.unwrap();
}

#[tokio::test]
async fn no_more_uids_than_the_subnet_has() {
    let net = subnet(params()).await;
    assert_eq!(
        refused(&net.clients[0], &[0, 1, 2, 3, 3], &[1; 5], 0).await,
        DispatchError::UidsLengthExceedUidsInSubNet
    );
    net.clients[0].set_weights(NET, &[1, 2, 3], &[1; 3], 0).await.unwrap();
}

#[tokio::test]
async fn the_caller_must_be_registered() {
    let net = subnet(params()).await;
    let stranger = net.chain.client(AccountId::from_name("stranger"), AccountId::from_name("x"));
    assert_eq!(refused(&stranger, &[2], &[1], 0).await, DispatchError::HotKeyNotRegisteredInSubNet);
    net.clients[1].set_weights(NET, &[2], &[1], 0).await.unwrap();
}

#[tokio::test]
async fn stake_below_the_minimum_cannot_set_weights() {
    let net = subnet(Hyperparams { min_stake: 500_000_000_000, ..params() }).await;
    assert_eq!(refused(&net.clients[1], &[2], &[1], 0).await, DispatchError::NotEnoughStakeToSetWeights);
    net.clients[0].set_weights(NET, &[2], &[1], 0).await.unwrap();
}

#[tokio::test]
async fn the_version_key_must_not_be_below_the_subnets() {
    let net = subnet(Hyperparams { weights_version_key: 5, ..params() }).await;
    assert_eq!(refused(&net.clients[0], &[2], &[1], 4).await, DispatchError::IncorrectWeightVersionKey);
    net.clients[0].set_weights(NET, &[2], &[1], 5).await.unwrap();
}

#[tokio::test]
async fn weights_are_rate_limited() {
    let net = subnet(Hyperparams { weights_rate_limit: 3, ..params() }).await;
    let v = &net.clients[0];
    v.set_weights(NET, &[2], &[1], 0).await.unwrap();
    net.chain.produce_block();
    assert_eq!(refused(v, &[2], &[1], 0).await, DispatchError::SettingWeightsTooFast);
    net.chain.produce_block();
    net.chain.produce_block();
    v.set_weights(NET, &[2], &[1], 0).await.unwrap();
}

#[tokio::test]
async fn only_permitted_validators_weight_others_but_anyone_may_self_weight() {
    let net = subnet(params()).await;
    let miner = &net.clients[2];
    assert_eq!(refused(miner, &[3], &[1], 0).await, DispatchError::NeuronNoValidatorPermit);
    miner.set_weights(NET, &[2], &[1], 0).await.unwrap();
}

#[tokio::test]
async fn uids_may_not_repeat() {
    let net = subnet(params()).await;
    assert_eq!(refused(&net.clients[0], &[2, 2], &[1, 1], 0).await, DispatchError::DuplicateUids);
    net.clients[0].set_weights(NET, &[2, 3], &[1, 1], 0).await.unwrap();
}

#[tokio::test]
async fn uids_must_exist() {
    let net = subnet(params()).await;
    assert_eq!(refused(&net.clients[0], &[2, 9], &[1, 1], 0).await, DispatchError::UidVecContainInvalidOne);
    net.clients[0].set_weights(NET, &[2, 3], &[1, 1], 0).await.unwrap();
}

#[tokio::test]
async fn at_least_min_allowed_weights_unless_self_weight() {
    let net = subnet(Hyperparams { min_allowed_weights: 2, ..params() }).await;
    assert_eq!(refused(&net.clients[0], &[2], &[1], 0).await, DispatchError::WeightVecLengthIsLow);
    net.clients[0].set_weights(NET, &[2, 3], &[1, 1], 0).await.unwrap();
    net.clients[0].set_weights(NET, &[0], &[1], 0).await.unwrap();
    // min(n, min_allowed_weights): a subnet of four asking for ten needs four.
    let net = subnet(Hyperparams { min_allowed_weights: 10, ..params() }).await;
    net.clients[0].set_weights(NET, &[0, 1, 2, 3], &[1, 1, 1, 1], 0).await.unwrap();
}

#[tokio::test]
async fn the_largest_share_is_limited_after_max_upscaling() {
    let net = subnet(Hyperparams { max_weight_limit: 40_000, ..params() }).await;
    assert_eq!(refused(&net.clients[0], &[2, 3], &[65535, 1], 0).await, DispatchError::MaxWeightExceeded);
    net.clients[0].set_weights(NET, &[2, 3], &[3, 2], 0).await.unwrap();
    let stored = net.clients[0].weights(NET).await.unwrap();
    assert_eq!(stored, vec![(0, vec![(2, 65535), (3, 43690)])], "stored max-upscaled");
}

#[tokio::test]
async fn rules_apply_in_subtensors_order() {
    let net = subnet(Hyperparams { weights_version_key: 5, weights_rate_limit: 100, ..params() }).await;
    let v = &net.clients[0];
    v.set_weights(NET, &[2], &[1], 5).await.unwrap();
    // Version key is checked before the rate limit; lengths before everything.
    assert_eq!(refused(v, &[2, 2], &[1, 1], 4).await, DispatchError::IncorrectWeightVersionKey);
    assert_eq!(refused(v, &[2, 2], &[1], 4).await, DispatchError::WeightVecNotEqualSize);
    assert_eq!(refused(v, &[2, 2], &[1, 1], 5).await, DispatchError::SettingWeightsTooFast);
    // Permit before duplicates, duplicates before unknown uids.
    let miner = &net.clients[2];
    assert_eq!(refused(miner, &[3, 3], &[1, 1], 5).await, DispatchError::NeuronNoValidatorPermit);
    let net = subnet(params()).await;
    assert_eq!(refused(&net.clients[0], &[9, 9], &[1, 1], 0).await, DispatchError::DuplicateUids);
}

#[tokio::test]
async fn commit_reveal_commits_then_reveals_in_the_next_epoch() {
    let net = subnet(Hyperparams { commit_reveal_enabled: true, commit_reveal_period: 1, ..params() }).await;
    let v = &net.clients[0];
    let (uids, w, salt) = ([2u16, 3], [100u16, 50], [7u16, 8, 9]);
    assert_eq!(refused(v, &uids, &w, 0).await, DispatchError::CommitRevealEnabled);
    let err = v.reveal_weights(NET, &uids, &w, &salt, 0).await.unwrap_err().dispatch_error();
    assert_eq!(err, Some(DispatchError::NoWeightsCommitFound));
    v.commit_weights(NET, commit_hash(&v.hotkey(), NET, &uids, &w, &salt, 0)).await.unwrap();
    let err = v.reveal_weights(NET, &uids, &w, &salt, 0).await.unwrap_err().dispatch_error();
    assert_eq!(err, Some(DispatchError::RevealTooEarly));
    for _ in 0..10 {
        net.chain.produce_block();
    }
    let err = v.reveal_weights(NET, &uids, &w, &[1], 0).await.unwrap_err().dispatch_error();
    assert_eq!(err, Some(DispatchError::InvalidRevealCommitHashNotMatch));
    v.reveal_weights(NET, &uids, &w, &salt, 0).await.unwrap();
    assert_eq!(v.weights(NET).await.unwrap(), vec![(0, vec![(2, 65535), (3, 32768)])]);

    // A commit left unrevealed past its epoch expires.
    v.commit_weights(NET, commit_hash(&v.hotkey(), NET, &uids, &w, &salt, 0)).await.unwrap();
    for _ in 0..20 {
        net.chain.produce_block();
    }
    let err = v.reveal_weights(NET, &uids, &w, &salt, 0).await.unwrap_err().dispatch_error();
    assert_eq!(err, Some(DispatchError::ExpiredWeightCommit));
}

#[tokio::test]
async fn commit_is_refused_where_commit_reveal_is_off_and_a_failed_reveal_keeps_the_commit() {
    let net = subnet(params()).await;
    let v = &net.clients[0];
    let err = v.commit_weights(NET, [0; 32]).await.unwrap_err().dispatch_error();
    assert_eq!(err, Some(DispatchError::CommitRevealDisabled));

    let net = subnet(Hyperparams { commit_reveal_enabled: true, min_allowed_weights: 2, ..params() }).await;
    let v = &net.clients[0];
    // Weights that set_weights will refuse (too few), committed anyway.
    v.commit_weights(NET, commit_hash(&v.hotkey(), NET, &[2], &[1], &[1], 0)).await.unwrap();
    for _ in 0..10 {
        net.chain.produce_block();
    }
    let err = v.reveal_weights(NET, &[2], &[1], &[1], 0).await.unwrap_err().dispatch_error();
    assert_eq!(err, Some(DispatchError::WeightVecLengthIsLow));
    // The refused reveal undid itself: the commit is still there to be matched.
    let err = v.reveal_weights(NET, &[3], &[1], &[1], 0).await.unwrap_err().dispatch_error();
    assert_eq!(err, Some(DispatchError::InvalidRevealCommitHashNotMatch));
}

#[tokio::test]
async fn a_full_subnet_replaces_its_lowest_emission_neuron_outside_immunity() {
    let net = subnet(Hyperparams { max_allowed_uids: 4, immunity_period: 5, ..params() }).await;
    // Validators reward miner-a only; after an epoch miner-b has the lowest emission.
    for v in &net.clients[..2] {
        v.set_weights(NET, &[2], &[1], 0).await.unwrap();
    }
    for _ in 0..10 {
        net.chain.produce_block();
    }
    let newcomer = net.chain.client(AccountId::from_name("newcomer"), AccountId::from_name("x"));
    assert_eq!(newcomer.register(NET).await.unwrap(), 3, "miner-b's uid is taken over");
    let mg = newcomer.metagraph(NET).await.unwrap();
    assert_eq!(mg.neurons[3].hotkey, newcomer.hotkey());
    assert_eq!(mg.neurons[3].registered_at, mg.block);
    let err = newcomer.register(NET).await.unwrap_err().dispatch_error();
    assert_eq!(err, Some(DispatchError::HotKeyAlreadyRegisteredInSubNet));
    // The newcomer is immune for 5 blocks: the next registration takes another uid.
    let second = net.chain.client(AccountId::from_name("second"), AccountId::from_name("x"));
    assert_ne!(second.register(NET).await.unwrap(), 3);
}

#[tokio::test]
async fn epochs_reward_the_miner_validators_agree_on() {
    let net = subnet(params()).await;
    for v in &net.clients[..2] {
        v.set_weights(NET, &[2, 3], &[3, 1], 0).await.unwrap();
    }
    let before = net.clients[2].metagraph(NET).await.unwrap();
    for _ in 0..10 {
        net.chain.produce_block();
    }
    let mg = net.clients[2].metagraph(NET).await.unwrap();
    assert!(mg.neurons[2].incentive > 0.7 && mg.neurons[3].incentive < 0.3, "{:?}", mg.neurons);
    assert!(mg.neurons[0].dividends > mg.neurons[1].dividends, "more stake, more dividends");
    assert!(mg.neurons[2].stake > before.neurons[2].stake, "emission adds to stake");
    // The epoch emits tempo x block emission; fixed-point shares round down, losing a few rao.
    let emitted: u64 = mg.neurons.iter().map(|n| n.emission).sum();
    assert!(emitted <= 10_000_000_000 && 10_000_000_000 - emitted < 100, "{emitted}");
}

#[tokio::test]
async fn serving_an_endpoint() {
    let net = subnet(params()).await;
    let axon = AxonInfo::new("127.0.0.1".parse().unwrap(), 8091, 1);
    net.clients[2].serve_axon(NET, axon).await.unwrap();
    assert_eq!(net.clients[0].metagraph(NET).await.unwrap().neurons[2].axon, Some(axon));
    let err = net.clients[2].serve_axon(NET, AxonInfo { port: 0, ..axon }).await.unwrap_err().dispatch_error();
    assert_eq!(err, Some(DispatchError::InvalidPort));
}

#[tokio::test]
async fn block_subscribers_see_every_block() {
    let net = subnet(params()).await;
    let mut blocks = net.clients[0].subscribe_blocks().await.unwrap();
    let start = net.chain.current_block();
    for _ in 0..5 {
        net.chain.produce_block();
    }
    for i in 1..=5 {
        assert_eq!(blocks.next().await.unwrap().unwrap(), start + i);
    }
}

#[tokio::test(start_paused = true)]
async fn blocks_come_at_the_configured_interval() {
    let chain = LocalChain::new(LocalChainConfig {
        block_time: std::time::Duration::from_secs(12),
        ..LocalChainConfig::default()
    });
    let c = chain.client(AccountId::from_name("a"), AccountId::from_name("b"));
    let mut blocks = c.subscribe_blocks().await.unwrap();
    let producer = chain.start();
    let t0 = tokio::time::Instant::now();
    assert_eq!(blocks.next().await.unwrap().unwrap(), 1);
    assert_eq!(blocks.next().await.unwrap().unwrap(), 2);
    assert_eq!(t0.elapsed(), std::time::Duration::from_secs(24));
    producer.abort();
}

#[tokio::test]
async fn state_saves_and_resumes() {
    let net = subnet(params()).await;
    for v in &net.clients[..2] {
        v.set_weights(NET, &[2, 3], &[1, 1], 0).await.unwrap();
    }
    for _ in 0..10 {
        net.chain.produce_block();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chain.json");
    net.chain.save(&path).unwrap();
    let resumed = LocalChain::load(&path, std::time::Duration::from_secs(1)).unwrap();
    let a = net.clients[0].metagraph(NET).await.unwrap();
    let client = resumed.client(net.clients[0].hotkey(), AccountId::from_name("owner"));
    assert_eq!(client.metagraph(NET).await.unwrap(), a);
    for _ in 0..10 {
        net.chain.produce_block();
        resumed.produce_block();
    }
    assert_eq!(
        client.metagraph(NET).await.unwrap(),
        net.clients[0].metagraph(NET).await.unwrap(),
        "resumed chain evolves identically"
    );
    std::fs::write(&path, "{ not json").unwrap();
    let err = LocalChain::load(&path, std::time::Duration::from_secs(1)).err().unwrap();
    assert!(err.contains("is not valid") && err.contains("move it away"), "{err}");
}

/// A validator's view of the embedded chain that behaves as a real node can: its commits are
/// included only after the next epoch has begun (as when a commit is sent in an epoch's last
/// block: the reveal epoch predicted before sending is then one too early), and it can be
/// unreachable for a while (`down`).
struct NodeLike {
    inner: LocalClient,
    chain: Arc<LocalChain>,
    late_commits: bool,
    /// Whether the chain's record of commits can be read (a backend that cannot, or a node
    /// whose finalized state lags the commit).
    reads_commits: bool,
    down: std::sync::atomic::AtomicBool,
}

impl NodeLike {
    fn new(net: &Net, late_commits: bool) -> Self {
        let inner = net.chain.client(net.clients[0].hotkey(), AccountId::from_name("owner"));
        Self { inner, chain: net.chain.clone(), late_commits, reads_commits: true, down: Default::default() }
    }

    fn reachable(&self) -> Result<(), neuron_host::chain::ChainError> {
        if self.down.load(std::sync::atomic::Ordering::Acquire) {
            return Err(neuron_host::chain::ChainError::Connection {
                endpoint: "test".into(),
                reason: "the node is down".into(),
            });
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Chain for NodeLike {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn hotkey(&self) -> AccountId {
        self.inner.hotkey()
    }
    async fn block(&self) -> Result<u64, neuron_host::chain::ChainError> {
        self.inner.block().await
    }
    async fn subscribe_blocks(&self) -> Result<neuron_host::chain::BlockStream, neuron_host::chain::ChainError> {
        self.inner.subscribe_blocks().await
    }
    async fn metagraph(&self, n: u16) -> Result<neuron_host::chain::Metagraph, neuron_host::chain::ChainError> {
        self.inner.metagraph(n).await
    }
    async fn hyperparams(&self, n: u16) -> Result<Hyperparams, neuron_host::chain::ChainError> {
        self.inner.hyperparams(n).await
    }
    async fn epoch_status(&self, n: u16) -> Result<neuron_host::chain::EpochStatus, neuron_host::chain::ChainError> {
        self.inner.epoch_status(n).await
    }
    async fn weights(&self, n: u16) -> Result<Vec<(u16, Vec<(u16, u16)>)>, neuron_host::chain::ChainError> {
        self.inner.weights(n).await
    }
    async fn register(&self, n: u16) -> Result<u16, neuron_host::chain::ChainError> {
        self.inner.register(n).await
    }
    async fn serve_axon(&self, n: u16, axon: AxonInfo) -> Result<(), neuron_host::chain::ChainError> {
        self.inner.serve_axon(n, axon).await
    }
    async fn set_weights(&self, n: u16, u: &[u16], w: &[u16], k: u64) -> Result<(), neuron_host::chain::ChainError> {
        self.reachable()?;
        self.inner.set_weights(n, u, w, k).await
    }
    async fn commit_weights(&self, n: u16, hash: [u8; 32]) -> Result<(), neuron_host::chain::ChainError> {
        self.reachable()?;
        let epoch = self.inner.epoch_status(n).await?.epoch_index;
        while self.late_commits && self.inner.epoch_status(n).await?.epoch_index == epoch {
            self.chain.produce_block();
        }
        self.inner.commit_weights(n, hash).await
    }
    async fn reveal_weights(
        &self,
        n: u16,
        u: &[u16],
        w: &[u16],
        s: &[u16],
        k: u64,
    ) -> Result<(), neuron_host::chain::ChainError> {
        self.inner.reveal_weights(n, u, w, s, k).await
    }
    async fn weight_commits(
        &self,
        n: u16,
    ) -> Result<Vec<neuron_host::chain::StoredCommit>, neuron_host::chain::ChainError> {
        if !self.reads_commits {
            return Err(neuron_host::chain::ChainError::Other("not readable here".into()));
        }
        self.inner.weight_commits(n).await
    }
    async fn timelocked_revealed_in(
        &self,
        n: u16,
        from: u64,
        to: u64,
    ) -> Result<Option<u64>, neuron_host::chain::ChainError> {
        self.inner.timelocked_revealed_in(n, from, to).await
    }
}

#[tokio::test]
async fn a_commit_included_an_epoch_late_is_revealed_when_the_chain_says_and_an_expired_one_is_reported() {
    use neuron_host::chain::{
        commits::CommitStore,
        policy::{reveal_due, submit_weights_with_policy, CommitReveal, WeightsOutcome, WeightsPolicy},
    };
    let hash = WeightsPolicy { commit_reveal: CommitReveal::Hash, ..WeightsPolicy::default() };
    for reads_commits in [true, false] {
        let net = subnet(Hyperparams { commit_reveal_enabled: true, commit_reveal_period: 1, ..params() }).await;
        let v = NodeLike { reads_commits, ..NodeLike::new(&net, true) };
        let commits = CommitStore::open(None).unwrap();
        let start = epoch_of(&v).await;
        let outcome = submit_weights_with_policy(&v, &commits, NET, &[2, 3], &[100, 50], 0, &hash).await.unwrap();
        assert_eq!(epoch_of(&v).await, start + 1, "included in the next epoch");
        if reads_commits {
            // The chain's record of the commit says when: no refused reveal in between.
            assert_eq!(outcome, WeightsOutcome::Committed { reveal_epoch: start + 2 }, "read back");
            assert_eq!(reveal_due(&v, &commits, NET).await.unwrap(), 0);
            assert_eq!(commits.all()[0].reveal_epoch, start + 2);
            assert!(v.weights(NET).await.unwrap().is_empty());
        } else {
            // Without it, the prediction; the chain's "too early" keeps the commit, moved on.
            assert_eq!(outcome, WeightsOutcome::Committed { reveal_epoch: start + 1 }, "predicted");
            assert_eq!(reveal_due(&v, &commits, NET).await.unwrap(), 0);
            assert_eq!(commits.all()[0].reveal_epoch, start + 2);
        }
        // A too-early reveal in the window's epoch keeps the commit (here, asked twice in a row).
        assert_eq!(reveal_due(&v, &commits, NET).await.unwrap(), 0);
        assert_eq!(commits.all().len(), 1);
        while epoch_of(&v).await < start + 2 {
            net.chain.produce_block();
        }
        assert_eq!(reveal_due(&v, &commits, NET).await.unwrap(), 1, "revealed in its real epoch");
        assert_eq!(v.weights(NET).await.unwrap(), vec![(0, vec![(2, 65535), (3, 32768)])]);
        assert!(commits.all().is_empty());

        // A commit whose epoch passed (the validator was away) is dropped with an error, not kept forever.
        submit_weights_with_policy(&v, &commits, NET, &[2], &[1], 0, &hash).await.unwrap();
        let due = commits.all()[0].reveal_epoch;
        while epoch_of(&v).await <= due {
            net.chain.produce_block();
        }
        assert_eq!(reveal_due(&v, &commits, NET).await.unwrap(), 0);
        assert!(commits.all().is_empty());
    }
}

async fn epoch_of(c: &NodeLike) -> u64 {
    c.epoch_status(NET).await.unwrap().epoch_index
}

#[tokio::test]
async fn weights_the_node_was_unreachable_for_are_sent_when_it_answers() {
    use neuron_host::chain::{
        commits::CommitStore,
        policy::{submit_weights_with_policy, WeightsOutcome, WeightsPolicy, WeightsRetry},
    };
    let net = subnet(params()).await;
    let v = NodeLike::new(&net, false);
    let commits = CommitStore::open(None).unwrap();
    let policy = WeightsPolicy::default();
    v.down.store(true, std::sync::atomic::Ordering::Release);
    let err = submit_weights_with_policy(&v, &commits, NET, &[2, 3], &[100, 50], 0, &policy).await.unwrap_err();
    assert!(WeightsRetry::is_retryable(&err), "{err}");
    let mut retry = WeightsRetry::default();
    retry.keep(vec![2, 3], vec![100, 50], 7);
    // Still down: nothing happens, they keep waiting.
    assert!(retry.retry(&v, &commits, NET, 0, &policy).await.is_none());
    assert_eq!(retry.waiting(), Some(7));
    // Back: sent, and set.
    v.down.store(false, std::sync::atomic::Ordering::Release);
    let (epoch, outcome) = retry.retry(&v, &commits, NET, 0, &policy).await.expect("sent");
    assert_eq!((epoch, outcome.unwrap()), (7, WeightsOutcome::Set));
    assert_eq!(v.weights(NET).await.unwrap(), vec![(0, vec![(2, 65535), (3, 32768)])]);
    assert_eq!(retry.waiting(), None);
    // A refusal is not retried (and an expired epoch drops what waits).
    retry.keep(vec![9], vec![1], 8);
    let (_, refused) = retry.retry(&v, &commits, NET, 0, &policy).await.expect("answered");
    assert_eq!(refused.unwrap_err().dispatch_error(), Some(DispatchError::UidVecContainInvalidOne));
    retry.keep(vec![2], vec![1], 9);
    assert_eq!(retry.expire(), Some(9));
    assert!(retry.retry(&v, &commits, NET, 0, &policy).await.is_none());
}

#[tokio::test]
async fn timelocked_weights_are_revealed_by_the_chain_at_their_round_and_count_in_the_next_epoch() {
    use neuron_host::chain::{
        commits::CommitStore,
        policy::{submit_weights_with_policy, WeightsOutcome, WeightsPolicy},
        timelock,
    };
    let net = subnet(Hyperparams { commit_reveal_enabled: true, commit_reveal_period: 1, ..params() }).await;
    let v = &net.clients[0];
    let commits = CommitStore::open(None).unwrap();
    let start = v.epoch_status(NET).await.unwrap().epoch_index;
    let outcome =
        submit_weights_with_policy(v, &commits, NET, &[2, 3], &[100, 50], 0, &WeightsPolicy::default()).await.unwrap();
    let WeightsOutcome::Timelocked { round, reveal_block } = outcome else { panic!("{outcome:?}") };
    // The SDK's rule targets 3 blocks into the reveal epoch; the embedded beacon's clock counts
    // blocks and, like drand, publishes round 1 at genesis: round r comes at block r - 1.
    assert_eq!(round, reveal_block + timelock::SECURITY_BLOCK_OFFSET, "{outcome:?}");
    assert!(commits.all().is_empty(), "nothing for the validator to reveal");
    assert!(v.weights(NET).await.unwrap().is_empty(), "hidden until the round");
    // Nothing is applied before the round's block, although the reveal epoch has begun.
    while net.chain.current_block() + 2 < round {
        net.chain.produce_block();
        assert!(v.weights(NET).await.unwrap().is_empty(), "revealed early, at block {}", net.chain.current_block());
    }
    assert_eq!(v.epoch_status(NET).await.unwrap().epoch_index, start + 1, "the reveal epoch");
    net.chain.produce_block();
    let before_round = round - 1 - timelock::SECURITY_BLOCK_OFFSET;
    assert_eq!(
        v.timelocked_revealed_in(NET, before_round, round).await.unwrap(),
        Some(round - 1),
        "the reveal, as an event"
    );
    assert_eq!(v.timelocked_revealed_in(NET, round, round + 100).await.unwrap(), None, "none since");
    assert_eq!(v.timelocked_revealed_in(NET, 0, round - 2).await.unwrap(), None, "none before");
    assert_eq!(v.weights(NET).await.unwrap(), vec![(0, vec![(2, 65535), (3, 32768)])]);

    // Refusals as subtensor gives them: a wrong version, a round already published, a mechanism
    // the subnet lacks, and commits where commit-reveal is off.
    let payload = timelock::encode_payload(&v.hotkey(), &[2], &[1], 0);
    let ctx = v.timelock_context(NET).await.unwrap();
    let ct = timelock::encrypt(&ctx.beacon, round + 100, &payload).unwrap();
    for (mecid, r, version, want) in [
        (0, round + 100, 3, DispatchError::IncorrectCommitRevealVersion),
        (0, net.chain.current_block(), 4, DispatchError::InvalidRevealRound),
        (1, round + 100, 4, DispatchError::MechanismDoesNotExist),
    ] {
        let e = v.commit_timelocked_weights(NET, mecid, &ct, r, version).await.unwrap_err();
        assert_eq!(e.dispatch_error(), Some(want), "{e}");
    }
    let off = subnet(params()).await;
    let e = off.clients[0].commit_timelocked_weights(NET, 0, &ct, round + 100, 4).await.unwrap_err();
    assert_eq!(e.dispatch_error(), Some(DispatchError::CommitRevealDisabled));

    // A commit that names another hotkey in its payload is dropped by the chain, as on subtensor.
    let ctx = v.timelock_context(NET).await.unwrap();
    let r = ctx.reveal_round().unwrap();
    let forged = timelock::encode_payload(&net.clients[1].hotkey(), &[3], &[7], 0);
    v.commit_timelocked_weights(NET, 0, &timelock::encrypt(&ctx.beacon, r, &forged).unwrap(), r, 4).await.unwrap();
    let before = v.weights(NET).await.unwrap();
    while net.chain.current_block() < r + 1 {
        net.chain.produce_block();
    }
    assert_eq!(v.weights(NET).await.unwrap(), before);
}

#[tokio::test]
async fn timelocked_commits_survive_a_restart_of_the_chain() {
    use neuron_host::chain::policy::{submit_weights_with_policy, WeightsOutcome, WeightsPolicy};
    let net = subnet(Hyperparams { commit_reveal_enabled: true, commit_reveal_period: 1, ..params() }).await;
    let commits = neuron_host::chain::commits::CommitStore::open(None).unwrap();
    let outcome =
        submit_weights_with_policy(&net.clients[0], &commits, NET, &[2, 3], &[100, 50], 0, &WeightsPolicy::default())
            .await
            .unwrap();
    let WeightsOutcome::Timelocked { round, .. } = outcome else { panic!("{outcome:?}") };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chain.state");
    net.chain.save(&path).unwrap();
    let resumed = LocalChain::load(&path, std::time::Duration::from_secs(1)).unwrap();
    while resumed.current_block() < round {
        resumed.produce_block();
    }
    let v = resumed.client(net.clients[0].hotkey(), AccountId::from_name("owner"));
    assert_eq!(
        v.weights(NET).await.unwrap(),
        vec![(0, vec![(2, 65535), (3, 32768)])],
        "the same beacon key after a restart"
    );
}
