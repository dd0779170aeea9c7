//! The Hugging Face cache layout, shared with Python's `huggingface_hub`:
//!
//! ```text
//! {cache_dir}/datasets--org--name/
//!     refs/{revision}                      the commit a branch or tag pointed to
//!     blobs/{etag}                         file contents, named by sha256 (LFS) or git blob id
//!     blobs/{etag}.incomplete              a partial download, resumed on the next attempt
//!     snapshots/{commit}/{path}            relative symlink to ../../blobs/{etag}
//! {cache_dir}/.locks/datasets--org--name/{etag}.lock
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Result, io};
use crate::source::is_commit;

/// Models and datasets live under different URLs and cache folders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RepoKind {
    Model,
    Dataset,
}

impl RepoKind {
    /// The segment in API URLs and cache folder names.
    pub(crate) fn plural(self) -> &'static str {
        match self {
            RepoKind::Model => "models",
            RepoKind::Dataset => "datasets",
        }
    }

    /// The prefix of web and `resolve` URLs (models have none).
    pub(crate) fn url_prefix(self) -> &'static str {
        match self {
            RepoKind::Model => "",
            RepoKind::Dataset => "datasets/",
        }
    }
}

/// A repository id with its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Repo {
    pub kind: RepoKind,
    pub id: String,
}

impl Repo {
    /// The repo's web page, where gated repos show their terms.
    pub fn page(&self, endpoint: &str) -> String {
        format!("{endpoint}/{}{}", self.kind.url_prefix(), self.id)
    }
}

impl fmt::Display for Repo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.kind.url_prefix(), self.id)
    }
}

/// One repository's folder in the cache.
#[derive(Debug, Clone)]
pub(crate) struct RepoCache {
    root: PathBuf,
    lock_dir: PathBuf,
}

impl RepoCache {
    pub fn new(cache_dir: &Path, repo: &Repo) -> Self {
        let folder = format!("{}--{}", repo.kind.plural(), repo.id.replace('/', "--"));
        Self {
            root: cache_dir.join(&folder),
            lock_dir: cache_dir.join(".locks").join(folder),
        }
    }

    pub fn ref_path(&self, revision: &str) -> PathBuf {
        self.root.join("refs").join(revision)
    }

    /// The commit a revision resolves to without the network: a sha is itself, a branch or tag
    /// is whatever the last online resolution recorded.
    pub fn cached_commit(&self, revision: &str) -> Option<String> {
        if is_commit(revision) {
            return Some(revision.to_string());
        }
        let text = std::fs::read_to_string(self.ref_path(revision)).ok()?;
        let commit = text.trim();
        is_commit(commit).then(|| commit.to_string())
    }

    /// Record where a branch or tag points (written without a newline, as Python does).
    pub fn write_ref(&self, revision: &str, commit: &str) -> Result<()> {
        if is_commit(revision) {
            return Ok(());
        }
        let path = self.ref_path(revision);
        if std::fs::read_to_string(&path).is_ok_and(|old| old.trim() == commit) {
            return Ok(());
        }
        write_atomic(&path, commit.as_bytes())
    }

    pub fn snapshot_dir(&self, commit: &str) -> PathBuf {
        self.root.join("snapshots").join(commit)
    }

    pub fn snapshot_file(&self, commit: &str, path: &str) -> PathBuf {
        self.snapshot_dir(commit).join(path)
    }

    pub fn blob(&self, etag: &str) -> PathBuf {
        self.root.join("blobs").join(etag)
    }

    /// Python's name for a partial download, so either tool resumes the other's.
    pub fn partial(&self, etag: &str) -> PathBuf {
        self.root.join("blobs").join(format!("{etag}.incomplete"))
    }

    pub fn lock_file(&self, etag: &str) -> PathBuf {
        self.lock_dir.join(format!("{etag}.lock"))
    }

    /// Point `snapshots/{commit}/{path}` at `blobs/{etag}` with a relative symlink (a copy where
    /// symlinks do not exist), replacing whatever was there.
    pub fn link(&self, commit: &str, path: &str, etag: &str) -> Result<PathBuf> {
        let link = self.snapshot_file(commit, path);
        let parent = link.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(parent).map_err(io(parent))?;
        let tmp = unique_tmp(parent);
        #[cfg(unix)]
        {
            // From snapshots/{commit}/a/b.parquet up to the repo folder: one `..` per component
            // of `path` plus one for `{commit}` and one for `snapshots`, minus the file itself.
            let ups = path.split('/').count() + 1;
            let target = PathBuf::from("../".repeat(ups)).join("blobs").join(etag);
            std::os::unix::fs::symlink(&target, &tmp).map_err(io(&tmp))?;
        }
        #[cfg(not(unix))]
        std::fs::copy(self.blob(etag), &tmp).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &link).map_err(io(&link))?;
        Ok(link)
    }

    /// Repo paths (with `/`) of the files present in a snapshot, skipping dangling links.
    pub fn snapshot_files(&self, commit: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut stack = vec![(self.snapshot_dir(commit), String::new())];
        while let Some((dir, prefix)) = stack.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(&dir)(e)),
            };
            for entry in entries {
                let entry = entry.map_err(io(&dir))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let rel = if prefix.is_empty() {
                    name
                } else {
                    format!("{prefix}/{name}")
                };
                let path = entry.path();
                if entry.file_type().map_err(io(&path))?.is_dir() {
                    stack.push((path, rel));
                } else if path.is_file() {
                    out.push(rel);
                }
            }
        }
        Ok(out)
    }
}

/// Write through a temporary file and rename, so readers never see half a file.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let tmp = unique_tmp(parent);
    std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// A hidden name in `dir` no other process or thread uses, for write-then-rename.
fn unique_tmp(dir: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(".earl-{}-{n}.tmp", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn layout_matches_huggingface_hub() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repo {
            kind: RepoKind::Dataset,
            id: "TIGER-Lab/OmniEdit".into(),
        };
        let cache = RepoCache::new(dir.path(), &repo);
        let blobs = dir.path().join("datasets--TIGER-Lab--OmniEdit/blobs");
        std::fs::create_dir_all(&blobs).unwrap();
        std::fs::write(blobs.join("abc"), b"payload").unwrap();

        let link = cache.link(COMMIT, "data/train-0.parquet", "abc").unwrap();
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            PathBuf::from("../../../blobs/abc"),
            "same relative target Python writes"
        );
        assert_eq!(std::fs::read(&link).unwrap(), b"payload");
        assert_eq!(
            cache.snapshot_files(COMMIT).unwrap(),
            vec!["data/train-0.parquet"]
        );

        cache.write_ref("refs/convert/parquet", COMMIT).unwrap();
        assert_eq!(
            cache.cached_commit("refs/convert/parquet").as_deref(),
            Some(COMMIT)
        );
        assert_eq!(cache.cached_commit(COMMIT).as_deref(), Some(COMMIT));
        assert_eq!(cache.cached_commit("main"), None);
        let model = Repo {
            kind: RepoKind::Model,
            id: "BAAI/Emu3".into(),
        };
        assert!(
            RepoCache::new(dir.path(), &model)
                .blob("x")
                .ends_with("models--BAAI--Emu3/blobs/x")
        );
    }
}
