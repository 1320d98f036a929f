//! Operating a neuron, checked against real tools: one short local subnet
//! (the real binary, tiny GPT model) is scraped by a real Prometheus server
//! (Debian's `prometheus` package) and its exposition is linted by
//! `promtool check metrics`; its event files are read by TensorBoard's own
//! reader (the `tensorboard` package from PyPI, NEURON_TEST_PYTHON); its
//! report renders; its progress lines, with no terminal, carry no control
//! codes. A second, shorter run under a pseudo-terminal (util-linux
//! `script`) shows the progress line being redrawn. `config show` is run
//! with a file, an environment variable and a flag.

use std::{
    collections::HashMap,
    fs::File,
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use neuron_e2e::{host_binary, host_command, plugin, TinySubnet, CLEAN_AND_NOISY_MINERS};
use serde_json::Value;

fn subnet_command(dir: &Path, epochs: u64) -> Command {
    let config = TinySubnet { sections: CLEAN_AND_NOISY_MINERS, ..Default::default() }.toml();
    let mut cmd = neuron_e2e::subnet_command(dir, &config, "run", &["scoring_loss"], epochs);
    // Progress lines are info events of the subnet.
    cmd.env("RUST_LOG", "warn,neuron_host::progress=info");
    cmd
}

/// A program the Debian package `package` installs; a test that needs it
/// fails (never passes silently) when it is missing.
fn system_tool(name: &str, package: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|p| p.is_file()))
        .unwrap_or_default();
    found.unwrap_or_else(|| {
        panic!("`{name}` is not installed: `apt-get install {package}` (cargo xtask test installs it)")
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A plain HTTP/1.0 GET on loopback: (status, body).
fn http_get(port: u16, target: &str, accept: Option<&str>) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let accept = accept.map(|a| format!("Accept: {a}\r\n")).unwrap_or_default();
    write!(s, "GET {target} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n{accept}Connection: close\r\n\r\n")?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    Ok((status, body.to_string()))
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A Prometheus server on loopback scraping one target every second, with
/// its storage in a temporary directory; killed when dropped.
struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target_port: u16) -> Self {
        let binary = system_tool("prometheus", "prometheus");
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: neuron\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let log = File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let p = Prometheus { child, port, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !matches!(http_get(port, "/-/ready", None), Ok((200, _))) {
            assert!(Instant::now() < deadline, "prometheus not ready in 60 s: {}", p.log());
            std::thread::sleep(Duration::from_millis(200));
        }
        p
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// An instant query at `time` (Unix seconds): each series' labels and value.
    fn query(&self, expr: &str, time: f64) -> Vec<(HashMap<String, String>, f64)> {
        let target = format!("/api/v1/query?query={}&time={time:.3}", url_encode(expr));
        let (status, body) = http_get(self.port, &target, None).unwrap();
        assert_eq!(status, 200, "{expr}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "success", "{expr}: {body}");
        v["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let labels = r["metric"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                    .collect();
                (labels, r["value"][1].as_str().unwrap().parse::<f64>().unwrap())
            })
            .collect()
    }

    /// The value of an expression that must select exactly one series.
    fn one(&self, expr: &str, time: f64) -> f64 {
        let r = self.query(expr, time);
        assert_eq!(r.len(), 1, "{expr} selects one series: {r:?}");
        r[0].1
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
}

fn json_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG file");
    (u32::from_be_bytes(bytes[16..20].try_into().unwrap()), u32::from_be_bytes(bytes[20..24].try_into().unwrap()))
}

/// Checks what Prometheus scraped while the validator's first epoch was the
/// latest, against that epoch's line in epochs.jsonl.
fn check_scraped_series(prom: &Prometheus, at: f64, epoch1: &Value) {
    assert_eq!(prom.one("up{job=\"neuron\"}", at), 1.0);
    assert_eq!(prom.one("neuron_epoch{neuron=\"validator\"}", at), 1.0);
    assert_eq!(prom.one("neuron_epoch_length_blocks{neuron=\"validator\"}", at), 10.0, "the subnet's tempo");
    // Commit-reveal is on in the local subnet, as on finney: the weights are timelocked.
    assert!(epoch1["weights"].as_str().unwrap().starts_with("committed, timelocked to drand round"), "{epoch1}");
    assert_eq!(prom.one("neuron_weights_set_total{neuron=\"validator\"}", at), 1.0);
    assert!(prom.query("neuron_weights_refused_total", at).is_empty());

    for name in ["miner1", "miner2", "validator"] {
        let sel = format!("{{neuron=\"{name}\"}}");
        assert!(prom.one(&format!("neuron_global_step{sel}"), at) > 0.0, "{name} stepped");
        assert!(prom.one(&format!("neuron_step_duration_seconds_count{sel}"), at) > 0.0, "{name}");
        assert!(prom.one(&format!("neuron_tokens_per_second{sel}"), at) > 0.0, "{name}");
        assert!(prom.one(&format!("neuron_gpu_memory_bytes{sel}"), at) > 0.0, "{name} holds GPU buffers");
        assert!(
            prom.one(
                &format!("neuron_chain_request_duration_seconds_count{{neuron=\"{name}\",call=\"metagraph\"}}"),
                at
            ) >= 1.0,
            "{name} read the metagraph"
        );
    }
    for name in ["miner1", "miner2"] {
        let loss = prom.one(&format!("neuron_loss{{neuron=\"{name}\"}}"), at);
        assert!(loss > 0.0 && loss < 20.0, "{name} loss {loss}");
        assert_eq!(
            prom.one(
                &format!("neuron_chain_request_duration_seconds_count{{neuron=\"{name}\",call=\"serve_axon\"}}"),
                at
            ),
            1.0,
            "{name} served its axon once"
        );
    }
    assert_eq!(
        prom.one(
            "neuron_chain_request_duration_seconds_count{neuron=\"validator\",call=\"commit_timelocked_weights\"}",
            at
        ),
        1.0
    );
    assert!(prom.one("neuron_queries_total{neuron=\"validator\",outcome=\"answered\"}", at) > 0.0);
    assert_eq!(prom.one("neuron_plugin_info{name=\"gpt\",kind=\"model\"}", at), 1.0);
    assert_eq!(prom.one("neuron_plugin_info{name=\"scoring-loss\"}", at), 1.0);

    // Per-uid score and weight: the values of the epoch's table, one series per uid.
    let uids = epoch1["uids"].as_array().unwrap();
    for (metric, field) in [("neuron_uid_score", "score"), ("neuron_uid_weight", "weight")] {
        let series = prom.query(&format!("{metric}{{neuron=\"validator\"}}"), at);
        assert_eq!(series.len(), uids.len(), "{metric}: one series per uid: {series:?}");
        for row in uids {
            let uid = row["uid"].to_string();
            let (_, v) = series.iter().find(|(l, _)| l["uid"] == uid).unwrap_or_else(|| panic!("{metric} uid {uid}"));
            assert!((v - f(&row[field])).abs() < 1e-6, "{metric} uid {uid}: {v} vs epochs.jsonl {}", row[field]);
        }
    }
}

#[test]
fn a_short_subnet_run_is_scraped_logged_reported_and_shows_plain_progress() {
    let python = std::env::var("NEURON_TEST_PYTHON")
        .unwrap_or_else(|_| panic!("NEURON_TEST_PYTHON is not set: run the tests with `cargo xtask test`"));
    let promtool = system_tool("promtool", "prometheus");
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let metrics_port = free_port();
    let prom = Prometheus::start(metrics_port);

    let stdout_path = dir.path().join("stdout");
    let stderr_path = dir.path().join("stderr");
    let mut child = subnet_command(dir.path(), 2)
        .args(["--metrics.port", &metrics_port.to_string()])
        .args(["--set", "logging.progress_every=2"])
        .stdin(Stdio::null())
        .stdout(File::create(&stdout_path).unwrap())
        .stderr(File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let output = |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned();

    // While the first epoch is the latest: what Prometheus scraped, and a
    // direct scrape for promtool.
    let deadline = Instant::now() + Duration::from_secs(300);
    let snapshot = loop {
        assert!(Instant::now() < deadline, "no scrape of epoch 1 within 5 minutes: {}", output(&stderr_path));
        assert!(child.try_wait().unwrap().is_none(), "the subnet exited early: {}", output(&stderr_path));
        let epochs = json_lines(&run.join("epochs.jsonl"));
        if epochs.len() == 1 {
            let at = unix_now();
            if prom.query("neuron_epoch{neuron=\"validator\"} == 1", at).len() == 1 {
                break Some((at, epochs[0].clone()));
            }
        } else if epochs.len() > 1 {
            break None;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let (at, epoch1) = snapshot.expect("Prometheus scraped the first epoch before the second ended");
    let (status, plain) = http_get(metrics_port, "/metrics", None).unwrap();
    assert_eq!(status, 200);
    let (_, openmetrics) =
        http_get(metrics_port, "/metrics", Some("application/openmetrics-text;version=1.0.0")).unwrap();
    check_scraped_series(&prom, at, &epoch1);

    let mut lint = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    lint.stdin.take().unwrap().write_all(plain.as_bytes()).unwrap();
    let lint = lint.wait_with_output().unwrap();
    assert!(
        lint.status.success(),
        "promtool check metrics: {}{}\n{plain}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );
    assert!(plain.contains("# TYPE neuron_queries_total counter") && !plain.contains("# EOF"), "{plain}");
    assert!(openmetrics.ends_with("# EOF\n") && openmetrics.contains("# TYPE neuron_plugin info"), "{openmetrics}");

    let status = child.wait().unwrap();
    let (stdout, stderr) = (output(&stdout_path), output(&stderr_path));
    assert!(status.success(), "{stdout}\n{stderr}");
    drop(prom);

    // No terminal: plain periodic progress lines, no control codes anywhere.
    assert!(!stdout.contains('\x1b') && !stderr.contains('\x1b'), "control codes without a terminal:\n{stderr}");
    assert!(!stderr.contains('\r'), "no carriage returns without a terminal:\n{stderr}");
    let progress: Vec<&str> = stderr.lines().filter(|l| l.contains("epoch 1/2: block ")).collect();
    assert!(progress.len() >= 2, "a progress line every 2 s:\n{stderr}");
    assert!(
        progress.iter().any(|l| l.contains("s left | validator ") && l.contains("| miner1 ") && l.contains(" loss ")),
        "blocks, time left, steps and loss:\n{stderr}"
    );
    assert_eq!(stdout.matches("uid  name").count(), 2, "the epoch tables: {stdout}");

    // TensorBoard's reader finds the scalars the run logged.
    let scalars_path = dir.path().join("scalars.json");
    let script = neuron_e2e::workspace_root().join("tests/python/tb_scalars.py");
    let out = Command::new(&python).arg(script).arg(&run).arg(&scalars_path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let scalars: Value = serde_json::from_slice(&std::fs::read(&scalars_path).unwrap()).unwrap();
    let steps = json_lines(&run.join("steps.jsonl"));
    for name in ["miner1", "miner2"] {
        let logged: Vec<&Value> = steps.iter().filter(|s| s["neuron"] == name).collect();
        let tb = scalars[format!("{name}/loss")].as_array().unwrap_or_else(|| panic!("no {name}/loss in TensorBoard"));
        assert_eq!(tb.len(), logged.len(), "{name}: one loss point per logged step");
        let (last_tb, last_log) = (tb.last().unwrap(), logged.last().unwrap());
        assert_eq!(last_tb[0], last_log["step"], "{name}");
        assert!((f(&last_tb[1]) - f(&last_log["loss"])).abs() < 1e-5, "{name}: {last_tb} vs {last_log}");
    }
    let epochs = json_lines(&run.join("epochs.jsonl"));
    assert_eq!(epochs.len(), 2);
    for row in epochs[1]["uids"].as_array().unwrap() {
        for field in ["score", "weight", "incentive", "dividends"] {
            let tag = format!("uid{}/{field}", row["uid"]);
            let tb = scalars[&tag].as_array().unwrap_or_else(|| panic!("no {tag} in TensorBoard"));
            assert_eq!(tb.len(), 2, "{tag}: one point per epoch");
            assert_eq!(tb[1][0], 2);
            assert!((f(&tb[1][1]) - f(&row[field])).abs() < 1e-5, "{tag}: {:?} vs {}", tb[1], row[field]);
        }
    }

    // The report renders PNGs of the size asked for, with drawn content.
    let out = Command::new(host_binary())
        .arg("report")
        .arg(&run)
        .args(["--width", "800", "--height", "450"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = run.join("report");
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    for name in ["loss.png", "scores.png", "weights.png", "incentive.png", "dividends.png"] {
        let bytes = std::fs::read(report.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(png_size(&bytes), (800, 450), "{name}");
        assert!(bytes.len() > 10_000, "{name} has drawn content ({} bytes)", bytes.len());
        assert!(html.contains(&format!("src=\"{name}\"")), "{name} on the page");
    }
    assert!(html.contains("tempo = 10"), "the run's config on the page");
}

/// Runs `cmd` on a new pseudo-terminal (util-linux/bsdutils `script`, which
/// copies what the command writes there to its own stdout): (success, output).
fn under_pty(cmd: &Command) -> (bool, String) {
    let script = system_tool("script", "bsdutils");
    let quote = |s: &std::ffi::OsStr| format!("'{}'", s.to_string_lossy().replace('\'', "'\\''"));
    let mut line = quote(cmd.get_program());
    for a in cmd.get_args() {
        line.push(' ');
        line.push_str(&quote(a));
    }
    // stdin stays open so script waits for the command rather than ending at EOF.
    let mut child = Command::new(script)
        .args(["-qefc", &line, "/dev/null"])
        .envs(cmd.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take();
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// The redraws of the progress line (what follows each carriage return + erase line).
fn redraws<'a>(text: &'a str, starting: &str) -> Vec<&'a str> {
    text.split("\r\x1b[2K").skip(1).filter(|s| s.starts_with(starting)).collect()
}

#[test]
fn progress_is_redrawn_in_place_under_a_pseudo_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let (_, text) = under_pty(&subnet_command(dir.path(), 1));
    let redraws = redraws(&text, "epoch 1/1: block ");
    assert!(redraws.len() >= 3, "the line is redrawn every second: {text:?}");
    let blocks = |s: &str| -> u64 { s["epoch 1/1: block ".len()..].split('/').next().unwrap().parse().unwrap() };
    assert!(blocks(redraws.last().unwrap()) > blocks(redraws[0]), "and moves on: {redraws:?}");
    assert!(redraws.iter().any(|r| r.contains("| miner1 ") && r.contains(" loss ")), "{redraws:?}");
    assert_eq!(
        text.matches("epoch 1/1: block ").count(),
        redraws.len(),
        "no progress log lines on a terminal: {text:?}"
    );
    assert!(text.contains("uid  name"), "the epoch's table: {text:?}");
}

#[test]
fn a_lone_miner_redraws_its_steps_and_loss_under_a_pseudo_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("miner.toml");
    std::fs::write(&config, TinySubnet::default().toml()).unwrap();
    // A miner alone on the embedded chain, stopped by Ctrl-C after 30 s.
    let mut cmd = Command::new("timeout");
    cmd.args(["--foreground", "--preserve-status", "-s", "INT", "30"])
        .arg(host_binary())
        .args(["--role", "miner", "--plugin"])
        .arg(plugin("gpt"))
        .arg("--config")
        .arg(&config)
        .arg("--run_dir")
        .arg(dir.path().join("run"))
        .env("HOME", dir.path())
        .env("RUST_LOG", "warn");
    let (_, text) = under_pty(&cmd);
    let name = text
        .split("\r\x1b[2K")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .unwrap_or_else(|| panic!("no progress line: {text:?}"))
        .to_string();
    let redraws = redraws(&text, &format!("{name} "));
    let steps = |s: &str| -> u64 { s[name.len() + 1..].split(' ').next().unwrap().parse().unwrap() };
    assert!(redraws.len() >= 3, "{text:?}");
    assert!(steps(redraws.last().unwrap()) > steps(redraws[0]), "the miner's steps go up: {redraws:?}");
    assert!(redraws.last().unwrap().contains(" steps loss "), "{redraws:?}");
    assert!(text.contains("training steps, last loss"), "the summary after Ctrl-C: {text:?}");
}

#[test]
fn config_show_names_where_each_value_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("neuron.toml");
    std::fs::write(&file, "[validator]\nbatch_size = 12\n").unwrap();
    let out = host_command()
        .args(["config", "show", "--config"])
        .arg(&file)
        .args(["--metrics.port", "9464"])
        .env("NEURON__VALIDATOR__TOP_K", "7")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let line = |key: &str| -> String {
        text.lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("no {key} in:\n{text}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(line("validator.batch_size"), format!("validator.batch_size = 12 # file {}", file.display()));
    assert_eq!(line("validator.top_k"), "validator.top_k = 7 # environment NEURON__VALIDATOR__TOP_K");
    assert_eq!(line("metrics.port"), "metrics.port = 9464 # flag --metrics.port");
    assert_eq!(line("logging.progress_every"), "logging.progress_every = 30.0 # default");

    // A misspelt key and a wrong type: refused, in one line naming the key.
    std::fs::write(&file, "[validator]\ntop_kk = 3\n").unwrap();
    let out = host_command().args(["config", "show", "--config"]).arg(&file).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("validator.top_kk") && err.contains("did you mean `top_k`"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let out = host_command().args(["config", "show"]).env("NEURON__VALIDATOR__TOP_K", "many").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("validator.top_k"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let out = host_command().args(["config", "show", "--set", "logging.progress_every=0"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("logging.progress_every"), "{err}");
}

#[test]
fn axon_port_in_a_local_subnet_is_the_first_miners_and_the_others_follow_it() {
    // Before, every miner of the subnet tried to bind the one port and the run failed.
    let dir = tempfile::tempdir().unwrap();
    let base = loop {
        let p = free_port();
        if p < 65000 && TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            break p;
        }
    };
    let out = subnet_command(dir.path(), 1).args(["--axon.port", &base.to_string()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("checkpoints/chain.state")).unwrap()).unwrap();
    let mut ports: Vec<u64> = state["subnets"]["1"]["neurons"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["axon"]["port"].as_u64())
        .collect();
    ports.sort();
    assert_eq!(ports, [u64::from(base), u64::from(base) + 1], "{state}");

    // Ports past 65535 are refused in one line naming the flag.
    let out = subnet_command(dir.path(), 1).args(["--axon.port", "65535"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--axon.port 65535") && err.contains("past 65535"), "{err}");
}
