//! `neuron-host chain metagraph|hyperparams|block`: an operator's look at a
//! subtensor node (finney, test, or any endpoint). Reads only; nothing is signed.

use std::sync::Arc;

use crate::{
    chain::{
        subtensor::{self, signer::Sr25519Keypair, ChainSelection, NodeConfig},
        Chain, Hyperparams, Metagraph, NetUid,
    },
    error::{Error, Result},
};

/// What to show.
#[derive(Clone, Copy, Debug)]
pub enum ChainView {
    /// One mechanism's view (`Some`), or every mechanism's in turn (`None`).
    Metagraph {
        netuid: NetUid,
        mechanism: Option<u8>,
    },
    Hyperparams {
        netuid: NetUid,
    },
    Block {
        netuid: Option<NetUid>,
    },
}

pub fn run(network: Option<&str>, chain_endpoint: Option<&str>, view: ChainView) -> Result<()> {
    let endpoint = match ChainSelection::from_flags(network, chain_endpoint).map_err(Error::Config)? {
        ChainSelection::Node(endpoint) => endpoint,
        ChainSelection::Local => {
            return Err(Error::Config(
                "the embedded chain (--subtensor.network local) lives inside a running neuron-host: give \
                 --subtensor.network finney|test or --subtensor.chain_endpoint ws://HOST:PORT to look at a node"
                    .into(),
            ))
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Config(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async move {
        // Reads need no key; a throwaway one satisfies the handle's signer.
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).map_err(|e| Error::Config(format!("no randomness: {e}")))?;
        let signer = Arc::new(Sr25519Keypair::from_mini_secret(&seed).map_err(Error::Config)?);
        let chain = subtensor::connect(NodeConfig::new(endpoint), signer).await?;
        match view {
            ChainView::Metagraph { netuid, mechanism: Some(mecid) } => {
                print!("{}", metagraph_table(&chain.mechagraph(netuid, mecid).await?))
            }
            ChainView::Metagraph { netuid, mechanism: None } => {
                let count = chain.mechanism_count(netuid).await?;
                for mecid in 0..count {
                    println!("mechanism {mecid} of {count}");
                    print!("{}", metagraph_table(&chain.mechagraph(netuid, mecid).await?));
                }
            }
            ChainView::Hyperparams { netuid } => {
                print!("{}", hyperparams_table(netuid, &chain.hyperparams(netuid).await?))
            }
            ChainView::Block { netuid } => {
                println!("{:<18}{}", "node", chain.describe());
                println!("{:<18}{}", "finalized block", chain.block().await?);
                if let Some(netuid) = netuid {
                    let s = chain.epoch_status(netuid).await?;
                    println!("{:<18}{}", "subnet", netuid);
                    println!("{:<18}{}", "mechanisms", chain.mechanism_count(netuid).await?);
                    println!("{:<18}{}", "epoch index", s.epoch_index);
                    println!("{:<18}{}", "last epoch block", s.last_epoch_block);
                    println!(
                        "{:<18}{} (in {} blocks)",
                        "next epoch block",
                        s.next_epoch_block,
                        s.next_epoch_block.saturating_sub(s.block)
                    );
                }
            }
        }
        Ok(())
    })
}

fn tao(rao: u64) -> String {
    format!("{:.4}", rao as f64 / 1e9)
}

fn short(id: &crate::chain::AccountId) -> String {
    let s = id.to_ss58();
    format!("{}…{}", &s[..6], &s[s.len() - 4..])
}

/// The metagraph as a fixed-width table, one neuron a row.
pub fn metagraph_table(mg: &Metagraph) -> String {
    let mut out = format!("subnet {} at block {}: {} neurons\n", mg.netuid, mg.block, mg.len());
    out.push_str(&format!(
        "{:>4}  {:<11}  {:<11}  {:>14}  {:>2}  {:>3}  {:>7}  {:>7}  {:>7}  {:>7}  {:>12}  {:>9}  {}\n",
        "UID",
        "HOTKEY",
        "COLDKEY",
        "STAKE(τ)",
        "VP",
        "ACT",
        "INCENT",
        "DIVIDS",
        "CONSENS",
        "VTRUST",
        "EMISSION",
        "UPDATED",
        "AXON"
    ));
    for n in &mg.neurons {
        let axon = n.axon.map_or("-".to_string(), |a| format!("{}:{}", a.ip, a.port));
        out.push_str(&format!(
            "{:>4}  {:<11}  {:<11}  {:>14}  {:>2}  {:>3}  {:>7.4}  {:>7.4}  {:>7.4}  {:>7.4}  {:>12}  {:>9}  {}\n",
            n.uid,
            short(&n.hotkey),
            short(&n.coldkey),
            tao(n.stake),
            if n.validator_permit { "*" } else { "" },
            if n.active { "yes" } else { "no" },
            n.incentive,
            n.dividends,
            n.consensus,
            n.validator_trust,
            n.emission,
            n.last_update,
            axon
        ));
    }
    out
}

/// Hyperparameters as `name value` lines.
pub fn hyperparams_table(netuid: NetUid, p: &Hyperparams) -> String {
    let rows: Vec<(&str, String)> = vec![
        ("tempo", p.tempo.to_string()),
        ("min_allowed_weights", p.min_allowed_weights.to_string()),
        ("max_weight_limit", p.max_weight_limit.to_string()),
        ("weights_rate_limit", p.weights_rate_limit.to_string()),
        ("weights_version_key", p.weights_version_key.to_string()),
        ("commit_reveal_enabled", p.commit_reveal_enabled.to_string()),
        ("commit_reveal_period", p.commit_reveal_period.to_string()),
        ("activity_cutoff", p.activity_cutoff.to_string()),
        ("kappa", p.kappa.to_string()),
        ("bonds_moving_average", p.bonds_moving_average.to_string()),
        ("bonds_penalty", p.bonds_penalty.to_string()),
        ("immunity_period", p.immunity_period.to_string()),
        ("max_allowed_uids", p.max_allowed_uids.to_string()),
        ("max_allowed_validators", p.max_allowed_validators.to_string()),
        ("yuma3", p.yuma3.to_string()),
        ("min_stake", format!("{} τ", tao(p.min_stake))),
    ];
    let mut out = format!("subnet {netuid} hyperparameters\n");
    for (name, value) in rows {
        out.push_str(&format!("  {name:<24}{value}\n"));
    }
    out
}
