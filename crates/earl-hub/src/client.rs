//! `HubClient`: blocking calls that turn a repo + revision into files in the local HF cache.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use globset::{GlobBuilder, GlobMatcher};
use hf_hub::{HFClient, RepoType};

use crate::api::{self, RemoteFile};
use crate::cache::{Repo, RepoCache, RepoKind};
use crate::config::HubConfig;
use crate::download::{Job, ensure_blob};
use crate::error::{Error, Result};
use crate::source::{check_repo_id, check_revision, is_commit};

/// Resolves Hub repositories into the standard cache (shared with Python's `huggingface_hub`).
///
/// The methods block; the async machinery (tokio, reqwest, hf-hub) stays inside. Do not call
/// them from within an async runtime.
pub struct HubClient {
    config: HubConfig,
    http: reqwest::Client,
    hf: HFClient,
    runtime: tokio::runtime::Runtime,
}

/// Which files of a revision a call wants.
enum Selection<'a> {
    Glob {
        pattern: &'a str,
        matcher: GlobMatcher,
    },
    Exact(&'a [&'a str]),
}

/// The outcome of a resolution: the commit and the repo paths, sorted, all present locally.
struct Resolved {
    cache: RepoCache,
    commit: String,
    paths: Vec<String>,
}

impl HubClient {
    /// A client configured from `HF_ENDPOINT`, `HF_TOKEN`, `HF_HOME`, `HF_HUB_CACHE`,
    /// `HF_HUB_OFFLINE` and friends.
    pub fn from_env() -> Result<Self> {
        Self::new(HubConfig::from_env())
    }

    pub fn new(config: HubConfig) -> Result<Self> {
        let setup = |e: &dyn fmt::Display| Error::Setup(e.to_string());
        let http = reqwest::Client::builder()
            .user_agent(concat!("earl-hub/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            // A stalled body fails and is resumed instead of hanging forever.
            .read_timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| setup(&e))?;
        let mut builder = HFClient::builder()
            .endpoint(config.endpoint.clone())
            .cache_dir(config.cache_dir.clone())
            .client(http.clone());
        if let Some(token) = &config.token {
            builder = builder.token(token.expose());
        }
        let hf = builder.build().map_err(|e| setup(&e))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| setup(&e))?;
        Ok(Self {
            config,
            http,
            hf,
            runtime,
        })
    }

    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    /// The files of dataset `repo` at `revision` (default `main`) whose repo path matches
    /// `filter`, downloaded if missing, as snapshot paths sorted by repo path.
    ///
    /// `filter` is a glob over repo paths: `*` stays within one folder, `**` crosses folders,
    /// e.g. `data/train-*.parquet` or `**/*.parquet`.
    pub fn dataset_files(
        &self,
        repo: &str,
        revision: Option<&str>,
        filter: &str,
    ) -> Result<Vec<PathBuf>> {
        let matcher = GlobBuilder::new(filter)
            .literal_separator(true)
            .build()
            .map_err(|source| Error::BadFilter {
                pattern: filter.to_string(),
                source,
            })?
            .compile_matcher();
        let repo = checked(RepoKind::Dataset, repo, revision)?;
        let selection = Selection::Glob {
            pattern: filter,
            matcher,
        };
        let resolved = self
            .runtime
            .block_on(self.resolve(&repo, revision, selection))?;
        Ok(resolved
            .paths
            .iter()
            .map(|p| resolved.cache.snapshot_file(&resolved.commit, p))
            .collect())
    }

    /// The snapshot folder of model `repo` at `revision` (default `main`) holding at least
    /// `files` (e.g. `["config.json", "model.safetensors"]`), downloaded if missing.
    pub fn model_dir(&self, repo: &str, revision: Option<&str>, files: &[&str]) -> Result<PathBuf> {
        let repo = checked(RepoKind::Model, repo, revision)?;
        let resolved =
            self.runtime
                .block_on(self.resolve(&repo, revision, Selection::Exact(files)))?;
        Ok(resolved.cache.snapshot_dir(&resolved.commit))
    }

    async fn resolve(
        &self,
        repo: &Repo,
        revision: Option<&str>,
        selection: Selection<'_>,
    ) -> Result<Resolved> {
        let revision = revision.unwrap_or("main");
        let cache = RepoCache::new(&self.config.cache_dir, repo);
        if self.config.offline {
            return from_cache(cache, repo, revision, &selection);
        }
        // A commit never changes: when it already has every wanted file, ask nobody.
        if let Selection::Exact(paths) = &selection
            && is_commit(revision)
            && paths
                .iter()
                .all(|p| cache.snapshot_file(revision, p).is_file())
        {
            let paths = sorted(paths.iter().map(|p| p.to_string()).collect());
            return Ok(Resolved {
                cache,
                commit: revision.to_string(),
                paths,
            });
        }
        let snapshot = match api::fetch_snapshot(&self.http, &self.config, repo, revision).await {
            Ok(snapshot) => snapshot,
            // Like huggingface_hub: no connection at all falls back to what the cache has.
            Err(err @ Error::Network { .. }) => {
                let cached = from_cache(cache, repo, revision, &selection).map_err(|_| err)?;
                tracing::warn!(%repo, revision, "Hub unreachable, using the cached snapshot");
                return Ok(cached);
            }
            Err(err) => return Err(err),
        };
        let wanted = select(&snapshot.files, repo, revision, &selection)?;
        let missing: Vec<&RemoteFile> = wanted
            .iter()
            .copied()
            .filter(|f| !cache.snapshot_file(&snapshot.commit, &f.path).is_file())
            .collect();
        if !missing.is_empty() {
            let job = Job {
                config: &self.config,
                repo,
                cache: &cache,
                commit: &snapshot.commit,
            };
            match repo.kind {
                RepoKind::Dataset => {
                    let hf = self.hf.dataset(owner(&repo.id), name(&repo.id));
                    self.fetch_all(&hf, &job, &missing).await?;
                }
                RepoKind::Model => {
                    let hf = self.hf.model(owner(&repo.id), name(&repo.id));
                    self.fetch_all(&hf, &job, &missing).await?;
                }
            }
        }
        // Only now, so that an offline run never trusts a half-downloaded snapshot.
        cache.write_ref(revision, &snapshot.commit)?;
        let paths = wanted.iter().map(|f| f.path.clone()).collect();
        Ok(Resolved {
            cache,
            commit: snapshot.commit,
            paths,
        })
    }

    /// Download the distinct blobs (files with equal content share one), then link every file.
    async fn fetch_all<T: RepoType>(
        &self,
        hf: &hf_hub::HFRepository<T>,
        job: &Job<'_>,
        files: &[&RemoteFile],
    ) -> Result<()> {
        let distinct: BTreeMap<&str, &RemoteFile> =
            files.iter().map(|f| (f.etag.as_str(), *f)).collect();
        futures::stream::iter(distinct.into_values().map(|f| ensure_blob(hf, job, f)))
            .buffer_unordered(self.config.concurrency.max(1))
            .try_collect::<Vec<()>>()
            .await?;
        for f in files {
            job.cache.link(job.commit, &f.path, &f.etag)?;
        }
        Ok(())
    }
}

impl fmt::Debug for HubClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn checked(kind: RepoKind, id: &str, revision: Option<&str>) -> Result<Repo> {
    let invalid = |reason| Error::InvalidSource {
        input: id.to_string(),
        reason,
    };
    check_repo_id(id).map_err(invalid)?;
    if let Some(rev) = revision {
        check_revision(rev).map_err(invalid)?;
    }
    Ok(Repo {
        kind,
        id: id.to_string(),
    })
}

fn owner(id: &str) -> &str {
    hf_hub::split_id(id).0
}

fn name(id: &str) -> &str {
    hf_hub::split_id(id).1
}

fn sorted(mut paths: Vec<String>) -> Vec<String> {
    paths.sort();
    paths
}

/// Pick the wanted files from a listing, or say which exist.
fn select<'f>(
    files: &'f [RemoteFile],
    repo: &Repo,
    revision: &str,
    selection: &Selection<'_>,
) -> Result<Vec<&'f RemoteFile>> {
    match selection {
        Selection::Glob { pattern, matcher } => {
            let chosen: Vec<&RemoteFile> =
                files.iter().filter(|f| matcher.is_match(&f.path)).collect();
            if chosen.is_empty() {
                return Err(Error::NoMatch {
                    repo: repo.to_string(),
                    revision: revision.to_string(),
                    pattern: pattern.to_string(),
                    available: summary(files.iter().map(|f| f.path.as_str())),
                });
            }
            Ok(chosen)
        }
        Selection::Exact(paths) => {
            let mut chosen: Vec<&RemoteFile> = Vec::with_capacity(paths.len());
            for path in paths.iter() {
                let Some(file) = files.iter().find(|f| f.path == *path) else {
                    return Err(Error::MissingFile {
                        repo: repo.to_string(),
                        revision: revision.to_string(),
                        path: path.to_string(),
                        available: summary(files.iter().map(|f| f.path.as_str())),
                    });
                };
                chosen.push(file);
            }
            chosen.sort_by(|a, b| a.path.cmp(&b.path));
            chosen.dedup_by(|a, b| a.path == b.path);
            Ok(chosen)
        }
    }
}

/// `HF_HUB_OFFLINE=1` (or no network): answer from the cache alone.
fn from_cache(
    cache: RepoCache,
    repo: &Repo,
    revision: &str,
    selection: &Selection<'_>,
) -> Result<Resolved> {
    let commit = cache
        .cached_commit(revision)
        .ok_or_else(|| Error::OfflineMiss {
            what: format!("revision {revision:?} of {repo}"),
            path: cache.ref_path(revision),
        })?;
    let paths = match selection {
        Selection::Glob { pattern, matcher } => {
            let paths: Vec<String> = cache
                .snapshot_files(&commit)?
                .into_iter()
                .filter(|p| matcher.is_match(p))
                .collect();
            if paths.is_empty() {
                return Err(Error::OfflineMiss {
                    what: format!("any file matching {pattern:?} of {repo}@{revision}"),
                    path: cache.snapshot_dir(&commit),
                });
            }
            paths
        }
        Selection::Exact(wanted) => {
            for path in wanted.iter() {
                let local = cache.snapshot_file(&commit, path);
                if !local.is_file() {
                    return Err(Error::OfflineMiss {
                        what: format!("{path:?} of {repo}@{revision}"),
                        path: local,
                    });
                }
            }
            wanted.iter().map(|p| p.to_string()).collect()
        }
    };
    Ok(Resolved {
        cache,
        commit,
        paths: sorted(paths),
    })
}

/// A short list of a revision's files for error messages.
fn summary<'a>(paths: impl ExactSizeIterator<Item = &'a str>) -> String {
    let total = paths.len();
    let shown: Vec<&str> = paths.take(8).collect();
    match total {
        0 => "no files".to_string(),
        n if n <= 8 => format!("{n} files: {}", shown.join(", ")),
        n => format!("{n} files, e.g. {}, …", shown.join(", ")),
    }
}
