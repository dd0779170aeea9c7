//! The revision listing: `GET {endpoint}/api/{datasets|models}/{id}/revision/{rev}?blobs=true`.
//!
//! hf-hub 1.0's `info()` cannot ask for `blobs=true` and its `paths-info` types drop the LFS
//! sha256 (the API names it `oid` there), so the one call that yields the commit plus every
//! file's size, blob id and sha256 is made here with reqwest.

use serde::Deserialize;

use crate::cache::Repo;
use crate::config::HubConfig;
use crate::error::{Error, Result};
use crate::source::is_commit;

/// A file of a revision, with what is needed to store and verify it.
#[derive(Debug, Clone)]
pub(crate) struct RemoteFile {
    /// Path in the repo, `/`-separated.
    pub path: String,
    pub size: u64,
    /// The blob name in the cache: the LFS sha256, else the git blob id (what Python calls etag).
    pub etag: String,
    pub digest: Digest,
}

/// How to check a downloaded file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Digest {
    /// LFS (and Xet) files: sha256 of the content.
    Sha256(String),
    /// Files stored in git: sha1 of `blob {size}\0` followed by the content.
    GitBlob(String),
}

/// What a revision is: its commit and its files.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub commit: String,
    pub files: Vec<RemoteFile>,
}

#[derive(Deserialize)]
struct RevisionJson {
    sha: Option<String>,
    siblings: Option<Vec<SiblingJson>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SiblingJson {
    rfilename: String,
    size: Option<u64>,
    blob_id: Option<String>,
    lfs: Option<LfsJson>,
}

#[derive(Deserialize)]
struct LfsJson {
    sha256: Option<String>,
    size: Option<u64>,
}

pub(crate) async fn fetch_snapshot(
    http: &reqwest::Client,
    config: &HubConfig,
    repo: &Repo,
    revision: &str,
) -> Result<Snapshot> {
    let mut url = reqwest::Url::parse(&format!(
        "{}/api/{}/{}/revision",
        config.endpoint,
        repo.kind.plural(),
        repo.id
    ))
    .map_err(|e| Error::Setup(format!("bad HF_ENDPOINT {:?}: {e}", config.endpoint)))?;
    // One segment, so a branch like `refs/convert/parquet` is sent as `refs%2Fconvert%2Fparquet`.
    url.path_segments_mut()
        .map_err(|()| Error::Setup(format!("bad HF_ENDPOINT {:?}", config.endpoint)))?
        .push(revision);
    url.set_query(Some("blobs=true"));
    let shown = url.to_string();

    let mut request = http.get(url);
    if let Some(token) = &config.token {
        request = request.bearer_auth(token.expose());
    }
    let network = |source| Error::Network {
        url: shown.clone(),
        source,
    };
    let response = request.send().await.map_err(network)?;
    let status = response.status().as_u16();
    if status != 200 {
        let body = response.text().await.unwrap_or_default();
        return Err(status_error(
            config, repo, revision, "revision", &shown, status, &body,
        ));
    }
    let json: RevisionJson = response.json().await.map_err(network)?;
    parse_snapshot(json, &shown)
}

fn parse_snapshot(json: RevisionJson, url: &str) -> Result<Snapshot> {
    let malformed = |reason: String| Error::Malformed {
        url: url.to_string(),
        reason,
    };
    let commit = json.sha.ok_or_else(|| malformed("no `sha`".into()))?;
    if !is_commit(&commit) {
        return Err(malformed(format!("`sha` {commit:?} is not a commit id")));
    }
    let siblings = json
        .siblings
        .ok_or_else(|| malformed("no `siblings`".into()))?;
    let mut files = Vec::with_capacity(siblings.len());
    for s in siblings {
        check_repo_path(&s.rfilename).map_err(&malformed)?;
        let lfs = s.lfs.and_then(|l| Some((l.sha256?, l.size)));
        let (etag, size, digest) = match (lfs, s.blob_id) {
            (Some((sha256, lfs_size)), _) => {
                let size = lfs_size.or(s.size);
                (sha256.clone(), size, Digest::Sha256(sha256))
            }
            (None, Some(blob)) => (blob.clone(), s.size, Digest::GitBlob(blob)),
            (None, None) => return Err(malformed(format!("{}: no blobId or lfs", s.rfilename))),
        };
        let hex_ok = matches!(etag.len(), 40 | 64) && etag.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex_ok {
            return Err(malformed(format!(
                "{}: {etag:?} is not a hash",
                s.rfilename
            )));
        }
        let size = size.ok_or_else(|| malformed(format!("{}: no size", s.rfilename)))?;
        files.push(RemoteFile {
            path: s.rfilename,
            size,
            etag,
            digest,
        });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Snapshot { commit, files })
}

/// Repo paths become cache paths, so a hostile listing must not be able to escape the cache.
fn check_repo_path(path: &str) -> Result<(), String> {
    let bad = path
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..");
    if bad || path.contains('\\') || path.contains('\0') {
        return Err(format!("unsafe file path {path:?}"));
    }
    Ok(())
}

/// Turn a Hub error status into an error that says what to do.
pub(crate) fn status_error(
    config: &HubConfig,
    repo: &Repo,
    revision: &str,
    what: &str,
    url: &str,
    status: u16,
    body: &str,
) -> Error {
    let (repo_name, url) = (repo.to_string(), url.to_string());
    match status {
        401 => Error::Unauthorized {
            repo: repo_name,
            url,
        },
        403 => Error::Forbidden {
            repo: repo_name,
            url,
            page: repo.page(&config.endpoint),
        },
        404 => Error::NotFound {
            repo: repo_name,
            revision: revision.into(),
            what: what.into(),
            url,
        },
        _ => {
            let message = serde_json::from_str::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v.get("error")?.as_str().map(str::to_string))
                .unwrap_or_else(|| body.chars().take(300).collect());
            Error::Http {
                url,
                status,
                message,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: serde_json::Value) -> Result<Snapshot> {
        parse_snapshot(serde_json::from_value(json).unwrap(), "http://hub")
    }

    #[test]
    fn lfs_files_are_named_by_sha256_and_git_files_by_blob_id() {
        let sha = "a".repeat(64);
        let snap = parse(serde_json::json!({
            "sha": "0123456789abcdef0123456789abcdef01234567",
            "siblings": [
                {"rfilename": "data/x.parquet", "size": 134, "blobId": "b".repeat(40),
                 "lfs": {"sha256": sha, "size": 9000, "pointerSize": 134}},
                {"rfilename": "README.md", "size": 12, "blobId": "c".repeat(40)}
            ]
        }))
        .unwrap();
        assert_eq!(snap.files[0].path, "README.md");
        assert_eq!(snap.files[0].digest, Digest::GitBlob("c".repeat(40)));
        assert_eq!(
            (snap.files[1].size, snap.files[1].etag.as_str()),
            (9000, sha.as_str())
        );
        assert_eq!(snap.files[1].digest, Digest::Sha256(sha));
    }

    #[test]
    fn hostile_listing_is_rejected() {
        let err = parse(serde_json::json!({
            "sha": "0123456789abcdef0123456789abcdef01234567",
            "siblings": [{"rfilename": "../../x", "size": 1, "blobId": "c".repeat(40)}]
        }))
        .unwrap_err();
        assert!(err.to_string().contains("unsafe file path"), "{err}");
        let err = parse(serde_json::json!({"sha": "main", "siblings": []})).unwrap_err();
        assert!(err.to_string().contains("not a commit id"), "{err}");
    }
}
