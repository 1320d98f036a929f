//! `neuron-host report RUN_DIR`: PNG plots of a run and one HTML page that
//! shows them with the run's configuration.
//!
//! It reads what the run log wrote: `steps.jsonl` (one line per step of each
//! neuron: `neuron`, `step`, `loss`, ...) and `epochs.jsonl` (one line per
//! validator epoch: `epoch` and per-uid `score`, `weight`, `incentive`,
//! `dividends`), plus `config.toml` when present. Plots: loss per neuron over
//! steps; scores, weights, incentive and dividends per uid over epochs. Axes
//! are labelled with their units.

mod plot;

use std::{
    collections::BTreeMap,
    io::BufRead,
    path::{Path, PathBuf},
};

use serde::Deserialize;

use crate::error::{Error, Result};

/// One line of `steps.jsonl` (fields the report uses; others are ignored).
#[derive(Clone, Debug, Deserialize)]
pub struct StepRecord {
    pub neuron: String,
    pub step: u64,
    pub loss: Option<f64>,
}

/// One uid in an epoch record.
#[derive(Clone, Debug, Deserialize)]
pub struct UidRecord {
    pub uid: u16,
    #[serde(default)]
    pub hotkey: String,
    pub score: Option<f64>,
    pub weight: Option<f64>,
    pub incentive: Option<f64>,
    pub dividends: Option<f64>,
    pub loss: Option<f64>,
}

/// One line of `epochs.jsonl`.
#[derive(Clone, Debug, Deserialize)]
pub struct EpochRecord {
    pub neuron: String,
    pub epoch: u64,
    pub uids: Vec<UidRecord>,
}

/// Plot size in pixels.
#[derive(Clone, Copy, Debug)]
pub struct Size {
    pub width: u32,
    pub height: u32,
}

impl Default for Size {
    fn default() -> Self {
        Self { width: 1200, height: 700 }
    }
}

/// What `render` wrote.
#[derive(Clone, Debug)]
pub struct Rendered {
    pub html: PathBuf,
    pub images: Vec<PathBuf>,
}

/// Reads JSON lines; an unreadable last line (a run killed mid-write) is
/// skipped, an unreadable line elsewhere is an error naming it.
fn read_lines<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(Error::Io { path: path.to_path_buf(), source }),
    };
    let lines: Vec<String> = std::io::BufReader::new(file)
        .lines()
        .collect::<std::io::Result<_>>()
        .map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(v) => out.push(v),
            Err(_) if i + 1 == lines.len() => {
                tracing::warn!(target: "neuron_host::report", "{}: the last line is incomplete (the run stopped mid-write); skipped", path.display());
            }
            Err(e) => {
                return Err(Error::Config(format!("{} line {}: not a run-log record ({e})", path.display(), i + 1)))
            }
        }
    }
    Ok(out)
}

/// Renders the report of `run_dir` into `run_dir/report/`.
pub fn render(run_dir: &Path, size: Size) -> Result<Rendered> {
    if !run_dir.is_dir() {
        return Err(Error::Config(format!(
            "{} is not a run directory (runs write theirs under runs/)",
            run_dir.display()
        )));
    }
    let steps: Vec<StepRecord> = read_lines(&run_dir.join("steps.jsonl"))?;
    let epochs: Vec<EpochRecord> = read_lines(&run_dir.join("epochs.jsonl"))?;
    if steps.is_empty() && epochs.is_empty() {
        return Err(Error::Config(format!(
            "{} has no steps.jsonl or epochs.jsonl records: nothing to report",
            run_dir.display()
        )));
    }
    plot::ensure_font()?;
    let out = run_dir.join("report");
    std::fs::create_dir_all(&out).map_err(|source| Error::Io { path: out.clone(), source })?;
    let mut images = Vec::new();

    // Loss per neuron over steps.
    let mut loss: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for s in &steps {
        if let Some(l) = s.loss.filter(|l| l.is_finite()) {
            loss.entry(s.neuron.clone()).or_default().push((s.step as f64, l));
        }
    }
    if !loss.is_empty() {
        let path = out.join("loss.png");
        plot::lines(&path, size, "Training loss per neuron", "global step", "loss (nats per token)", &loss)?;
        images.push(path);
    }

    // Per-uid figures over epochs, from the (first) validator's records.
    let per_uid = |pick: fn(&UidRecord) -> Option<f64>| -> BTreeMap<String, Vec<(f64, f64)>> {
        let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for e in &epochs {
            for u in &e.uids {
                if let Some(v) = pick(u).filter(|v| v.is_finite()) {
                    series.entry(format!("uid {:>3}", u.uid)).or_default().push((e.epoch as f64, v));
                }
            }
        }
        series
    };
    type Figure = (&'static str, &'static str, &'static str, fn(&UidRecord) -> Option<f64>);
    let figures: [Figure; 4] = [
        ("scores.png", "Validator scores per uid", "score (moving average, 0 to 1)", |u| u.score),
        ("weights.png", "Weights set per uid", "weight (share of 1)", |u| u.weight),
        ("incentive.png", "Incentive per uid", "incentive (share of miner emission)", |u| u.incentive),
        ("dividends.png", "Dividends per uid", "dividends (share of validator emission)", |u| u.dividends),
    ];
    for (file, title, y, pick) in figures {
        let series = per_uid(pick);
        if !series.is_empty() {
            let path = out.join(file);
            plot::lines(&path, size, title, "epoch", y, &series)?;
            images.push(path);
        }
    }

    let config = std::fs::read_to_string(run_dir.join("config.toml"))
        .unwrap_or_else(|_| "(no config.toml in the run directory)".into());
    let html = out.join("index.html");
    std::fs::write(&html, page(run_dir, &images, &config, epochs.last()))
        .map_err(|source| Error::Io { path: html.clone(), source })?;
    Ok(Rendered { html, images })
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn page(run_dir: &Path, images: &[PathBuf], config: &str, last: Option<&EpochRecord>) -> String {
    let mut h = String::new();
    h.push_str("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    h.push_str(&format!("<title>neuron-host run {}</title>", escape(&run_dir.display().to_string())));
    h.push_str(
        "<style>body{font-family:sans-serif;max-width:1280px;margin:2em auto;color:#222}img{max-width:100%;border:1px solid #ddd;margin:.5em 0}\
         table{border-collapse:collapse}td,th{padding:.25em .75em;border-bottom:1px solid #ddd;text-align:right}\
         pre{background:#f6f6f6;padding:1em;overflow:auto}</style></head><body>\n",
    );
    h.push_str(&format!("<h1>Run {}</h1>\n", escape(&run_dir.display().to_string())));
    if let Some(e) = last {
        h.push_str(&format!("<h2>Epoch {} (last)</h2>\n<table><tr><th>uid</th><th>hotkey</th><th>loss</th><th>score</th><th>weight</th><th>incentive</th><th>dividends</th></tr>\n", e.epoch));
        let fmt = |v: Option<f64>| v.filter(|x| x.is_finite()).map(|x| format!("{x:.4}")).unwrap_or_else(|| "–".into());
        for u in &e.uids {
            h.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                u.uid,
                escape(&u.hotkey.chars().take(12).collect::<String>()),
                fmt(u.loss),
                fmt(u.score),
                fmt(u.weight),
                fmt(u.incentive),
                fmt(u.dividends)
            ));
        }
        h.push_str("</table>\n");
    }
    for img in images {
        let name = img.file_name().and_then(|n| n.to_str()).unwrap_or("");
        h.push_str(&format!("<div><img src=\"{}\" alt=\"{}\"></div>\n", escape(name), escape(name)));
    }
    h.push_str(&format!("<h2>Configuration</h2>\n<pre>{}</pre>\n</body></html>\n", escape(config)));
    h
}
