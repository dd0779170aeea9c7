//! One dataset's rows for one epoch: shard order reshuffled every pass, rows passed through a
//! shuffle buffer, the hold-out slice removed, stopped at the epoch's quota. Runs on its own
//! thread and sends rows into a bounded channel, so Parquet decoding overlaps training.

use std::path::Path;
use std::sync::Arc;

use crossbeam_channel::Sender;
use earl_format::TokenRow;

use super::{Stats, held_out};
use crate::rng::Rng;

/// Rows decoded per Parquet batch.
const READ_BATCH_ROWS: usize = 256;

pub(super) struct RowStream {
    pub shards: Vec<(std::path::PathBuf, u64)>,
    pub quota: u64,
    pub shuffle_buffer: usize,
    pub holdout_fraction: f64,
    /// Seeds the shard order of each pass and the buffer.
    pub seed: u64,
    pub epoch: u64,
    pub dataset: u64,
}

impl RowStream {
    /// Sends exactly `quota` rows (fewer only when the dataset has no readable rows left);
    /// returns early when the receiver is gone.
    pub fn run(self, tx: Sender<TokenRow>, stats: Arc<Stats>) {
        const BUFFER: u64 = 0xB0FF;
        let mut rng = Rng::derive(self.seed, &[self.epoch, self.dataset, BUFFER]);
        // A buffer of one row passes rows straight through.
        let capacity = self.shuffle_buffer.max(1);
        let mut buffer: Vec<TokenRow> = Vec::with_capacity(capacity);
        let mut sent = 0u64;
        'passes: for pass in 0.. {
            let mut order: Vec<usize> = (0..self.shards.len()).collect();
            Rng::derive(self.seed, &[self.epoch, self.dataset, pass]).shuffle(&mut order);
            let mut pass_rows = 0u64;
            for &i in &order {
                for row in shard_rows(&self.shards[i].0, &stats) {
                    if held_out(&row.id, self.holdout_fraction) {
                        continue;
                    }
                    pass_rows += 1;
                    if buffer.len() < capacity {
                        buffer.push(row);
                        continue;
                    }
                    // Emit a random buffered row and keep the new one in its place.
                    let j = rng.below(buffer.len() as u64) as usize;
                    let out = std::mem::replace(&mut buffer[j], row);
                    if sent == self.quota || tx.send(out).is_err() {
                        break 'passes;
                    }
                    sent += 1;
                }
            }
            if pass_rows == 0 {
                tracing::warn!("a dataset has no readable training rows left; its quota is cut");
                break;
            }
            if sent + buffer.len() as u64 >= self.quota {
                break;
            }
        }
        // Drain what is left in random order, up to the quota.
        while sent < self.quota && !buffer.is_empty() {
            let j = rng.below(buffer.len() as u64) as usize;
            if tx.send(buffer.swap_remove(j)).is_err() {
                return;
            }
            sent += 1;
        }
    }
}

/// Every row of one shard; a shard that cannot be opened, or fails midway (truncated,
/// corrupt, wrong schema), is reported, counted and cut short rather than stopping training.
pub(super) fn shard_rows<'a>(
    path: &'a Path,
    stats: &'a Stats,
) -> impl Iterator<Item = TokenRow> + 'a {
    let report = move |e: &dyn std::fmt::Display| {
        stats
            .corrupt_shards
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(shard = %path.display(), "skipping the rest of an unreadable shard: {e}");
    };
    let batches = match earl_format::read_shard(path, READ_BATCH_ROWS) {
        Ok(batches) => Some(batches),
        Err(e) => {
            report(&e);
            None
        }
    };
    batches
        .into_iter()
        .flatten()
        .map_while(move |batch| {
            match batch
                .map_err(earl_format::FormatError::from)
                .and_then(|b| TokenRow::from_batch(&b))
            {
                Ok(rows) => Some(rows),
                Err(e) => {
                    report(&e);
                    None
                }
            }
        })
        .flatten()
}
