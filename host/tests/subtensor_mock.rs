//! The subtensor client against a stand-in node (subtensor_support/mock_node.rs)
//! answering from the real finney 393 metadata and constructed values: no
//! subtensor node can run where these tests run, so the node is mocked;
//! subtensor_live.rs runs the same client against a real one.

mod subtensor_support;

use std::{sync::Arc, time::Duration};

use neuron_host::chain::{
    subtensor::{self, signer::Sr25519Keypair, Endpoint, NodeConfig},
    Chain, ChainError, DispatchError,
};
use subtensor_support::{
    genesis, hex,
    mock_node::{ChainHead, MockNode, NodeState, SubmitReply},
};
use subxt::{
    client::OfflineClient,
    ext::{
        codec::Encode,
        scale_encode::EncodeAsType,
        scale_value::{Composite, Value, ValueDef},
    },
    metadata::Metadata,
};

const NET: u16 = 1;

struct Runtime {
    metadata: Metadata,
    client: OfflineClient<neuron_host::chain::subtensor::runtime::Subtensor>,
}

fn runtime() -> Runtime {
    let bytes = subtensor_support::metadata_v16();
    let metadata = Metadata::decode_from(&bytes).unwrap();
    let config = neuron_host::chain::subtensor::runtime::Subtensor::offline(
        Metadata::decode_from(&bytes).unwrap().arc(),
        393,
        1,
        genesis(),
    );
    Runtime { metadata, client: OfflineClient::new_with_config(config) }
}

/// A value of type `id` with every field zero or empty.
fn zero(types: &scale_info::PortableRegistry, id: u32) -> Value {
    use scale_info::{TypeDef, TypeDefPrimitive as P};
    let ty = types.resolve(id).unwrap();
    let fields = |fs: &[scale_info::Field<scale_info::form::PortableForm>]| -> Composite<()> {
        if !fs.is_empty() && fs.iter().all(|f| f.name.is_some()) {
            Composite::named(fs.iter().map(|f| (f.name.clone().unwrap(), zero(types, f.ty.id))))
        } else {
            Composite::unnamed(fs.iter().map(|f| zero(types, f.ty.id)))
        }
    };
    match &ty.type_def {
        TypeDef::Composite(c) => Value { value: ValueDef::Composite(fields(&c.fields)), context: () },
        TypeDef::Variant(v) => Value::variant(v.variants[0].name.clone(), fields(&v.variants[0].fields)),
        TypeDef::Sequence(_) => Value::unnamed_composite([]),
        TypeDef::Array(a) => Value::unnamed_composite((0..a.len).map(|_| zero(types, a.type_param.id))),
        TypeDef::Tuple(t) => Value::unnamed_composite(t.fields.iter().map(|f| zero(types, f.id))),
        TypeDef::Primitive(P::Bool) => Value::bool(false),
        TypeDef::Primitive(P::Str) => Value::string(""),
        TypeDef::Primitive(P::Char) => Value::char('a'),
        TypeDef::Primitive(P::I8 | P::I16 | P::I32 | P::I64 | P::I128 | P::I256) => Value::i128(0),
        TypeDef::Primitive(_) | TypeDef::Compact(_) => Value::u128(0),
        TypeDef::BitSequence(_) => Value::bit_sequence(Default::default()),
    }
}

fn set(value: &mut Value, name: &str, new: Value) {
    let ValueDef::Composite(Composite::Named(fields)) = &mut value.value else { panic!("not a struct") };
    let slot = fields.iter_mut().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no field {name}"));
    slot.1 = new;
}

fn list(items: impl IntoIterator<Item = Value>) -> Value {
    Value::unnamed_composite(items)
}

fn encode(rt: &Runtime, value: &Value, ty: u32) -> Vec<u8> {
    value.encode_as_type(ty, rt.metadata.types()).unwrap()
}

fn storage_key<K>(rt: &Runtime, entry: (&str, &str), key: K) -> String
where
    K: subxt::ext::frame_decode::storage::IntoEncodableValues + subxt::ext::frame_decode::storage::IntoDecodableValues,
{
    let at = rt.client.at_block(0u64).unwrap();
    let addr = subxt::storage::dynamic::<K, Value>(entry.0, entry.1);
    hex(&at.storage().entry(addr).unwrap().fetch_key(key).unwrap())[2..].to_string()
}

/// Hotkeys of the mocked subnet's neurons.
fn hotkey(i: u8) -> [u8; 32] {
    [i + 1; 32]
}

/// `get_metagraph`'s answer for the mocked subnet (three neurons), read at `block`.
fn metagraph_answer(rt: &Runtime, block: u128) -> Vec<u8> {
    let api = rt.metadata.runtime_api_trait_by_name("SubnetInfoRuntimeApi").unwrap();
    let option_ty = api.method_by_name("get_metagraph").unwrap().output_ty();
    let scale_info::TypeDef::Variant(option) = &rt.metadata.types().resolve(option_ty).unwrap().type_def else {
        panic!()
    };
    let inner = option.variants.iter().find(|v| v.name == "Some").unwrap().fields[0].ty.id;
    let mut mg = zero(rt.metadata.types(), inner);
    set(&mut mg, "netuid", Value::u128(NET.into()));
    set(&mut mg, "block", Value::u128(block));
    set(&mut mg, "tempo", Value::u128(360));
    set(&mut mg, "hotkeys", list((0..3).map(|i| Value::from_bytes(hotkey(i)))));
    set(&mut mg, "coldkeys", list((0..3).map(|_| Value::from_bytes([9u8; 32]))));
    let axon = |ip: u128, port: u128, ip_type: u128| {
        Value::named_composite([
            ("block", Value::u128(50)),
            ("version", Value::u128(7)),
            ("ip", Value::u128(ip)),
            ("port", Value::u128(port)),
            ("ip_type", Value::u128(ip_type)),
            ("protocol", Value::u128(4)),
            ("placeholder1", Value::u128(0)),
            ("placeholder2", Value::u128(0)),
        ])
    };
    set(&mut mg, "axons", list([axon(0x0a00_0001, 8091, 4), axon(0, 0, 0), axon(1, 9000, 6)]));
    set(&mut mg, "identities", list((0..3).map(|_| Value::unnamed_variant("None", []))));
    set(&mut mg, "active", list([true, false, true].map(Value::bool)));
    set(&mut mg, "validator_permit", list([true, false, false].map(Value::bool)));
    let u = |xs: [u128; 3]| list(xs.map(Value::u128));
    set(&mut mg, "last_update", u([90, 80, 70]));
    set(&mut mg, "emission", u([1000, 0, 2000]));
    set(&mut mg, "dividends", u([65535, 0, 0]));
    set(&mut mg, "incentives", u([0, 0, 65535]));
    set(&mut mg, "consensus", u([0, 0, 32768]));
    set(&mut mg, "block_at_registration", u([10, 20, 30]));
    set(&mut mg, "total_stake", u([5_000_000_000, 0, 1]));
    for f in ["pruning_score", "trust", "rank", "alpha_stake", "tao_stake"] {
        set(&mut mg, f, u([0, 0, 0]));
    }
    let answer = Value::unnamed_variant("Some", [mg]);
    encode(rt, &answer, option_ty)
}

/// A node at block 100 whose subnet 1 has three neurons.
fn node_state(rt: &Runtime) -> NodeState {
    let mut st = NodeState { finalized: 100, spec_version: 393, ..NodeState::default() };
    let version = (
        "node-subtensor".to_string(),
        "node-subtensor".to_string(),
        1u32,
        393u32,
        1u32,
        Vec::<([u8; 8], u32)>::new(),
        1u32,
        1u8,
    );
    st.calls.insert("Core_version".into(), version.encode());
    st.calls.insert("Metadata_metadata_versions".into(), vec![14u32, 15, 16].encode());
    st.calls.insert("Metadata_metadata_at_version".into(), Some(subtensor_support::metadata_v16()).encode());
    st.calls.insert("AccountNonceApi_account_nonce".into(), 0u32.encode());

    st.calls.insert("SubnetInfoRuntimeApi_get_metagraph".into(), metagraph_answer(rt, 100));
    st.storage.insert(storage_key(rt, ("SubtensorModule", "ValidatorTrust"), (NET,)), vec![40000u16, 0, 0].encode());
    st.events_key = storage_key(rt, ("System", "Events"), ());
    st
}

async fn connect(node: &MockNode) -> Arc<subtensor::SubtensorChain> {
    let mut config = NodeConfig::new(Endpoint::url(&node.url()).unwrap());
    config.reconnect_delay = (Duration::from_millis(50), Duration::from_millis(200));
    config.connect_timeout = Duration::from_secs(10);
    let signer = Arc::new(Sr25519Keypair::from_mini_secret(&[1; 32]).unwrap());
    subtensor::connect(config, signer).await.unwrap()
}

#[tokio::test]
async fn the_metagraph_is_decoded_from_get_metagraph_in_one_call() {
    let rt = runtime();
    let node = MockNode::start(node_state(&rt)).await;
    let chain = connect(&node).await;
    let mg = chain.metagraph(NET).await.unwrap();
    assert_eq!((mg.netuid, mg.block, mg.len()), (NET, 100, 3));
    let n0 = &mg.neurons[0];
    assert_eq!(n0.hotkey.0, hotkey(0));
    assert_eq!(n0.coldkey.0, [9; 32]);
    assert_eq!(n0.stake, 5_000_000_000);
    assert_eq!(n0.axon.unwrap().ip, "10.0.0.1".parse::<std::net::IpAddr>().unwrap());
    assert_eq!((n0.axon.unwrap().port, n0.axon.unwrap().version), (8091, 7));
    assert!(n0.validator_permit && n0.active);
    assert_eq!((n0.last_update, n0.registered_at, n0.emission), (90, 10, 1000));
    assert_eq!(n0.dividends, 1.0);
    assert!((n0.validator_trust - 40000.0 / 65535.0).abs() < 1e-12);
    assert_eq!(mg.neurons[1].axon, None, "never served");
    assert!(!mg.neurons[1].active);
    assert_eq!(mg.neurons[2].axon.unwrap().ip, "::1".parse::<std::net::IpAddr>().unwrap());
    assert!((mg.neurons[2].consensus - 32768.0 / 65535.0).abs() < 1e-12);
    assert_eq!(mg.neurons[2].incentive, 1.0);
    let calls = node.state.lock().unwrap().requests.iter().filter(|m| *m == "state_call").count();
    assert!(calls >= 1);
}

async fn next(blocks: &mut neuron_host::chain::BlockStream) -> u64 {
    tokio::time::timeout(Duration::from_secs(20), blocks.next()).await.expect("a block in time").unwrap().unwrap()
}

#[tokio::test]
async fn the_block_stream_survives_a_dropped_connection_without_missing_a_block() {
    let rt = runtime();
    let node = MockNode::start(node_state(&rt)).await;
    let chain = connect(&node).await;
    let mut blocks = chain.subscribe_blocks().await.unwrap();
    assert_eq!(next(&mut blocks).await, 100);
    node.finalize(101);
    assert_eq!(next(&mut blocks).await, 101);
    // The connection drops; blocks 102..=104 are finalised while the client is away.
    node.drop_connections();
    node.state.lock().unwrap().finalized = 104;
    for want in 102..=104 {
        assert_eq!(next(&mut blocks).await, want, "missed blocks are filled in after reconnecting");
    }
    node.finalize(105);
    assert_eq!(next(&mut blocks).await, 105);
    let subscriptions =
        node.state.lock().unwrap().requests.iter().filter(|m| *m == "chain_subscribeFinalizedHeads").count();
    assert!(subscriptions >= 2, "resubscribed");
    // Reads work again on the new connection.
    assert_eq!(chain.metagraph(NET).await.unwrap().len(), 3);
}

#[tokio::test]
async fn a_node_whose_chainhead_is_broken_is_followed_through_the_legacy_methods() {
    // The node advertises chainHead_v1 but its follow subscription sends a malformed event and
    // ends: under `auto` the follower counts each empty subscription as a failure (growing
    // backoff, not a resubscribe twice a second), falls back to the legacy methods after three,
    // and blocks arrive; a refused transaction still names the node's own answer.
    let rt = runtime();
    let mut st = node_state(&rt);
    st.chainhead = ChainHead::Malformed;
    st.submit = Some(SubmitReply::PoolError { data: "Custom error: 11".into() });
    let node = MockNode::start(st).await;
    let mut config = NodeConfig::new(Endpoint::url(&node.url()).unwrap());
    config.reconnect_delay = (Duration::from_millis(100), Duration::from_secs(2));
    let chain =
        subtensor::connect(config, Arc::new(Sr25519Keypair::from_mini_secret(&[5; 32]).unwrap())).await.unwrap();
    let started = std::time::Instant::now();
    let mut blocks = chain.subscribe_blocks().await.unwrap();
    assert_eq!(next(&mut blocks).await, 100, "blocks arrive through the legacy methods");
    node.finalize(101);
    assert_eq!(next(&mut blocks).await, 101);
    let requests = node.state.lock().unwrap().requests.clone();
    let follows = requests.iter().filter(|m| *m == "chainHead_v1_follow").count();
    assert!(follows <= 4, "gave up on chainHead after a few tries: {follows} in {:?}", started.elapsed());
    assert!(requests.iter().any(|m| m == "chain_subscribeFinalizedHeads"));
    // The pool's refusal (custom code 11) comes back as the node said it, not as the error of
    // a backend the node lacks.
    let err = chain.serve_axon(NET, neuron_host::chain::AxonInfo::new([1, 2, 3, 4].into(), 8091, 1)).await.unwrap_err();
    assert!(err.to_string().contains("InvalidIpAddress"), "{err}");
    // Reads work too.
    assert_eq!(chain.metagraph(NET).await.unwrap().len(), 3);
}

#[tokio::test]
async fn legacy_forced_never_asks_for_chainhead_and_new_forced_keeps_its_backoff_bounded() {
    let rt = runtime();
    let mut st = node_state(&rt);
    st.chainhead = ChainHead::Malformed;
    let node = MockNode::start(st).await;
    let signer = || Arc::new(Sr25519Keypair::from_mini_secret(&[5; 32]).unwrap());
    let mut config = NodeConfig::new(Endpoint::url(&node.url()).unwrap());
    config.rpc = subtensor::RpcMode::Legacy;
    let chain = subtensor::connect(config.clone(), signer()).await.unwrap();
    let mut blocks = chain.subscribe_blocks().await.unwrap();
    assert_eq!(next(&mut blocks).await, 100);
    assert!(!node.state.lock().unwrap().requests.iter().any(|m| m.starts_with("chainHead")));
    drop((blocks, chain));

    // `new`: no fallback; the broken subscription is retried with a backoff that grows to its cap.
    node.state.lock().unwrap().requests.clear();
    config.rpc = subtensor::RpcMode::New;
    config.reconnect_delay = (Duration::from_millis(50), Duration::from_millis(800));
    let chain = subtensor::connect(config, signer()).await.unwrap();
    let blocks = chain.subscribe_blocks().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    // Each attempt is a handful of requests (subxt tries chainHead, then the legacy method);
    // with a backoff of 50, 100, 200, 400, 800, 800... ms there are about 8 attempts in 4 s,
    // where a fixed 50 ms delay would make 80.
    let requests = node.state.lock().unwrap().requests.len();
    assert!(blocks.is_ok() && requests <= 100, "{requests} requests in 4 s");
    drop(blocks);
}

/// System.Events of a block whose extrinsic 0 failed with SubtensorModule's error `index`.
fn failed_events(rt: &Runtime, error_index: u8) -> Vec<u8> {
    let system = rt.metadata.pallet_by_name("System").unwrap();
    let failed = system.event_variants().unwrap().iter().find(|v| v.name == "ExtrinsicFailed").unwrap();
    let info = failed.fields.iter().find(|f| f.name.as_deref() == Some("dispatch_info")).unwrap();
    let module =
        Value::named_composite([("index", Value::u128(7)), ("error", Value::from_bytes([error_index, 0, 0, 0]))]);
    let event = Value::named_variant(
        "ExtrinsicFailed",
        [
            ("dispatch_error", Value::unnamed_variant("Module", [module])),
            ("dispatch_info", zero(rt.metadata.types(), info.ty.id)),
        ],
    );
    let record = Value::named_composite([
        ("phase", Value::unnamed_variant("ApplyExtrinsic", [Value::u128(0)])),
        ("event", Value::unnamed_variant("System", [event])),
        ("topics", list([])),
    ]);
    let events =
        rt.metadata.pallet_by_name("System").unwrap().storage().unwrap().entry_by_name("Events").unwrap().value_ty();
    encode(rt, &list([record]), events)
}

/// System.Events of a block whose extrinsic 0 succeeded.
fn success_events(rt: &Runtime) -> Vec<u8> {
    let system = rt.metadata.pallet_by_name("System").unwrap();
    let ok = system.event_variants().unwrap().iter().find(|v| v.name == "ExtrinsicSuccess").unwrap();
    let info = ok.fields.iter().find(|f| f.name.as_deref() == Some("dispatch_info")).unwrap();
    let event = Value::named_variant("ExtrinsicSuccess", [("dispatch_info", zero(rt.metadata.types(), info.ty.id))]);
    let record = Value::named_composite([
        ("phase", Value::unnamed_variant("ApplyExtrinsic", [Value::u128(0)])),
        ("event", Value::unnamed_variant("System", [event])),
        ("topics", list([])),
    ]);
    let events = system.storage().unwrap().entry_by_name("Events").unwrap().value_ty();
    encode(rt, &list([record]), events)
}

#[tokio::test]
async fn a_timelocked_commit_goes_to_the_mechanism_call_encrypted_to_the_sdks_round() {
    use neuron_host::chain::{
        commits::CommitStore,
        policy::{submit_weights_with_policy, WeightsOutcome, WeightsPolicy},
        timelock,
    };
    let rt = runtime();
    let mut st = node_state(&rt);
    let put = |st: &mut NodeState, entry: &str, bytes: Vec<u8>| {
        st.storage.insert(storage_key(&rt, ("SubtensorModule", entry), (NET,)), bytes);
    };
    put(&mut st, "NetworksAdded", true.encode());
    put(&mut st, "Tempo", 360u16.encode());
    put(&mut st, "BlocksSinceLastStep", 30u64.encode());
    put(&mut st, "RevealPeriodEpochs", 2u64.encode());
    st.storage.insert(storage_key(&rt, ("SubtensorModule", "CommitRevealWeightsVersion"), ()), 4u16.encode());
    st.submit = Some(SubmitReply::InBlock { block: 101, events: success_events(&rt) });
    // The subnet's hyperparameters: commit-reveal on.
    let api = rt.metadata.runtime_api_trait_by_name("SubnetInfoRuntimeApi").unwrap();
    let option_ty = api.method_by_name("get_subnet_hyperparams_v2").unwrap().output_ty();
    let scale_info::TypeDef::Variant(option) = &rt.metadata.types().resolve(option_ty).unwrap().type_def else {
        panic!()
    };
    let inner = option.variants.iter().find(|v| v.name == "Some").unwrap().fields[0].ty.id;
    let mut hp = zero(rt.metadata.types(), inner);
    set(&mut hp, "commit_reveal_weights_enabled", Value::bool(true));
    set(&mut hp, "tempo", Value::u128(360));
    let answer = encode(&rt, &Value::unnamed_variant("Some", [hp]), option_ty);
    st.calls.insert("SubnetInfoRuntimeApi_get_subnet_hyperparams_v2".into(), answer);
    let node = MockNode::start(st).await;
    let chain = connect(&node).await;

    let ctx = chain.timelock_context(NET).await.unwrap();
    assert_eq!((ctx.commit_reveal_version, ctx.reveal_period_epochs, ctx.block_time_secs), (4, 2, 12.0));
    assert_eq!(ctx.beacon, timelock::Beacon::quicknet());
    // Spec 393 has no SubnetEpochIndex: the schedule comes from the block-number rule.
    let legacy = neuron_host::chain::subtensor::reads::epoch_status(NET, 360, 100);
    assert_eq!(
        (ctx.schedule.current_block, ctx.schedule.last_epoch_block, ctx.schedule.subnet_epoch_index),
        (100, legacy.last_epoch_block, legacy.epoch_index)
    );

    let commits = CommitStore::open(None).unwrap();
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let outcome =
        submit_weights_with_policy(&*chain, &commits, NET, &[0, 2], &[65535, 100], 7, &WeightsPolicy::default())
            .await
            .unwrap();
    let after = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let WeightsOutcome::Timelocked { round, .. } = outcome else { panic!("{outcome:?}") };
    let at = |now| timelock::reveal_round(&ctx.schedule, 2, 12.0, now).unwrap();
    assert!((at(before)..=at(after)).contains(&round), "round {round}");
    // The extrinsic is commit_timelocked_mechanism_weights (pallet 7), mechanism 0, round and version 4.
    let submitted = node.state.lock().unwrap().submitted.clone();
    assert_eq!(submitted.len(), 1);
    let call = rt.metadata.pallet_by_name("SubtensorModule").unwrap();
    let index = call.call_variant_by_name("commit_timelocked_mechanism_weights").unwrap().index;
    let tail = format!("{}0400", &hex(&round.to_le_bytes())[2..]);
    assert!(submitted[0].ends_with(&tail), "{} does not end in round and version", submitted[0]);
    assert!(submitted[0].contains(&format!("07{index:02x}0100")), "pallet 7, the call, netuid 1");
}

#[tokio::test]
async fn a_validator_of_mechanism_1_reads_its_mechagraph_and_sets_that_mechanisms_weights() {
    let rt = runtime();
    let mut st = node_state(&rt);
    // get_mechagraph answers what get_metagraph does, with another block to tell them apart.
    let metagraph = st.calls["SubnetInfoRuntimeApi_get_metagraph"].clone();
    st.calls.insert("SubnetInfoRuntimeApi_get_metagraph".into(), Vec::new());
    st.calls.insert("SubnetInfoRuntimeApi_get_mechagraph".into(), metagraph);
    st.submit = Some(SubmitReply::InBlock { block: 101, events: success_events(&rt) });
    let node = MockNode::start(st).await;
    let mut config = NodeConfig::new(Endpoint::url(&node.url()).unwrap());
    config.mechanism = 1;
    let chain =
        subtensor::connect(config, Arc::new(Sr25519Keypair::from_mini_secret(&[1; 32]).unwrap())).await.unwrap();
    assert_eq!(chain.mechanism(), 1);
    assert_eq!(chain.metagraph(NET).await.unwrap().len(), 3, "read through get_mechagraph");
    chain.set_weights(NET, &[0, 2], &[1, 1], 0).await.unwrap();
    let submitted = node.state.lock().unwrap().submitted.clone();
    let pallet = rt.metadata.pallet_by_name("SubtensorModule").unwrap();
    let index = pallet.call_variant_by_name("set_mechanism_weights").unwrap().index;
    // pallet 7, set_mechanism_weights, netuid 1, mechanism 1.
    assert!(submitted[0].contains(&format!("07{index:02x}010001")), "{}", submitted[0]);
}

fn error_index(rt: &Runtime, name: &str) -> u8 {
    let pallet = rt.metadata.pallet_by_name("SubtensorModule").unwrap();
    pallet.error_variants().unwrap().iter().find(|v| v.name == name).unwrap().index
}

#[tokio::test]
async fn a_failed_dispatch_comes_back_with_subtensors_error_name() {
    let rt = runtime();
    let mut st = node_state(&rt);
    st.submit = Some(SubmitReply::InBlock {
        block: 101,
        events: failed_events(&rt, error_index(&rt, "SettingWeightsTooFast")),
    });
    let node = MockNode::start(st).await;
    let chain = connect(&node).await;
    let err = chain.set_weights(NET, &[0, 2], &[1, 1], 0).await.unwrap_err();
    assert_eq!(err.dispatch_error(), Some(DispatchError::SettingWeightsTooFast), "{err}");
    assert_eq!(err.to_string(), "the chain refused set_weights: SettingWeightsTooFast (weights were set less than weights_rate_limit blocks ago)");

    // An error this host does not act on keeps its pallet name and docs.
    let other = error_index(&rt, "NotEnoughBalanceToPaySwapHotKey");
    node.state.lock().unwrap().submit = Some(SubmitReply::InBlock { block: 102, events: failed_events(&rt, other) });
    match chain.set_weights(NET, &[0], &[1], 0).await.unwrap_err() {
        ChainError::OtherDispatch { call, pallet, name, docs } => {
            assert_eq!(
                (call, pallet.as_str(), name.as_str()),
                ("set_weights", "SubtensorModule", "NotEnoughBalanceToPaySwapHotKey")
            );
            assert!(!docs.is_empty());
        }
        e => panic!("{e}"),
    }
    // Two submissions in a row: the second used the next nonce, and both were signed by the hotkey.
    let submitted = node.state.lock().unwrap().submitted.clone();
    assert_eq!(submitted.len(), 2);
    assert_ne!(submitted[0], submitted[1]);
    assert!(submitted[0].contains(&hex(&chain.hotkey().0)[2..]));
}

#[test]
fn every_error_the_host_names_is_one_subtensor_has() {
    // Dispatch errors against the metadata's error list of SubtensorModule; the two that exist
    // only as pool refusals against subtensor's custom codes.
    let rt = runtime();
    let pallet = rt.metadata.pallet_by_name("SubtensorModule").unwrap();
    let names: Vec<&str> = pallet.error_variants().unwrap().iter().map(|v| v.name.as_str()).collect();
    for e in neuron_host::chain::all_dispatch_errors() {
        let pool_only = subtensor::errors::CUSTOM_CODES.iter().any(|(_, n)| *n == e.name());
        assert!(
            names.contains(&e.name()) || pool_only,
            "{} is neither a SubtensorModule error nor a pool code",
            e.name()
        );
        if names.contains(&e.name()) {
            // And a failed dispatch with that index decodes back to it.
            let index = error_index(&rt, e.name());
            let known = pallet.error_variant_by_index(index).unwrap();
            assert_eq!(known.name, e.name());
        }
    }
}

#[tokio::test]
async fn each_dispatch_error_the_host_acts_on_comes_back_named() {
    let rt = runtime();
    let node = MockNode::start(node_state(&rt)).await;
    let chain = connect(&node).await;
    let pallet = rt.metadata.pallet_by_name("SubtensorModule").unwrap();
    let names: Vec<String> = pallet.error_variants().unwrap().iter().map(|v| v.name.clone()).collect();
    let acted_on = neuron_host::chain::all_dispatch_errors().iter().filter(|e| names.iter().any(|n| n == e.name()));
    for (block, e) in (101..).zip(acted_on) {
        node.state.lock().unwrap().submit =
            Some(SubmitReply::InBlock { block, events: failed_events(&rt, error_index(&rt, e.name())) });
        let err = chain.set_weights(NET, &[0], &[1], 0).await.unwrap_err();
        assert_eq!(err.dispatch_error(), Some(*e), "{err}");
    }
}

#[tokio::test]
async fn a_pool_rejection_comes_back_with_subtensors_error_name() {
    let rt = runtime();
    let mut st = node_state(&rt);
    st.submit = Some(SubmitReply::PoolError { data: "Custom error: 6".into() });
    let node = MockNode::start(st).await;
    let chain = connect(&node).await;
    let err = chain.set_weights(NET, &[0], &[1], 0).await.unwrap_err();
    assert_eq!(err.dispatch_error(), Some(DispatchError::SettingWeightsTooFast), "{err}");
}

#[tokio::test]
async fn an_unreachable_node_is_one_line_naming_the_endpoint() {
    // A port nothing listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut config = NodeConfig::new(Endpoint::url(&format!("ws://127.0.0.1:{port}")).unwrap());
    config.connect_timeout = Duration::from_secs(5);
    let signer = Arc::new(Sr25519Keypair::from_mini_secret(&[1; 32]).unwrap());
    let err = subtensor::connect(config, signer).await.err().unwrap().to_string();
    assert!(err.contains(&format!("ws://127.0.0.1:{port}")) && err.contains("check the URL"), "{err}");
    assert!(!err.contains('\n'), "{err}");
}

#[tokio::test]
async fn the_operator_table_shows_each_neuron() {
    let rt = runtime();
    let node = MockNode::start(node_state(&rt)).await;
    let chain = connect(&node).await;
    let table = neuron_host::jobs::chain::metagraph_table(&chain.metagraph(NET).await.unwrap());
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines[0], "subnet 1 at block 100: 3 neurons");
    assert!(lines[1].contains("UID") && lines[1].contains("AXON"));
    assert!(lines[2].contains("10.0.0.1:8091") && lines[2].contains("5.0000"), "{}", lines[2]);
    assert_eq!(lines.len(), 5);
}

/// System.Events of a block holding one `TimelockedWeightsRevealed(index, who)` per entry, as the
/// chain deposits them in `on_initialize`.
fn reveal_events(rt: &Runtime, reveals: &[(u16, [u8; 32])]) -> Vec<u8> {
    let records = reveals.iter().map(|&(index, who)| {
        let event =
            Value::unnamed_variant("TimelockedWeightsRevealed", [Value::u128(index.into()), Value::from_bytes(who)]);
        Value::named_composite([
            ("phase", Value::unnamed_variant("Initialization", [])),
            ("event", Value::unnamed_variant("SubtensorModule", [event])),
            ("topics", list([])),
        ])
    });
    let system = rt.metadata.pallet_by_name("System").unwrap();
    encode(rt, &list(records), system.storage().unwrap().entry_by_name("Events").unwrap().value_ty())
}

#[tokio::test]
async fn the_chains_record_of_a_commit_and_its_reveal_event_are_read_back() {
    use neuron_host::chain::{subtensor::reads, StoredCommit};
    let rt = runtime();
    let mut st = node_state(&rt);
    st.finalized = 110;
    let put = |st: &mut NodeState, entry: &str, bytes: Vec<u8>| {
        st.storage.insert(storage_key(&rt, ("SubtensorModule", entry), (NET,)), bytes);
    };
    put(&mut st, "NetworksAdded", true.encode());
    put(&mut st, "Tempo", 360u16.encode());
    put(&mut st, "RevealPeriodEpochs", 1u64.encode());
    let node = MockNode::start(st).await;
    let chain = connect(&node).await;
    let me = chain.hotkey().0;
    assert_eq!(chain.weight_commits(NET).await.unwrap(), vec![], "none stored");
    // Spec 393 stores (hash, commit_block, first_reveal_block, last_reveal_block).
    let stored = vec![([5u8; 32], 150u64, 359u64, 719u64), ([6u8; 32], 400u64, 720u64, 1080u64)];
    let key = storage_key(&rt, ("SubtensorModule", "WeightCommits"), (NET, me));
    let events_key = {
        let mut st = node.state.lock().unwrap();
        st.storage.insert(key, stored.encode());
        st.events_key.clone()
    };
    // Block 105: another hotkey's reveal; 106: this hotkey's, for mechanism 1; 107: this one's.
    {
        let mut st = node.state.lock().unwrap();
        st.storage.insert(format!("{events_key}@105"), reveal_events(&rt, &[(NET, [0x77; 32])]));
        st.storage.insert(format!("{events_key}@106"), reveal_events(&rt, &[(4096 + NET, me)]));
        st.storage.insert(format!("{events_key}@107"), reveal_events(&rt, &[(NET, [0x77; 32]), (NET, me)]));
    }
    let epoch = |block| reads::epoch_status(NET, 360, block).epoch_index;
    assert_eq!(
        chain.weight_commits(NET).await.unwrap(),
        vec![
            StoredCommit { hash: [5; 32], commit_block: 150, reveal_epoch: epoch(150) + 1 },
            StoredCommit { hash: [6; 32], commit_block: 400, reveal_epoch: epoch(400) + 1 },
        ]
    );
    assert_eq!(epoch(359), epoch(150) + 1, "the stored first reveal block is in the epoch read");
    assert_eq!(chain.timelocked_revealed_in(NET, 100, 200).await.unwrap(), Some(107));
    assert_eq!(chain.timelocked_revealed_in(NET, 108, 200).await.unwrap(), None, "nothing since");
    assert_eq!(chain.timelocked_revealed_in(NET, 100, 106).await.unwrap(), None, "nor in the blocks before");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_metagraph_shows_each_mechanism_of_a_subnet() {
    let rt = runtime();
    let mut st = node_state(&rt);
    st.storage.insert(storage_key(&rt, ("SubtensorModule", "NetworksAdded"), (NET,)), true.encode());
    st.storage.insert(storage_key(&rt, ("SubtensorModule", "MechanismCountCurrent"), (NET,)), 2u8.encode());
    // Mechanism 1's view: get_mechagraph, told apart by its block.
    st.calls.insert("SubnetInfoRuntimeApi_get_mechagraph".into(), metagraph_answer(&rt, 42));
    let node = MockNode::start(st).await;
    let url = node.url();
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_neuron-host")).args(args).output().unwrap()
        })
    };
    let args = |extra: &[&str]| {
        let mut a: Vec<String> = ["chain", "metagraph", "--netuid", "1", "--subtensor.chain_endpoint", &url]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let all = run(args(&["--mechanism", "all"])).await.unwrap();
    let text = String::from_utf8_lossy(&all.stdout);
    assert!(all.status.success(), "{text}{}", String::from_utf8_lossy(&all.stderr));
    let heads: Vec<&str> = text.lines().filter(|l| l.starts_with("mechanism ") || l.starts_with("subnet ")).collect();
    assert_eq!(
        heads,
        ["mechanism 0 of 2", "subnet 1 at block 100: 3 neurons", "mechanism 1 of 2", "subnet 1 at block 42: 3 neurons"]
    );
    let one = run(args(&["--mechanism", "1"])).await.unwrap();
    assert!(String::from_utf8_lossy(&one.stdout).starts_with("subnet 1 at block 42"));
    let bad = run(args(&["--mechanism", "first"])).await.unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && err.contains("`first` is not a mechanism"), "{err}");
}
