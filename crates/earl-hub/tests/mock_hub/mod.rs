//! A small stand-in for the Hugging Face Hub HTTP API, enough for earl-hub: the revision listing
//! (`/api/{datasets|models}/{id}/revision/{rev}?blobs=true`), `resolve` (git files served
//! directly, LFS files redirected to a CDN path, as the Hub does), byte ranges, private repos
//! that want a Bearer token, and a log of every request.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use sha1::Sha1;
use sha2::{Digest, Sha256};

pub struct MockFile {
    pub path: String,
    pub bytes: Vec<u8>,
    pub lfs: bool,
    /// Bytes actually served, when they differ from what the listing promises.
    pub served: Option<Vec<u8>>,
    /// Break the connection after this many bytes, on the first full GET only.
    pub cut_once: Option<usize>,
    cut_done: AtomicBool,
}

impl MockFile {
    pub fn git(path: &str, bytes: &[u8]) -> Self {
        Self {
            lfs: false,
            ..Self::lfs(path, bytes)
        }
    }

    pub fn lfs(path: &str, bytes: &[u8]) -> Self {
        Self {
            path: path.into(),
            bytes: bytes.to_vec(),
            lfs: true,
            served: None,
            cut_once: None,
            cut_done: AtomicBool::new(false),
        }
    }

    pub fn sha256(&self) -> String {
        hex::encode(Sha256::digest(&self.bytes))
    }

    fn pointer(&self) -> Vec<u8> {
        let text = format!(
            "version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize {}\n",
            self.sha256(),
            self.bytes.len()
        );
        text.into_bytes()
    }

    /// The git object id of what git stores: the LFS pointer, or the content itself.
    fn blob_id(&self) -> String {
        let stored = if self.lfs {
            self.pointer()
        } else {
            self.bytes.clone()
        };
        let mut h = Sha1::new();
        h.update(format!("blob {}\0", stored.len()).as_bytes());
        h.update(&stored);
        hex::encode(h.finalize())
    }

    /// What the Hub calls the etag: sha256 for LFS, the git blob id otherwise.
    pub fn etag(&self) -> String {
        if self.lfs {
            self.sha256()
        } else {
            self.blob_id()
        }
    }

    fn body(&self) -> &[u8] {
        self.served.as_deref().unwrap_or(&self.bytes)
    }
}

pub struct MockRepo {
    /// "datasets" or "models".
    pub kind: &'static str,
    pub id: String,
    /// When set, every request must carry `Authorization: Bearer <token>`.
    pub token: Option<String>,
    pub commits: Vec<(String, Vec<MockFile>)>,
    /// Branches and tags: (name, commit).
    pub refs: Vec<(String, String)>,
}

impl MockRepo {
    fn commit(&self, rev: &str) -> Option<&(String, Vec<MockFile>)> {
        let sha = self
            .refs
            .iter()
            .find(|(name, _)| name == rev)
            .map_or(rev, |(_, c)| c.as_str());
        self.commits.iter().find(|(c, _)| c == sha)
    }
}

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub range: Option<String>,
    pub auth: Option<String>,
}

struct Hub {
    repos: Vec<MockRepo>,
    log: Mutex<Vec<Request>>,
}

pub struct MockHub {
    pub url: String,
    hub: Arc<Hub>,
}

impl MockHub {
    /// Serve `repos` on 127.0.0.1 at a free port, from a thread of its own.
    pub fn start(repos: Vec<MockRepo>) -> MockHub {
        let hub = Arc::new(Hub {
            repos,
            log: Mutex::new(Vec::new()),
        });
        let app = axum::Router::new().fallback(handle).with_state(hub.clone());
        let (tx, rx) = std::sync::mpsc::channel::<SocketAddr>();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            runtime.expect("server runtime").block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                tx.send(listener.local_addr().expect("addr"))
                    .expect("report addr");
                axum::serve(listener, app).await.expect("serve");
            });
        });
        let addr = rx.recv().expect("server started");
        MockHub {
            url: format!("http://{addr}"),
            hub,
        }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.hub.log.lock().unwrap().clone()
    }

    /// Requests that move file bytes or file metadata (everything except the listing API).
    pub fn file_requests(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| !r.path.starts_with("/api/"))
            .collect()
    }
}

async fn handle(
    State(hub): State<Arc<Hub>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let text = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    hub.log.lock().unwrap().push(Request {
        method: method.to_string(),
        path: uri.path().to_string(),
        range: text(header::RANGE),
        auth: text(header::AUTHORIZATION),
    });
    let parts: Vec<String> = uri.path().split('/').skip(1).map(decode).collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    match parts.as_slice() {
        ["api", kind, org, name, "revision", rev @ ..] => {
            with_repo(&hub, kind, org, name, &headers, |repo| {
                listing(repo, &rev.join("/"))
            })
        }
        ["cdn", sha] => {
            let file = hub
                .repos
                .iter()
                .flat_map(|r| &r.commits)
                .flat_map(|(_, files)| files);
            match file.into_iter().find(|f| f.lfs && f.sha256() == *sha) {
                Some(f) => serve(f, &method, &headers, None),
                None => error(StatusCode::NOT_FOUND, "EntryNotFound"),
            }
        }
        ["datasets", org, name, "resolve", rev, path @ ..] => {
            with_repo(&hub, "datasets", org, name, &headers, |repo| {
                resolve(repo, rev, path, &method, &headers)
            })
        }
        [org, name, "resolve", rev, path @ ..] => {
            with_repo(&hub, "models", org, name, &headers, |repo| {
                resolve(repo, rev, path, &method, &headers)
            })
        }
        _ => error(StatusCode::NOT_FOUND, "NotFound"),
    }
}

fn with_repo(
    hub: &Hub,
    kind: &str,
    org: &str,
    name: &str,
    headers: &HeaderMap,
    then: impl FnOnce(&MockRepo) -> Response,
) -> Response {
    let id = format!("{org}/{name}");
    let Some(repo) = hub.repos.iter().find(|r| r.kind == kind && r.id == id) else {
        // Like the Hub: anonymous callers cannot tell a missing repo from a private one.
        let status = match headers.contains_key(header::AUTHORIZATION) {
            true => StatusCode::NOT_FOUND,
            false => StatusCode::UNAUTHORIZED,
        };
        return error(status, "RepoNotFound");
    };
    if let Some(token) = &repo.token {
        let auth = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if auth != Some(format!("Bearer {token}").as_str()) {
            return error(StatusCode::UNAUTHORIZED, "GatedRepo");
        }
    }
    then(repo)
}

fn listing(repo: &MockRepo, rev: &str) -> Response {
    let Some((sha, files)) = repo.commit(rev) else {
        return error(StatusCode::NOT_FOUND, "RevisionNotFound");
    };
    let siblings: Vec<serde_json::Value> = files
        .iter()
        .map(|f| {
            if f.lfs {
                serde_json::json!({"rfilename": f.path, "size": f.pointer().len(),
                    "blobId": f.blob_id(),
                    "lfs": {"sha256": f.sha256(), "size": f.bytes.len(), "pointerSize": f.pointer().len()}})
            } else {
                serde_json::json!({"rfilename": f.path, "size": f.bytes.len(), "blobId": f.blob_id()})
            }
        })
        .collect();
    let body = serde_json::json!({"id": repo.id, "sha": sha, "siblings": siblings});
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn resolve(
    repo: &MockRepo,
    rev: &str,
    path: &[&str],
    method: &Method,
    headers: &HeaderMap,
) -> Response {
    let Some((sha, files)) = repo.commit(rev) else {
        return error(StatusCode::NOT_FOUND, "RevisionNotFound");
    };
    let path = path.join("/");
    let Some(file) = files.iter().find(|f| f.path == path) else {
        return error(StatusCode::NOT_FOUND, "EntryNotFound");
    };
    if file.lfs {
        // The CDN is another host, as on the Hub (`localhost` here): clients must take the
        // metadata from this redirect, and must not forward the token.
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let port = host.rsplit(':').next().unwrap_or_default();
        let cdn = format!("http://localhost:{port}/cdn/{}", file.sha256());
        return Response::builder()
            .status(StatusCode::FOUND)
            .header(header::LOCATION, cdn)
            .header("x-repo-commit", sha.as_str())
            .header("x-linked-etag", format!("\"{}\"", file.sha256()))
            .header("x-linked-size", file.bytes.len())
            .body(Body::empty())
            .unwrap();
    }
    serve(file, method, headers, Some(sha))
}

/// The file body, honouring `Range: bytes=a-` and `bytes=a-b`.
fn serve(file: &MockFile, method: &Method, headers: &HeaderMap, commit: Option<&str>) -> Response {
    let body = file.body();
    let total = body.len();
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| {
            let (a, b) = r.strip_prefix("bytes=")?.split_once('-')?;
            let start: usize = a.parse().ok()?;
            let end: usize = if b.is_empty() {
                total - 1
            } else {
                b.parse().ok()?
            };
            Some((start, end.min(total - 1)))
        });
    let mut response = Response::builder()
        .header(header::ETAG, format!("\"{}\"", file.etag()))
        .header(header::ACCEPT_RANGES, "bytes");
    if let Some(commit) = commit {
        response = response.header("x-repo-commit", commit);
    }
    match range {
        Some((start, end)) if start < total => response
            .status(StatusCode::PARTIAL_CONTENT)
            .header(
                header::CONTENT_RANGE,
                format!("bytes {start}-{end}/{total}"),
            )
            .body(Body::from(body[start..=end].to_vec()))
            .unwrap(),
        Some(_) => error(StatusCode::RANGE_NOT_SATISFIABLE, "RangeNotSatisfiable"),
        None => match file.cut_once {
            Some(n) if method == Method::GET && !file.cut_done.swap(true, Ordering::SeqCst) => {
                let head = axum::body::Bytes::copy_from_slice(&body[..n]);
                let broken = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "cut");
                // Pause before failing, so that the head really goes out on the wire first.
                let fail = async move {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    Err(broken)
                };
                let chunks = futures::StreamExt::chain(
                    futures::stream::iter(vec![Ok(head)]),
                    futures::stream::once(fail),
                );
                response.body(Body::from_stream(chunks)).unwrap()
            }
            _ => response.body(Body::from(body.to_vec())).unwrap(),
        },
    }
}

fn error(status: StatusCode, code: &str) -> Response {
    Response::builder()
        .status(status)
        .header("x-error-code", code)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::json!({"error": code}).to_string()))
        .unwrap()
}

/// Percent-decoding of one path segment (revisions arrive as `refs%2Fconvert%2Fparquet`).
fn decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
