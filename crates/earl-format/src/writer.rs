//! A resumable, atomic writer of a dataset directory.
//!
//! Rows stream into one open Parquet file per split under `.earl/`. At input boundaries the
//! stage calls [`DatasetWriter::commit`] with a cursor (its own position in the input); when an
//! open shard has reached its target size (or has been open too long) every open shard is
//! closed, fsynced and renamed into `.earl/shards/`, its rejects are written, and then the
//! journal records the shards, the counts and the cursor, atomically. A run killed at any
//! moment restarts from the last journal: it deletes whatever the journal does not name and
//! replays the input from the cursor, so every row ends up exactly once. [`DatasetWriter::finish`]
//! moves the shards to `data/{split}-{i}-of-{n}.parquet` and writes the card and, last, the
//! manifest.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arrow::array::{AsArray, BooleanArray, RecordBatch};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::IoContext;
use crate::manifest::{Counts, Manifest, RejectSummary, ShardEntry};
use crate::{FormatError, Result, SchemaKind, write_atomic};

/// How shards are cut and compressed.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    pub zstd_level: i32,
    /// Close a shard once it holds about this many bytes.
    pub target_shard_bytes: u64,
    /// Close a row group at this many rows or bytes, whichever comes first, so readers
    /// can stream a shard without holding it in memory.
    pub row_group_rows: usize,
    pub row_group_bytes: usize,
    /// Also close shards that have been open this long, so a slow stage (tokenizing on a CPU)
    /// loses at most this much work to a kill.
    pub max_open: Duration,
}

impl WriterOptions {
    pub fn for_kind(kind: SchemaKind) -> Self {
        WriterOptions {
            zstd_level: 3,
            target_shard_bytes: kind.default_shard_bytes(),
            row_group_rows: 1024,
            row_group_bytes: 64 << 20,
            max_open: Duration::from_secs(600),
        }
    }
}

/// This process's share of a distributed run: input unit `i` belongs to rank `i % world`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rank {
    pub rank: usize,
    pub world: usize,
}

impl Default for Rank {
    fn default() -> Self {
        Rank { rank: 0, world: 1 }
    }
}

impl Rank {
    /// Where this rank writes under `out`: `out` itself alone, else
    /// `out/ranks/rank-RRRRR-of-WWWWW` (merged by [`merge_ranks`]).
    pub fn output_dir(&self, out: &Path) -> PathBuf {
        if self.world > 1 {
            out.join(format!("ranks/rank-{:05}-of-{:05}", self.rank, self.world))
        } else {
            out.to_path_buf()
        }
    }
}

/// A rejected input row: where it came from, its id if known, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reject {
    /// `file:row` or another locator of the input.
    pub source: String,
    pub id: Option<String>,
    /// A short machine-readable reason code, e.g. `corrupt_image`, `duplicate_id`.
    pub reason: String,
    /// The human explanation.
    pub detail: String,
}

/// What `finish` records beside the shards.
#[derive(Debug, Clone, Default)]
pub struct FinishInfo {
    pub recipe: serde_json::Value,
    pub extra: serde_json::Value,
    /// Title of the dataset card.
    pub title: String,
}

/// What opening an output directory found.
#[allow(clippy::large_enum_variant)] // made once per run: its size does not matter
pub enum Opened {
    /// A finished dataset is already there: nothing to do.
    Complete(Manifest),
    /// A writer, fresh or resuming (see [`DatasetWriter::resume_cursor`]).
    Writer(Box<DatasetWriter>),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Journal {
    schema: Option<SchemaKind>,
    /// Identifies the job; a rerun with other inputs or options must not mix into this output.
    fingerprint: String,
    /// Committed shards, in order, as paths relative to the directory.
    shards: Vec<ShardEntry>,
    reject_files: Vec<String>,
    by_reason: BTreeMap<String, u64>,
    counts: Counts,
    cursor: Option<serde_json::Value>,
    next_seq: u64,
    /// Set once `finish` has chosen the final names: `(from, to)` renames to (re)do.
    finalizing: Option<Vec<(String, String)>>,
}

struct OpenShard {
    writer: ArrowWriter<HashingFile>,
    tmp: PathBuf,
    rows: u64,
}

/// See the module documentation.
pub struct DatasetWriter {
    dir: PathBuf,
    kind: SchemaKind,
    opts: WriterOptions,
    journal: Journal,
    open: BTreeMap<String, OpenShard>,
    opened_at: Instant,
    seen: HashSet<String>,
    pending_rejects: Vec<Reject>,
    pending_filtered: BTreeMap<String, u64>,
    pending: Counts,
}

const WORK: &str = ".earl";
const JOURNAL: &str = ".earl/journal.json";

impl DatasetWriter {
    /// Opens `dir` for a job identified by `fingerprint`: complete, resuming, or fresh.
    pub fn open(
        dir: &Path,
        kind: SchemaKind,
        opts: WriterOptions,
        fingerprint: &str,
    ) -> Result<Opened> {
        let journal_path = dir.join(JOURNAL);
        if !journal_path.exists() && dir.join(Manifest::FILE).exists() {
            let m = Manifest::read(dir)?;
            if m.schema != kind {
                return Err(FormatError::Invalid(format!(
                    "{} holds a finished {} dataset, not {}; choose another output directory",
                    dir.display(),
                    m.schema.tag(),
                    kind.tag()
                )));
            }
            return Ok(Opened::Complete(m));
        }
        let journal: Journal = if journal_path.exists() {
            let text = fs::read_to_string(&journal_path).at(&journal_path)?;
            serde_json::from_str(&text).map_err(|source| FormatError::Json {
                path: journal_path.clone(),
                source,
            })?
        } else {
            let data = dir.join("data");
            if data.read_dir().is_ok_and(|mut d| d.next().is_some()) {
                return Err(FormatError::Invalid(format!(
                    "{} already has files in data/ but no manifest or journal of earl; \
                     choose an empty output directory",
                    dir.display()
                )));
            }
            Journal {
                schema: Some(kind),
                fingerprint: fingerprint.to_string(),
                ..Default::default()
            }
        };
        if journal.fingerprint != fingerprint {
            return Err(FormatError::Invalid(format!(
                "{} holds an unfinished run of a different job (other inputs or options); \
                 rerun the original command to finish it, or choose another output directory",
                dir.display()
            )));
        }
        for sub in [WORK, "data", "rejects", ".earl/shards"] {
            fs::create_dir_all(dir.join(sub)).at(dir.join(sub))?;
        }
        let mut w = DatasetWriter {
            dir: dir.to_path_buf(),
            kind,
            opts,
            journal,
            open: BTreeMap::new(),
            opened_at: Instant::now(),
            seen: HashSet::new(),
            pending_rejects: Vec::new(),
            pending_filtered: BTreeMap::new(),
            pending: Counts::default(),
        };
        w.sweep()?;
        w.load_seen_ids()?;
        Ok(Opened::Writer(Box::new(w)))
    }

    /// Where the last committed run stopped, as the stage described it; `None` when fresh.
    pub fn resume_cursor(&self) -> Option<&serde_json::Value> {
        self.journal.cursor.as_ref()
    }

    /// Whether the finish of an earlier run was interrupted (all input is already written).
    pub fn finishing(&self) -> bool {
        self.journal.finalizing.is_some()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Counts so far, committed and pending.
    pub fn counts(&self) -> Counts {
        let mut c = self.journal.counts;
        c.add(&self.pending);
        c
    }

    pub fn seen(&self, id: &str) -> bool {
        self.seen.contains(id)
    }

    /// Counts input rows the stage read (written, rejected and duplicate rows add up to this).
    pub fn count_read(&mut self, rows: u64) {
        self.pending.read += rows;
    }

    /// Counts an input file that could not be read at all, and keeps the reason.
    pub fn bad_file(&mut self, source: String, detail: String) {
        self.pending.bad_files += 1;
        self.pending_rejects.push(Reject {
            source,
            id: None,
            reason: "bad_file".into(),
            detail,
        });
    }

    /// Keeps a rejected row with its reason.
    pub fn reject(&mut self, reject: Reject) {
        self.pending.rejected += 1;
        self.pending_rejects.push(reject);
    }

    /// Counts a row a recipe filter dropped on purpose, by reason (e.g. `filtered_o_score`).
    pub fn filtered(&mut self, reason: &str) {
        self.pending.filtered += 1;
        *self.pending_filtered.entry(reason.to_string()).or_default() += 1;
    }

    /// Writes the rows of `batch` (schema of this dataset) to `split`. Rows whose id was
    /// already written are dropped as duplicates and kept in the rejects. Returns rows written.
    pub fn write(&mut self, split: &str, batch: &RecordBatch, sources: &[String]) -> Result<usize> {
        crate::schema::check(self.kind, &batch.schema())?;
        let ids = batch
            .column_by_name("id")
            .ok_or_else(|| FormatError::Invalid("batch has no id column".into()))?;
        let ids = arrow::compute::cast(ids, &arrow::datatypes::DataType::Utf8)?;
        let ids = ids.as_string::<i32>();
        let mut keep = Vec::with_capacity(batch.num_rows());
        for (i, id) in ids.iter().enumerate() {
            let id = id.unwrap_or_default();
            let fresh = self.seen.insert(id.to_string());
            if !fresh {
                self.pending.duplicate += 1;
                self.pending_rejects.push(Reject {
                    source: sources.get(i).cloned().unwrap_or_default(),
                    id: Some(id.to_string()),
                    reason: "duplicate_id".into(),
                    detail: format!("id {id} was already written; this copy is dropped"),
                });
            }
            keep.push(fresh);
        }
        let batch = if keep.iter().all(|&k| k) {
            batch.clone()
        } else {
            arrow::compute::filter_record_batch(batch, &BooleanArray::from(keep))?
        };
        let n = batch.num_rows();
        if n == 0 {
            return Ok(0);
        }
        // Keep the file's schema (with its `huggingface` metadata) even for foreign batches.
        let batch = RecordBatch::try_new(self.kind.arrow(), batch.columns().to_vec())?;
        let (max_rows, max_bytes) = (self.opts.row_group_rows, self.opts.row_group_bytes);
        let shard = self.open_shard(split)?;
        shard.writer.write(&batch).at(&shard.tmp)?;
        shard.rows += n as u64;
        if shard.writer.in_progress_rows() >= max_rows
            || shard.writer.in_progress_size() >= max_bytes
        {
            shard.writer.flush().at(&shard.tmp)?;
        }
        self.pending.written += n as u64;
        Ok(n)
    }

    /// Marks an input boundary: everything before `cursor` has been given to the writer.
    /// Cuts the open shards when one is full or they have been open too long.
    pub fn commit(&mut self, cursor: serde_json::Value) -> Result<()> {
        let full = self.open.values().any(|s| {
            s.writer.bytes_written() as u64 + s.writer.in_progress_size() as u64
                >= self.opts.target_shard_bytes
        });
        if full || self.opened_at.elapsed() >= self.opts.max_open {
            self.cut(cursor)?;
        }
        Ok(())
    }

    /// Commits everything, then lays out the final `data/` names, the card and the manifest.
    pub fn finish(mut self, cursor: serde_json::Value, info: FinishInfo) -> Result<Manifest> {
        if self.journal.finalizing.is_none() {
            self.cut(cursor)?;
            self.plan_final_names()?;
        }
        for (from, to) in self.journal.finalizing.clone().unwrap_or_default() {
            let (from, to) = (self.dir.join(from), self.dir.join(to));
            if from.exists() {
                fs::rename(&from, &to).at(&to)?;
            } else if !to.exists() {
                return Err(FormatError::Invalid(format!(
                    "shard {} vanished",
                    from.display()
                )));
            }
        }
        crate::fsync_dir(&self.dir.join("data"))?;
        let j = &self.journal;
        let manifest = Manifest {
            schema: self.kind,
            tool: crate::TOOL_VERSION.to_string(),
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            recipe: info.recipe,
            shards: j.shards.clone(),
            counts: j.counts,
            rejects: RejectSummary {
                files: j.reject_files.clone(),
                by_reason: j.by_reason.clone(),
            },
            extra: info.extra,
        };
        let title = if info.title.is_empty() {
            "earl dataset".to_string()
        } else {
            info.title
        };
        write_atomic(
            &self.dir.join("README.md"),
            crate::card::render(&manifest, &title).as_bytes(),
        )?;
        manifest.write(&self.dir)?;
        fs::remove_dir_all(self.dir.join(WORK)).at(self.dir.join(WORK))?;
        Ok(manifest)
    }

    fn open_shard(&mut self, split: &str) -> Result<&mut OpenShard> {
        if !self.open.contains_key(split) {
            if self.open.is_empty() {
                self.opened_at = Instant::now();
            }
            let tmp = self
                .dir
                .join(WORK)
                .join(format!("open-{split}.parquet.tmp"));
            let file = HashingFile::create(&tmp)?;
            let writer =
                ArrowWriter::try_new(file, self.kind.arrow(), Some(self.properties())).at(&tmp)?;
            self.open.insert(
                split.to_string(),
                OpenShard {
                    writer,
                    tmp,
                    rows: 0,
                },
            );
        }
        Ok(self.open.get_mut(split).expect("inserted above"))
    }

    fn properties(&self) -> WriterProperties {
        let mut b = WriterProperties::builder()
            .set_compression(Compression::ZSTD(
                ZstdLevel::try_new(self.opts.zstd_level).unwrap_or_default(),
            ))
            .set_max_row_group_row_count(Some(self.opts.row_group_rows))
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_statistics_truncate_length(Some(64))
            .set_column_index_truncate_length(Some(64));
        // Encoded images neither repeat nor compress: no dictionary, no zstd, no statistics.
        for col in ["source_image", "target_image"] {
            let path = ColumnPath::from(vec![col.to_string(), "bytes".to_string()]);
            b = b
                .set_column_dictionary_enabled(path.clone(), false)
                .set_column_compression(path.clone(), Compression::UNCOMPRESSED)
                .set_column_statistics_enabled(path, EnabledStatistics::None);
        }
        b.build()
    }

    /// Closes every open shard and records it, with the rejects and the cursor, in the journal.
    fn cut(&mut self, cursor: serde_json::Value) -> Result<()> {
        let seq = self.journal.next_seq;
        let shards_dir = self.dir.join(".earl/shards");
        for (split, shard) in std::mem::take(&mut self.open) {
            let mut file = shard.writer.into_inner().at(&shard.tmp)?;
            file.flush().at(&shard.tmp)?;
            let (bytes, sha256, inner) = file.finish().at(&shard.tmp)?;
            inner.sync_all().at(&shard.tmp)?;
            let name = format!("{split}-{seq:05}.parquet");
            fs::rename(&shard.tmp, shards_dir.join(&name)).at(shards_dir.join(&name))?;
            self.journal.shards.push(ShardEntry {
                path: format!(".earl/shards/{name}"),
                split,
                rows: shard.rows,
                bytes,
                sha256,
            });
        }
        crate::fsync_dir(&shards_dir)?;
        if !self.pending_rejects.is_empty() {
            let rel = format!("rejects/part-{seq:05}.jsonl");
            let mut text = String::new();
            for r in self.pending_rejects.drain(..) {
                *self.journal.by_reason.entry(r.reason.clone()).or_default() += 1;
                text += &serde_json::to_string(&r).unwrap_or_default();
                text.push('\n');
            }
            write_atomic(&self.dir.join(&rel), text.as_bytes())?;
            self.journal.reject_files.push(rel);
        }
        for (reason, n) in std::mem::take(&mut self.pending_filtered) {
            *self.journal.by_reason.entry(reason).or_default() += n;
        }
        self.journal.counts.add(&std::mem::take(&mut self.pending));
        self.journal.cursor = Some(cursor);
        self.journal.next_seq = seq + 1;
        self.save_journal()
    }

    fn plan_final_names(&mut self) -> Result<()> {
        let mut per_split: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, s) in self.journal.shards.iter().enumerate() {
            per_split.entry(s.split.clone()).or_default().push(i);
        }
        let mut renames = Vec::new();
        for (split, idx) in per_split {
            let n = idx.len();
            for (k, i) in idx.into_iter().enumerate() {
                let to = format!("data/{split}-{k:05}-of-{n:05}.parquet");
                let entry = &mut self.journal.shards[i];
                renames.push((std::mem::replace(&mut entry.path, to.clone()), to));
            }
        }
        self.journal.finalizing = Some(renames);
        self.save_journal()
    }

    fn save_journal(&self) -> Result<()> {
        let text =
            serde_json::to_vec_pretty(&self.journal).map_err(|source| FormatError::Json {
                path: self.dir.join(JOURNAL),
                source,
            })?;
        write_atomic(&self.dir.join(JOURNAL), &text)
    }

    /// Deletes what a killed run left that the journal does not name.
    fn sweep(&self) -> Result<()> {
        let named: HashSet<PathBuf> = self
            .journal
            .shards
            .iter()
            .map(|s| self.dir.join(&s.path))
            .chain(self.journal.reject_files.iter().map(|r| self.dir.join(r)))
            .chain(
                self.journal
                    .finalizing
                    .iter()
                    .flatten()
                    .flat_map(|(a, b)| [self.dir.join(a), self.dir.join(b)]),
            )
            .collect();
        for sub in [WORK, ".earl/shards", "rejects", "data"] {
            for entry in fs::read_dir(self.dir.join(sub)).at(self.dir.join(sub))? {
                let path = entry.at(self.dir.join(sub))?.path();
                if path.is_file()
                    && path.file_name() != Some("journal.json".as_ref())
                    && !named.contains(&path)
                {
                    tracing::debug!(path = %path.display(), "removing what an interrupted run left");
                    fs::remove_file(&path).at(&path)?;
                }
            }
        }
        Ok(())
    }

    fn load_seen_ids(&mut self) -> Result<()> {
        for shard in &self.journal.shards {
            let path = match &self.journal.finalizing {
                Some(plan) => plan
                    .iter()
                    .find(|(_, to)| *to == shard.path)
                    .map(|(from, to)| {
                        if self.dir.join(from).exists() {
                            from
                        } else {
                            to
                        }
                    })
                    .unwrap_or(&shard.path),
                None => &shard.path,
            };
            for batch in crate::read_shard(&self.dir.join(path), 8192)? {
                let batch = batch?;
                let ids = batch.column_by_name("id").ok_or_else(|| {
                    FormatError::Invalid(format!("{path}: committed shard has no id column"))
                })?;
                let ids = arrow::compute::cast(ids, &arrow::datatypes::DataType::Utf8)?;
                self.seen
                    .extend(ids.as_string::<i32>().iter().flatten().map(str::to_string));
            }
        }
        Ok(())
    }
}

/// A file writer that hashes and counts what passes through it.
struct HashingFile {
    file: BufWriter<File>,
    hasher: Sha256,
    bytes: u64,
}

impl HashingFile {
    fn create(path: &Path) -> Result<Self> {
        let file = File::create(path).at(path)?;
        Ok(HashingFile {
            file: BufWriter::with_capacity(1 << 20, file),
            hasher: Sha256::new(),
            bytes: 0,
        })
    }

    fn finish(self) -> std::io::Result<(u64, String, File)> {
        let digest = hex::encode(self.hasher.finalize());
        let file = self.file.into_inner().map_err(|e| e.into_error())?;
        Ok((self.bytes, digest, file))
    }
}

impl Write for HashingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Merges the per-rank outputs `<dir>/ranks/rank-*/` of a distributed run into `<dir>`.
///
/// Each rank wrote a complete dataset; their shards are renumbered per split into
/// `<dir>/data/`, rejects are kept, counts are summed, and one manifest is written last.
pub fn merge_ranks(dir: &Path, info: FinishInfo) -> Result<Manifest> {
    let ranks_dir = dir.join("ranks");
    let mut ranks: Vec<PathBuf> = fs::read_dir(&ranks_dir)
        .at(&ranks_dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    ranks.sort();
    if ranks.is_empty() {
        return Err(FormatError::Invalid(format!(
            "{} has no rank outputs",
            ranks_dir.display()
        )));
    }
    let mut manifests = Vec::new();
    for r in &ranks {
        let m = Manifest::read(r).map_err(|e| {
            FormatError::Invalid(format!(
                "{}: not finished ({e}); rerun that rank first",
                r.display()
            ))
        })?;
        manifests.push(m);
    }
    let kind = manifests[0].schema;
    if let Some(m) = manifests.iter().find(|m| m.schema != kind) {
        return Err(FormatError::Invalid(format!(
            "ranks mix schemas {} and {}",
            kind.tag(),
            m.schema.tag()
        )));
    }
    let mut per_split: BTreeMap<String, Vec<(PathBuf, ShardEntry)>> = BTreeMap::new();
    for (r, m) in ranks.iter().zip(&manifests) {
        for s in &m.shards {
            per_split
                .entry(s.split.clone())
                .or_default()
                .push((r.clone(), s.clone()));
        }
    }
    fs::create_dir_all(dir.join("data")).at(dir.join("data"))?;
    fs::create_dir_all(dir.join("rejects")).at(dir.join("rejects"))?;
    let mut shards = Vec::new();
    for (split, list) in per_split {
        let n = list.len();
        for (k, (rank_dir, mut s)) in list.into_iter().enumerate() {
            let to = format!("data/{split}-{k:05}-of-{n:05}.parquet");
            let from = rank_dir.join(&s.path);
            // Hard links keep the rank outputs intact, so a merge can be rerun.
            if !dir.join(&to).exists() {
                fs::hard_link(&from, dir.join(&to))
                    .or_else(|_| fs::copy(&from, dir.join(&to)).map(|_| ()))
                    .at(dir.join(&to))?;
            }
            s.path = to;
            shards.push(s);
        }
    }
    let mut counts = Counts::default();
    let mut rejects = RejectSummary::default();
    for (r, m) in ranks.iter().zip(&manifests) {
        counts.add(&m.counts);
        for (k, v) in &m.rejects.by_reason {
            *rejects.by_reason.entry(k.clone()).or_default() += v;
        }
        let rank = r
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        for f in &m.rejects.files {
            let name = Path::new(f)
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let to = format!("rejects/{rank}-{name}");
            fs::copy(r.join(f), dir.join(&to)).at(dir.join(&to))?;
            rejects.files.push(to);
        }
    }
    let manifest = Manifest {
        schema: kind,
        tool: crate::TOOL_VERSION.to_string(),
        created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        recipe: info.recipe,
        shards,
        counts,
        rejects,
        extra: serde_json::json!({ "ranks": ranks.len(), "stage": info.extra }),
    };
    let title = if info.title.is_empty() {
        "earl dataset".to_string()
    } else {
        info.title
    };
    write_atomic(
        &dir.join("README.md"),
        crate::card::render(&manifest, &title).as_bytes(),
    )?;
    manifest.write(dir)?;
    Ok(manifest)
}
