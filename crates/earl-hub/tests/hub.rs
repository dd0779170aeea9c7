//! earl-hub against a local stand-in for the Hub: every test has its own server, cache folder
//! and client settings (no process environment), so they run in parallel.

mod mock_hub;

use std::path::{Path, PathBuf};

use earl_hub::{Error, HubClient, HubConfig, Token};
use mock_hub::{MockFile, MockHub, MockRepo};

const OLD: &str = "1111111111111111111111111111111111111111";
const NEW: &str = "2222222222222222222222222222222222222222";
const TOKEN: &str = "hf_secretTestToken123";

/// Bytes shaped like a Parquet file (magic at both ends), distinct per `tag`.
fn parquet(tag: &str, len: usize) -> Vec<u8> {
    let mut bytes = b"PAR1".to_vec();
    bytes.extend(tag.bytes().cycle().take(len));
    bytes.extend(b"PAR1");
    bytes
}

fn train_files(tag: &str) -> Vec<MockFile> {
    vec![
        MockFile::lfs(
            "data/train-00000-of-00002.parquet",
            &parquet(&format!("{tag}0"), 70_000),
        ),
        MockFile::lfs(
            "data/train-00001-of-00002.parquet",
            &parquet(&format!("{tag}1"), 50_000),
        ),
        MockFile::lfs(
            "data/test-00000-of-00001.parquet",
            &parquet(&format!("{tag}t"), 9_000),
        ),
        MockFile::git("README.md", format!("# edits {tag}\n").as_bytes()),
    ]
}

/// `org/edits`: `main` → NEW, tag `v1.0` → OLD, with different shard contents.
fn dataset() -> MockRepo {
    MockRepo {
        kind: "datasets",
        id: "org/edits".into(),
        token: None,
        commits: vec![
            (OLD.into(), train_files("old")),
            (NEW.into(), train_files("new")),
        ],
        refs: vec![("main".into(), NEW.into()), ("v1.0".into(), OLD.into())],
    }
}

fn model() -> MockRepo {
    MockRepo {
        kind: "models",
        id: "BAAI/Emu3-VisionTokenizer".into(),
        token: None,
        commits: vec![(
            NEW.into(),
            vec![
                MockFile::git("config.json", br#"{"codebook_size": 32768}"#),
                MockFile::lfs("model.safetensors", &parquet("weights", 40_000)),
                MockFile::git("README.md", b"# vq\n"),
            ],
        )],
        refs: vec![("main".into(), NEW.into())],
    }
}

fn private() -> MockRepo {
    MockRepo {
        id: "org/private".into(),
        token: Some(TOKEN.into()),
        ..dataset()
    }
}

fn client(hub: &MockHub, cache: &Path, token: Option<&str>, offline: bool) -> HubClient {
    HubClient::new(HubConfig {
        endpoint: hub.url.clone(),
        token: token.map(Token::new),
        cache_dir: cache.to_path_buf(),
        offline,
        concurrency: 4,
    })
    .unwrap()
}

fn bytes_of(repo: &MockRepo, commit: &str, path: &str) -> Vec<u8> {
    let (_, files) = repo.commits.iter().find(|(c, _)| c == commit).unwrap();
    files.iter().find(|f| f.path == path).unwrap().bytes.clone()
}

fn snapshot(cache: &Path, commit: &str, path: &str) -> PathBuf {
    cache
        .join("datasets--org--edits/snapshots")
        .join(commit)
        .join(path)
}

const TRAIN: [&str; 2] = [
    "data/train-00000-of-00002.parquet",
    "data/train-00001-of-00002.parquet",
];

#[test]
fn downloads_into_the_hf_cache_layout_then_reuses_it() {
    let hub = MockHub::start(vec![dataset()]);
    let cache = tempfile::tempdir().unwrap();
    let hf = client(&hub, cache.path(), None, false);

    let paths = hf
        .dataset_files("org/edits", None, "data/train-*.parquet")
        .unwrap();
    let expected: Vec<PathBuf> = TRAIN
        .iter()
        .map(|p| snapshot(cache.path(), NEW, p))
        .collect();
    assert_eq!(paths, expected);
    for (path, name) in paths.iter().zip(TRAIN) {
        assert_eq!(
            std::fs::read(path).unwrap(),
            bytes_of(&dataset(), NEW, name)
        );
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
            std::fs::read(path).unwrap(),
        ));
        let target = std::fs::read_link(path).unwrap();
        assert_eq!(
            target,
            PathBuf::from("../../../blobs").join(sha),
            "Python's relative symlink"
        );
    }
    let refs = cache.path().join("datasets--org--edits/refs/main");
    assert_eq!(std::fs::read_to_string(refs).unwrap(), NEW);
    assert!(
        !snapshot(cache.path(), NEW, "README.md").exists(),
        "only matching files"
    );
    assert!(!snapshot(cache.path(), NEW, "data/test-00000-of-00001.parquet").exists());
    let incomplete = std::fs::read_dir(cache.path().join("datasets--org--edits/blobs"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "incomplete")
        })
        .count();
    assert_eq!(incomplete, 0);

    // Again, from a fresh client too: one listing call to see where `main` is, no file traffic.
    let before = hub.requests().len();
    let files_before = hub.file_requests().len();
    assert_eq!(
        hf.dataset_files("org/edits", None, "data/train-*.parquet")
            .unwrap(),
        expected
    );
    let again = client(&hub, cache.path(), None, false);
    assert_eq!(
        again
            .dataset_files("org/edits", Some("main"), "data/train-*")
            .unwrap(),
        expected
    );
    assert_eq!(
        hub.file_requests().len(),
        files_before,
        "cached files are not fetched again"
    );
    assert_eq!(hub.requests().len(), before + 2);
}

#[test]
fn model_dir_holds_the_requested_files_and_a_cached_commit_needs_no_request() {
    let hub = MockHub::start(vec![model()]);
    let cache = tempfile::tempdir().unwrap();
    let hf = client(&hub, cache.path(), None, false);
    let files = ["config.json", "model.safetensors"];

    let dir = hf
        .model_dir("BAAI/Emu3-VisionTokenizer", None, &files)
        .unwrap();
    assert_eq!(
        dir,
        cache
            .path()
            .join("models--BAAI--Emu3-VisionTokenizer/snapshots")
            .join(NEW)
    );
    for name in files {
        assert_eq!(
            std::fs::read(dir.join(name)).unwrap(),
            bytes_of(&model(), NEW, name)
        );
    }
    assert!(!dir.join("README.md").exists());
    // Models resolve without the `/datasets` prefix.
    assert!(
        hub.requests()
            .iter()
            .any(|r| r.path == format!("/BAAI/Emu3-VisionTokenizer/resolve/{NEW}/config.json"))
    );

    let before = hub.requests().len();
    assert_eq!(
        hf.model_dir("BAAI/Emu3-VisionTokenizer", Some(NEW), &files)
            .unwrap(),
        dir
    );
    assert_eq!(
        hub.requests().len(),
        before,
        "a cached commit is served without any request"
    );
}

#[test]
fn pinned_tag_and_commit_resolve_to_their_own_snapshot() {
    let hub = MockHub::start(vec![dataset()]);
    let cache = tempfile::tempdir().unwrap();
    let hf = client(&hub, cache.path(), None, false);

    let by_tag = hf
        .dataset_files("org/edits", Some("v1.0"), "data/*.parquet")
        .unwrap();
    let names = ["data/test-00000-of-00001.parquet", TRAIN[0], TRAIN[1]];
    let expected: Vec<PathBuf> = names
        .iter()
        .map(|p| snapshot(cache.path(), OLD, p))
        .collect();
    assert_eq!(by_tag, expected, "sorted by repo path");
    assert_eq!(
        std::fs::read(&by_tag[1]).unwrap(),
        bytes_of(&dataset(), OLD, TRAIN[0])
    );
    let tag_ref = cache.path().join("datasets--org--edits/refs/v1.0");
    assert_eq!(std::fs::read_to_string(tag_ref).unwrap(), OLD);
    // Files are fetched by commit, so a branch moving mid-download cannot mix revisions.
    for r in hub
        .file_requests()
        .iter()
        .filter(|r| r.path.contains("/resolve/"))
    {
        assert!(r.path.contains(&format!("/resolve/{OLD}/")), "{}", r.path);
    }

    assert_eq!(
        hf.dataset_files("org/edits", Some(OLD), "data/*.parquet")
            .unwrap(),
        expected
    );
    let latest = hf
        .dataset_files("org/edits", None, "data/train-00000-of-00002.parquet")
        .unwrap();
    assert_eq!(
        std::fs::read(&latest[0]).unwrap(),
        bytes_of(&dataset(), NEW, TRAIN[0])
    );
    assert_ne!(
        bytes_of(&dataset(), NEW, TRAIN[0]),
        bytes_of(&dataset(), OLD, TRAIN[0])
    );
}

#[test]
fn offline_mode_answers_from_the_cache_without_network() {
    let hub = MockHub::start(vec![dataset(), model()]);
    let cache = tempfile::tempdir().unwrap();
    let online = client(&hub, cache.path(), None, false);
    let paths = online
        .dataset_files("org/edits", None, "data/train-*.parquet")
        .unwrap();
    let dir = online
        .model_dir("BAAI/Emu3-VisionTokenizer", None, &["config.json"])
        .unwrap();

    let before = hub.requests().len();
    let offline = client(&hub, cache.path(), None, true);
    assert_eq!(
        offline
            .dataset_files("org/edits", None, "data/train-*.parquet")
            .unwrap(),
        paths
    );
    assert_eq!(
        offline
            .dataset_files("org/edits", None, "**/*-00001-*")
            .unwrap(),
        &paths[1..]
    );
    assert_eq!(
        offline
            .model_dir("BAAI/Emu3-VisionTokenizer", None, &["config.json"])
            .unwrap(),
        dir
    );
    assert_eq!(
        hub.requests().len(),
        before,
        "offline clients never call the Hub"
    );

    // An unreachable endpoint falls back to the cache as well.
    let unreachable = HubClient::new(HubConfig {
        endpoint: "http://127.0.0.1:9".into(),
        token: None,
        cache_dir: cache.path().to_path_buf(),
        offline: false,
        concurrency: 1,
    })
    .unwrap();
    assert_eq!(
        unreachable
            .dataset_files("org/edits", None, "data/train-*")
            .unwrap(),
        paths
    );
}

#[test]
fn offline_miss_says_what_is_missing_and_what_to_do() {
    let hub = MockHub::start(vec![dataset()]);
    let cache = tempfile::tempdir().unwrap();
    let offline = client(&hub, cache.path(), None, true);

    let err = offline
        .dataset_files("org/edits", None, "data/*.parquet")
        .unwrap_err();
    assert!(matches!(err, Error::OfflineMiss { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("HF_HUB_OFFLINE=1") && msg.contains("datasets/org/edits"),
        "{msg}"
    );
    assert!(
        msg.contains(
            &cache
                .path()
                .join("datasets--org--edits/refs/main")
                .display()
                .to_string()
        )
    );

    client(&hub, cache.path(), None, false)
        .dataset_files("org/edits", None, "data/train-*")
        .unwrap();
    let online_requests = hub.requests().len();
    let err = offline
        .dataset_files("org/edits", None, "data/test-*")
        .unwrap_err();
    assert!(err.to_string().contains("\"data/test-*\""), "{err}");
    let err = offline
        .dataset_files("org/edits", Some("v1.0"), "data/train-*")
        .unwrap_err();
    assert!(err.to_string().contains("\"v1.0\""), "{err}");
    assert_eq!(
        hub.requests().len(),
        online_requests,
        "offline calls never reach the server"
    );
}

#[test]
fn token_is_sent_as_bearer_and_never_shown() {
    let hub = MockHub::start(vec![private()]);
    let cache = tempfile::tempdir().unwrap();
    let hf = client(&hub, cache.path(), Some(TOKEN), false);

    let paths = hf
        .dataset_files("org/private", None, "data/train-*.parquet")
        .unwrap();
    assert_eq!(paths.len(), 2);
    let hub_requests: Vec<_> = hub
        .requests()
        .into_iter()
        .filter(|r| !r.path.starts_with("/cdn/"))
        .collect();
    assert!(hub_requests.len() >= 3);
    for r in &hub_requests {
        assert_eq!(
            r.auth.as_deref(),
            Some(format!("Bearer {TOKEN}").as_str()),
            "{}",
            r.path
        );
    }
    assert!(!format!("{hf:?}").contains(TOKEN));
    assert!(!format!("{:?}", hf.config()).contains(TOKEN));
    let err = hf.model_dir("org/private", None, &["x"]).unwrap_err();
    assert!(!format!("{err} {err:?}").contains(TOKEN));
}

#[test]
fn missing_or_wrong_token_is_a_401_with_advice() {
    let hub = MockHub::start(vec![private()]);
    let cache = tempfile::tempdir().unwrap();
    for token in [None, Some("hf_wrong")] {
        let err = client(&hub, cache.path(), token, false)
            .dataset_files("org/private", None, "data/*")
            .unwrap_err();
        assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
        assert!(err.to_string().contains("set HF_TOKEN"), "{err}");
    }
    assert!(
        !cache.path().join("datasets--org--private").exists(),
        "nothing cached"
    );
}

#[test]
fn not_found_errors_name_the_repo_revision_or_file() {
    let hub = MockHub::start(vec![dataset(), model()]);
    let cache = tempfile::tempdir().unwrap();
    let hf = client(&hub, cache.path(), Some(TOKEN), false);

    let err = hf.dataset_files("org/nope", None, "*").unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("check the repo id"), "{err}");

    let err = hf.dataset_files("org/edits", Some("v9"), "*").unwrap_err();
    assert!(err.to_string().contains("org/edits@v9"), "{err}");

    let err = hf
        .model_dir(
            "BAAI/Emu3-VisionTokenizer",
            None,
            &["config.json", "nope.bin"],
        )
        .unwrap_err();
    assert!(matches!(err, Error::MissingFile { .. }), "{err:?}");
    assert!(
        err.to_string().contains("model.safetensors"),
        "lists what exists: {err}"
    );

    let err = hf
        .dataset_files("org/edits", None, "data/validation-*.parquet")
        .unwrap_err();
    assert!(matches!(err, Error::NoMatch { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("data/train-00000-of-00002.parquet"),
        "{err}"
    );

    let err = hf.dataset_files("org/edits", None, "data/[").unwrap_err();
    assert!(matches!(err, Error::BadFilter { .. }), "{err:?}");
}

/// The partial file a previous (killed) run left, as Python names it.
fn plant_partial(cache: &Path, file: &MockFile, bytes: &[u8]) -> PathBuf {
    let blobs = cache.join("datasets--org--edits/blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    let partial = blobs.join(format!("{}.incomplete", file.etag()));
    std::fs::write(&partial, bytes).unwrap();
    partial
}

#[test]
fn resumes_a_partial_download_with_a_range_request() {
    let hub = MockHub::start(vec![dataset()]);
    let cache = tempfile::tempdir().unwrap();
    let repo = dataset();
    let file = &repo.commits[1].1[0];
    let partial = plant_partial(cache.path(), file, &file.bytes[..30_000]);

    let hf = client(&hub, cache.path(), None, false);
    let paths = hf.dataset_files("org/edits", None, TRAIN[0]).unwrap();
    assert_eq!(std::fs::read(&paths[0]).unwrap(), file.bytes);
    assert!(!partial.exists());
    let cdn = hub
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/cdn/"));
    let ranges: Vec<_> = cdn.filter_map(|r| r.range).collect();
    assert_eq!(
        ranges,
        vec![format!("bytes=30000-{}", file.bytes.len() - 1)]
    );
}

#[test]
fn a_partial_that_does_not_verify_is_downloaded_again() {
    let hub = MockHub::start(vec![dataset()]);
    let cache = tempfile::tempdir().unwrap();
    let repo = dataset();
    let file = &repo.commits[1].1[0];
    plant_partial(cache.path(), file, &vec![0u8; 20_000]);

    let paths = client(&hub, cache.path(), None, false).dataset_files("org/edits", None, TRAIN[0]);
    assert_eq!(std::fs::read(&paths.unwrap()[0]).unwrap(), file.bytes);
    let gets: Vec<_> = hub
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.starts_with("/cdn/"))
        .collect();
    assert_eq!(
        gets.len(),
        2,
        "one resumed attempt, one from scratch: {gets:?}"
    );
    assert!(gets[0].range.is_some() && gets[1].range.is_none());
}

#[test]
fn wrong_bytes_from_the_server_are_a_checksum_error_and_leave_nothing() {
    let mut repo = dataset();
    repo.commits[1].1[3].served = Some(b"# edits bad\n".to_vec()); // README.md, a git file
    repo.commits[1].1[1].served = Some(parquet("evil", 50_000)); // an LFS shard
    let hub = MockHub::start(vec![repo]);
    let cache = tempfile::tempdir().unwrap();
    let hf = client(&hub, cache.path(), None, false);

    for (pattern, kind) in [("README.md", "git blob sha1"), (TRAIN[1], "sha256")] {
        let err = hf.dataset_files("org/edits", None, pattern).unwrap_err();
        assert!(matches!(err, Error::Checksum(_)), "{err:?}");
        assert!(
            err.to_string().contains(kind) && err.to_string().contains(pattern),
            "{err}"
        );
    }
    let repo_dir = cache.path().join("datasets--org--edits");
    assert!(!repo_dir.join("snapshots").exists(), "no link to bad bytes");
    assert_eq!(
        std::fs::read_dir(repo_dir.join("blobs")).unwrap().count(),
        0
    );
    assert!(
        !repo_dir.join("refs/main").exists(),
        "an offline run must not trust this"
    );
}

#[test]
fn a_connection_broken_mid_body_is_resumed_in_the_same_call() {
    let mut repo = dataset();
    repo.commits[1].1[0].cut_once = Some(25_000);
    let hub = MockHub::start(vec![repo]);
    let cache = tempfile::tempdir().unwrap();

    let paths = client(&hub, cache.path(), None, false).dataset_files("org/edits", None, TRAIN[0]);
    assert_eq!(
        std::fs::read(&paths.unwrap()[0]).unwrap(),
        bytes_of(&dataset(), NEW, TRAIN[0])
    );
    let gets: Vec<_> = hub
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.starts_with("/cdn/"))
        .collect();
    assert_eq!(gets.len(), 2, "{gets:?}");
    assert_eq!(gets[0].range, None);
    let resumed_at = gets[1].range.as_deref().unwrap_or_default();
    assert!(
        resumed_at.starts_with("bytes=") && resumed_at != "bytes=0-",
        "{resumed_at}"
    );
}

#[test]
fn a_body_shorter_than_listed_is_a_checksum_error() {
    let mut repo = dataset();
    repo.commits[1].1[3].served = Some(b"# short\n".to_vec());
    let hub = MockHub::start(vec![repo]);
    let cache = tempfile::tempdir().unwrap();
    let err = client(&hub, cache.path(), None, false)
        .dataset_files("org/edits", None, "README.md")
        .unwrap_err();
    assert!(
        matches!(&err, Error::Checksum(c) if (c.received, c.size) == (8, 12)),
        "{err:?}"
    );
}
