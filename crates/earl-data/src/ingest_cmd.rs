//! `earl-data ingest <recipe> --source … --out …`

use std::path::PathBuf;

use anyhow::Context;
use earl_ingest::{IngestOptions, Recipe, Source};

use crate::ui;

#[derive(clap::Args, Debug, Clone)]
pub struct IngestArgs {
    /// Built-in recipe: omniedit, magicbrush, humanedit, aurora, vismin, generic.
    pub recipe: String,
    /// Hub dataset id (`org/name`, `hub:org/name@rev`) or a local folder/file of Parquet,
    /// Arrow (save_to_disk) or JSONL. Default: the recipe's Hub id.
    #[arg(long)]
    pub source: Option<String>,
    /// Output dataset directory.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub common: IngestCommon,
}

/// Options shared by `ingest` and `build`.
#[derive(clap::Args, Debug, Clone)]
pub struct IngestCommon {
    /// A recipe TOML of your own instead of a built-in one.
    #[arg(long)]
    pub recipe_file: Option<PathBuf>,
    /// Read only this split (train, dev, validation, ...).
    #[arg(long)]
    pub split: Option<String>,
    /// Stop after this many rows (per rank).
    #[arg(long)]
    pub limit: Option<u64>,
    #[command(flatten)]
    pub rank: ui::RankArgs,
    /// Exit non-zero when more than this share of rows is rejected (the output is still written).
    #[arg(long, default_value_t = 0.05)]
    pub max_reject_fraction: f64,
    /// Target shard size in MiB.
    #[arg(long, default_value_t = 256)]
    pub shard_size_mb: u64,
    /// zstd level of the shards.
    #[arg(long, default_value_t = 3)]
    pub zstd_level: i32,
    /// Keep only rows with o_score at least this (overrides the recipe).
    #[arg(long)]
    pub min_o_score: Option<f32>,
    /// Keep only rows with min(sc_score_1, sc_score_2) at least this.
    #[arg(long)]
    pub min_sc_score: Option<f32>,
    /// Keep only rows with pq_score at least this.
    #[arg(long)]
    pub min_pq_score: Option<f32>,
    /// Seed of the instruction choice among alternatives (recipes with choose = "seeded").
    #[arg(long)]
    pub instruction_seed: Option<u64>,
    /// generic recipe: the id column.
    #[arg(long)]
    pub id_key: Option<String>,
    /// generic recipe: the source (original) image column.
    #[arg(long)]
    pub source_image_key: Option<String>,
    /// generic recipe: the target (edited) image column.
    #[arg(long)]
    pub target_image_key: Option<String>,
    /// generic recipe: the instruction column (text or list of text).
    #[arg(long)]
    pub instruction_key: Option<String>,
    /// Largest image accepted, in pixels (decompression-bomb guard).
    #[arg(long, default_value_t = 89_478_485)]
    pub max_pixels: u64,
    /// Largest long/short side ratio accepted.
    #[arg(long, default_value_t = 5.0)]
    pub max_aspect: f64,
}

impl IngestCommon {
    pub fn recipe(&self, name: &str) -> anyhow::Result<Recipe> {
        let mut r = match &self.recipe_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                Recipe::parse(&path.display().to_string(), &text)?
            }
            None => Recipe::builtin(name)?,
        };
        let c = &mut r.columns;
        if let Some(k) = &self.id_key {
            c.id = Some(k.clone());
        }
        if let Some(k) = &self.source_image_key {
            c.source_image = k.clone();
        }
        if let Some(k) = &self.target_image_key {
            c.target_image = k.clone();
        }
        if let Some(k) = &self.instruction_key {
            c.instruction = Some(k.clone());
            c.instructions = None;
        }
        let f = &mut r.filters;
        f.min_o_score = self.min_o_score.or(f.min_o_score);
        f.min_sc_score = self.min_sc_score.or(f.min_sc_score);
        f.min_pq_score = self.min_pq_score.or(f.min_pq_score);
        if let Some(seed) = self.instruction_seed {
            r.instruction.seed = seed;
        }
        Ok(r)
    }

    pub fn options(&self, out: PathBuf) -> anyhow::Result<IngestOptions> {
        let mut o = IngestOptions::new(out);
        o.split = self.split.clone();
        o.limit = self.limit;
        o.rank = self.rank.resolve()?;
        o.max_reject_fraction = self.max_reject_fraction;
        o.writer.target_shard_bytes = self.shard_size_mb.max(1) << 20;
        o.writer.zstd_level = self.zstd_level;
        o.limits.max_pixels = self.max_pixels;
        o.limits.max_aspect = self.max_aspect;
        o.progress = ui::progress("ingest");
        Ok(o)
    }
}

/// Resolves `--source` (or the recipe's Hub id) to local files.
pub fn resolve_source(recipe: &Recipe, source: Option<&str>) -> anyhow::Result<Source> {
    let given = match (source, &recipe.hub) {
        (Some(s), _) => s.to_string(),
        (None, Some(hub)) => format!("hub:{hub}"),
        (None, None) => anyhow::bail!(
            "recipe `{}` has no Hub id: give --source <path or hub id>",
            recipe.name
        ),
    };
    match earl_hub::Source::parse(&given)? {
        earl_hub::Source::Local(path) => {
            Source::local(&path, &recipe.format, recipe.files.as_deref())
                .map_err(anyhow::Error::msg)
        }
        earl_hub::Source::Hub(hub) => {
            let pattern = recipe
                .files
                .clone()
                .unwrap_or_else(|| "**/*.parquet".into());
            tracing::info!(repo = %hub.repo, revision = ?hub.revision, %pattern, "resolving Hub dataset");
            let client = earl_hub::HubClient::from_env()?;
            let files = client.dataset_files(&hub.repo, hub.revision.as_deref(), &pattern)?;
            anyhow::ensure!(!files.is_empty(), "{}: no file matches {pattern}", hub.repo);
            // Snapshot paths are <snapshot>/<repo path>: the snapshot is the root.
            let depth = pattern.matches('/').count() + 1;
            let root = files[0]
                .ancestors()
                .nth(depth)
                .map(PathBuf::from)
                .unwrap_or_default();
            Source::from_files(root, files, &recipe.format).map_err(anyhow::Error::msg)
        }
    }
}

pub fn run(a: IngestArgs) -> anyhow::Result<()> {
    let recipe = a.common.recipe(&a.recipe)?;
    let source = resolve_source(&recipe, a.source.as_deref())?;
    let opts = a.common.options(a.out.clone())?;
    let summary = earl_ingest::ingest(&recipe, &source, &opts)?;
    if summary.already_complete {
        eprintln!(
            "ingest: {} is already complete (delete it to start over)",
            summary.dir.display()
        );
    }
    ui::summary("ingest", &summary.dir, &summary.manifest);
    Ok(())
}
