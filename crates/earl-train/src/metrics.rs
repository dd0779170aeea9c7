//! What a run reports: one JSON line per optimizer step (and per evaluation) in
//! `metrics.jsonl`, the same scalars as TensorBoard events under `tb/`, and a progress bar.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::TrainError;
use crate::tfevents::EventWriter;

/// One optimizer step's line of `metrics.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepMetrics {
    pub step: u64,
    pub loss: f64,
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    pub tokens_per_s: f64,
    /// Target (loss-bearing) tokens and all non-padding tokens in the step.
    pub target_tokens: i64,
    pub tokens: i64,
    pub memory: Memory,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_loss: Option<f64>,
}

/// Process memory in bytes (resident now and its peak), from `/proc/self/status`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Memory {
    pub rss_bytes: u64,
    pub peak_rss_bytes: u64,
}

impl Memory {
    pub fn now() -> Self {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map_or(0, |kb| kb * 1024)
        };
        Self {
            rss_bytes: field("VmRSS:"),
            peak_rss_bytes: field("VmHWM:"),
        }
    }
}

pub struct Metrics {
    jsonl_path: PathBuf,
    jsonl: File,
    events: EventWriter,
    bar: ProgressBar,
}

impl Metrics {
    /// Opens the run's metrics for appending. Lines after `resumed_step` (written by a run that
    /// died before its next checkpoint) are dropped so the file reads as one uninterrupted run.
    pub fn open(run: &Path, total_steps: u64, resumed_step: u64) -> Result<Self, TrainError> {
        let jsonl_path = run.join("metrics.jsonl");
        truncate_after(&jsonl_path, resumed_step)?;
        let jsonl = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&jsonl_path)
            .map_err(|e| TrainError::io(&jsonl_path, e))?;
        let events = EventWriter::create(&run.join("tb"))?;
        let bar = ProgressBar::new(total_steps).with_position(resumed_step);
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} steps  {msg}",
        ) {
            bar.set_style(style);
        }
        Ok(Self {
            jsonl_path,
            jsonl,
            events,
            bar,
        })
    }

    pub fn log(&mut self, m: &StepMetrics) -> Result<(), TrainError> {
        let mut line = serde_json::to_string(m)
            .map_err(|e| TrainError::Metrics(format!("encoding step {}: {e}", m.step)))?;
        line.push('\n');
        self.jsonl
            .write_all(line.as_bytes())
            .map_err(|e| TrainError::io(&self.jsonl_path, e))?;
        let mut scalars = vec![
            ("train/loss", m.loss),
            ("train/lr", m.lr),
            ("train/grad_norm", m.grad_norm),
            ("perf/tokens_per_s", m.tokens_per_s),
            (
                "perf/peak_rss_gib",
                m.memory.peak_rss_bytes as f64 / (1u64 << 30) as f64,
            ),
        ];
        if let Some(v) = m.val_loss {
            scalars.push(("val/loss", v));
        }
        self.events.scalars(m.step, &scalars)?;
        self.events.flush()?;
        self.bar.set_position(m.step);
        let val = m
            .val_loss
            .map(|v| format!(" val {v:.4}"))
            .unwrap_or_default();
        self.bar.set_message(format!(
            "loss {:.4}{val}  lr {:.2e}  {:.0} tok/s",
            m.loss, m.lr, m.tokens_per_s
        ));
        Ok(())
    }

    pub fn finish(&self) {
        self.bar.finish();
    }
}

/// Reads every step line of a `metrics.jsonl`.
pub fn read_jsonl(path: &Path) -> Result<Vec<StepMetrics>, TrainError> {
    let file = File::open(path).map_err(|e| TrainError::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| TrainError::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(
            serde_json::from_str(&line).map_err(|e| {
                TrainError::Metrics(format!("{} line {}: {e}", path.display(), i + 1))
            })?,
        );
    }
    Ok(out)
}

fn truncate_after(path: &Path, step: u64) -> Result<(), TrainError> {
    if !path.exists() {
        return Ok(());
    }
    let kept: Vec<StepMetrics> = read_jsonl(path)?
        .into_iter()
        .filter(|m| m.step <= step)
        .collect();
    let mut text = String::new();
    for m in &kept {
        text.push_str(&serde_json::to_string(m).map_err(|e| TrainError::Metrics(e.to_string()))?);
        text.push('\n');
    }
    let tmp = path.with_extension("jsonl.tmp");
    std::fs::write(&tmp, text).map_err(|e| TrainError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| TrainError::io(path, e))
}
