//! `earl-data tokenize`, `earl-data build` (ingest → tokenize) and `earl-data render`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use earl_tokenize::earl_vq::{self, VqModel};
use earl_tokenize::{TokenizeOptions, VqSource};
use indicatif::ProgressStyle;

use crate::ingest_cmd::IngestCommon;
use crate::ui;

/// Which tokenizer, where and how it runs (shared by `tokenize`, `build` and `render`).
#[derive(clap::Args, Debug, Clone)]
pub struct VqArgs {
    /// The VQ tokenizer: a folder with config.json + model.safetensors, a Hub id
    /// (hub:BAAI/Emu3-VisionTokenizer), or tiny-random (random weights, for demos).
    #[arg(long, default_value = "hub:BAAI/Emu3-VisionTokenizer")]
    pub vq: String,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// fp32 or bf16 (bf16 on CUDA only).
    #[arg(long, default_value = "fp32")]
    pub dtype: String,
}

impl VqArgs {
    pub fn load(&self) -> anyhow::Result<VqModel> {
        let device = earl_vq::parse_device(&self.device)?;
        let kind = earl_vq::parse_kind(&self.dtype)?;
        tracing::info!(vq = %self.vq, device = %self.device, dtype = %self.dtype, "loading the VQ tokenizer");
        Ok(VqSource::parse(&self.vq)?.load(device, kind)?)
    }
}

/// Options of the tokenize stage proper (shared by `tokenize` and `build`).
#[derive(clap::Args, Debug, Clone)]
pub struct TokenizeStage {
    #[command(flatten)]
    pub vq: VqArgs,
    /// Pixel budget of the resize before encoding (65536 = 256x256 -> 32x32 codes).
    #[arg(long, default_value_t = 65536)]
    pub image_area: u32,
    /// Images per encoder call (images of one size are batched together).
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Threads decoding and resizing (default: one per core).
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// Target token shard size in MiB.
    #[arg(long, default_value_t = 64)]
    pub token_shard_size_mb: u64,
}

impl TokenizeStage {
    fn options(&self, input: PathBuf, out: PathBuf) -> TokenizeOptions {
        let mut o = TokenizeOptions::new(input, out);
        o.image_area = self.image_area;
        o.batch_size = self.batch_size.max(1);
        // Enough rows per step that images of equal size fill whole batches.
        o.batch_rows = (8 * o.batch_size).max(64);
        o.workers = self.workers;
        o.writer.target_shard_bytes = self.token_shard_size_mb.max(1) << 20;
        let bar = ui::progress("tokenize");
        if let Ok(style) = ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} rows eta {eta} {msg}",
        ) {
            bar.set_style(style);
        }
        o.progress = bar;
        o
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct TokenizeArgs {
    /// A finished triplet.v1 dataset (the output of ingest).
    #[arg(long = "in")]
    pub input: PathBuf,
    /// Output tokens.v1 dataset directory.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub stage: TokenizeStage,
    /// Stop after this many rows (per rank).
    #[arg(long)]
    pub limit: Option<u64>,
    #[command(flatten)]
    pub rank: ui::RankArgs,
}

pub fn tokenize(a: TokenizeArgs) -> anyhow::Result<()> {
    let model = a.stage.vq.load()?;
    let rank = a.rank.resolve()?;
    let mut o = a.stage.options(a.input, a.out);
    o.limit = a.limit;
    o.rank = earl_tokenize::Rank {
        rank: rank.rank,
        world: rank.world,
    };
    run_stage(&model, &o)
}

fn run_stage(model: &VqModel, o: &TokenizeOptions) -> anyhow::Result<()> {
    let s = earl_tokenize::tokenize(model, o)?;
    if s.already_complete {
        eprintln!(
            "tokenize: {} is already complete (delete it to start over)",
            s.dir.display()
        );
    } else {
        eprintln!(
            "tokenize: encoded {} images at {:.2} images/s",
            s.images, s.images_per_s
        );
    }
    let m = s
        .manifest
        .context("tokenize stopped before the end; rerun to continue")?;
    ui::summary("tokenize", &s.dir, &m);
    Ok(())
}

#[derive(clap::Args, Debug, Clone)]
pub struct BuildArgs {
    /// Built-in recipe: omniedit, magicbrush, humanedit, aurora, vismin, generic.
    pub recipe: String,
    /// Source dataset (Hub id or local path). Default for omniedit: the bundled
    /// datasets/samples/omniedit-mini; for other recipes their Hub id.
    #[arg(long)]
    pub source: Option<String>,
    /// Output folder: <out>/triplets and <out>/tokens.
    #[arg(long, default_value = "earl-build")]
    pub out: PathBuf,
    #[command(flatten)]
    pub common: IngestCommon,
    #[command(flatten)]
    pub stage: TokenizeStage,
    /// Ask a VLM for a reasoning trace and edit box of every triplet between ingest and
    /// tokenize (cot-annotate into <out>/annotated); needs --endpoint and --model.
    #[arg(long, requires_all = ["endpoint", "model"])]
    pub cot: bool,
    /// With --cot: the OpenAI-compatible server root, e.g. http://localhost:8000.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// With --cot: the served model name, e.g. Qwen/Qwen2.5-VL-72B-Instruct.
    #[arg(long)]
    pub model: Option<String>,
    /// With --cot: requests in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
}

/// The bundled sample, found from the working directory or from the source tree this binary
/// was built from.
fn bundled_sample() -> anyhow::Result<PathBuf> {
    const REL: &str = "datasets/samples/omniedit-mini";
    let built = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(REL);
    [PathBuf::from(REL), built]
        .into_iter()
        .find(|p| p.join("data").is_dir())
        .with_context(|| {
            format!(
                "no --source given and the bundled sample {REL} is neither under the current \
                 directory nor in the source tree ({}); run from the earl checkout or pass \
                 --source <path or hub id>",
                env!("CARGO_MANIFEST_DIR")
            )
        })
}

pub fn build(a: BuildArgs) -> anyhow::Result<()> {
    let recipe = a.common.recipe(&a.recipe)?;
    let source = match (&a.source, a.recipe.as_str()) {
        (None, "omniedit") => Some(bundled_sample()?.display().to_string()),
        (s, _) => s.clone(),
    };
    // Load the tokenizer first: a missing one should fail before the long ingest.
    let model = a.stage.vq.load()?;
    let source = crate::ingest_cmd::resolve_source(&recipe, source.as_deref())?;
    let ingest = earl_ingest::ingest(&recipe, &source, &a.common.options(a.out.join("triplets"))?)?;

    let triplets = match (a.cot, &a.endpoint, &a.model) {
        (true, Some(endpoint), Some(model)) => {
            let server = crate::vlm_cmd::ServerArgs {
                endpoint: endpoint.clone(),
                model: model.clone(),
                concurrency: a.concurrency,
                timeout: 120,
                api_key_env: "OPENAI_API_KEY".into(),
                api_key_file: None,
                max_side: None,
            };
            let annotated = a.out.join("annotated").join(
                ingest
                    .dir
                    .strip_prefix(a.out.join("triplets"))
                    .unwrap_or(Path::new("")),
            );
            crate::vlm_cmd::annotate(ingest.dir.clone(), annotated.clone(), &server, None)?;
            annotated
        }
        _ => ingest.dir.clone(),
    };

    // Each rank tokenizes the triplets it ingested, into the matching rank folder of tokens.
    let rank = a.common.rank.resolve()?;
    let tokens = rank.output_dir(&a.out.join("tokens"));
    let o = a.stage.options(triplets, tokens);
    let s = earl_tokenize::tokenize(&model, &o)?;
    let m = s
        .manifest
        .context("tokenize stopped before the end; rerun to continue")?;
    ui::summary("ingest", &ingest.dir, &ingest.manifest);
    ui::summary("tokenize", &s.dir, &m);
    eprintln!(
        "build: {} images encoded at {:.2} images/s",
        s.images, s.images_per_s
    );
    if rank.world > 1 {
        eprintln!(
            "build: rank {} of {} done; when all are, run `earl-data finalize {}` and \
             `earl-data finalize {}`",
            rank.rank,
            rank.world,
            a.out.join("triplets").display(),
            a.out.join("tokens").display()
        );
    }
    Ok(())
}

#[derive(clap::Args, Debug, Clone)]
pub struct RenderArgs {
    /// A tokens.v1 dataset.
    pub tokens: PathBuf,
    /// The row to draw.
    #[arg(long)]
    pub id: String,
    /// PNG to write: source | target, the CoT box outlined in red on the source.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub vq: VqArgs,
}

pub fn render(a: RenderArgs) -> anyhow::Result<()> {
    let row = earl_tokenize::find_row(&a.tokens, &a.id)?
        .with_context(|| format!("no row with id {} in {}", a.id, a.tokens.display()))?;
    let model = a.vq.load()?;
    let image = earl_tokenize::render_row(&model, &row)?;
    image
        .save_with_format(&a.out, image::ImageFormat::Png)
        .with_context(|| format!("writing {}", a.out.display()))?;
    eprintln!(
        "render: {} ({}x{} | {}x{} codes) -> {}",
        row.id,
        row.source_h,
        row.source_w,
        row.target_h,
        row.target_w,
        a.out.display()
    );
    Ok(())
}
