//! `earl-data cot-annotate` and `earl-data score`: the stages that ask a vision-language model
//! (any OpenAI-compatible server, e.g. vLLM serving Qwen2.5-VL-72B).

use std::path::PathBuf;

use earl_vlm::annotate::{AnnotateOptions, AnnotateSummary};
use earl_vlm::config::ClientConfig;
use earl_vlm::score::ScoreOptions;

/// How to reach the model; shared by every VLM stage (and `build --cot`).
#[derive(clap::Args, Debug, Clone)]
pub struct ServerArgs {
    /// Server root, e.g. http://localhost:8000 (`/v1/chat/completions` is appended).
    #[arg(long)]
    pub endpoint: String,
    /// Served model name, e.g. Qwen/Qwen2.5-VL-72B-Instruct.
    #[arg(long)]
    pub model: String,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Seconds allowed for one request.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// Environment variable holding the API key (never logged).
    #[arg(long, default_value = "OPENAI_API_KEY")]
    pub api_key_env: String,
    /// File holding the API key, used when the variable is unset.
    #[arg(long)]
    pub api_key_file: Option<PathBuf>,
    /// Downscale images sent to the model so the long side is at most this (boxes are scaled back).
    #[arg(long)]
    pub max_side: Option<u32>,
}

impl ServerArgs {
    pub fn client(&self) -> anyhow::Result<ClientConfig> {
        let mut c = ClientConfig::new(&self.endpoint, &self.model)
            .with_api_key_from(&self.api_key_env, self.api_key_file.as_deref())?;
        c.concurrency = self.concurrency.max(1);
        c.timeout = std::time::Duration::from_secs(self.timeout.max(1));
        Ok(c)
    }
}

#[derive(clap::Args, Debug)]
pub struct AnnotateArgs {
    /// Input triplet.v1 dataset.
    #[arg(long = "in")]
    pub input: PathBuf,
    /// Output triplet.v1 dataset with the CoT columns filled.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub server: ServerArgs,
    /// Your own prompt template (default pipelines/prompts/cot_edit.toml).
    #[arg(long)]
    pub template: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct ScoreArgs {
    /// JSONL of {id, dataset, source, edited, instruction} rows (image paths relative to it),
    /// or a folder holding rows.jsonl.
    #[arg(long = "in")]
    pub input: PathBuf,
    /// Output folder: scores.jsonl and the request cache.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub server: ServerArgs,
    /// Your own semantic-consistency template.
    #[arg(long)]
    pub sc_template: Option<PathBuf>,
    /// Your own perceptual-quality template.
    #[arg(long)]
    pub pq_template: Option<PathBuf>,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Runs cot-annotate from `input` to `out`; also used by `build --cot`.
pub fn annotate(
    input: PathBuf,
    out: PathBuf,
    server: &ServerArgs,
    template: Option<PathBuf>,
) -> anyhow::Result<AnnotateSummary> {
    let mut opts = AnnotateOptions::new(input, out.clone(), server.client()?);
    opts.template = template;
    if server.max_side.is_some() {
        opts.prep.max_side = server.max_side;
    }
    let s = runtime()?.block_on(earl_vlm::annotate::run(opts))?;
    if s.already_complete {
        eprintln!("cot-annotate: {} is already complete", out.display());
    } else {
        eprintln!(
            "cot-annotate: {} rows -> {} annotated, {} rejected (bad replies, kept in rejects/), {} failed requests\n  {}",
            s.rows, s.annotated, s.rejected, s.failed, s.usage
        );
    }
    Ok(s)
}

pub fn run_annotate(a: AnnotateArgs) -> anyhow::Result<()> {
    annotate(a.input, a.out, &a.server, a.template).map(|_| ())
}

pub fn run_score(a: ScoreArgs) -> anyhow::Result<()> {
    let mut opts = ScoreOptions::new(a.input, a.out.clone(), a.server.client()?);
    opts.sc_template = a.sc_template;
    opts.pq_template = a.pq_template;
    if a.server.max_side.is_some() {
        opts.prep.max_side = a.server.max_side;
    }
    let s = runtime()?.block_on(earl_vlm::score::run(opts))?;
    eprintln!(
        "score: {} rows ({} already done): {} scored, {} rejected, {} failed -> {}/scores.jsonl\n  {}",
        s.rows,
        s.skipped,
        s.scored,
        s.rejected,
        s.failed,
        a.out.display(),
        s.usage
    );
    println!("dataset\trows\tscored\toverall\tsemantic_consistency\tperceptual_quality");
    for (name, d) in &s.per_dataset {
        println!(
            "{name}\t{}\t{}\t{:.3}\t{:.3}\t{:.3}",
            d.rows, d.scored, d.overall, d.semantic_consistency, d.perceptual_quality
        );
    }
    anyhow::ensure!(
        s.failed == 0,
        "{} rows failed (server errors); rerun the same command to retry them",
        s.failed
    );
    Ok(())
}
