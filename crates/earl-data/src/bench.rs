//! `earl-data bench …`: throughput figures recorded in docs/PERFORMANCE.md.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use earl_ingest::{IngestOptions, Recipe, Source};

#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// Ingest rows/s and MB/s on a synthetic OmniEdit-layout input.
    Ingest {
        /// Rows of synthetic input.
        #[arg(long, default_value_t = 3000)]
        rows: usize,
        /// Side of the square synthetic images.
        #[arg(long, default_value_t = 256)]
        side: u32,
        /// Work folder (default: a temporary one).
        #[arg(long)]
        work: Option<PathBuf>,
    },
    /// Decode + smart-resize images/s (compare with crates/earl-image/benches/pillow_resize.py).
    Resize {
        /// Image files (default: the golden reference images).
        images: Vec<PathBuf>,
        #[arg(long, default_value_t = 65536)]
        area: u32,
        #[arg(long, default_value_t = 20)]
        iters: usize,
    },
}

pub fn run(c: BenchCommand) -> anyhow::Result<()> {
    match c {
        BenchCommand::Ingest { rows, side, work } => ingest(rows, side, work),
        BenchCommand::Resize {
            images,
            area,
            iters,
        } => resize(images, area, iters),
    }
}

fn ingest(rows: usize, side: u32, work: Option<PathBuf>) -> anyhow::Result<()> {
    let tmp = tempfile_dir(work)?;
    let input = tmp.join("input");
    std::fs::create_dir_all(input.join("data"))?;
    let file = input.join("data/train-00000-of-00001.parquet");
    let t = Instant::now();
    let bytes = earl_ingest::synthetic::write_omniedit(&file, rows, side, 256, 7)?;
    eprintln!(
        "synthetic input: {rows} rows, {:.1} MB, made in {:.1}s",
        bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    let recipe = Recipe::builtin("omniedit")?;
    let source = Source::local(&input, "parquet", None).map_err(anyhow::Error::msg)?;
    let out = tmp.join("out");
    let _ = std::fs::remove_dir_all(&out);
    let opts = IngestOptions::new(out.clone());
    let t = Instant::now();
    let summary = earl_ingest::ingest(&recipe, &source, &opts)?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "ingest: {} rows ({}x{} images, PNG/JPEG) in {:.2}s = {:.0} rows/s, {:.1} MB/s of input, {} threads",
        summary.manifest.counts.written,
        side,
        side,
        secs,
        rows as f64 / secs,
        bytes as f64 / 1e6 / secs,
        rayon_threads()
    );
    std::fs::remove_dir_all(&tmp).ok();
    Ok(())
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn tempfile_dir(work: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let dir = work
        .unwrap_or_else(|| std::env::temp_dir().join(format!("earl-bench-{}", std::process::id())));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

fn resize(images: Vec<PathBuf>, area: u32, iters: usize) -> anyhow::Result<()> {
    let images = if images.is_empty() {
        let golden =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/golden/image_resize");
        ["chelsea.png", "coffee.png", "camera.png", "horse.png"]
            .iter()
            .map(|n| golden.join(n))
            .collect()
    } else {
        images
    };
    let bytes: Vec<Vec<u8>> = images
        .iter()
        .map(|p| std::fs::read(p).with_context(|| format!("reading {}", p.display())))
        .collect::<anyhow::Result<_>>()?;
    let report = earl_image::bench_resize(&bytes, area, iters)?;
    println!("{report}");
    Ok(())
}
