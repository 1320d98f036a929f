//! The neuron server and client over real HTTP on loopback: answers that
//! arrive intact, and every way a request can be refused — with the right
//! status, a one-line reason, and the server still serving afterwards.

use std::{sync::Arc, time::Duration};

use neuron_e2e::net::{runtime, start, start_open, Behaviour, ShiftService};
use neuron_host::{
    net::{
        auth::{self, now_ns},
        wire::{self, ErrorBody, ForwardQuery},
        AccessRule, CallError, Client, ClientConfig, OpenDirectory, Peer, PeerStanding, RunningServer, StaticDirectory,
    },
    wallet::{Keypair, Scheme},
};
use neuron_plugin_api::{OutputRequest, ResponseStatus, TokenBatch};
use reqwest::StatusCode;

fn keypair() -> Keypair {
    Keypair::generate(Scheme::Sr25519, 12).unwrap()
}

fn peer(server: &RunningServer, hotkey: &Keypair) -> Peer {
    Peer { uid: 7, addr: server.local_addr(), hotkey: hotkey.account() }
}

fn query(k: u32) -> ForwardQuery {
    ForwardQuery::new(TokenBatch::new(2, 3, &[1, 2, 3, 4, 5, 15]), OutputRequest::top_k(k))
}

fn body_of(q: &ForwardQuery) -> Vec<u8> {
    serde_json::to_vec(q).unwrap()
}

/// A raw request to `target` with the given headers and body.
async fn send(
    server: &RunningServer,
    method: reqwest::Method,
    target: &str,
    headers: Vec<(reqwest::header::HeaderName, reqwest::header::HeaderValue)>,
    body: Vec<u8>,
) -> (StatusCode, Vec<u8>) {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut r = http.request(method, format!("http://{}{target}", server.local_addr())).body(body);
    for (k, v) in headers {
        r = r.header(k, v);
    }
    let resp = r.send().await.unwrap();
    (resp.status(), resp.bytes().await.unwrap().to_vec())
}

/// The reason of a refusal: `{"error": "..."}`, one line.
fn reason(body: &[u8]) -> String {
    let e: ErrorBody = serde_json::from_slice(body).unwrap_or_else(|_| panic!("an error body: {body:?}"));
    assert!(!e.error.contains('\n'), "one line: {}", e.error);
    e.error
}

/// Signs `body` for `target` as `sender` for `receiver`, with `nonce` (None = now).
fn signed(
    sender: &Keypair,
    receiver: &Keypair,
    target: &str,
    body: &[u8],
    nonce: Option<u64>,
) -> Vec<(reqwest::header::HeaderName, reqwest::header::HeaderValue)> {
    auth::sign(sender, "POST", target, body, &receiver.account(), nonce)
}

#[test]
fn a_signed_query_gets_the_models_answer_and_a_miner_response() {
    let rt = runtime();
    rt.block_on(async {
        let (miner, validator) = (keypair(), Arc::new(keypair()));
        let service = Arc::new(ShiftService::new(16));
        let server = start_open(&miner, service.clone()).await;
        let client = Client::new(validator.clone(), ClientConfig::default()).unwrap();
        let p = peer(&server, &miner);

        let q = query(3);
        let answer = client.forward(&p, &q).await;
        let out = answer.result.clone().unwrap();
        assert_eq!((out.batch, out.positions, out.k, out.vocab_size), (2, 3, 3, 16));
        let firsts: Vec<u32> = out.ids.chunks(3).map(|c| c[0]).collect();
        assert_eq!(firsts, vec![2, 3, 4, 5, 6, 0], "token + 1 mod 16 ranks first");
        let response = answer.to_miner_response(p.uid);
        assert_eq!((response.uid, response.status, response.k), (7, ResponseStatus::OK, 3));
        assert_eq!(response.ids.len(), 18);
        assert!(response.latency_s > 0.0);

        let logits = ForwardQuery::new(TokenBatch::new(1, 2, &[0, 9]), OutputRequest::logits().last_only());
        let out = client.forward(&p, &logits).await.result.unwrap();
        assert_eq!((out.positions, out.logits.len()), (1, 16));
        assert_eq!(out.logits.as_slice(), &service.logits(&[9])[..]);

        let info = client.info(&p).await.result.unwrap();
        assert_eq!(info.hotkey, miner.ss58());
        assert_eq!(info.model.unwrap().architecture, "shift");

        let http = reqwest::Client::new();
        let health: wire::NodeInfo = serde_json::from_slice(
            &http.get(format!("http://{}/v1/health", server.local_addr())).send().await.unwrap().bytes().await.unwrap(),
        )
        .unwrap();
        assert_eq!((health.protocol.as_str(), health.hotkey.as_str()), ("btauth/1", miner.ss58().as_str()));
        assert!(health.model.is_none(), "the unsigned route tells nothing about the model");
    });
}

#[test]
fn missing_and_malformed_headers_are_401() {
    let rt = runtime();
    rt.block_on(async {
        let (miner, validator) = (keypair(), keypair());
        let server = start_open(&miner, Arc::new(ShiftService::new(16))).await;
        let body = body_of(&query(2));
        let good = signed(&validator, &miner, "/v1/forward", &body, None);

        let (status, b) = send(&server, reqwest::Method::POST, "/v1/forward", vec![], body.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(reason(&b).contains("x-bittensor-version"), "{}", reason(&b));

        for name in [
            auth::HEADER_VERSION,
            auth::HEADER_HOTKEY,
            auth::HEADER_NONCE,
            auth::HEADER_SIGNATURE,
            auth::HEADER_RECEIVER,
        ] {
            let without: Vec<_> = good.iter().filter(|(k, _)| k.as_str() != name).cloned().collect();
            let (status, b) = send(&server, reqwest::Method::POST, "/v1/forward", without, body.clone()).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "without {name}");
            assert!(reason(&b).contains(name) || reason(&b).contains("receiver"), "without {name}: {}", reason(&b));
        }

        // `good` with `name` set to `value` (added when absent).
        let replace = |name: &'static str, value: &str| -> Vec<_> {
            let mut h: Vec<_> = good.iter().filter(|(k, _)| k.as_str() != name).cloned().collect();
            h.push((
                reqwest::header::HeaderName::from_static(name),
                reqwest::header::HeaderValue::from_str(value).unwrap(),
            ));
            h
        };
        let cases = [
            (auth::HEADER_VERSION, "2", "unsupported"),
            (auth::HEADER_NONCE, "12ab", "not a decimal integer"),
            (auth::HEADER_NONCE, "-5", "not a decimal integer"),
            (auth::HEADER_NONCE, "123456789012345678901234567890", "not a decimal integer"),
            (auth::HEADER_SIGNATURE, "0xzz", "not hex"),
            (auth::HEADER_SIGNATURE, "0xabcd", "signature encoding"),
            (auth::HEADER_HOTKEY, "5NotAnAddress", "invalid hotkey address"),
            (auth::HEADER_CRYPTO, "ecdsa", "unsupported x-bittensor-crypto"),
        ];
        for (name, value, expected) in cases {
            let (status, b) =
                send(&server, reqwest::Method::POST, "/v1/forward", replace(name, value), body.clone()).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}: {value}");
            let r = reason(&b);
            assert!(r.contains(expected), "{name}: {value}: {r}");
            assert!(!r.contains(value) || value.len() < 4, "the reason does not echo the header: {r}");
        }

        let mut doubled = good.clone();
        doubled.push(good.iter().find(|(k, _)| k.as_str() == auth::HEADER_NONCE).unwrap().clone());
        let (status, b) = send(&server, reqwest::Method::POST, "/v1/forward", doubled, body.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(reason(&b).contains("more than once"), "{}", reason(&b));

        // The good headers still work: nothing above burned the nonce.
        let (status, _) = send(&server, reqwest::Method::POST, "/v1/forward", good, body).await;
        assert_eq!(status, StatusCode::OK);
    });
}

#[test]
fn signatures_receivers_freshness_and_replays_are_enforced() {
    let rt = runtime();
    rt.block_on(async {
        let (miner, validator, stranger) = (keypair(), keypair(), keypair());
        let server = start_open(&miner, Arc::new(ShiftService::new(16))).await;
        let body = body_of(&query(2));
        let post = |h, b| send(&server, reqwest::Method::POST, "/v1/forward", h, b);
        let expect = |(status, b): (StatusCode, Vec<u8>), want: StatusCode, text: &str| {
            assert_eq!(status, want, "{text}: {}", String::from_utf8_lossy(&b));
            if want != StatusCode::OK {
                assert!(reason(&b).contains(text), "{text}: {}", reason(&b));
            }
        };

        // Signed by someone else than the hotkey it claims.
        let mut forged = signed(&stranger, &miner, "/v1/forward", &body, None);
        for (k, v) in forged.iter_mut() {
            if k.as_str() == auth::HEADER_HOTKEY {
                *v = reqwest::header::HeaderValue::from_str(&validator.ss58()).unwrap();
            }
        }
        expect(post(forged, body.clone()).await, StatusCode::UNAUTHORIZED, "bad signature");

        // Signed for another neuron.
        expect(
            post(signed(&validator, &stranger, "/v1/forward", &body, None), body.clone()).await,
            StatusCode::UNAUTHORIZED,
            "different receiving hotkey",
        );

        // Too old, and from too far in the future (the window is 10 s back, 2 s ahead).
        let old = now_ns() - 11_000_000_000;
        expect(
            post(signed(&validator, &miner, "/v1/forward", &body, Some(old)), body.clone()).await,
            StatusCode::UNAUTHORIZED,
            "older than",
        );
        let ahead = now_ns() + 5_000_000_000;
        expect(
            post(signed(&validator, &miner, "/v1/forward", &body, Some(ahead)), body.clone()).await,
            StatusCode::UNAUTHORIZED,
            "in the future",
        );

        // The body changed after signing, or the target did.
        let headers = signed(&validator, &miner, "/v1/forward", &body, None);
        let mut changed = body.clone();
        changed.insert(1, b' ');
        expect(post(headers.clone(), changed).await, StatusCode::UNAUTHORIZED, "bad signature");
        let other_target = signed(&validator, &miner, "/v1/forward?x=1", &body, None);
        expect(post(other_target, body.clone()).await, StatusCode::UNAUTHORIZED, "bad signature");

        // Accepted once, then a replay.
        expect(post(headers.clone(), body.clone()).await, StatusCode::OK, "");
        expect(post(headers, body.clone()).await, StatusCode::UNAUTHORIZED, "replayed");

        // A signed body that is not a valid query is 400, not 401.
        let junk = br#"{"version":1,"batch":1}"#.to_vec();
        expect(
            post(signed(&validator, &miner, "/v1/forward", &junk, None), junk).await,
            StatusCode::BAD_REQUEST,
            "not a forward query",
        );
        let mut v2 = query(2);
        v2.version = 2;
        let v2 = body_of(&v2);
        expect(
            post(signed(&validator, &miner, "/v1/forward", &v2, None), v2).await,
            StatusCode::BAD_REQUEST,
            "unsupported payload version",
        );
        let outside = body_of(&ForwardQuery::new(TokenBatch::new(1, 1, &[99]), OutputRequest::top_k(1)));
        expect(
            post(signed(&validator, &miner, "/v1/forward", &outside, None), outside).await,
            StatusCode::BAD_REQUEST,
            "outside the vocabulary",
        );

        // An ed25519 caller works too (the SDK signs with either).
        let ed = Keypair::generate(Scheme::Ed25519, 12).unwrap();
        expect(post(signed(&ed, &miner, "/v1/forward", &body, None), body.clone()).await, StatusCode::OK, "");
    });
}

/// POSTs to /v1/forward over a plain TCP connection and returns what the
/// server answered (status line, headers, body) up to its close. Chunked:
/// `body` is written on while the server reads. With Content-Length: only the
/// head is sent, so an answer proves the server refused before reading.
fn post_raw(
    addr: std::net::SocketAddr,
    headers: &[(reqwest::header::HeaderName, reqwest::header::HeaderValue)],
    chunked: bool,
    body: &[u8],
) -> String {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let framing =
        if chunked { "Transfer-Encoding: chunked".to_string() } else { format!("Content-Length: {}", body.len()) };
    let mut head = format!("POST /v1/forward HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{framing}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {}\r\n", v.to_str().unwrap()));
    }
    head.push_str("\r\n");
    tcp.write_all(head.as_bytes()).unwrap();
    if chunked {
        for chunk in body.chunks(64 * 1024) {
            // The server may stop reading and answer early; later writes can fail.
            let sent = tcp
                .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .and_then(|_| tcp.write_all(chunk))
                .and_then(|_| tcp.write_all(b"\r\n"));
            if sent.is_err() {
                break;
            }
        }
        let _ = tcp.write_all(b"0\r\n\r\n");
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // Read until the server closes (or resets once it has answered).
    while let Ok(n) = tcp.read(&mut buf) {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn oversized_bodies_are_413_before_and_while_reading() {
    let rt = runtime();
    rt.block_on(async {
        let (miner, validator) = (keypair(), keypair());
        let server = start_open(&miner, Arc::new(ShiftService::new(16))).await;
        let limit = neuron_host::net::ServerConfig::default().max_body_bytes;
        let big = vec![b' '; limit + 1];
        let headers = signed(&validator, &miner, "/v1/forward", &big, None);
        let addr = server.local_addr();

        // With Content-Length: refused before reading (the body is never sent;
        // an HTTP client writing it races the server's close and may see a
        // broken pipe instead of the answer).
        let (h, b) = (headers.clone(), big.clone());
        let answer = tokio::task::spawn_blocking(move || post_raw(addr, &h, false, &b)).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains("larger than"), "{answer}");

        // Without Content-Length (chunked): refused while reading.
        let answer = tokio::task::spawn_blocking(move || post_raw(addr, &headers, true, &big)).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

        // Still serving.
        let client = Client::new(Arc::new(validator), ClientConfig::default()).unwrap();
        assert!(client.forward(&peer(&server, &miner), &query(1)).await.result.is_ok());
    });
}

#[test]
fn callers_must_be_registered_permitted_and_staked_as_the_rule_says() {
    let rt = runtime();
    rt.block_on(async {
        let miner = keypair();
        let (permitted, unpermitted, unregistered) = (keypair(), keypair(), keypair());
        let mut dir = StaticDirectory::default();
        dir.peers.insert(permitted.account(), PeerStanding { uid: 1, validator_permit: true, stake_rao: 2_000 });
        dir.peers.insert(unpermitted.account(), PeerStanding { uid: 2, validator_permit: false, stake_rao: 9_000 });
        let rule = AccessRule { require_registered: true, require_validator_permit: true, min_stake_rao: 1_000 };
        let server = start(&miner, Arc::new(ShiftService::new(16)), rule, Arc::new(dir)).await;
        let p = peer(&server, &miner);
        let call = |k: Keypair| {
            let client = Client::new(Arc::new(k), ClientConfig::default()).unwrap();
            let p = p.clone();
            async move { client.forward(&p, &query(1)).await }
        };
        assert!(call(permitted).await.result.is_ok());
        for (k, why) in [(unregistered, "not registered"), (unpermitted, "no validator permit")] {
            let answer = call(k).await;
            match &answer.result {
                Err(CallError::Refused { status: 403, reason }) => assert!(reason.contains(why), "{reason}"),
                other => panic!("expected 403 ({why}), got {other:?}"),
            }
            assert_eq!(answer.to_miner_response(1).status, ResponseStatus::ERROR);
        }
        let mut dir = StaticDirectory::default();
        let poor = keypair();
        dir.peers.insert(poor.account(), PeerStanding { uid: 3, validator_permit: true, stake_rao: 10 });
        let server = start(&miner, Arc::new(ShiftService::new(16)), rule, Arc::new(dir)).await;
        let client = Client::new(Arc::new(poor), ClientConfig::default()).unwrap();
        match client.forward(&peer(&server, &miner), &query(1)).await.result {
            Err(CallError::Refused { status: 403, reason }) => {
                assert!(reason.contains("stake is below") && !reason.contains("10"), "{reason}")
            }
            other => panic!("expected 403 for low stake, got {other:?}"),
        }
    });
}

#[test]
fn the_client_classifies_timeouts_bad_answers_failures_and_dead_peers() {
    let rt = runtime();
    rt.block_on(async {
        let miner = keypair();
        let validator = Arc::new(keypair());
        let config = ClientConfig { timeout: Duration::from_millis(300), ..Default::default() };
        let client = Client::new(validator, config).unwrap();

        let mut slow = ShiftService::new(16);
        slow.delay = Duration::from_secs(2);
        let server = start_open(&miner, Arc::new(slow)).await;
        let answer = client.forward(&peer(&server, &miner), &query(1)).await;
        assert!(matches!(answer.result, Err(CallError::Timeout(_))), "{:?}", answer.result);
        assert_eq!(answer.to_miner_response(0).status, ResponseStatus::TIMEOUT);
        assert!(answer.latency < Duration::from_secs(1));

        let mut lying = ShiftService::new(16);
        lying.behaviour = Behaviour::OutOfVocabulary;
        let server = start_open(&miner, Arc::new(lying)).await;
        let answer = client.forward(&peer(&server, &miner), &query(2)).await;
        assert!(matches!(&answer.result, Err(CallError::Malformed(m)) if m.contains("outside the vocabulary")));
        assert_eq!(answer.to_miner_response(0).status, ResponseStatus::MALFORMED);

        let mut failing = ShiftService::new(16);
        failing.behaviour = Behaviour::Fail;
        let server = start_open(&miner, Arc::new(failing)).await;
        match client.forward(&peer(&server, &miner), &query(2)).await.result {
            Err(CallError::Refused { status: 500, reason }) => {
                assert!(!reason.contains("secret internal detail"), "{reason}")
            }
            other => panic!("expected 500, got {other:?}"),
        }

        // Nobody listens there any more.
        let addr = server.local_addr();
        server.shutdown().await;
        let dead = Peer { uid: 1, addr, hotkey: miner.account() };
        let answer = client.forward(&dead, &query(1)).await;
        assert!(matches!(answer.result, Err(CallError::Transport(_))), "{:?}", answer.result);
        assert_eq!(answer.to_miner_response(1).status, ResponseStatus::ERROR);
    });
}

#[test]
fn the_client_caps_requests_in_flight() {
    let rt = runtime();
    rt.block_on(async {
        let miner = keypair();
        let mut svc = ShiftService::new(16);
        svc.delay = Duration::from_millis(100);
        let svc = Arc::new(svc);
        let config =
            neuron_host::net::ServerConfig { max_concurrent_forwards: 16, ..neuron_e2e::net::loopback_config() };
        let server = neuron_host::net::serve(config, &miner, svc.clone(), Arc::new(OpenDirectory)).await.unwrap();
        let client = Client::new(Arc::new(keypair()), ClientConfig { max_in_flight: 2, ..Default::default() }).unwrap();
        let peers = vec![peer(&server, &miner); 8];
        let answers = client.forward_all(&peers, &query(1)).await;
        assert!(answers.iter().all(|a| a.result.is_ok()));
        let max = svc.max_running.load(std::sync::atomic::Ordering::SeqCst);
        assert!((1..=2).contains(&max), "at most 2 in flight, saw {max}");
    });
}

/// Counts the connections a server accepts.
struct CountingListener {
    inner: tokio::net::TcpListener,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
}

impl axum::serve::Listener for CountingListener {
    type Io = tokio::net::TcpStream;
    type Addr = std::net::SocketAddr;
    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let accepted = self.inner.accept().await.expect("accept on loopback");
        self.accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        accepted
    }
    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

#[test]
fn the_client_reuses_its_connection_to_a_peer() {
    let rt = runtime();
    rt.block_on(async {
        // The forward route without auth (the benchmark's baseline) behind a
        // listener that counts connections; the client signs anyway.
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let inner = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = inner.local_addr().unwrap();
        let app = neuron_host::net::server::unsigned_baseline_router(
            Arc::new(ShiftService::new(16)),
            neuron_e2e::net::loopback_config(),
        );
        let server = axum::serve(CountingListener { inner, accepted: accepted.clone() }, app);
        tokio::spawn(async move { server.await });
        let client = Client::new(Arc::new(keypair()), ClientConfig::default()).unwrap();
        let p = Peer { uid: 0, addr, hotkey: keypair().account() };
        for _ in 0..20 {
            assert!(client.forward(&p, &query(1)).await.result.is_ok());
        }
        // Without reuse this is 20. With it, 1, or now and then 2: hyper's pool takes a connection
        // back on its own task after the body is read, and a call issued in that instant opens
        // another (seen once in CI).
        let n = accepted.load(std::sync::atomic::Ordering::SeqCst);
        assert!((1..=2).contains(&n), "twenty calls took {n} connections");
    });
}
