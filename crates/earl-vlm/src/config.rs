//! Client settings and the API key (which never appears in logs or `Debug` output).

use std::fmt;
use std::path::Path;
use std::time::Duration;

use crate::error::{Result, VlmError};

/// A bearer token. `Debug` and `Display` print `ApiKey(<redacted>)`.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into())
    }

    /// The key in environment variable `var`, if set and non-empty.
    pub fn from_env(var: &str) -> Option<Self> {
        std::env::var(var)
            .ok()
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty())
            .map(ApiKey)
    }

    /// The first line of `path` (a secrets file mounted by the scheduler, say).
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| VlmError::ApiKeyFile {
            path: path.to_path_buf(),
            source,
        })?;
        let key = text.lines().next().unwrap_or("").trim();
        if key.is_empty() {
            return Err(VlmError::Config(format!(
                "API key file {} is empty",
                path.display()
            )));
        }
        Ok(ApiKey(key.to_string()))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Everything the client needs to talk to one OpenAI-compatible endpoint.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Server root, e.g. `http://localhost:8000`; `/v1/chat/completions` is appended.
    pub base_url: String,
    /// The served model name (`--served-model-name` in vLLM).
    pub model: String,
    pub api_key: Option<ApiKey>,
    /// Requests in flight at once (default 64).
    pub concurrency: usize,
    /// Limit for one HTTP exchange, connect to last byte (default 120 s).
    pub timeout: Duration,
    /// Transport attempts per request: connection errors, timeouts, 429 and 5xx (default 6).
    pub max_attempts: u32,
    /// First backoff; doubles each attempt, with full jitter (default 500 ms).
    pub backoff_base: Duration,
    /// Ceiling for one backoff, and for a server's `Retry-After` (default 30 s).
    pub backoff_max: Duration,
    /// Replies asked for per request when replies fail validation (default 3).
    pub parse_attempts: u32,
}

impl ClientConfig {
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        ClientConfig {
            base_url: base_url.into(),
            model: model.into(),
            api_key: None,
            concurrency: 64,
            timeout: Duration::from_secs(120),
            max_attempts: 6,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            parse_attempts: 3,
        }
    }

    /// The key from `$var` if set, else from `file` if given, else none.
    pub fn with_api_key_from(mut self, var: &str, file: Option<&Path>) -> Result<Self> {
        self.api_key = match (ApiKey::from_env(var), file) {
            (Some(key), _) => Some(key),
            (None, Some(path)) => Some(ApiKey::from_file(path)?),
            (None, None) => None,
        };
        Ok(self)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |msg: &str| Err(VlmError::Config(msg.to_string()));
        if !(self.base_url.starts_with("http://") || self.base_url.starts_with("https://")) {
            return Err(VlmError::Config(format!(
                "endpoint {:?} must start with http:// or https://",
                self.base_url
            )));
        }
        if self.model.is_empty() {
            return bad("model name is empty (pass the server's served model name)");
        }
        if self.concurrency == 0 {
            return bad("concurrency must be at least 1");
        }
        if self.max_attempts == 0 || self.parse_attempts == 0 {
            return bad("max_attempts and parse_attempts must be at least 1");
        }
        Ok(())
    }

    pub(crate) fn chat_url(&self) -> String {
        format!(
            "{}/v1/chat/completions",
            self.base_url.trim_end_matches('/')
        )
    }
}

/// Sampling parameters sent with every request of a stage; part of the cache key.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Sampling {
    pub max_tokens: u32,
    pub temperature: f32,
    /// Base seed; a parse retry uses `seed + attempt` so a deterministic server can answer
    /// differently.
    pub seed: Option<u64>,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            max_tokens: 1024,
            temperature: 0.0,
            seed: Some(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_key() {
        let mut cfg = ClientConfig::new("http://x", "m");
        cfg.api_key = Some(ApiKey::new("sk-secret-123"));
        let shown = format!("{cfg:?} {}", cfg.api_key.as_ref().unwrap());
        assert!(!shown.contains("sk-secret"), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn key_from_file_takes_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "  abc  \nignored\n").unwrap();
        assert_eq!(ApiKey::from_file(&path).unwrap().expose(), "abc");
        std::fs::write(&path, "\n").unwrap();
        assert!(ApiKey::from_file(&path).is_err());
    }

    #[test]
    fn rejects_bad_settings() {
        assert!(ClientConfig::new("localhost:8000", "m").validate().is_err());
        assert!(ClientConfig::new("http://h", "").validate().is_err());
        let mut c = ClientConfig::new("http://h/", "m");
        assert_eq!(c.chat_url(), "http://h/v1/chat/completions");
        c.concurrency = 0;
        assert!(c.validate().is_err());
    }
}
