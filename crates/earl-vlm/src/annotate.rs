//! The `cot-annotate` stage: for every triplet, ask the VLM for a reasoning trace and the edit
//! box, and write the triplet back with its CoT columns filled.
//!
//! Every row is kept: `cot_status` is `ok`, `rejected: <reason>` (every reply failed the
//! checks; `cot_raw` holds the last one) or `failed: <error>` (the server never answered).
//! Answers are cached the moment they arrive, so a killed run, rerun, finishes the rest
//! without asking anything twice; the output directory resumes from its last commit.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use earl_format::{
    Cot, Dataset, DatasetWriter, FinishInfo, Opened, SchemaKind, Triplet, WriterOptions, read_shard,
};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::cache::{Cache, KeyParts};
use crate::client::{ChatRequest, Client};
use crate::config::{ClientConfig, Sampling};
use crate::cot::{CotAnswer, CotLimits, parse_cot};
use crate::error::{Result, VlmError};
use crate::image_prep::{ImagePrep, box_to_original, prepare, sent_size, sha256_hex};
use crate::stats::Usage;
use crate::template::{PromptTemplate, builtin};

/// Options of the stage (the CLI fills these).
#[derive(Debug, Clone)]
pub struct AnnotateOptions {
    /// A triplet.v1 dataset directory.
    pub input: PathBuf,
    /// Output dataset directory (triplet.v1 with CoT columns).
    pub output: PathBuf,
    /// Endpoint, model, key, concurrency, timeouts, retries.
    pub client: ClientConfig,
    /// Request cache; default `<output>/.earl/vlm-cache` (keep it to make reruns free).
    pub cache_dir: Option<PathBuf>,
    /// A template file of the user's; default `pipelines/prompts/cot_edit.toml`.
    pub template: Option<PathBuf>,
    pub prep: ImagePrep,
    pub sampling: Option<Sampling>,
    pub limits: CotLimits,
    /// Rows read per input batch; defaults to twice the concurrency (at least 32).
    pub batch_rows: Option<usize>,
}

impl AnnotateOptions {
    pub fn new(
        input: impl Into<PathBuf>,
        output: impl Into<PathBuf>,
        client: ClientConfig,
    ) -> Self {
        AnnotateOptions {
            input: input.into(),
            output: output.into(),
            client,
            cache_dir: None,
            template: None,
            prep: ImagePrep::default(),
            sampling: None,
            limits: CotLimits::default(),
            batch_rows: None,
        }
    }
}

/// What the stage did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct AnnotateSummary {
    /// Rows handled in this run (rows committed by an earlier run are not counted again).
    pub rows: u64,
    pub annotated: u64,
    pub rejected: u64,
    pub failed: u64,
    /// True when the output was already complete and nothing was done.
    pub already_complete: bool,
    pub usage: Usage,
}

/// Where the stage is in its input: shard index and batch index within it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
struct Cursor {
    shard: usize,
    batch: usize,
}

/// Run the stage to completion (or resume it).
pub async fn run(opts: AnnotateOptions) -> Result<AnnotateSummary> {
    let fmt = |e: earl_format::FormatError| VlmError::Format(e.to_string());
    let template = Arc::new(match &opts.template {
        Some(path) => PromptTemplate::load(path, builtin::COT_VARS)?,
        None => builtin::cot_edit()?,
    });
    let sampling = opts.sampling.clone().unwrap_or(Sampling {
        max_tokens: template.max_tokens.unwrap_or(768),
        ..Sampling::default()
    });
    let input = Dataset::open(&opts.input).map_err(fmt)?;
    let fingerprint = fingerprint(&input, &opts, &template, &sampling);
    let wopts = WriterOptions::for_kind(SchemaKind::Triplet);
    let mut writer =
        match DatasetWriter::open(&opts.output, SchemaKind::Triplet, wopts, &fingerprint)
            .map_err(fmt)?
        {
            Opened::Complete(_) => {
                return Ok(AnnotateSummary {
                    already_complete: true,
                    ..AnnotateSummary::default()
                });
            }
            Opened::Writer(w) => w,
        };
    let cache_dir = opts
        .cache_dir
        .clone()
        .unwrap_or_else(|| opts.output.join(".earl").join("vlm-cache"));
    let client = Client::new(opts.client.clone(), Some(Cache::open(cache_dir)?))?;
    let job = Arc::new(Job {
        client: client.clone(),
        template: template.clone(),
        prep: opts.prep.clone(),
        sampling,
        limits: opts.limits.clone(),
    });

    let start: Cursor = writer
        .resume_cursor()
        .and_then(|c| serde_json::from_value(c.clone()).ok())
        .unwrap_or(Cursor { shard: 0, batch: 0 });
    let batch_rows = opts
        .batch_rows
        .unwrap_or(opts.client.concurrency * 2)
        .max(1);
    let mut summary = AnnotateSummary::default();
    let shards = input.shards(None);
    let mut end = start;
    if !writer.finishing() {
        for (si, shard) in shards.iter().enumerate().skip(start.shard) {
            let skip = if si == start.shard { start.batch } else { 0 };
            let reader = read_shard(shard, batch_rows).map_err(fmt)?;
            for (bi, batch) in reader.enumerate().skip(skip) {
                let batch =
                    batch.map_err(|e| VlmError::Format(format!("{}: {e}", shard.display())))?;
                let rows = Triplet::from_batch(&batch).map_err(fmt)?;
                let name = shard.file_name().map(|n| n.to_string_lossy().into_owned());
                let name = name.unwrap_or_default();
                writer.count_read(rows.len() as u64);
                let done = annotate_batch(&job, rows, bi * batch_rows, &name, &mut summary).await;
                write_rows(&mut writer, &done).map_err(fmt)?;
                end = Cursor {
                    shard: si,
                    batch: bi + 1,
                };
                writer.commit(json!(end)).map_err(fmt)?;
            }
            end = Cursor {
                shard: si + 1,
                batch: 0,
            };
        }
    }
    summary.usage = client.usage();
    let info = FinishInfo {
        recipe: json!({
            "stage": "cot-annotate",
            "input": opts.input.display().to_string(),
            "model": opts.client.model,
            "prompt": template.tag(),
            "image_prep": opts.prep,
            "sampling": job.sampling,
        }),
        extra: json!({ "cot": summary }),
        title: format!(
            "{} with chain-of-thought annotations",
            dataset_title(&opts.input)
        ),
    };
    writer.finish(json!(end), info).map_err(fmt)?;
    Ok(summary)
}

struct Job {
    client: Client,
    template: Arc<PromptTemplate>,
    prep: ImagePrep,
    sampling: Sampling,
    limits: CotLimits,
}

/// Annotate one batch concurrently; rows come back in input order with `(source, triplet)`.
async fn annotate_batch(
    job: &Arc<Job>,
    rows: Vec<Triplet>,
    first_row: usize,
    shard: &str,
    summary: &mut AnnotateSummary,
) -> Vec<(String, Triplet)> {
    let mut tasks = tokio::task::JoinSet::new();
    let n = rows.len();
    for (i, t) in rows.into_iter().enumerate() {
        let job = job.clone();
        tasks.spawn(async move {
            let cot = annotate_one(&job, &t).await;
            (
                i,
                Triplet {
                    cot: Some(cot),
                    ..t
                },
            )
        });
    }
    let mut out: Vec<Option<Triplet>> = vec![None; n];
    while let Some(joined) = tasks.join_next().await {
        // A panicking task is a bug; the row is then missing and counted as failed.
        if let Ok((i, t)) = joined {
            out[i] = Some(t);
        }
    }
    let mut done = Vec::with_capacity(n);
    for (i, t) in out.into_iter().enumerate() {
        summary.rows += 1;
        let Some(t) = t else {
            summary.failed += 1;
            continue;
        };
        match t.cot.as_ref().map(|c| c.status.as_str()) {
            Some("ok") => summary.annotated += 1,
            Some(s) if s.starts_with("rejected") => summary.rejected += 1,
            _ => summary.failed += 1,
        }
        done.push((format!("{shard}:{}", first_row + i), t));
    }
    done
}

/// Ask for one triplet's CoT; never fails (the outcome is in `status`).
async fn annotate_one(job: &Job, t: &Triplet) -> Cot {
    let tag = job.template.tag();
    let model = job.client.config().model.clone();
    let cot = |text: Option<String>, bbox, raw: String, status: String| Cot {
        text,
        bbox,
        model: model.clone(),
        prompt: tag.clone(),
        raw,
        status,
    };
    let orig = (t.source.width, t.source.height);
    let (sw, sh) = sent_size(orig.0, orig.1, &job.prep);
    let (ws, hs) = (sw.to_string(), sh.to_string());
    let (system, text) = job.template.render(&[
        ("instruction", t.instruction.as_str()),
        ("width", ws.as_str()),
        ("height", hs.as_str()),
    ]);
    let hashes = [sha256_hex(&t.source.bytes)];
    let key = KeyParts {
        model: &model,
        template: &tag,
        system: &system,
        text: &text,
        images: &hashes,
        prep: &job.prep,
        sampling: &job.sampling,
        schema: job.template.schema.as_ref(),
    }
    .cache_key();
    let build = {
        let (bytes, prep, sampling, id) = (
            t.source.bytes.clone(),
            job.prep.clone(),
            job.sampling.clone(),
            t.id.clone(),
        );
        let schema = job.template.response_schema();
        move || {
            let img = prepare(&bytes, &prep, &format!("source image of {id}"))?;
            if (img.orig_width, img.orig_height) != orig {
                return Err(VlmError::Image {
                    what: format!("source image of {id}"),
                    reason: format!(
                        "decodes to {}x{} but the row says {}x{}; re-ingest this dataset",
                        img.orig_width, img.orig_height, orig.0, orig.1
                    ),
                });
            }
            Ok(ChatRequest {
                system,
                images: vec![img.data_url],
                text,
                schema,
                sampling,
            })
        }
    };
    let parse = |reply: &str| parse_cot(reply, sw, sh, &job.limits);
    match job.client.ask(Some(key), build, parse).await {
        Ok(answer) => {
            let a: CotAnswer = answer.value;
            let bbox = box_to_original(a.bbox, (sw, sh), orig);
            cot(Some(a.trace()), Some(bbox), answer.raw, "ok".into())
        }
        Err(VlmError::Rejected { reason, raw, .. }) => {
            cot(None, None, raw, format!("rejected: {reason}"))
        }
        Err(e) => cot(None, None, String::new(), format!("failed: {e}")),
    }
}

/// Write rows split by split, keeping input order within each.
fn write_rows(writer: &mut DatasetWriter, rows: &[(String, Triplet)]) -> earl_format::Result<()> {
    let mut splits: Vec<&str> = rows.iter().map(|(_, t)| t.split.as_str()).collect();
    splits.dedup();
    splits.sort_unstable();
    splits.dedup();
    for split in splits {
        let (sources, ts): (Vec<String>, Vec<Triplet>) = rows
            .iter()
            .filter(|(_, t)| t.split == split)
            .map(|(s, t)| (s.clone(), t.clone()))
            .unzip();
        let batch = Triplet::to_batch(&ts)?;
        writer.write(split, &batch, &sources)?;
    }
    Ok(())
}

/// Identifies the job: same input shards, model, prompt and options.
fn fingerprint(
    input: &Dataset,
    opts: &AnnotateOptions,
    template: &PromptTemplate,
    sampling: &Sampling,
) -> String {
    let shards: Vec<&str> = input
        .manifest
        .shards
        .iter()
        .map(|s| s.sha256.as_str())
        .collect();
    let parts = json!({
        "stage": "cot-annotate",
        "shards": shards,
        "model": opts.client.model,
        "prompt": template.tag(),
        "prep": opts.prep,
        "sampling": sampling,
        "limits": opts.limits,
    });
    hex::encode(Sha256::digest(parts.to_string().as_bytes()))
}

fn dataset_title(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "dataset".into())
}
