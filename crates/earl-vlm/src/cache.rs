//! The request cache: one small JSON file per answered request, written atomically.
//!
//! A file is written to a temporary name, fsynced, renamed into place and the directory
//! fsynced, so a kill leaves either the whole answer or nothing. Only replies that passed
//! validation are stored; a rerun re-asks everything else.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Sampling;
use crate::error::{Result, VlmError};
use crate::image_prep::ImagePrep;

/// What identifies a request: two requests with equal parts get the same answer.
#[derive(Debug, Serialize)]
pub struct KeyParts<'a> {
    pub model: &'a str,
    /// `id@version` of the prompt template.
    pub template: &'a str,
    pub system: &'a str,
    pub text: &'a str,
    /// sha256 of each image's original bytes, in message order.
    pub images: &'a [String],
    pub prep: &'a ImagePrep,
    pub sampling: &'a Sampling,
    pub schema: Option<&'a serde_json::Value>,
}

impl KeyParts<'_> {
    /// Hex sha256 of the parts (struct fields serialise in declaration order, so the key is
    /// stable).
    pub fn key(&self) -> String {
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(Sha256::digest(&bytes))
    }

    /// The key with the template tag, as [`crate::Client::ask`] takes it.
    pub fn cache_key(&self) -> CacheKey {
        CacheKey {
            key: self.key(),
            template: self.template.to_string(),
        }
    }
}

/// Where an answer is stored, and the template (`id@version`) recorded beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKey {
    pub key: String,
    pub template: String,
}

/// One stored answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedReply {
    pub key: String,
    pub model: String,
    pub template: String,
    /// The reply text exactly as the server sent it.
    pub text: String,
    pub tokens_in: u64,
    pub tokens_out: u64,
}

/// A directory of answers keyed by [`KeyParts::key`].
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| VlmError::io(&dir, e))?;
        Ok(Cache { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, key: &str) -> PathBuf {
        let shard = key.get(..2).unwrap_or("00");
        self.dir.join(shard).join(format!("{key}.json"))
    }

    /// The stored answer, if any. An unreadable entry counts as absent (it is re-asked and
    /// overwritten) rather than stopping the stage.
    pub fn get(&self, key: &str) -> Option<CachedReply> {
        let path = self.path(key);
        let bytes = std::fs::read(&path).ok()?;
        match serde_json::from_slice::<CachedReply>(&bytes) {
            Ok(entry) if entry.key == key => Some(entry),
            Ok(_) | Err(_) => {
                tracing::warn!(path = %path.display(), "ignoring a damaged cache entry");
                None
            }
        }
    }

    /// Store an answer durably (temp file, fsync, rename, fsync the directory).
    pub fn put(&self, entry: &CachedReply) -> Result<()> {
        let path = self.path(&entry.key);
        let parent = path.parent().unwrap_or(&self.dir).to_path_buf();
        std::fs::create_dir_all(&parent).map_err(|e| VlmError::io(&parent, e))?;
        let tmp = parent.join(format!(".{}.{}.tmp", entry.key, std::process::id()));
        let bytes = serde_json::to_vec(entry).unwrap_or_default();
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(&parent)?.sync_all()
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            VlmError::io(&path, e)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts<'a>(text: &'a str, images: &'a [String], prep: &'a ImagePrep) -> KeyParts<'a> {
        static SAMPLING: std::sync::OnceLock<Sampling> = std::sync::OnceLock::new();
        KeyParts {
            model: "m",
            template: "t@1",
            system: "s",
            text,
            images,
            prep,
            sampling: SAMPLING.get_or_init(Sampling::default),
            schema: None,
        }
    }

    #[test]
    fn keys_change_with_every_part() {
        let prep = ImagePrep::default();
        let imgs = vec!["aa".to_string()];
        let k = parts("x", &imgs, &prep).key();
        assert_eq!(k, parts("x", &imgs, &prep).key());
        assert_ne!(k, parts("y", &imgs, &prep).key());
        assert_ne!(k, parts("x", &["ab".to_string()], &prep).key());
        let other = ImagePrep {
            max_side: Some(10),
            ..ImagePrep::default()
        };
        assert_ne!(k, parts("x", &imgs, &other).key());
    }

    #[test]
    fn stores_reads_and_survives_damage() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let e = CachedReply {
            key: "abcdef".into(),
            model: "m".into(),
            template: "t@1".into(),
            text: "{}".into(),
            tokens_in: 3,
            tokens_out: 4,
        };
        assert!(cache.get("abcdef").is_none());
        cache.put(&e).unwrap();
        assert_eq!(cache.get("abcdef"), Some(e.clone()));
        std::fs::write(dir.path().join("ab/abcdef.json"), b"{\"key\":").unwrap();
        assert!(cache.get("abcdef").is_none());
        cache.put(&e).unwrap();
        assert_eq!(cache.get("abcdef"), Some(e));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("ab")).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary files left behind");
    }
}
