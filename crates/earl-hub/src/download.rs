//! Fetch one blob into the cache: resumable, verified, locked against concurrent downloaders.
//!
//! The bytes come through hf-hub's `download_file_stream` (auth, retries of the request, Xet
//! storage, redirects to the CDN). hf-hub's own cache download restarts partial files from zero
//! and checks no hash, so the blob file itself is written here: append to
//! `blobs/{etag}.incomplete` from where it stopped (an HTTP range), hash along the way, and only
//! rename it into place when the hash matches the listing.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use hf_hub::{HFError, HFRepository, RepoType};
use sha1::Sha1;
use sha2::{Digest as _, Sha256};

use crate::api::{Digest, RemoteFile};
use crate::cache::{Repo, RepoCache};
use crate::config::HubConfig;
use crate::error::{ChecksumMismatch, Error, Result, io};

/// Broken connections in a row (without a byte of progress) before giving up; each retry
/// resumes where the last one stopped.
const MAX_RETRIES: u32 = 4;

/// What every file of one resolution shares.
pub(crate) struct Job<'a> {
    pub config: &'a HubConfig,
    pub repo: &'a Repo,
    pub cache: &'a RepoCache,
    pub commit: &'a str,
}

/// Make sure `blobs/{etag}` holds the verified content of `file`.
pub(crate) async fn ensure_blob<T: RepoType>(
    hf: &HFRepository<T>,
    job: &Job<'_>,
    file: &RemoteFile,
) -> Result<()> {
    let blob = job.cache.blob(&file.etag);
    if blob.is_file() {
        return Ok(());
    }
    let _lock = lock(&job.cache.lock_file(&file.etag)).await?;
    if blob.is_file() {
        return Ok(()); // another process finished it while we waited
    }
    let partial = job.cache.partial(&file.etag);
    let mut resumed = std::fs::metadata(&partial).is_ok_and(|m| m.len() > 0);
    loop {
        let received = transfer(hf, job, file, &partial).await?;
        let (kind, expected) = match &file.digest {
            Digest::Sha256(hex) => ("sha256", hex),
            Digest::GitBlob(hex) => ("git blob sha1", hex),
        };
        if received.digest == *expected {
            std::fs::rename(&partial, &blob).map_err(io(&blob))?;
            return Ok(());
        }
        std::fs::remove_file(&partial).map_err(io(&partial))?;
        if !resumed {
            return Err(Error::Checksum(Box::new(ChecksumMismatch {
                repo: job.repo.to_string(),
                path: file.path.clone(),
                kind,
                expected: expected.clone(),
                actual: received.digest,
                received: received.bytes,
                size: file.size,
            })));
        }
        // The kept prefix was not what the server now sends (or it ignored the range).
        tracing::warn!(path = %file.path, "resumed download did not verify, starting over");
        resumed = false;
    }
}

/// Append the missing bytes to `partial`; returns the digest and length of the whole file.
async fn transfer<T: RepoType>(
    hf: &HFRepository<T>,
    job: &Job<'_>,
    file: &RemoteFile,
    partial: &Path,
) -> Result<Received> {
    let mut hasher = Hasher::new(&file.digest, file.size);
    let mut offset = hash_prefix(partial, &mut hasher)?;
    if offset > file.size {
        std::fs::remove_file(partial).map_err(io(partial))?;
        hasher = Hasher::new(&file.digest, file.size);
        offset = 0;
    }
    if let Some(parent) = partial.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let mut out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(partial)
        .map_err(io(partial))?;
    tracing::info!(repo = %job.repo, path = %file.path, size = file.size, offset, "downloading");

    // Attempts in a row that brought no byte; any progress resets it.
    let mut failures = 0;
    while offset < file.size {
        let before = offset;
        let range = (offset > 0).then_some(offset..file.size);
        let request = hf
            .download_file_stream()
            .filename(file.path.clone())
            .revision(job.commit.to_string())
            .maybe_range(range)
            .send()
            .await;
        let mut stream = match request {
            Ok((_, stream)) => stream,
            // The server has fewer bytes than listed: stop, and let the hash check decide.
            Err(HFError::Http { context }) if context.status.as_u16() == 416 => break,
            Err(e) => {
                retry_or_fail(e, &mut failures, job, file).await?;
                continue;
            }
        };
        let mut interrupted = None;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => {
                    out.write_all(&bytes).map_err(io(partial))?;
                    hasher.update(&bytes);
                    offset += bytes.len() as u64;
                }
                Err(e) => {
                    interrupted = Some(e);
                    break;
                }
            }
        }
        if offset > before {
            failures = 0;
        }
        match interrupted {
            Some(e) => retry_or_fail(e, &mut failures, job, file).await?,
            // A clean end before the last byte: the next round asks for the rest.
            None if offset == before && offset < file.size => {
                failures += 1;
                if failures > MAX_RETRIES {
                    return Err(Error::Malformed {
                        url: resolve_url(job, &file.path),
                        reason: format!("the body stops at byte {offset} of {}", file.size),
                    });
                }
            }
            None => {}
        }
    }
    out.sync_all().map_err(io(partial))?;
    Ok(Received {
        digest: hasher.finish(),
        bytes: offset,
    })
}

/// What a transfer ended with.
struct Received {
    digest: String,
    bytes: u64,
}

/// Feed what an earlier attempt left in `partial` to the hasher; returns its length.
fn hash_prefix(partial: &Path, hasher: &mut Hasher) -> Result<u64> {
    let mut file = match File::open(partial) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io(partial)(e)),
    };
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io(partial))?;
        if n == 0 {
            return Ok(len);
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
}

/// Broken connections and timeouts are retried (resuming); HTTP answers are final.
async fn retry_or_fail(
    error: HFError,
    failures: &mut u32,
    job: &Job<'_>,
    file: &RemoteFile,
) -> Result<()> {
    if matches!(error, HFError::Request { .. }) && *failures < MAX_RETRIES {
        *failures += 1;
        tracing::warn!(path = %file.path, %error, attempt = *failures, "download interrupted, resuming");
        tokio::time::sleep(Duration::from_millis(250 << *failures)).await;
        return Ok(());
    }
    Err(hf_error(job, &file.path, error))
}

/// Map hf-hub's errors onto ours, which say what to do.
pub(crate) fn hf_error(job: &Job<'_>, path: &str, error: HFError) -> Error {
    let (repo, url) = (job.repo.to_string(), resolve_url(job, path));
    match error {
        HFError::AuthRequired { .. } => Error::Unauthorized { repo, url },
        HFError::Forbidden { .. } => Error::Forbidden {
            repo,
            url,
            page: job.repo.page(&job.config.endpoint),
        },
        HFError::RepoNotFound { .. }
        | HFError::EntryNotFound { .. }
        | HFError::RevisionNotFound { .. } => Error::NotFound {
            repo,
            revision: job.commit.to_string(),
            what: format!("file {path:?}"),
            url,
        },
        other => Error::Download {
            repo,
            path: path.to_string(),
            source: Box::new(other),
        },
    }
}

fn resolve_url(job: &Job<'_>, path: &str) -> String {
    let prefix = job.repo.kind.url_prefix();
    let id = &job.repo.id;
    format!(
        "{}/{prefix}{id}/resolve/{}/{path}",
        job.config.endpoint, job.commit
    )
}

/// An exclusive `flock` on Python's lock file for this blob, so two downloads of the same file
/// (ours or Python's) never write one `.incomplete` together. Released when the file is dropped.
/// Where `flock` silently does nothing (some network filesystems), a collision shows up as a
/// hash mismatch of the partial; keep `HF_HUB_CACHE` on a local disk for parallel downloads.
async fn lock(path: &Path) -> Result<File> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io(path))?;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            // Polling instead of a blocking lock keeps the runtime's thread free.
            Err(TryLockError::WouldBlock) => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(TryLockError::Error(e)) => return Err(io(path)(e)),
        }
    }
}

enum Hasher {
    Sha256(Sha256),
    GitBlob(Sha1),
}

impl Hasher {
    fn new(digest: &Digest, size: u64) -> Self {
        match digest {
            Digest::Sha256(_) => Hasher::Sha256(Sha256::new()),
            Digest::GitBlob(_) => {
                let mut h = Sha1::new();
                h.update(format!("blob {size}\0").as_bytes());
                Hasher::GitBlob(h)
            }
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::GitBlob(h) => h.update(bytes),
        }
    }

    fn finish(self) -> String {
        match self {
            Hasher::Sha256(h) => hex::encode(h.finalize()),
            Hasher::GitBlob(h) => hex::encode(h.finalize()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_blob_id_matches_git() {
        // `printf 'hello\n' | git hash-object --stdin`
        let mut h = Hasher::new(&Digest::GitBlob(String::new()), 6);
        h.update(b"hello\n");
        assert_eq!(h.finish(), "ce013625030ba8dba906f756967f9e9ca394464a");
    }
}
