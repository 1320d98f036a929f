//! Interop with the real Bittensor SDK (the `bittensor` package pinned in
//! tests/python/requirements.txt, in the Python environment `cargo xtask test`
//! prepares), both ways: signed requests, payload bytes, key derivation and
//! wallets on disk. Nothing here is mocked; without the environment these
//! tests fail with a message naming `cargo xtask test`.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{body::Bytes, extract::State, http::HeaderMap, response::IntoResponse, routing::any, Router};
use neuron_e2e::net::{runtime, sdk_tool, start, start_open, ShiftService};
use neuron_host::{
    net::{
        auth::build_payload,
        wire::{self, ForwardQuery},
        AccessRule, Client, ClientConfig, Peer, PeerStanding, StaticDirectory,
    },
    wallet::{keys::generate_phrase, AccountId, Keypair, PasswordSource, Scheme, Wallet},
};
use neuron_plugin_api::{ForwardOutput, OutputRequest, TokenBatch};
use serde_json::{json, Value};

fn tool(args: &[&str], stdin: Value, env: &[(&str, &str)]) -> Value {
    serde_json::from_str(&sdk_tool(args, &stdin.to_string(), env)).expect("JSON from sdk_tool.py")
}

#[test]
fn payload_bytes_equal_the_sdks_for_fixed_inputs() {
    let sender = "5EPCUjPxiHAcNooYipQFWr9NmmXJKpNG5RhcntXwbtUySrgH";
    let receiver = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY";
    // (scheme, method, target, body, nonce, receiver)
    type Case<'a> = (Scheme, &'a str, &'a str, Vec<u8>, u64, Option<&'a str>);
    let cases: Vec<Case> = vec![
        (
            Scheme::Sr25519,
            "POST",
            "/v1/forward",
            br#"{"version":1}"#.to_vec(),
            1_767_225_600_000_000_000,
            Some(receiver),
        ),
        (Scheme::Sr25519, "get", "/v1/info?x=1&y=%20z", Vec::new(), 1, Some(receiver)),
        (Scheme::Ed25519, "Put", "/", vec![0, 255, 10, 13], u64::MAX, None),
        (Scheme::Sr25519, "POST", "/ünïcode/path", "é\n".as_bytes().to_vec(), 0, Some(receiver)),
    ];
    let stdin: Vec<Value> = cases
        .iter()
        .map(|(scheme, method, path, body, nonce, receiver)| {
            json!({"scheme": scheme.name(), "method": method, "path": path, "body_hex": hex::encode(body),
                   "nonce": nonce, "sender": sender, "receiver": receiver})
        })
        .collect();
    let python = tool(&["payload"], Value::Array(stdin), &[]);
    for (i, (scheme, method, path, body, nonce, receiver)) in cases.iter().enumerate() {
        let rust = build_payload(*scheme, method, path, body, *nonce, sender, *receiver);
        assert_eq!(python[i].as_str().unwrap(), hex::encode(&rust), "case {i}");
    }
}

#[test]
fn phrases_derive_the_addresses_the_sdk_derives() {
    let mut phrases = vec![
        "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about".to_string(),
    ];
    for words in [12, 15, 24] {
        phrases.push(generate_phrase(words).unwrap());
    }
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for phrase in &phrases {
        for scheme in [Scheme::Sr25519, Scheme::Ed25519] {
            cases.push(json!({"phrase": phrase, "crypto": scheme.name()}));
            expected.push(Keypair::from_phrase(phrase, None, scheme).unwrap().ss58());
        }
    }
    let python = tool(&["derive"], Value::Array(cases), &[]);
    let python: Vec<String> = python.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    assert_eq!(python, expected);
}

#[test]
fn a_wallet_made_by_the_sdk_loads_in_rust() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    // An encrypted ($NACL) coldkey and a plain hotkey, as the SDK makes them by default,
    // then a wallet with an unencrypted coldkey and an ed25519 hotkey. (Each $NACL
    // key costs seconds of argon2i on each side, so the encrypted hotkey path — the
    // same decryption — is covered by the coldkey.)
    let made = tool(&["new-wallet", root, "sdkw", "hot"], Value::Null, &[("COLD_PW", "cold pw")]);
    let w = Wallet::new(dir.path(), "sdkw", "hot").unwrap();
    let given = |p: &str| PasswordSource::Given(p.to_string().into());
    assert_eq!(w.hotkey_keypair(&PasswordSource::EnvironmentOnly).unwrap().ss58(), made["hotkey"].as_str().unwrap());
    assert_eq!(w.hotkey_account().unwrap().to_ss58(), made["hotkey"].as_str().unwrap());
    assert_eq!(w.coldkey_account().unwrap().to_ss58(), made["coldkey"].as_str().unwrap());
    assert_eq!(w.coldkey_keypair(&given("cold pw")).unwrap().ss58(), made["coldkey"].as_str().unwrap());
    let wrong = w.coldkey_keypair(&given("nope")).unwrap_err().to_string();
    assert!(wrong.contains("cannot be decrypted with that password"), "{wrong}");

    let ed = tool(&["new-wallet", root, "sdked", "hot"], Value::Null, &[("HOT_CRYPTO", "ed25519")]);
    let w = Wallet::new(dir.path(), "sdked", "hot").unwrap();
    let k = w.hotkey_keypair(&PasswordSource::EnvironmentOnly).unwrap();
    assert_eq!((k.scheme(), k.ss58()), (Scheme::Ed25519, ed["hotkey"].as_str().unwrap().to_string()));
    assert_eq!(w.coldkey_keypair(&PasswordSource::EnvironmentOnly).unwrap().ss58(), ed["coldkey"].as_str().unwrap());
}

#[test]
fn a_wallet_made_by_neuron_host_loads_in_the_sdk() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let out = neuron_e2e::host_command()
        .args(["wallet", "new", "--wallet.path", root, "--wallet.name", "nhw", "--wallet.hotkey", "miner"])
        .env("NEURON_WALLET_PASSWORD", "correct horse")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let w = Wallet::new(dir.path(), "nhw", "miner").unwrap();
    let (cold, hot) = (w.coldkey_account().unwrap().to_ss58(), w.hotkey_account().unwrap().to_ss58());
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains(&cold) && printed.contains(&hot), "{printed}");
    assert!(neuron_host::wallet::keyfile::is_encrypted(&w.coldkey_path()).unwrap());

    let sdk = tool(&["load-wallet", root, "nhw", "miner"], Value::Null, &[("COLD_PW", "correct horse")]);
    assert_eq!(sdk["hotkey"], json!(hot));
    assert_eq!(sdk["hotkeypub"], json!(hot));
    assert_eq!(sdk["coldkeypub"], json!(cold));
    assert_eq!(sdk["coldkey"], json!(cold), "the SDK decrypts neuron-host's $NACL coldkey");
}

#[test]
fn requests_signed_by_the_sdk_are_accepted_by_the_rust_server() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let sr = tool(&["new-wallet", root, "v", "sr"], Value::Null, &[]);
    let ed = tool(&["new-wallet", root, "v2", "ed"], Value::Null, &[("HOT_CRYPTO", "ed25519")]);
    let miner = Keypair::generate(Scheme::Sr25519, 12).unwrap();
    let service = Arc::new(ShiftService::new(32));
    // Only the SDK's sr25519 hotkey is registered with a permit; the server requires it.
    let mut dir_peers = StaticDirectory::default();
    let registered = AccountId::from_ss58(sr["hotkey"].as_str().unwrap()).unwrap();
    dir_peers.peers.insert(registered, PeerStanding { uid: 3, validator_permit: true, stake_rao: 1 });
    let rt = runtime();
    let server = rt.block_on(start(&miner, service.clone(), AccessRule::validators_only(), Arc::new(dir_peers)));
    let url = format!("http://{}", server.local_addr());

    let tokens = [1u32, 5, 31, 0];
    let q = ForwardQuery::new(TokenBatch::new(2, 2, &tokens), OutputRequest::top_k(4));
    let body = hex::encode(serde_json::to_vec(&q).unwrap());
    let requests = json!([
        {"method": "POST", "path": "/v1/forward", "body_hex": body},
        {"method": "GET", "path": "/v1/info", "body_hex": ""},
        {"resend": 0},
        {"method": "POST", "path": "/v1/forward", "body_hex": body, "tamper": true},
        {"method": "POST", "path": "/v1/forward", "body_hex": body, "nonce_offset_s": -30},
        {"method": "POST", "path": "/v1/forward", "body_hex": body, "nonce_offset_s": 30},
    ]);
    let results = tool(&["send", &url, &miner.ss58(), root, "v", "sr"], requests.clone(), &[]);
    let status = |i: usize| results[i]["status"].as_u64().unwrap();
    let body_of = |i: usize| hex::decode(results[i]["body"].as_str().unwrap()).unwrap();
    assert_eq!(status(0), 200, "{}", String::from_utf8_lossy(&body_of(0)));
    let out = wire::decode_output(&body_of(0)).unwrap();
    let expected =
        ForwardOutput::from_full_logits(q.token_batch(), 32, &service.logits(&tokens), q.output_request()).unwrap();
    assert_eq!(out, expected);
    assert_eq!(status(1), 200);
    let info: wire::NodeInfo = serde_json::from_slice(&body_of(1)).unwrap();
    assert_eq!(info.hotkey, miner.ss58());
    let reason = |i: usize| String::from_utf8_lossy(&body_of(i)).to_string();
    assert_eq!((status(2), status(3), status(4), status(5)), (401, 401, 401, 401));
    assert!(reason(2).contains("replayed"), "{}", reason(2));
    assert!(reason(3).contains("bad signature"), "{}", reason(3));
    assert!(reason(4).contains("older than"), "{}", reason(4));
    assert!(reason(5).contains("in the future"), "{}", reason(5));

    // The SDK's ed25519 hotkey signs valid requests but is not registered: 403.
    let results = tool(&["send", &url, &miner.ss58(), root, "v2", "ed"], json!([requests[0]]), &[]);
    assert_eq!(results[0]["status"], json!(403), "{results}");
    assert!(ed["hotkey"].is_string());

    // And an open server accepts it.
    let open = rt.block_on(start_open(&miner, service));
    let url = format!("http://{}", open.local_addr());
    let results = tool(&["send", &url, &miner.ss58(), root, "v2", "ed"], json!([requests[0]]), &[]);
    assert_eq!(results[0]["status"], json!(200), "{results}");
}

/// What a capture server saw: method, target, headers, body.
type Captured = Arc<Mutex<Vec<(String, String, HeaderMap, Bytes)>>>;

#[test]
fn requests_signed_by_the_rust_client_pass_the_sdks_verify() {
    let rt = runtime();
    let captured: Captured = Arc::default();
    // A plain HTTP server that records what the client sends and answers a
    // well-formed top-k output, so the client completes its calls.
    let answer = ForwardOutput {
        batch: 1,
        positions: 2,
        vocab_size: 8,
        k: 1,
        ids: vec![1, 2].into(),
        logprobs: vec![-0.5, -0.25].into(),
        ..Default::default()
    };
    let answer = wire::encode_output(&answer).unwrap();
    let app = Router::new()
        .fallback(any(
            |State((seen, answer)): State<(Captured, Vec<u8>)>,
             method: axum::http::Method,
             uri: axum::http::Uri,
             headers: HeaderMap,
             body: Bytes| async move {
                let target = uri.path_and_query().map(|p| p.to_string()).unwrap_or_default();
                let is_info = target.starts_with("/v1/info");
                seen.lock().unwrap().push((method.to_string(), target, headers, body));
                if is_info {
                    axum::Json(json!({"version":1,"protocol":"btauth/1","hotkey":"x","software":"capture"}))
                        .into_response()
                } else {
                    answer.into_response()
                }
            },
        ))
        .with_state((captured.clone(), answer));
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });

    let receiver = Keypair::generate(Scheme::Sr25519, 12).unwrap();
    let peer = Peer { uid: 0, addr, hotkey: receiver.account() };
    let mut senders = Vec::new();
    for scheme in [Scheme::Sr25519, Scheme::Ed25519] {
        let me = Arc::new(Keypair::generate(scheme, 12).unwrap());
        senders.push(me.ss58());
        let client = Client::new(me, ClientConfig::default()).unwrap();
        let q = ForwardQuery::new(TokenBatch::new(1, 2, &[3, 4]), OutputRequest::top_k(1));
        rt.block_on(async {
            assert!(client.forward(&peer, &q).await.result.is_ok());
            assert!(client.info(&peer).await.result.is_ok());
        });
    }
    let seen = captured.lock().unwrap().clone();
    assert_eq!(seen.len(), 4);
    let requests: Vec<Value> = seen
        .iter()
        .map(|(method, target, headers, body)| {
            let headers: serde_json::Map<String, Value> = headers
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), Value::String(v.to_str().unwrap().to_string())))
                .collect();
            json!({"method": method, "path": target, "body_hex": hex::encode(body), "headers": headers})
        })
        .collect();
    let verdicts = tool(&["verify", &receiver.ss58()], Value::Array(requests.clone()), &[]);
    let callers: Vec<&str> = verdicts
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            assert_eq!(v["ok"], json!(true), "{v}");
            v["caller"].as_str().unwrap()
        })
        .collect();
    assert_eq!(callers, vec![senders[0].as_str(), senders[0].as_str(), senders[1].as_str(), senders[1].as_str()]);

    // The same requests fail the SDK's verify for another receiver, or with a changed body:
    // the check above can fail.
    let other = Keypair::generate(Scheme::Sr25519, 12).unwrap();
    let verdicts = tool(&["verify", &other.ss58()], json!([requests[0]]), &[]);
    assert_eq!(verdicts[0]["error"], json!("WrongReceiver"));
    let mut tampered = requests[0].clone();
    tampered["body_hex"] = json!(format!("{}20", tampered["body_hex"].as_str().unwrap()));
    let verdicts = tool(&["verify", &receiver.ss58()], json!([tampered]), &[]);
    assert_eq!(verdicts[0]["error"], json!("BadSignature"));
}
