//! The streaming SFT loader over `tokens.v1` datasets.
//!
//! Per epoch, each dataset contributes a quota of rows (its mixing coefficient times its size,
//! see [`sources::epoch_quota`]); a reader thread per dataset streams its rows (shards reshuffled
//! every pass, a shuffle buffer) and a mixer thread interleaves them by drawing the next dataset
//! with probability proportional to its remaining quota — the same distribution as upstream's
//! global shuffle of the upsampled file list, without holding the list. The mixer keeps every
//! `WORLD_SIZE`-th row for this rank, builds token sequences, skips (and counts) rows over the
//! context length and queues samples in a bounded channel.
//!
//! Everything random derives from the seed, the epoch and the dataset index, so the stream is a
//! pure function of the configuration: a [`Position`] (epoch, rows drawn in it) is all a
//! checkpoint needs, and resuming replays the epoch's draws up to it without building samples.

mod rows;
pub mod sources;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, bounded};
use earl_format::TokenRow;
use earl_model::{Emu3Tokenizer, Grid, Sample};
use serde::{Deserialize, Serialize};

use crate::rng::{Rng, stable_hash};
pub use sources::{Source, coefficients, epoch_quota};

/// Where the stream stands: rows drawn (by all ranks) in `epoch`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub epoch: u64,
    pub drawn: u64,
}

/// What the loader read and dropped; shared with its threads.
#[derive(Debug, Default)]
pub struct Stats {
    pub samples: AtomicU64,
    pub too_long: AtomicU64,
    pub wrong_area: AtomicU64,
    pub bad_rows: AtomicU64,
    pub corrupt_shards: AtomicU64,
}

/// A copy of [`Stats`] for logs and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    pub samples: u64,
    pub too_long: u64,
    pub wrong_area: u64,
    pub bad_rows: u64,
    pub corrupt_shards: u64,
}

impl Stats {
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            samples: get(&self.samples),
            too_long: get(&self.too_long),
            wrong_area: get(&self.wrong_area),
            bad_rows: get(&self.bad_rows),
            corrupt_shards: get(&self.corrupt_shards),
        }
    }
}

/// The loader's settings (from `[data]`, the seed and the launch environment).
#[derive(Debug, Clone)]
pub struct LoaderConfig {
    pub coefficients: Vec<f64>,
    pub context_length: usize,
    /// 0 accepts any `image_area`.
    pub image_area: u32,
    pub shuffle_buffer: usize,
    pub prefetch: usize,
    pub holdout_fraction: f64,
    pub use_cot: bool,
    pub seed: u64,
    /// Epochs to stream; `None` streams forever.
    pub epochs: Option<u64>,
    pub rank: u64,
    pub world_size: u64,
}

impl LoaderConfig {
    /// `RANK` / `WORLD_SIZE` as torchrun and SLURM wrappers set them (default 0 / 1).
    pub fn rank_from_env() -> Result<(u64, u64), crate::TrainError> {
        let read = |key: &str, default: u64| match std::env::var(key) {
            Ok(v) => v.trim().parse::<u64>().map_err(|_| {
                crate::TrainError::Data(format!("{key}={v:?} is not a non-negative integer"))
            }),
            Err(_) => Ok(default),
        };
        let (rank, world) = (read("RANK", 0)?, read("WORLD_SIZE", 1)?);
        if world == 0 || rank >= world {
            return Err(crate::TrainError::Data(format!(
                "RANK={rank} must be below WORLD_SIZE={world}"
            )));
        }
        Ok((rank, world))
    }
}

/// A sample and the stream position just after it.
pub struct Item {
    pub sample: Sample,
    pub position: Position,
}

pub struct Loader {
    rx: Receiver<Item>,
    stats: Arc<Stats>,
    position: Position,
    mixer: Option<JoinHandle<()>>,
}

impl Loader {
    /// Starts the reader and mixer threads at `start`.
    pub fn start(
        sources: Vec<Source>,
        config: LoaderConfig,
        tokenizer: Arc<Emu3Tokenizer>,
        start: Position,
    ) -> Self {
        let stats = Arc::new(Stats::default());
        let (tx, rx) = bounded(config.prefetch.max(1));
        let mixer = Mixer {
            sources,
            config,
            tokenizer,
            stats: stats.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("earl-loader-mix".into())
            .spawn(move || mixer.run(start, tx))
            .ok();
        Self {
            rx,
            stats,
            position: start,
            mixer: handle,
        }
    }

    /// Up to `n` samples (fewer only at the end of the last epoch; empty when done).
    pub fn next_batch(&mut self, n: usize) -> Vec<Sample> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let Ok(item) = self.rx.recv() else { break };
            self.position = item.position;
            out.push(item.sample);
        }
        out
    }

    /// The position after the last sample handed out: save this to resume.
    pub fn position(&self) -> Position {
        self.position
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        // Closing our end makes the mixer's next send fail, which stops it and its readers.
        let (_, closed) = bounded(0);
        self.rx = closed;
        if let Some(h) = self.mixer.take() {
            let _ = h.join();
        }
    }
}

struct Mixer {
    sources: Vec<Source>,
    config: LoaderConfig,
    tokenizer: Arc<Emu3Tokenizer>,
    stats: Arc<Stats>,
}

impl Mixer {
    fn run(self, start: Position, tx: crossbeam_channel::Sender<Item>) {
        const MIX: u64 = 0x313;
        let c = &self.config;
        let quotas: Vec<u64> = self
            .sources
            .iter()
            .zip(&c.coefficients)
            .map(|(s, &coef)| epoch_quota(s.train_rows(), coef))
            .collect();
        let last_epoch = c.epochs.unwrap_or(u64::MAX);
        for epoch in start.epoch..last_epoch {
            let readers = self.spawn_readers(epoch, &quotas);
            let mut remaining = quotas.clone();
            let mut rng = Rng::derive(c.seed, &[epoch, MIX]);
            let mut drawn = 0u64;
            let skip = if epoch == start.epoch { start.drawn } else { 0 };
            while let Some(d) = pick(&mut rng, &remaining) {
                let Ok(row) = readers[d].recv() else {
                    remaining[d] = 0; // the reader ran out of readable rows
                    continue;
                };
                remaining[d] -= 1;
                drawn += 1;
                if drawn <= skip || (drawn - 1) % c.world_size != c.rank {
                    continue;
                }
                let Some(sample) = self.build(&row) else {
                    continue;
                };
                let position = Position { epoch, drawn };
                self.stats.samples.fetch_add(1, Ordering::Relaxed);
                if tx.send(Item { sample, position }).is_err() {
                    return;
                }
            }
        }
    }

    fn spawn_readers(&self, epoch: u64, quotas: &[u64]) -> Vec<Receiver<TokenRow>> {
        let c = &self.config;
        self.sources
            .iter()
            .zip(quotas)
            .enumerate()
            .map(|(d, (source, &quota))| {
                let (tx, rx) = bounded(c.prefetch.max(1));
                let stream = rows::RowStream {
                    shards: source.train_shards.clone(),
                    quota,
                    shuffle_buffer: c.shuffle_buffer,
                    holdout_fraction: c.holdout_fraction,
                    seed: c.seed,
                    epoch,
                    dataset: d as u64,
                };
                let stats = self.stats.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("earl-loader-{d}"))
                    .spawn(move || stream.run(tx, stats));
                if let Err(e) = spawned {
                    tracing::warn!(dataset = %source.name, "cannot start a reader thread: {e}");
                }
                rx
            })
            .collect()
    }

    /// The token sequence of a row, or None (counted) when it must be skipped.
    fn build(&self, row: &TokenRow) -> Option<Sample> {
        build_sample(&self.tokenizer, row, &self.config, &self.stats)
    }
}

/// Builds one row's SFT sample; rows of the wrong image area, malformed rows and rows over the
/// context length are counted and skipped.
pub fn build_sample(
    tokenizer: &Emu3Tokenizer,
    row: &TokenRow,
    config: &LoaderConfig,
    stats: &Stats,
) -> Option<Sample> {
    if config.image_area != 0 && row.image_area != config.image_area {
        stats.wrong_area.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    let source = Grid {
        codes: &row.source_codes,
        h: row.source_h.into(),
        w: row.source_w.into(),
    };
    let target = Grid {
        codes: &row.target_codes,
        h: row.target_h.into(),
        w: row.target_w.into(),
    };
    let cot = if config.use_cot {
        row.cot_text.as_deref()
    } else {
        None
    };
    let sample = match tokenizer.build_sample(source, &row.instruction, target, cot) {
        Ok(s) => s,
        Err(e) => {
            stats.bad_rows.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(row = %row.id, "skipping a row that does not form a sample: {e}");
            return None;
        }
    };
    if sample.input_ids.len() > config.context_length {
        stats.too_long.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    Some(sample)
}

/// The next dataset, with probability proportional to its remaining quota; None when all are done.
fn pick(rng: &mut Rng, remaining: &[u64]) -> Option<usize> {
    let total: u64 = remaining.iter().sum();
    if total == 0 {
        return None;
    }
    let mut r = rng.below(total);
    for (d, &n) in remaining.iter().enumerate() {
        if r < n {
            return Some(d);
        }
        r -= n;
    }
    None
}

/// Whether a row belongs to the id-hashed validation hold-out.
pub fn held_out(id: &str, fraction: f64) -> bool {
    fraction > 0.0 && ((stable_hash(id) >> 11) as f64 / (1u64 << 53) as f64) < fraction
}

/// The validation slice: `rows` samples split evenly across datasets (as upstream), taken from
/// each dataset's validation/test shards, or else from its id-hashed hold-out rows.
pub fn validation_samples(
    sources: &[Source],
    rows: usize,
    tokenizer: &Emu3Tokenizer,
    config: &LoaderConfig,
    stats: &Stats,
) -> Vec<Sample> {
    let per_dataset = rows / sources.len().max(1);
    let mut out = Vec::new();
    for source in sources {
        let (shards, filter): (Vec<_>, f64) = if source.validation_shards.is_empty() {
            (
                source.train_shards.iter().map(|(p, _)| p.clone()).collect(),
                config.holdout_fraction,
            )
        } else {
            (source.validation_shards.clone(), 0.0)
        };
        if source.validation_shards.is_empty() && filter == 0.0 {
            tracing::warn!(dataset = %source.name,
                "no validation shards and data.holdout_fraction = 0: no validation rows");
            continue;
        }
        let mut taken = 0;
        'shards: for shard in &shards {
            for row in rows::shard_rows(shard, stats) {
                if taken == per_dataset {
                    break 'shards;
                }
                if filter > 0.0 && !held_out(&row.id, filter) {
                    continue;
                }
                if let Some(sample) = build_sample(tokenizer, &row, config, stats) {
                    out.push(sample);
                    taken += 1;
                }
            }
        }
    }
    out
}
