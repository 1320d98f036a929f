//! Signed requests per second and latency of the neuron server, against the
//! same route unsigned, with load from a second process on loopback.
//!
//! ```sh
//! cargo bench -p neuron-e2e --bench net_throughput
//! ```
//!
//! The benchmark binary starts itself again as the server process
//! (`NET_BENCH_SERVER=<vocab>`): one tokio worker, the `ShiftService`, the
//! signed server (btauth/1) and the unsigned baseline router (same body limit,
//! parsing, service and encoding, no verification) on two 127.0.0.1 ports.
//! The parent is the validator: one tokio worker, a [`Client`] (signing every
//! request) or plain reqwest (unsigned), `CONCURRENCY` requests in flight over
//! kept-alive connections. Rounds alternate signed and unsigned so drift hits
//! both; each round stops after `REQUESTS` requests or `ROUND_LIMIT`, whichever
//! comes first. Prints medians over rounds of requests/s, p50 and p99.
//!
//! Scenarios: "small" asks top-8 for 1 x 32 tokens of a 256-token vocabulary
//! (about 250 B in, 600 B out); "logits" asks full logits for 1 x 64 tokens of a
//! 4096-token vocabulary (1 MiB out).

use std::{
    io::{BufRead, BufReader, Read},
    net::SocketAddr,
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use neuron_e2e::net::ShiftService;
use neuron_host::{
    net::{
        serve, server::unsigned_baseline_router, wire::ForwardQuery, Client, ClientConfig, OpenDirectory, Peer,
        ServerConfig,
    },
    wallet::{AccountId, Keypair, Scheme},
};
use neuron_plugin_api::{OutputRequest, TokenBatch};

const CONCURRENCY: usize = 8;
const ROUNDS: usize = 5;
const ROUND_LIMIT: Duration = Duration::from_secs(6);

struct Scenario {
    name: &'static str,
    vocab: u32,
    requests: usize,
    query: ForwardQuery,
}

fn scenarios() -> Vec<Scenario> {
    let small: Vec<u32> = (0..32).map(|i| (i * 7) % 256).collect();
    let long: Vec<u32> = (0..64).map(|i| (i * 13) % 4096).collect();
    vec![
        Scenario {
            name: "small (top-8, 1x32 tokens)",
            vocab: 256,
            requests: 4000,
            query: ForwardQuery::new(TokenBatch::new(1, 32, &small), OutputRequest::top_k(8)),
        },
        Scenario {
            name: "logits (1x64 tokens x 4096 vocab, 1 MiB answer)",
            vocab: 4096,
            requests: 400,
            query: ForwardQuery::new(TokenBatch::new(1, 64, &long), OutputRequest::logits()),
        },
    ]
}

fn main() {
    if let Ok(vocab) = std::env::var("NET_BENCH_SERVER") {
        return server_process(vocab.parse().expect("a vocabulary size"));
    }
    if std::env::args().any(|a| a == "--list") {
        return; // cargo test --benches asks; there is nothing to list.
    }
    println!("neuron server throughput, {CONCURRENCY} in flight, medians of {ROUNDS} rounds per mode");
    println!("| scenario | mode | requests/s | p50 | p99 | ok |");
    println!("|---|---|---|---|---|---|");
    for s in scenarios() {
        run_scenario(&s);
    }
    crypto_costs();
}

/// What btauth/1 itself costs per request, in this process: the client's
/// signing (payload, sha256 of the body, sr25519 sign) and the server's
/// verification (parse, SS58 decode, payload, sr25519 verify, replay cache).
fn crypto_costs() {
    use neuron_host::net::{auth, Freshness, Verifier};
    let (sender, receiver) =
        (Keypair::generate(Scheme::Sr25519, 12).unwrap(), Keypair::generate(Scheme::Sr25519, 12).unwrap());
    let body = serde_json::to_vec(&scenarios()[0].query).unwrap();
    let n = 2000u64;
    let now = auth::now_ns();
    let started = Instant::now();
    let signed: Vec<axum::http::HeaderMap> = (0..n)
        .map(|i| {
            auth::sign(&sender, "POST", "/v1/forward", &body, &receiver.account(), Some(now + i)).into_iter().collect()
        })
        .collect();
    let sign = started.elapsed() / n as u32;
    let verifier = Verifier::new(receiver.account(), Freshness::default());
    let started = Instant::now();
    for h in &signed {
        verifier.verify(h, "POST", "/v1/forward", &body, now).unwrap();
    }
    let verify = started.elapsed() / n as u32;
    println!(
        "\nbtauth/1 per request, one core: sign {:.0} us, verify {:.0} us",
        sign.as_secs_f64() * 1e6,
        verify.as_secs_f64() * 1e6
    );
}

/// The server side, in its own process: prints its addresses and hotkey, then
/// serves until its standard input closes (the parent exited).
fn server_process(vocab: u32) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    rt.block_on(async move {
        let identity = Keypair::generate(Scheme::Sr25519, 12).unwrap();
        let config = ServerConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            max_concurrent_forwards: CONCURRENCY,
            ..Default::default()
        };
        let service = Arc::new(ShiftService::new(vocab));
        let signed = serve(config.clone(), &identity, service.clone(), Arc::new(OpenDirectory)).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let unsigned = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, unsigned_baseline_router(service, config)).await });
        println!("READY {} {} {}", signed.local_addr(), unsigned, identity.ss58());
        tokio::task::spawn_blocking(|| {
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
        })
        .await
        .unwrap();
        signed.shutdown().await;
    });
}

struct Round {
    rps: f64,
    p50: Duration,
    p99: Duration,
    ok: usize,
    total: usize,
}

fn run_scenario(s: &Scenario) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env("NET_BENCH_SERVER", s.vocab.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the server process starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let parts: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(parts.first(), Some(&"READY"), "server said {line:?}");
    let signed_addr: SocketAddr = parts[1].parse().unwrap();
    let unsigned_addr: SocketAddr = parts[2].parse().unwrap();
    let hotkey = AccountId::from_ss58(parts[3]).unwrap();
    assert!(signed_addr.ip().is_loopback() && unsigned_addr.ip().is_loopback());

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (mut signed, mut unsigned) = (Vec::new(), Vec::new());
    rt.block_on(async {
        let client = Client::new(
            Arc::new(Keypair::generate(Scheme::Sr25519, 12).unwrap()),
            ClientConfig { max_in_flight: CONCURRENCY, idle_per_peer: CONCURRENCY, ..Default::default() },
        )
        .unwrap();
        let plain = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(CONCURRENCY).build().unwrap();
        let peer = Peer { uid: 0, addr: signed_addr, hotkey };
        let body = serde_json::to_vec(&s.query).unwrap();
        let url = format!("http://{unsigned_addr}/v1/forward");
        // Warm both paths (connections, allocator) before timing.
        load(s.requests / 10, || signed_call(&client, &peer, &s.query)).await;
        load(s.requests / 10, || unsigned_call(&plain, &url, &body)).await;
        for _ in 0..ROUNDS {
            signed.push(load(s.requests, || signed_call(&client, &peer, &s.query)).await);
            unsigned.push(load(s.requests, || unsigned_call(&plain, &url, &body)).await);
        }
    });
    drop(child.stdin.take());
    let _ = child.wait();

    let report = |mode: &str, rounds: &mut Vec<Round>| {
        let med = |v: &mut Vec<f64>| {
            v.sort_by(|a, b| a.total_cmp(b));
            v[v.len() / 2]
        };
        let rps = med(&mut rounds.iter().map(|r| r.rps).collect());
        let p50 = med(&mut rounds.iter().map(|r| r.p50.as_secs_f64()).collect());
        let p99 = med(&mut rounds.iter().map(|r| r.p99.as_secs_f64()).collect());
        let ok: usize = rounds.iter().map(|r| r.ok).sum();
        let total: usize = rounds.iter().map(|r| r.total).sum();
        println!("| {} | {mode} | {rps:.0} | {:.2} ms | {:.2} ms | {ok}/{total} |", s.name, p50 * 1e3, p99 * 1e3);
        rps
    };
    let signed_rps = report("signed (btauth/1)", &mut signed);
    let unsigned_rps = report("unsigned baseline", &mut unsigned);
    println!("| {} | signed / unsigned | {:.2}x | | | |", s.name, signed_rps / unsigned_rps);
}

async fn signed_call(client: &Client, peer: &Peer, query: &ForwardQuery) -> bool {
    client.forward(peer, query).await.result.is_ok()
}

async fn unsigned_call(http: &reqwest::Client, url: &str, body: &[u8]) -> bool {
    let Ok(resp) = http.post(url).body(body.to_vec()).send().await else { return false };
    let ok = resp.status().is_success();
    // Read (and decode, as the client does) the whole answer.
    match resp.bytes().await {
        Ok(bytes) => ok && neuron_host::net::wire::decode_output(&bytes).is_ok(),
        Err(_) => false,
    }
}

/// Runs `count` calls with `CONCURRENCY` in flight (or until `ROUND_LIMIT`).
async fn load<F, Fut>(count: usize, call: F) -> Round
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    use std::{cell::RefCell, rc::Rc};
    let latencies = Rc::new(RefCell::new(Vec::with_capacity(count)));
    let ok = Rc::new(RefCell::new(0usize));
    let next = Rc::new(RefCell::new(0usize));
    let started = Instant::now();
    let worker = || {
        let (latencies, ok, next, call) = (latencies.clone(), ok.clone(), next.clone(), &call);
        async move {
            loop {
                {
                    let mut n = next.borrow_mut();
                    if *n >= count || started.elapsed() > ROUND_LIMIT {
                        break;
                    }
                    *n += 1;
                }
                let t = Instant::now();
                let good = call().await;
                latencies.borrow_mut().push(t.elapsed());
                if good {
                    *ok.borrow_mut() += 1;
                }
            }
        }
    };
    let workers: Vec<_> = (0..CONCURRENCY).map(|_| worker()).collect();
    futures_join_all(workers).await;
    let elapsed = started.elapsed();
    let mut l = latencies.borrow().clone();
    l.sort();
    let pct = |p: f64| l.get(((l.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or_default();
    let total = l.len();
    let done = *ok.borrow();
    Round { rps: done as f64 / elapsed.as_secs_f64(), p50: pct(0.5), p99: pct(0.99), ok: done, total }
}

/// Polls all futures on this task until each is done (no extra dependency).
async fn futures_join_all<F: std::future::Future<Output = ()>>(futures: Vec<F>) {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).map(Some).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for slot in futures.iter_mut() {
            if let Some(f) = slot {
                if f.as_mut().poll(cx).is_ready() {
                    *slot = None;
                } else {
                    pending = true;
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await
}
