//! The `score` stage: VIEScore for every row of a JSONL file.
//!
//! Input: a JSONL file (or a directory holding `rows.jsonl`), one object per line:
//! ```json
//! {"id": "omniedit/42", "dataset": "omniedit", "source": "src/42.png",
//!  "edited": "out/42.png", "instruction": "make the sky orange"}
//! ```
//! Image paths are relative to the JSONL file's directory (absolute paths also work).
//!
//! Output: `<out>/scores.jsonl`, one [`ScoredRow`] per input row (append-only, flushed as
//! results arrive), and `<out>/summary.json` ([`ScoreSummary`]). A rerun skips rows already
//! scored or rejected, retries rows that failed, and answers from the request cache
//! (`<out>/vlm-cache` by default) whatever the killed run had asked already.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::cache::Cache;
use crate::client::Client;
use crate::config::ClientConfig;
use crate::error::{Result, VlmError};
use crate::image_prep::ImagePrep;
use crate::stats::Usage;
use crate::template::{PromptTemplate, builtin};
use crate::viescore::Verifier;

/// One input row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreInput {
    pub id: String,
    pub dataset: String,
    pub source: PathBuf,
    pub edited: PathBuf,
    pub instruction: String,
}

/// One output row. Scores are present when `status` is `ok`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredRow {
    pub id: String,
    pub dataset: String,
    /// `ok`, `rejected` (the verifier's replies never passed the checks) or `failed`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sc: Option<[f64; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pq: Option<[f64; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overall: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Options of the stage.
#[derive(Debug, Clone)]
pub struct ScoreOptions {
    pub input: PathBuf,
    pub output: PathBuf,
    pub client: ClientConfig,
    /// Default `<output>/vlm-cache`.
    pub cache_dir: Option<PathBuf>,
    /// The user's own templates (default `pipelines/prompts/viescore_{sc,pq}.toml`).
    pub sc_template: Option<PathBuf>,
    pub pq_template: Option<PathBuf>,
    pub prep: ImagePrep,
}

impl ScoreOptions {
    pub fn new(
        input: impl Into<PathBuf>,
        output: impl Into<PathBuf>,
        client: ClientConfig,
    ) -> Self {
        ScoreOptions {
            input: input.into(),
            output: output.into(),
            client,
            cache_dir: None,
            sc_template: None,
            pq_template: None,
            prep: ImagePrep {
                multiple_of: None,
                ..ImagePrep::default()
            },
        }
    }
}

/// Means over the rows scored `ok` of one dataset.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DatasetScores {
    pub rows: u64,
    pub scored: u64,
    pub overall: f64,
    pub semantic_consistency: f64,
    pub perceptual_quality: f64,
}

/// What the stage did, and the per-dataset means over the whole output file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScoreSummary {
    /// Rows in the input.
    pub rows: u64,
    /// Rows already done by an earlier run.
    pub skipped: u64,
    pub scored: u64,
    pub rejected: u64,
    pub failed: u64,
    pub per_dataset: BTreeMap<String, DatasetScores>,
    pub usage: Usage,
}

/// Run the stage to completion (or resume it).
pub async fn run(opts: ScoreOptions) -> Result<ScoreSummary> {
    let input = if opts.input.is_dir() {
        opts.input.join("rows.jsonl")
    } else {
        opts.input.clone()
    };
    let rows = read_input(&input)?;
    let base = input.parent().unwrap_or(Path::new(".")).to_path_buf();
    std::fs::create_dir_all(&opts.output).map_err(|e| VlmError::io(&opts.output, e))?;
    let out_path = opts.output.join("scores.jsonl");
    let done = read_done(&out_path)?;

    let cache_dir = opts
        .cache_dir
        .clone()
        .unwrap_or_else(|| opts.output.join("vlm-cache"));
    let client = Client::new(opts.client.clone(), Some(Cache::open(cache_dir)?))?;
    let sc = match &opts.sc_template {
        Some(p) => PromptTemplate::load(p, builtin::SC_VARS)?,
        None => builtin::viescore_sc()?,
    };
    let pq = match &opts.pq_template {
        Some(p) => PromptTemplate::load(p, builtin::PQ_VARS)?,
        None => builtin::viescore_pq()?,
    };
    let verifier =
        Verifier::with_templates(client.clone(), sc, pq)?.with_image_prep(opts.prep.clone());

    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&out_path)
        .map_err(|e| VlmError::io(&out_path, e))?;
    let mut summary = ScoreSummary {
        rows: rows.len() as u64,
        ..ScoreSummary::default()
    };
    // Tasks hold images in memory: keep only a few per request slot in flight.
    let slots = Arc::new(tokio::sync::Semaphore::new(opts.client.concurrency * 2));
    let mut tasks = tokio::task::JoinSet::new();
    for row in rows {
        if done.contains(&row.id) {
            summary.skipped += 1;
            continue;
        }
        let permit = slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| VlmError::Config("scoring limiter closed".into()))?;
        let (verifier, base) = (verifier.clone(), base.clone());
        tasks.spawn(async move {
            let scored = score_row(&verifier, &base, &row).await;
            drop(permit);
            scored
        });
        while let Some(joined) = tasks.try_join_next() {
            record(&mut out, &out_path, joined, &mut summary)?;
        }
    }
    while let Some(joined) = tasks.join_next().await {
        record(&mut out, &out_path, joined, &mut summary)?;
    }
    out.sync_all().map_err(|e| VlmError::io(&out_path, e))?;
    summary.per_dataset = means(&out_path)?;
    summary.usage = client.usage();
    let summary_path = opts.output.join("summary.json");
    let text = serde_json::to_string_pretty(&summary).unwrap_or_default();
    std::fs::write(&summary_path, text).map_err(|e| VlmError::io(&summary_path, e))?;
    Ok(summary)
}

async fn score_row(verifier: &Verifier, base: &Path, row: &ScoreInput) -> ScoredRow {
    let mut out = ScoredRow {
        id: row.id.clone(),
        dataset: row.dataset.clone(),
        status: "failed".into(),
        sc: None,
        pq: None,
        overall: None,
        reason: None,
    };
    let read = |p: &Path| {
        let path = base.join(p);
        std::fs::read(&path)
            .map(Arc::new)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let (source, edited) = match (read(&row.source), read(&row.edited)) {
        (Ok(s), Ok(e)) => (s, e),
        (Err(e), _) | (_, Err(e)) => {
            out.reason = Some(e);
            return out;
        }
    };
    match verifier.score(source, edited, &row.instruction).await {
        Ok(v) => {
            out.status = "ok".into();
            out.sc = Some(v.sc);
            out.pq = Some(v.pq);
            out.overall = Some(v.overall);
        }
        Err(VlmError::Rejected { reason, .. }) => {
            out.status = "rejected".into();
            out.reason = Some(reason);
        }
        Err(e) => out.reason = Some(e.to_string()),
    }
    out
}

fn record(
    out: &mut std::fs::File,
    path: &Path,
    joined: std::result::Result<ScoredRow, tokio::task::JoinError>,
    summary: &mut ScoreSummary,
) -> Result<()> {
    let row = joined.map_err(|e| VlmError::Config(format!("a scoring task panicked: {e}")))?;
    match row.status.as_str() {
        "ok" => summary.scored += 1,
        "rejected" => summary.rejected += 1,
        _ => summary.failed += 1,
    }
    let mut line = serde_json::to_vec(&row).unwrap_or_default();
    line.push(b'\n');
    // One write per line: a kill leaves at most a partial last line, which resume drops.
    out.write_all(&line).map_err(|e| VlmError::io(path, e))
}

fn read_input(path: &Path) -> Result<Vec<ScoreInput>> {
    let file = std::fs::File::open(path).map_err(|e| VlmError::io(path, e))?;
    let mut rows = Vec::new();
    let mut ids = HashSet::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| VlmError::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |reason: String| VlmError::Input {
            path: path.to_path_buf(),
            line: i + 1,
            reason,
        };
        let row: ScoreInput = serde_json::from_str(&line).map_err(|e| {
            bad(format!(
                "{e}; expected {{\"id\", \"dataset\", \"source\", \"edited\", \"instruction\"}}"
            ))
        })?;
        if !ids.insert(row.id.clone()) {
            return Err(bad(format!("id {:?} appears twice", row.id)));
        }
        rows.push(row);
    }
    Ok(rows)
}

/// Ids already scored or rejected. A partial last line (a kill mid-write) is cut off.
fn read_done(path: &Path) -> Result<HashSet<String>> {
    let mut done = HashSet::new();
    let Ok(bytes) = std::fs::read(path) else {
        return Ok(done);
    };
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if complete < bytes.len() {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| VlmError::io(path, e))?;
        f.set_len(complete as u64)
            .map_err(|e| VlmError::io(path, e))?;
    }
    for line in bytes[..complete].split(|&b| b == b'\n') {
        if let Ok(row) = serde_json::from_slice::<ScoredRow>(line)
            && row.status != "failed"
        {
            done.insert(row.id);
        }
    }
    Ok(done)
}

/// Per-dataset means over the final state of the output (a later line for an id wins).
fn means(path: &Path) -> Result<BTreeMap<String, DatasetScores>> {
    let bytes = std::fs::read(path).map_err(|e| VlmError::io(path, e))?;
    let mut last: BTreeMap<String, ScoredRow> = BTreeMap::new();
    for line in bytes.split(|&b| b == b'\n') {
        if let Ok(row) = serde_json::from_slice::<ScoredRow>(line) {
            last.insert(row.id.clone(), row);
        }
    }
    let mut out: BTreeMap<String, DatasetScores> = BTreeMap::new();
    for row in last.values() {
        let d = out.entry(row.dataset.clone()).or_default();
        d.rows += 1;
        if let (Some(sc), Some(pq), Some(o)) = (row.sc, row.pq, row.overall) {
            d.scored += 1;
            d.overall += o;
            d.semantic_consistency += sc[0].min(sc[1]);
            d.perceptual_quality += pq[0].min(pq[1]);
        }
    }
    for d in out.values_mut() {
        let n = d.scored.max(1) as f64;
        d.overall /= n;
        d.semantic_consistency /= n;
        d.perceptual_quality /= n;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_drops_a_partial_line_and_keeps_failed_rows_for_retry() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("scores.jsonl");
        std::fs::write(
            &p,
            "{\"id\":\"a\",\"dataset\":\"d\",\"status\":\"ok\",\"sc\":[8,6],\"pq\":[9,9],\"overall\":7.3}\n\
             {\"id\":\"b\",\"dataset\":\"d\",\"status\":\"failed\",\"reason\":\"x\"}\n\
             {\"id\":\"c\",\"dataset\":\"d\",\"sta",
        )
        .unwrap();
        let done = read_done(&p).unwrap();
        assert_eq!(done, HashSet::from(["a".to_string()]));
        assert!(std::fs::read_to_string(&p).unwrap().ends_with("\"x\"}\n"));
        let m = means(&p).unwrap();
        assert_eq!(m["d"].rows, 2);
        assert_eq!(m["d"].scored, 1);
        assert_eq!(m["d"].semantic_consistency, 6.0);
    }

    #[test]
    fn input_errors_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("rows.jsonl");
        std::fs::write(&p, "{\"id\":\"a\",\"dataset\":\"d\",\"source\":\"s\",\"edited\":\"e\",\"instruction\":\"i\"}\n\n{\"id\":1}\n").unwrap();
        let e = read_input(&p).unwrap_err().to_string();
        assert!(e.contains("line 3"), "{e}");
    }
}
