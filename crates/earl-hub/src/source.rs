//! Source strings (`hub:org/name@rev`, `org/name`, a local path) and repo id validation.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Where a dataset (or weights) comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Hub(HubRef),
    Local(PathBuf),
}

/// A Hub repository at an optional revision (branch, tag or commit sha; `None` means `main`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubRef {
    pub repo: String,
    pub revision: Option<String>,
}

impl Source {
    /// `hub:org/name[@rev]` is always the Hub; a path that exists is local; otherwise a string
    /// shaped like a Hub id (`org/name[@rev]`) is the Hub and anything else a local path.
    pub fn parse(input: &str) -> Result<Source> {
        if let Some(rest) = input.strip_prefix("hub:") {
            return parse_hub(rest, true)
                .map(Source::Hub)
                .map_err(|reason| Error::InvalidSource {
                    input: input.to_string(),
                    reason,
                });
        }
        let looks_like_path = input.starts_with(['/', '.', '~']) || input.contains('\\');
        if looks_like_path || Path::new(input).exists() {
            return Ok(Source::Local(PathBuf::from(input)));
        }
        match parse_hub(input, false) {
            Ok(hub) => Ok(Source::Hub(hub)),
            Err(_) => Ok(Source::Local(PathBuf::from(input))),
        }
    }
}

fn parse_hub(text: &str, allow_bare_name: bool) -> Result<HubRef, String> {
    let (repo, revision) = match text.split_once('@') {
        Some((repo, rev)) => (repo, Some(rev)),
        None => (text, None),
    };
    if !allow_bare_name && !repo.contains('/') {
        return Err("a Hub id needs the form org/name".to_string());
    }
    check_repo_id(repo)?;
    if let Some(rev) = revision {
        check_revision(rev)?;
    }
    Ok(HubRef {
        repo: repo.to_string(),
        revision: revision.map(str::to_string),
    })
}

impl fmt::Display for HubRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.revision {
            Some(rev) => write!(f, "hub:{}@{rev}", self.repo),
            None => write!(f, "hub:{}", self.repo),
        }
    }
}

/// The Hub's naming rule: `[namespace/]name`, each part of ASCII letters, digits, `-`, `_`,
/// `.`, not starting or ending with `-`/`.`, no `--` or `..`, at most 96 characters.
pub(crate) fn check_repo_id(id: &str) -> Result<(), String> {
    let parts: Vec<&str> = id.split('/').collect();
    if parts.len() > 2 {
        return Err(format!(
            "{id:?} has more than one '/'; a Hub id is org/name"
        ));
    }
    for part in parts {
        let ok_chars = part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        let ok_ends = !part.starts_with(['-', '.']) && !part.ends_with(['-', '.']);
        if part.is_empty()
            || part.len() > 96
            || !ok_chars
            || !ok_ends
            || part.contains("--")
            || part.contains("..")
        {
            return Err(format!(
                "{part:?} is not a valid Hub name (letters, digits, '-', '_', '.'; no leading or \
                 trailing '-'/'.', no '--' or '..')"
            ));
        }
    }
    Ok(())
}

/// A revision becomes a path under `refs/`, so it must not be able to climb out of it.
pub(crate) fn check_revision(rev: &str) -> Result<(), String> {
    let bad_segment = rev
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..");
    if rev.is_empty() || bad_segment || rev.chars().any(|c| c.is_control() || c == '\\') {
        return Err(format!(
            "{rev:?} is not a valid revision (a branch, tag or commit sha)"
        ));
    }
    Ok(())
}

/// Full 40-hex commit ids are immutable; everything else is a branch or tag to resolve.
pub(crate) fn is_commit(rev: &str) -> bool {
    rev.len() == 40
        && rev
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(repo: &str, rev: Option<&str>) -> Source {
        Source::Hub(HubRef {
            repo: repo.into(),
            revision: rev.map(Into::into),
        })
    }

    #[test]
    fn hub_prefix_with_and_without_revision() {
        assert_eq!(
            Source::parse("hub:BAAI/Emu3-VisionTokenizer").unwrap(),
            hub("BAAI/Emu3-VisionTokenizer", None)
        );
        assert_eq!(
            Source::parse("hub:org/name@refs/convert/parquet").unwrap(),
            hub("org/name", Some("refs/convert/parquet"))
        );
        assert_eq!(Source::parse("hub:gpt2").unwrap(), hub("gpt2", None));
        assert_eq!(
            Source::parse("hub:org/name@v1.0")
                .unwrap()
                .to_string_lossy(),
            "hub:org/name@v1.0"
        );
    }

    #[test]
    fn plain_id_is_hub_unless_a_local_path_exists() {
        assert_eq!(
            Source::parse("TIGER-Lab/OmniEdit-Filtered-1.2M").unwrap(),
            hub("TIGER-Lab/OmniEdit-Filtered-1.2M", None)
        );
        let dir = tempfile::tempdir().unwrap();
        let local = dir.path().join("org").join("name");
        std::fs::create_dir_all(&local).unwrap();
        let cwd_relative = local.to_str().unwrap();
        assert_eq!(
            Source::parse(cwd_relative).unwrap(),
            Source::Local(local.clone())
        );
        assert_eq!(
            Source::parse("./data").unwrap(),
            Source::Local("./data".into())
        );
        assert_eq!(
            Source::parse("a/b/c.parquet").unwrap(),
            Source::Local("a/b/c.parquet".into())
        );
    }

    #[test]
    fn rejects_bad_ids_and_revisions() {
        for bad in [
            "hub:",
            "hub:a/b/c",
            "hub:-org/x",
            "hub:org/x--y",
            "hub:org/x@",
            "hub:o/x@../y",
        ] {
            let err = Source::parse(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn commit_detection() {
        assert!(is_commit("0123456789abcdef0123456789abcdef01234567"));
        assert!(!is_commit("main"));
        assert!(!is_commit("0123456789ABCDEF0123456789abcdef01234567"));
    }

    impl Source {
        fn to_string_lossy(&self) -> String {
            match self {
                Source::Hub(h) => h.to_string(),
                Source::Local(p) => p.display().to_string(),
            }
        }
    }
}
