//! Looking at datasets: stats, query (DataFusion SQL), validate, schema, finalize, resize.

use std::path::PathBuf;

use anyhow::Context;
use arrow::array::RecordBatch;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use earl_format::{Dataset, FinishInfo, Manifest, SchemaKind};

#[derive(clap::Args, Debug)]
pub struct FinalizeArgs {
    /// The output directory of a run with --world-size > 1.
    pub dir: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct StatsArgs {
    pub dir: PathBuf,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum OutFormat {
    Table,
    Json,
    Csv,
}

#[derive(clap::Args, Debug)]
pub struct QueryArgs {
    pub dir: PathBuf,
    /// SQL over the table `data`, e.g. "SELECT split, count(*) FROM data GROUP BY split".
    pub sql: String,
    #[arg(long, value_enum, default_value = "table")]
    pub format: OutFormat,
}

#[derive(clap::Args, Debug)]
pub struct ValidateArgs {
    pub dir: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct SchemaArgs {
    /// triplet.v1 or tokens.v1
    pub name: String,
    /// The readable Markdown kept in schemas/ (default: the Arrow schema).
    #[arg(long)]
    pub markdown: bool,
}

#[derive(clap::Args, Debug)]
pub struct ResizeArgs {
    pub image: PathBuf,
    pub out: PathBuf,
    /// Target pixel area (the tokenizer's --image-area).
    #[arg(long, default_value_t = 65536)]
    pub area: u32,
}

pub fn finalize(a: FinalizeArgs) -> anyhow::Result<()> {
    let info = FinishInfo {
        title: "earl dataset (merged ranks)".into(),
        ..Default::default()
    };
    let m = earl_format::merge_ranks(&a.dir, info)?;
    crate::ui::summary("finalize", &a.dir, &m);
    Ok(())
}

pub fn validate(a: ValidateArgs) -> anyhow::Result<()> {
    let ds = Dataset::open(&a.dir)?;
    let r = ds.validate();
    for p in &r.problems {
        eprintln!("problem: {p}");
    }
    anyhow::ensure!(
        r.problems.is_empty(),
        "{}: {} problems found",
        a.dir.display(),
        r.problems.len()
    );
    println!(
        "{}: ok — {} shards, {} rows, {} bytes, schema {}",
        a.dir.display(),
        r.shards,
        r.rows,
        r.bytes,
        ds.manifest.schema.tag()
    );
    Ok(())
}

pub fn schema(a: SchemaArgs) -> anyhow::Result<()> {
    let kind = SchemaKind::from_tag(&a.name)
        .with_context(|| format!("unknown schema {}; known: triplet.v1, tokens.v1", a.name))?;
    if a.markdown {
        print!("{}", kind.describe());
    } else {
        println!("{:#?}", kind.arrow());
    }
    Ok(())
}

pub fn resize(a: ResizeArgs) -> anyhow::Result<()> {
    let bytes =
        std::fs::read(&a.image).with_context(|| format!("reading {}", a.image.display()))?;
    let rgb = earl_image::decode_rgb(&bytes, &earl_image::Limits::default())
        .with_context(|| format!("decoding {}", a.image.display()))?;
    let (w, h) = earl_image::smart_size(rgb.width(), rgb.height(), a.area);
    let out = earl_image::resize_rgb(&rgb, w, h);
    out.save(&a.out)
        .with_context(|| format!("writing {}", a.out.display()))?;
    eprintln!(
        "{}x{} -> {}x{} ({})",
        rgb.width(),
        rgb.height(),
        w,
        h,
        a.out.display()
    );
    Ok(())
}

/// A DataFusion session with the dataset's shards registered as the table `data`.
async fn session(dir: &std::path::Path) -> anyhow::Result<(SessionContext, Manifest)> {
    let ds = Dataset::open(dir)?;
    let ctx = SessionContext::new();
    let data = dir.join("data");
    let path = data.to_str().context("dataset path is not UTF-8")?;
    ctx.register_parquet(
        "data",
        path,
        ParquetReadOptions::default().file_extension(".parquet"),
    )
    .await
    .with_context(|| format!("registering {path}"))?;
    Ok((ctx, ds.manifest))
}

async fn sql(ctx: &SessionContext, q: &str) -> anyhow::Result<Vec<RecordBatch>> {
    Ok(ctx
        .sql(q)
        .await
        .with_context(|| format!("in query: {q}"))?
        .collect()
        .await?)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

pub fn query(a: QueryArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let (ctx, _) = session(&a.dir).await?;
        let batches = sql(&ctx, &a.sql).await?;
        print_batches(&batches, a.format)
    })
}

fn print_batches(batches: &[RecordBatch], format: OutFormat) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match format {
        OutFormat::Table => {
            println!("{}", arrow::util::pretty::pretty_format_batches(batches)?);
        }
        OutFormat::Json => {
            let mut w = arrow::json::LineDelimitedWriter::new(&mut out);
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
        }
        OutFormat::Csv => {
            let mut w = arrow::csv::Writer::new(&mut out);
            for b in batches {
                w.write(b)?;
            }
        }
    }
    Ok(())
}

/// The questions `stats` asks, per schema.
fn stats_queries(kind: SchemaKind) -> Vec<(&'static str, &'static str)> {
    let common = vec![
        (
            "rows per source and split",
            "SELECT source_dataset, split, count(*) AS rows FROM data GROUP BY 1, 2 ORDER BY 1, 2",
        ),
        (
            "instruction length (characters)",
            "SELECT min(character_length(instruction)) AS min, round(avg(character_length(instruction)), 1) AS mean, \
             max(character_length(instruction)) AS max FROM data",
        ),
    ];
    let specific = match kind {
        SchemaKind::Triplet => vec![
            (
                "source image size (long side, 256-px buckets)",
                "SELECT CAST(greatest(source_width, source_height) / 256 AS BIGINT) * 256 AS long_side, count(*) AS rows \
                 FROM data GROUP BY 1 ORDER BY 1",
            ),
            (
                "source aspect ratio (w/h, 0.25 buckets)",
                "SELECT round(CAST(source_width AS DOUBLE) / source_height * 4) / 4 AS aspect, count(*) AS rows \
                 FROM data GROUP BY 1 ORDER BY 1",
            ),
            (
                "image formats",
                "SELECT source_format, target_format, count(*) AS rows FROM data GROUP BY 1, 2 ORDER BY 3 DESC",
            ),
            (
                "encoded bytes per image",
                "SELECT round(avg(source_bytes)) AS mean_source, round(avg(target_bytes)) AS mean_target, \
                 sum(source_bytes + target_bytes) AS total FROM data",
            ),
            (
                "chain-of-thought status",
                "SELECT cot_status, count(*) AS rows FROM data GROUP BY 1 ORDER BY 2 DESC",
            ),
        ],
        SchemaKind::Tokens => vec![
            (
                "code grids",
                "SELECT source_h, source_w, target_h, target_w, count(*) AS rows FROM data GROUP BY 1, 2, 3, 4 ORDER BY 5 DESC",
            ),
            (
                "with chain of thought",
                "SELECT cot_text IS NOT NULL AS has_cot, count(*) AS rows FROM data GROUP BY 1",
            ),
        ],
    };
    common.into_iter().chain(specific).collect()
}

pub fn stats(a: StatsArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let (ctx, m) = session(&a.dir).await?;
        let mut json = serde_json::Map::new();
        for (title, q) in stats_queries(m.schema) {
            let batches = sql(&ctx, q).await?;
            if a.json {
                let mut buf = Vec::new();
                let mut w = arrow::json::ArrayWriter::new(&mut buf);
                for b in &batches {
                    w.write(b)?;
                }
                w.finish()?;
                let v: serde_json::Value = serde_json::from_slice(&buf).unwrap_or_default();
                json.insert(title.to_string(), v);
            } else {
                println!("{title}\n{}\n", arrow::util::pretty::pretty_format_batches(&batches)?);
            }
        }
        let c = &m.counts;
        if a.json {
            json.insert("counts".into(), serde_json::to_value(c)?);
            json.insert("rejects_by_reason".into(), serde_json::to_value(&m.rejects.by_reason)?);
            println!("{}", serde_json::Value::Object(json));
        } else {
            println!(
                "counts: read {}, written {}, rejected {}, duplicate {}, filtered {}, unreadable files {}",
                c.read, c.written, c.rejected, c.duplicate, c.filtered, c.bad_files
            );
            for (reason, n) in &m.rejects.by_reason {
                println!("  {reason}: {n}");
            }
        }
        Ok(())
    })
}
