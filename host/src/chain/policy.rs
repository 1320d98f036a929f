//! What a validator does with its weights, and how it reacts to the chain's
//! refusals — for any [`Chain`] backend, so the embedded chain exercises the
//! same policy a node sees:
//!
//! - commit-reveal off: `set_weights`;
//! - commit-reveal on, [`CommitReveal::Timelock`] (the default, as the SDK v11
//!   does it): the weights encrypted to the drand round of their reveal epoch
//!   and committed with `commit_timelocked_(mechanism_)weights`; the chain
//!   decrypts and applies them itself, so nothing is left to reveal; a
//!   refused version or round is retried once with the chain's values read again;
//! - commit-reveal on, [`CommitReveal::Hash`]: commit the hash with a fresh random salt (the pending
//!   commit saved first, so a restart keeps it), reveal it in its reveal epoch
//!   ([`reveal_due`], to call at every new block or at least every epoch);
//! - `SettingWeightsTooFast` / `CommittingWeightsTooFast`: wait until the
//!   rate limit has passed (counted in blocks from the neuron's last update),
//!   then retry, at most [`WeightsPolicy::rate_limit_retries`] times;
//! - `CommitRevealEnabled` on `set_weights`: switch to commit;
//!   `CommitRevealDisabled` on a commit: switch to `set_weights`;
//! - the node unreachable: [`WeightsRetry`] keeps the weights and sends them again
//!   when the node answers, while their epoch is open;
//! - anything else is returned to the caller.

use std::collections::HashMap;

use super::{
    commit::commit_hash,
    commits::{hex, CommitStore, PendingCommit},
    mechanism_storage_index, timelock, Chain, ChainError, DispatchError, NetUid,
};

/// How a validator commits where the subnet uses commit-reveal (`validator.commit_reveal`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommitReveal {
    /// Encrypted to a future drand round; the chain reveals (commit-reveal v4, the SDK v11's way).
    #[default]
    Timelock,
    /// The weights' hash, revealed by this validator in the reveal epoch (commit-reveal v2).
    Hash,
}

/// Tuning of [`submit_weights_with_policy`].
#[derive(Clone, Debug)]
pub struct WeightsPolicy {
    /// How many times a rate-limited submission is retried after waiting.
    pub rate_limit_retries: u32,
    /// Salt length, in u16 words.
    pub salt_len: usize,
    pub commit_reveal: CommitReveal,
}

impl Default for WeightsPolicy {
    fn default() -> Self {
        Self { rate_limit_retries: 2, salt_len: 8, commit_reveal: CommitReveal::Timelock }
    }
}

/// What [`submit_weights_with_policy`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WeightsOutcome {
    /// The weights are on chain.
    Set,
    /// Their hash is on chain; [`reveal_due`] reveals them in `reveal_epoch`.
    Committed { reveal_epoch: u64 },
    /// Encrypted to drand round `round`; the chain reveals them itself from about `reveal_block`.
    Timelocked { round: u64, reveal_block: u64 },
}

impl std::fmt::Display for WeightsOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Set => write!(f, "set"),
            Self::Committed { reveal_epoch } => write!(f, "committed (reveal in epoch {reveal_epoch})"),
            Self::Timelocked { round, reveal_block } => {
                write!(
                    f,
                    "committed, timelocked to drand round {round} (the chain reveals it from block {reveal_block})"
                )
            }
        }
    }
}

/// Commits `weights` encrypted to the drand round of their reveal epoch (commit-reveal v4).
async fn commit_timelocked(
    chain: &dyn Chain,
    netuid: NetUid,
    uids: &[u16],
    weights: &[u16],
    version_key: u64,
) -> Result<WeightsOutcome, ChainError> {
    let payload = timelock::encode_payload(&chain.hotkey(), uids, weights, version_key);
    let mut second_try = false;
    loop {
        let ctx = chain.timelock_context(netuid).await?;
        let round = ctx.reveal_round().map_err(ChainError::Other)?;
        let reveal_block =
            timelock::first_reveal_block(&ctx.schedule, ctx.reveal_period_epochs).map_err(ChainError::Other)?;
        let commit = timelock::encrypt(&ctx.beacon, round, &payload).map_err(ChainError::Other)?;
        match chain
            .commit_timelocked_weights(netuid, chain.mechanism(), &commit, round, ctx.commit_reveal_version)
            .await
        {
            Ok(()) => return Ok(WeightsOutcome::Timelocked { round, reveal_block }),
            // The chain moved on between the read and the commit (a runtime upgrade changed the
            // version, a pulse came in): once more with what it says now.
            Err(e)
                if !second_try
                    && matches!(
                        e.dispatch_error(),
                        Some(DispatchError::IncorrectCommitRevealVersion | DispatchError::InvalidRevealRound)
                    ) =>
            {
                tracing::info!(target: "neuron_host::chain", "timelocked commit on subnet {netuid} refused ({e}); reading the chain again and retrying once");
                second_try = true;
            }
            Err(e) => return Err(e),
        }
    }
}

fn random_salt(len: usize) -> Result<Vec<u16>, ChainError> {
    let mut bytes = vec![0u8; len * 2];
    getrandom::getrandom(&mut bytes).map_err(|e| ChainError::Other(format!("no randomness for a salt: {e}")))?;
    Ok(bytes.chunks(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect())
}

/// Waits until the neuron's rate limit on `netuid` has passed (at least one block).
async fn wait_out_rate_limit(chain: &dyn Chain, netuid: NetUid) -> Result<(), ChainError> {
    let limit = chain.hyperparams(netuid).await?.weights_rate_limit;
    let metagraph = chain.metagraph(netuid).await?;
    let last_update = metagraph.neurons.iter().find(|n| n.hotkey == chain.hotkey()).map_or(0, |n| n.last_update);
    let target = (last_update + limit).max(metagraph.block + 1);
    tracing::info!(target: "neuron_host::chain", "weights on subnet {netuid} are rate limited until block {target}; waiting");
    let mut blocks = chain.subscribe_blocks().await?;
    if chain.block().await? >= target {
        return Ok(());
    }
    while let Some(block) = blocks.next().await {
        if block? >= target {
            return Ok(());
        }
    }
    Err(ChainError::Other("the block stream ended while waiting out a rate limit".into()))
}

async fn commit(
    chain: &dyn Chain,
    commits: &CommitStore,
    netuid: NetUid,
    uids: &[u16],
    weights: &[u16],
    version_key: u64,
    policy: &WeightsPolicy,
) -> Result<WeightsOutcome, ChainError> {
    let salt = random_salt(policy.salt_len)?;
    let hotkey = chain.hotkey();
    // subtensor hashes a mechanism's commit under its storage index (the netuid for mechanism 0).
    let index = mechanism_storage_index(netuid, chain.mechanism());
    let hash = commit_hash(&hotkey, index, uids, weights, &salt, version_key);
    let (status, params) = (chain.epoch_status(netuid).await?, chain.hyperparams(netuid).await?);
    let pending = PendingCommit {
        netuid,
        hotkey,
        uids: uids.to_vec(),
        values: weights.to_vec(),
        salt,
        version_key,
        hash: hex(&hash),
        reveal_epoch: status.epoch_index + params.commit_reveal_period,
    };
    let predicted = pending.reveal_epoch;
    commits.add(pending)?;
    if let Err(e) = chain.commit_weights(netuid, hash).await {
        commits.remove(&hex(&hash))?;
        return Err(e);
    }
    // The epoch the chain filed it under (it may have been included in the next epoch):
    // read back; the prediction stands only where the chain's record cannot be read yet.
    let reveal_epoch = recorded_reveal_epochs(chain, netuid).await.get(&hex(&hash)).copied().unwrap_or(predicted);
    if reveal_epoch != predicted {
        commits.set_reveal_epoch(&hex(&hash), reveal_epoch)?;
    }
    Ok(WeightsOutcome::Committed { reveal_epoch })
}

/// The reveal epoch of each of this hotkey's hash commits the chain holds, by hex hash; empty
/// when the chain's record cannot be read (the predicted epochs stand then).
async fn recorded_reveal_epochs(chain: &dyn Chain, netuid: NetUid) -> HashMap<String, u64> {
    match chain.weight_commits(netuid).await {
        Ok(stored) => stored.iter().map(|s| (hex(&s.hash), s.reveal_epoch)).collect(),
        Err(e) => {
            tracing::debug!(target: "neuron_host::chain", "cannot read the chain's weight commits ({e}); using the predicted reveal epochs");
            HashMap::new()
        }
    }
}

/// Puts `weights` on chain by whichever route the subnet takes, reacting to refusals as the module docs say.
pub async fn submit_weights_with_policy(
    chain: &dyn Chain,
    commits: &CommitStore,
    netuid: NetUid,
    uids: &[u16],
    weights: &[u16],
    version_key: u64,
    policy: &WeightsPolicy,
) -> Result<WeightsOutcome, ChainError> {
    let mut use_commit = chain.hyperparams(netuid).await?.commit_reveal_enabled;
    let mut retries = policy.rate_limit_retries;
    let mut switched = false;
    loop {
        let result = if use_commit {
            match policy.commit_reveal {
                CommitReveal::Timelock => commit_timelocked(chain, netuid, uids, weights, version_key).await,
                CommitReveal::Hash => commit(chain, commits, netuid, uids, weights, version_key, policy).await,
            }
        } else {
            chain.set_weights(netuid, uids, weights, version_key).await.map(|()| WeightsOutcome::Set)
        };
        match result.as_ref().map_err(ChainError::dispatch_error) {
            Err(Some(DispatchError::SettingWeightsTooFast | DispatchError::CommittingWeightsTooFast))
                if retries > 0 =>
            {
                retries -= 1;
                wait_out_rate_limit(chain, netuid).await?;
            }
            Err(Some(DispatchError::CommitRevealEnabled)) if !use_commit && !switched => {
                (use_commit, switched) = (true, true);
            }
            Err(Some(DispatchError::CommitRevealDisabled)) if use_commit && !switched => {
                (use_commit, switched) = (false, true);
            }
            _ => return result,
        }
    }
}

/// Reveals this neuron's commits on `netuid` whose reveal epoch has come, and reports and
/// forgets those whose epoch has passed. Returns how many were revealed.
///
/// A commit's reveal epoch is the chain's own record of it ([`Chain::weight_commits`]) where
/// that can be read, else the one predicted when it was sent. A "not yet" from the chain keeps
/// the commit and tries again later in its window (without the chain's record, in the next
/// epoch: the commit was included later than predicted); an expired or missing one is an error.
pub async fn reveal_due(chain: &dyn Chain, commits: &CommitStore, netuid: NetUid) -> Result<usize, ChainError> {
    let hotkey = chain.hotkey();
    let mine: Vec<PendingCommit> =
        commits.all().into_iter().filter(|c| c.netuid == netuid && c.hotkey == hotkey).collect();
    if mine.is_empty() {
        return Ok(0);
    }
    let epoch = chain.epoch_status(netuid).await?.epoch_index;
    let on_chain = recorded_reveal_epochs(chain, netuid).await;
    let mut revealed = 0;
    for c in mine {
        let recorded = on_chain.get(&c.hash).copied();
        let reveal_epoch = recorded.unwrap_or(c.reveal_epoch);
        if reveal_epoch != c.reveal_epoch {
            commits.set_reveal_epoch(&c.hash, reveal_epoch)?;
        }
        if epoch > reveal_epoch {
            commits.remove(&c.hash)?;
            tracing::error!(target: "neuron_host::chain", "a weights commit on subnet {netuid} expired unrevealed (its reveal epoch {reveal_epoch} passed): those weights are lost");
            continue;
        }
        if epoch < reveal_epoch {
            continue;
        }
        match chain.reveal_weights(netuid, &c.uids, &c.values, &c.salt, c.version_key).await {
            Ok(()) => {
                commits.remove(&c.hash)?;
                revealed += 1;
            }
            // "Not yet" (a dispatch's RevealTooEarly, or the pool's CommitBlockNotInRevealRange):
            // the commit is still the chain's and its window is ahead; keep it.
            Err(e)
                if matches!(
                    e.dispatch_error(),
                    Some(DispatchError::RevealTooEarly | DispatchError::CommitBlockNotInRevealRange)
                ) =>
            {
                tracing::info!(target: "neuron_host::chain", "the chain says the weights commit on subnet {netuid} cannot be revealed yet ({e}); kept and tried again");
                if recorded.is_none() {
                    commits.set_reveal_epoch(&c.hash, epoch + 1)?;
                }
            }
            Err(e) => {
                commits.remove(&c.hash)?;
                return Err(e);
            }
        }
    }
    Ok(revealed)
}

/// Weights whose submission failed because the node could not be reached, kept to be sent again
/// when it answers, as long as their epoch is open (the next epoch's weights replace them).
#[derive(Clone, Debug, Default)]
pub struct WeightsRetry {
    pending: Option<(Vec<u16>, Vec<u16>, u64)>,
}

impl WeightsRetry {
    /// Whether `error` is one to retry (the node unreachable, not a refusal).
    pub fn is_retryable(error: &ChainError) -> bool {
        matches!(error, ChainError::Connection { .. })
    }

    /// Keeps weights of `epoch` that could not be sent.
    pub fn keep(&mut self, uids: Vec<u16>, values: Vec<u16>, epoch: u64) {
        self.pending = Some((uids, values, epoch));
    }

    /// The epoch of the weights waiting, if any.
    pub fn waiting(&self) -> Option<u64> {
        self.pending.as_ref().map(|p| p.2)
    }

    /// Drops what waits (its epoch is over); returns its epoch.
    pub fn expire(&mut self) -> Option<u64> {
        self.pending.take().map(|p| p.2)
    }

    /// Sends the waiting weights again: `None` when nothing waits or the node is still away
    /// (they keep waiting), else what the chain did with them (a refusal ends the retry).
    pub async fn retry(
        &mut self,
        chain: &dyn Chain,
        commits: &CommitStore,
        netuid: NetUid,
        version_key: u64,
        policy: &WeightsPolicy,
    ) -> Option<(u64, Result<WeightsOutcome, ChainError>)> {
        let (uids, values, epoch) = self.pending.take()?;
        match submit_weights_with_policy(chain, commits, netuid, &uids, &values, version_key, policy).await {
            Err(e) if Self::is_retryable(&e) => {
                self.pending = Some((uids, values, epoch));
                None
            }
            done => Some((epoch, done)),
        }
    }
}
