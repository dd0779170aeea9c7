//! Logging, progress bars and the rank of a distributed run: shared by every subcommand.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

/// A progress bar on stderr, hidden when stderr is not a terminal (logs, CI).
pub fn progress(what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} rows {per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_prefix(what.to_string());
    bar
}

/// `--world-size/--rank`, else SLURM array or Kubernetes indexed-job variables.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct RankArgs {
    /// Number of processes sharing the work (default: SLURM_ARRAY_TASK_COUNT, else 1).
    #[arg(long)]
    pub world_size: Option<usize>,
    /// This process's index in 0..world-size (default: SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX, else 0).
    #[arg(long)]
    pub rank: Option<usize>,
}

impl RankArgs {
    pub fn resolve(&self) -> anyhow::Result<earl_ingest::Rank> {
        let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<usize>().ok());
        let world = self
            .world_size
            .or_else(|| env("SLURM_ARRAY_TASK_COUNT"))
            .unwrap_or(1);
        let rank = self
            .rank
            .or_else(|| {
                env("SLURM_ARRAY_TASK_ID").map(|id| id - env("SLURM_ARRAY_TASK_MIN").unwrap_or(0))
            })
            .or_else(|| env("JOB_COMPLETION_INDEX"))
            .unwrap_or(0);
        anyhow::ensure!(world >= 1, "--world-size must be at least 1");
        anyhow::ensure!(
            rank < world,
            "--rank {rank} is not below --world-size {world}"
        );
        Ok(earl_ingest::Rank { rank, world })
    }
}

/// Prints a stage's counts and where its rejects are.
pub fn summary(stage: &str, dir: &std::path::Path, m: &earl_format::Manifest) {
    let c = &m.counts;
    eprintln!(
        "{stage}: read {} rows -> wrote {} in {} shards to {}; rejected {}, duplicate {}, filtered {}, unreadable files {}",
        c.read,
        c.written,
        m.shards.len(),
        dir.display(),
        c.rejected,
        c.duplicate,
        c.filtered,
        c.bad_files
    );
    for (reason, n) in &m.rejects.by_reason {
        eprintln!("  {reason}: {n}");
    }
    if !m.rejects.files.is_empty() {
        eprintln!("  rejected rows and reasons: {}/rejects/", dir.display());
    }
}
