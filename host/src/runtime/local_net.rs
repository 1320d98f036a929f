//! The embedded chain as a run uses it: opened from `[chain]` (resumed from its state file), the
//! run's neurons enrolled (registered, a validator staked so it holds a permit), blocks produced,
//! and the state saved like a checkpoint: atomically every `chain.save_every_blocks` blocks while
//! it runs (off the block producer, on a blocking thread) and once more when the run stops, so
//! a killed run restarts at most that many blocks back, where its neurons' checkpoints are. The local subnet and a lone neuron on
//! `subtensor.network = "local"` both go through here.

use std::{path::PathBuf, sync::Arc, time::Duration};

use crate::{
    chain::{
        local::{LocalChain, LocalChainConfig},
        AccountId, Chain, NetUid,
    },
    config::Config,
    error::{Error, Result},
    wallet::{Keypair, Scheme},
};

/// A development key, the same on every run (like subtensor's //Alice).
pub fn dev_keypair(name: &str) -> Keypair {
    let seed = AccountId::from_name(&format!("neuron-host local subnet {name}"));
    Keypair::from_seed(&seed.0, Scheme::Sr25519).expect("a 32-byte seed is a valid sr25519 mini secret")
}

/// The embedded chain of one run.
pub struct LocalNet {
    pub chain: Arc<LocalChain>,
    netuid: NetUid,
    /// Where the state is saved at the end (None: `chain.state` is empty, nothing is kept).
    state_path: Option<PathBuf>,
    /// An existing state file this run must leave as it was (`--no-resume` deletes nothing).
    keep_existing: bool,
    producer: Option<tokio::task::JoinHandle<()>>,
    saver: Option<tokio::task::JoinHandle<()>>,
    save_every_blocks: u64,
}

impl LocalNet {
    /// The chain `[chain]` describes: resumed from `chain.state` when that file exists and
    /// `checkpoint.resume` is on, else new with the one subnet.
    pub fn open(config: &Config) -> Result<Self> {
        let block_time = Duration::from_secs_f64(config.chain.block_time);
        let state_path = (!config.chain.state.is_empty()).then(|| PathBuf::from(&config.chain.state));
        let existing = state_path.as_ref().is_some_and(|p| p.exists());
        let chain = if existing && config.checkpoint.resume {
            LocalChain::load(state_path.as_ref().expect("an existing path"), block_time).map_err(Error::Config)?
        } else {
            LocalChain::new(LocalChainConfig {
                block_time,
                block_emission: config.chain.block_emission,
                subnets: vec![(config.netuid, config.chain.hyperparams.clone(), None)],
            })
        };
        Ok(Self {
            chain,
            netuid: config.netuid,
            state_path,
            keep_existing: existing && !config.checkpoint.resume,
            producer: None,
            saver: None,
            save_every_blocks: config.chain.save_every_blocks,
        })
    }

    /// `hotkey`'s view of the chain, registered on the subnet if it is not yet (and staked with
    /// `stake` rao when given, so a validator holds a permit after the next epoch).
    pub async fn enroll(&self, hotkey: AccountId, coldkey: AccountId, stake: Option<u64>) -> Result<Arc<dyn Chain>> {
        let client: Arc<dyn Chain> = Arc::new(self.chain.client(hotkey, coldkey));
        if client.metagraph(self.netuid).await?.uid_of(&hotkey).is_none() {
            client.register(self.netuid).await?;
            if let Some(rao) = stake {
                self.chain.add_stake(self.netuid, hotkey, rao)?;
            }
        }
        Ok(client)
    }

    /// Runs an epoch at once (so the enrolled validator holds its permit) and starts producing blocks.
    pub fn start(&mut self) -> Result<()> {
        self.chain.run_epoch_now(self.netuid)?;
        self.producer = Some(self.chain.start());
        if let (Some(path), false, every @ 1..) = (&self.state_path, self.keep_existing, self.save_every_blocks) {
            self.saver = Some(tokio::spawn(save_periodically(self.chain.clone(), path.clone(), every)));
        }
        Ok(())
    }

    /// Stops producing blocks and saves the state (atomically) for the next run; a state file
    /// that `--no-resume` did not load is left as it was.
    pub fn stop(mut self) -> Result<()> {
        for task in [self.producer.take(), self.saver.take()].into_iter().flatten() {
            task.abort();
        }
        let Some(path) = &self.state_path else { return Ok(()) };
        if self.keep_existing {
            tracing::info!(target: "neuron_host::chain", "{} left as it was (checkpoint.resume = false): this run's chain is not kept", path.display());
            return Ok(());
        }
        self.chain.save(path).map(|_| ()).map_err(Error::Config)
    }
}

impl Drop for LocalNet {
    fn drop(&mut self) {
        for task in [self.producer.take(), self.saver.take()].into_iter().flatten() {
            task.abort();
        }
    }
}

/// Saves the chain's state each time `every` more blocks have been produced. A failing save is
/// one warning for the whole streak (the previous file stays whole) and one line when saves
/// work again.
async fn save_periodically(chain: Arc<LocalChain>, path: PathBuf, every: u64) {
    let mut saved_at = chain.current_block();
    let mut failing = false;
    let mut ticker = tokio::time::interval(chain.block_time());
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let block = chain.current_block();
        if block < saved_at + every {
            continue;
        }
        let (c, p) = (chain.clone(), path.clone());
        let result = tokio::task::spawn_blocking(move || c.save(&p)).await;
        match result {
            Ok(Ok(block)) => {
                if failing {
                    tracing::info!(target: "neuron_host::chain", "the chain's state saves again to {} (block {block})", path.display());
                }
                failing = false;
                saved_at = block;
            }
            Ok(Err(e)) => {
                if !failing {
                    tracing::warn!(target: "neuron_host::chain", "{e}; the last saved state stays as it was, and saves are retried every {every} blocks (one line when they work again)");
                }
                failing = true;
                saved_at = block;
            }
            Err(_) => return,
        }
    }
}

/// The validator's stake on a local chain, in rao.
pub fn validator_stake(config: &Config) -> u64 {
    (config.subnet.validator_stake * 1e9) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_keys_are_stable_and_distinct() {
        assert_eq!(dev_keypair("miner1").account(), dev_keypair("miner1").account());
        assert_ne!(dev_keypair("miner1").account(), dev_keypair("miner2").account());
    }
}
