//! Helpers for the network tests and benchmark: a small deterministic forward
//! service, a tokio runtime, servers on loopback, and the Python interpreter
//! with the real Bittensor SDK that `cargo xtask test` prepares.

use std::{
    io::Write,
    path::PathBuf,
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use neuron_host::{
    net::{
        serve, wire::ForwardQuery, wire::ModelSummary, AccessRule, Caller, ForwardService, OpenDirectory,
        PeerDirectory, RunningServer, ServerConfig, ServiceError,
    },
    wallet::Keypair,
};
use neuron_plugin_api::ForwardOutput;

/// A real (not mocked) forward service that needs no GPU: the "shift model",
/// whose logits put 8.0 on `(token + shift) mod vocab` and 0.0 elsewhere, so
/// every answer is predictable. It can also be told to sleep, fail, or answer
/// with ids outside its vocabulary, to exercise the client's handling.
pub struct ShiftService {
    pub vocab: u32,
    pub shift: u32,
    pub delay: Duration,
    pub behaviour: Behaviour,
    /// Forward passes running now, and the most seen at once.
    pub running: AtomicUsize,
    pub max_running: AtomicUsize,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Behaviour {
    Correct,
    /// Returns `ServiceError::Internal` with a message that must not reach the caller.
    Fail,
    /// Answers top-k ids one past the vocabulary.
    OutOfVocabulary,
}

impl ShiftService {
    pub fn new(vocab: u32) -> ShiftService {
        ShiftService {
            vocab,
            shift: 1,
            delay: Duration::ZERO,
            behaviour: Behaviour::Correct,
            running: AtomicUsize::new(0),
            max_running: AtomicUsize::new(0),
        }
    }

    /// The logits the service's model computes for a batch.
    pub fn logits(&self, tokens: &[u32]) -> Vec<f32> {
        let v = self.vocab as usize;
        let mut logits = vec![0.0f32; tokens.len() * v];
        for (i, t) in tokens.iter().enumerate() {
            logits[i * v + ((t + self.shift) % self.vocab) as usize] = 8.0;
        }
        logits
    }
}

impl ForwardService for ShiftService {
    async fn forward(&self, _caller: &Caller, query: ForwardQuery) -> Result<ForwardOutput, ServiceError> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let result = match self.behaviour {
            Behaviour::Fail => Err(ServiceError::Internal("secret internal detail".into())),
            _ if query.tokens.iter().any(|&t| t >= self.vocab) => {
                Err(ServiceError::BadQuery(format!("a token is outside the vocabulary of {}", self.vocab)))
            }
            _ => {
                let logits = self.logits(&query.tokens);
                ForwardOutput::from_full_logits(query.token_batch(), self.vocab, &logits, query.output_request())
                    .map_err(|e| ServiceError::Internal(e.message.to_string()))
                    .map(|mut out| {
                        if self.behaviour == Behaviour::OutOfVocabulary {
                            out.ids.iter_mut().for_each(|id| *id = self.vocab);
                        }
                        out
                    })
            }
        };
        self.running.fetch_sub(1, Ordering::SeqCst);
        result
    }

    fn summary(&self) -> ModelSummary {
        ModelSummary { architecture: "shift".into(), vocab_size: self.vocab, max_seq_len: 1024 }
    }
}

/// A multi-threaded tokio runtime for a test.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a tokio runtime")
}

/// A server config bound to a free loopback port.
pub fn loopback_config() -> ServerConfig {
    ServerConfig { bind: "127.0.0.1:0".parse().unwrap(), ..Default::default() }
}

/// Starts a server for `identity` with `service` on loopback (call inside the runtime).
pub async fn start(
    identity: &Keypair,
    service: Arc<ShiftService>,
    access: AccessRule,
    peers: Arc<dyn PeerDirectory>,
) -> RunningServer {
    let config = ServerConfig { access, ..loopback_config() };
    serve(config, identity, service, peers).await.expect("the server starts on loopback")
}

/// Starts an open server (anyone who signs may call).
pub async fn start_open(identity: &Keypair, service: Arc<ShiftService>) -> RunningServer {
    start(identity, service, AccessRule::default(), Arc::new(OpenDirectory)).await
}

/// The Python interpreter with the pinned `bittensor` SDK. `cargo xtask test`
/// creates it and exports `NEURON_TEST_PYTHON`; without it the interop tests
/// fail (never skip) with a message saying how to get it.
pub fn sdk_python() -> PathBuf {
    let missing = "NEURON_TEST_PYTHON is not set: the Bittensor SDK interop tests need the Python \
                   environment that `cargo xtask test` creates (run the tests with `cargo xtask test`, \
                   or point NEURON_TEST_PYTHON at a python with the packages of tests/python/requirements.txt)";
    let path = PathBuf::from(std::env::var_os("NEURON_TEST_PYTHON").expect(missing));
    assert!(path.exists(), "NEURON_TEST_PYTHON={} does not exist: run `cargo xtask test` to create it", path.display());
    path
}

/// Runs `tests/python/sdk_tool.py COMMAND ARGS` with `stdin`; returns stdout,
/// panicking with stderr when it fails.
pub fn sdk_tool(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> String {
    let script = crate::workspace_root().join("tests/python/sdk_tool.py");
    let mut cmd = Command::new(sdk_python());
    cmd.arg(&script).args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("python starts");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
    let out = child.wait_with_output().expect("python runs");
    assert!(
        out.status.success(),
        "sdk_tool.py {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}
