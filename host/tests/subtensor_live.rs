//! Against a real subtensor node, when `NEURON_TEST_SUBTENSOR_URL` names one
//! (e.g. ws://127.0.0.1:9944 for a localnet; see the README): register by
//! burning, serve an axon, set weights (directly, by hash commit and reveal, or
//! timelocked and revealed by the chain: whatever the subnet uses), read them back. The signer is
//! `NEURON_TEST_SUBTENSOR_SEED` (a 32-byte sr25519 seed, hex) or the dev
//! account //Alice, which localnets fund; the subnet is
//! `NEURON_TEST_SUBTENSOR_NETUID` (default 1). The live test is ignored by a
//! plain `cargo test`, so a run without a node shows it as not run rather than
//! passed; `-- --ignored` without the URL fails saying what to set.

mod subtensor_support;

use std::sync::Arc;

use neuron_host::chain::{
    commits::CommitStore,
    policy::{reveal_due, submit_weights_with_policy, WeightsOutcome, WeightsPolicy},
    subtensor::{
        self,
        signer::{HotkeySigner, Sr25519Keypair},
        Endpoint, NodeConfig,
    },
    AxonInfo, Chain, DispatchError,
};

/// //Alice's sr25519 seed (Substrate's well-known dev key).
const ALICE_SEED: &str = "e5be9a5092b81bca64be81d212e7f2f9eba183bb7a90954f7b76361f6edb5c0a";

fn seed() -> [u8; 32] {
    let text = std::env::var("NEURON_TEST_SUBTENSOR_SEED").unwrap_or_else(|_| ALICE_SEED.into());
    subtensor_support::unhex(&text).try_into().expect("NEURON_TEST_SUBTENSOR_SEED is 32 bytes of hex")
}

#[test]
fn the_alice_seed_is_alices_key() {
    let alice = Sr25519Keypair::from_mini_secret(&subtensor_support::unhex(ALICE_SEED).try_into().unwrap()).unwrap();
    assert_eq!(alice.account().to_ss58(), "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY");
}

#[tokio::test]
#[ignore = "needs a subtensor node: set NEURON_TEST_SUBTENSOR_URL=ws://... and run with --ignored"]
async fn live_register_serve_set_weights_read_back() {
    let url = std::env::var("NEURON_TEST_SUBTENSOR_URL").unwrap_or_else(|_| {
        panic!("NEURON_TEST_SUBTENSOR_URL is not set: point it at a subtensor node, e.g. ws://127.0.0.1:9944 for a localnet")
    });
    let netuid: u16 = std::env::var("NEURON_TEST_SUBTENSOR_NETUID").map_or(1, |n| n.parse().expect("a netuid"));
    let signer = Arc::new(Sr25519Keypair::from_mini_secret(&seed()).unwrap());
    let chain = subtensor::connect(NodeConfig::new(Endpoint::url(&url).unwrap()), signer.clone()).await.unwrap();

    let uid = match chain.register(netuid).await {
        Ok(uid) => uid,
        Err(e) if e.dispatch_error() == Some(DispatchError::HotKeyAlreadyRegisteredInSubNet) => {
            chain.uid(netuid).await.unwrap().expect("registered")
        }
        Err(e) => panic!("{e}"),
    };
    let mg = chain.metagraph(netuid).await.unwrap();
    assert_eq!(mg.uid_of(&signer.account()), Some(uid));

    let axon = AxonInfo::new("10.20.30.40".parse().unwrap(), 8091, 1);
    match chain.serve_axon(netuid, axon).await {
        Ok(()) => {}
        Err(e) if e.dispatch_error() == Some(DispatchError::ServingRateLimitExceeded) => {}
        Err(e) => panic!("{e}"),
    }
    let served = chain.metagraph(netuid).await.unwrap().neurons[uid as usize].axon;
    assert_eq!(served.map(|a| (a.ip, a.port)), Some((axon.ip, axon.port)));

    let params = chain.hyperparams(netuid).await.unwrap();
    let commits = CommitStore::open(None).unwrap();
    let policy = WeightsPolicy { rate_limit_retries: 3, ..WeightsPolicy::default() };
    let outcome =
        submit_weights_with_policy(&*chain, &commits, netuid, &[uid], &[65535], params.weights_version_key, &policy)
            .await
            .unwrap();
    match outcome {
        WeightsOutcome::Set => {}
        WeightsOutcome::Committed { reveal_epoch } => {
            // The chain's record of the commit agrees with the epoch the validator follows.
            let stored = chain.weight_commits(netuid).await.unwrap();
            assert!(stored.iter().any(|c| c.reveal_epoch == reveal_epoch), "{stored:?} vs epoch {reveal_epoch}");
            let mut blocks = chain.subscribe_blocks().await.unwrap();
            while chain.epoch_status(netuid).await.unwrap().epoch_index < reveal_epoch {
                blocks.next().await.unwrap().unwrap();
            }
            assert_eq!(reveal_due(&*chain, &commits, netuid).await.unwrap(), 1);
        }
        WeightsOutcome::Timelocked { reveal_block, .. } => {
            // The chain decrypts it at its round: wait for its TimelockedWeightsRevealed event.
            let deadline = reveal_block + u64::from(params.tempo) + 1;
            let mut blocks = chain.subscribe_blocks().await.unwrap();
            let from = reveal_block.saturating_sub(2);
            loop {
                if let Some(at) = chain.timelocked_revealed_in(netuid, from, deadline).await.unwrap() {
                    assert!(at >= from, "revealed at block {at}");
                    break;
                }
                let block = blocks.next().await.unwrap().unwrap();
                assert!(block <= deadline, "no TimelockedWeightsRevealed by block {deadline}");
            }
        }
    }
    let weights = chain.weights(netuid).await.unwrap();
    let mine = weights.iter().find(|(u, _)| *u == uid).map(|(_, w)| w.clone());
    assert_eq!(mine, Some(vec![(uid, 65535)]));
}
