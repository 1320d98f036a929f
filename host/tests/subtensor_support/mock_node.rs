//! A stand-in subtensor node on 127.0.0.1: JSON-RPC over WebSocket, the
//! legacy methods (`chain_*`, `state_*`, `author_*`), answering from the real
//! finney metadata and from values each test constructs. It can also
//! advertise `chainHead_v1` and answer it badly ([`ChainHead`]), as a node
//! with a broken implementation of the new methods does.
//!
//! It exists because no subtensor node can run where the tests run; the live
//! test (subtensor_live.rs) is the real thing. It can drop every connection
//! on demand, to test reconnection.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use serde_json::{json, Value};
use soketto::handshake::{server::Response, Server};
use tokio::{
    net::TcpListener,
    sync::{broadcast, Mutex as AsyncMutex},
};
use tokio_util::compat::TokioAsyncReadCompatExt;

use super::hex;

/// How the node answers an extrinsic submission.
#[derive(Clone, Debug)]
pub enum SubmitReply {
    /// Included in block `n` with these System.Events bytes.
    InBlock { block: u64, events: Vec<u8> },
    /// Refused by the pool with this JSON-RPC error data.
    PoolError { data: String },
}

/// Whether the node advertises the new `chainHead_v1` methods, and how it gets them wrong.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ChainHead {
    /// Not offered (legacy methods only).
    #[default]
    Absent,
    /// Offered, but `chainHead_v1_follow` sends a malformed `initialized` event; every other
    /// `chainHead_v1_*` (and `transactionWatch_v1_*`) call is "Method not found".
    Malformed,
}

/// What the node knows; tests fill it in.
#[derive(Default)]
pub struct NodeState {
    pub chainhead: ChainHead,
    pub finalized: u64,
    pub metadata: Vec<u8>,
    pub spec_version: u32,
    /// state_call results by method name (hex of the SCALE answer).
    pub calls: HashMap<String, Vec<u8>>,
    /// Storage by key (hex without 0x) at any block.
    pub storage: HashMap<String, Vec<u8>>,
    pub submit: Option<SubmitReply>,
    /// Extrinsics received, hex.
    pub submitted: Vec<String>,
    /// Blocks each extrinsic went into.
    pub bodies: HashMap<u64, Vec<String>>,
    pub requests: Vec<String>,
    /// The System.Events storage key, hex without 0x.
    pub events_key: String,
}

pub struct MockNode {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<NodeState>>,
    heads: broadcast::Sender<u64>,
    kill: broadcast::Sender<()>,
}

/// Block `n`'s hash: recognisable and decodable back to `n`.
pub fn block_hash(n: u64) -> [u8; 32] {
    let mut h = [0xab; 32];
    h[..8].copy_from_slice(&n.to_le_bytes());
    h
}

fn block_number(hash: &str) -> u64 {
    let bytes = super::unhex(hash);
    u64::from_le_bytes(bytes[..8].try_into().unwrap())
}

pub fn header(n: u64) -> Value {
    json!({
        "parentHash": hex(&block_hash(n.saturating_sub(1))),
        "number": format!("0x{n:x}"),
        "stateRoot": hex(&[0; 32]),
        "extrinsicsRoot": hex(&[0; 32]),
        "digest": {"logs": []},
    })
}

const METHODS: &[&str] = &[
    "author_submitAndWatchExtrinsic",
    "author_unwatchExtrinsic",
    "chain_getBlock",
    "chain_getBlockHash",
    "chain_getFinalizedHead",
    "chain_getHeader",
    "chain_subscribeFinalizedHeads",
    "chain_unsubscribeFinalizedHeads",
    "state_call",
    "state_getStorage",
    "system_accountNextIndex",
];

impl MockNode {
    pub async fn start(state: NodeState) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(state));
        let (heads, _) = broadcast::channel(64);
        let (kill, _) = broadcast::channel(4);
        let node = Self { addr, state: state.clone(), heads: heads.clone(), kill: kill.clone() };
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, state.clone(), heads.clone(), kill.subscribe()));
            }
        });
        node
    }

    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Finalises block `n` and tells subscribers.
    pub fn finalize(&self, n: u64) {
        self.state.lock().unwrap().finalized = n;
        let _ = self.heads.send(n);
    }

    /// Closes every open connection (the listener stays, so clients can reconnect).
    pub fn drop_connections(&self) {
        let _ = self.kill.send(());
    }
}

type Sender = Arc<AsyncMutex<soketto::Sender<tokio_util::compat::Compat<tokio::net::TcpStream>>>>;

async fn send(sender: &Sender, v: Value) -> bool {
    let mut s = sender.lock().await;
    s.send_text(v.to_string()).await.is_ok() && s.flush().await.is_ok()
}

async fn serve(
    socket: tokio::net::TcpStream,
    state: Arc<Mutex<NodeState>>,
    heads: broadcast::Sender<u64>,
    mut kill: broadcast::Receiver<()>,
) {
    let mut server = Server::new(socket.compat());
    let Ok(req) = server.receive_request().await else { return };
    let key = req.key();
    if server.send_response(&Response::Accept { key, protocol: None }).await.is_err() {
        return;
    }
    let (sender, mut receiver) = server.into_builder().finish();
    let sender: Sender = Arc::new(AsyncMutex::new(sender));
    let mut tasks = Vec::new();
    let mut next_sub = 0u64;
    loop {
        let mut data = Vec::new();
        tokio::select! {
            _ = kill.recv() => break,
            r = receiver.receive_data(&mut data) => if r.is_err() { break },
        }
        let Ok(request) = serde_json::from_slice::<Value>(&data) else { continue };
        let id = request["id"].clone();
        let method = request["method"].as_str().unwrap_or_default().to_string();
        let params = request["params"].clone();
        state.lock().unwrap().requests.push(method.clone());
        let reply = |result: Value| json!({"jsonrpc": "2.0", "id": id, "result": result});
        let chainhead = state.lock().unwrap().chainhead;
        match method.as_str() {
            "chainHead_v1_follow" if chainhead == ChainHead::Malformed => {
                next_sub += 1;
                let sub = format!("follow{next_sub}");
                send(&sender, reply(json!(sub))).await;
                let bad = json!({"event": "initialized", "finalizedBlockHashes": 42});
                send(&sender, json!({"jsonrpc": "2.0", "method": "chainHead_v1_followEvent", "params": {"subscription": sub, "result": bad}})).await;
            }
            m if chainhead != ChainHead::Absent
                && (m.starts_with("chainHead_")
                    || m.starts_with("transactionWatch_")
                    || m.starts_with("chainSpec_")) =>
            {
                send(&sender, json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": format!("Method not found: {m}")}})).await;
            }
            "chain_subscribeFinalizedHeads" => {
                next_sub += 1;
                let sub = format!("heads{next_sub}");
                send(&sender, reply(json!(sub))).await;
                let current = state.lock().unwrap().finalized;
                let mut rx = heads.subscribe();
                let sender = sender.clone();
                tasks.push(tokio::spawn(async move {
                    let note = |n: u64| json!({"jsonrpc": "2.0", "method": "chain_finalizedHead", "params": {"subscription": sub, "result": header(n)}});
                    if !send(&sender, note(current)).await {
                        return;
                    }
                    while let Ok(n) = rx.recv().await {
                        if !send(&sender, note(n)).await {
                            return;
                        }
                    }
                }));
            }
            "author_submitAndWatchExtrinsic" => {
                let ext = params[0].as_str().unwrap_or_default().to_string();
                let answer = {
                    let mut st = state.lock().unwrap();
                    st.submitted.push(ext.clone());
                    st.submit.clone()
                };
                match answer {
                    Some(SubmitReply::PoolError { data }) => {
                        send(&sender, json!({"jsonrpc": "2.0", "id": id, "error": {"code": 1010, "message": "Invalid Transaction", "data": data}})).await;
                    }
                    Some(SubmitReply::InBlock { block, events }) => {
                        {
                            let mut st = state.lock().unwrap();
                            st.bodies.entry(block).or_default().push(ext);
                            let events_key = st.events_key.clone();
                            st.storage.insert(format!("{events_key}@{block}"), events);
                        }
                        next_sub += 1;
                        let sub = format!("ext{next_sub}");
                        send(&sender, reply(json!(sub))).await;
                        for status in [json!("ready"), json!({"inBlock": hex(&block_hash(block))})] {
                            send(&sender, json!({"jsonrpc": "2.0", "method": "author_extrinsicUpdate", "params": {"subscription": sub, "result": status}})).await;
                        }
                    }
                    None => {
                        send(&sender, json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32000, "message": "no submission expected"}})).await;
                    }
                }
            }
            _ => {
                let result = answer(&state, &method, &params);
                send(&sender, reply(result)).await;
            }
        }
    }
    for t in tasks {
        t.abort();
    }
    let _ = sender.lock().await.close().await;
}

fn answer(state: &Mutex<NodeState>, method: &str, params: &Value) -> Value {
    let st = state.lock().unwrap();
    let at = |i: usize| params.get(i).and_then(Value::as_str).map(block_number).unwrap_or(st.finalized);
    match method {
        "rpc_methods" => {
            let mut methods: Vec<&str> = METHODS.to_vec();
            if st.chainhead != ChainHead::Absent {
                methods.extend([
                    "chainHead_v1_follow",
                    "chainHead_v1_unfollow",
                    "chainHead_v1_header",
                    "chainHead_v1_storage",
                    "chainHead_v1_call",
                    "chainHead_v1_unpin",
                ]);
            }
            json!({"methods": methods})
        }
        "chain_getBlockHash" => {
            let n = params.get(0).and_then(Value::as_u64).unwrap_or(st.finalized);
            json!(hex(&block_hash(n)))
        }
        "chain_getFinalizedHead" => json!(hex(&block_hash(st.finalized))),
        "chain_getHeader" => header(at(0)),
        "chain_getBlock" => {
            let n = at(0);
            json!({"block": {"header": header(n), "extrinsics": st.bodies.get(&n).cloned().unwrap_or_default()}, "justifications": null})
        }
        "system_accountNextIndex" => json!(0),
        "author_unwatchExtrinsic" | "chain_unsubscribeFinalizedHeads" => json!(true),
        "state_call" => {
            let name = params[0].as_str().unwrap_or_default();
            match st.calls.get(name) {
                Some(bytes) => json!(hex(bytes)),
                None => panic!("the mock node has no answer for state_call {name}"),
            }
        }
        "state_getStorage" => {
            let key = params[0].as_str().unwrap_or_default().trim_start_matches("0x").to_string();
            let value = st.storage.get(&format!("{key}@{}", at(1))).or_else(|| st.storage.get(&key));
            value.map_or(Value::Null, |v| json!(hex(v)))
        }
        other => panic!("the mock node does not answer {other}"),
    }
}
