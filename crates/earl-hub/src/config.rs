//! Client settings, read from the same environment variables as Python's `huggingface_hub`.

use std::fmt;
use std::path::PathBuf;

/// The public Hub.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// An access token. `Debug` never shows it and there is no `Display`, so it cannot end up in
/// logs or error messages by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// The secret itself, for the `Authorization` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Where and how a [`crate::HubClient`] talks to the Hub.
///
/// Build it with [`HubConfig::from_env`], or fill the fields directly (tests do, so that each
/// client has its own cache and endpoint without touching the process environment).
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Hub base URL without a trailing slash (`HF_ENDPOINT`, default [`DEFAULT_ENDPOINT`]).
    pub endpoint: String,
    /// Sent as `Authorization: Bearer …` (`HF_TOKEN`, else the file `HF_TOKEN_PATH`, else
    /// `$HF_HOME/token`). With `None`, hf-hub may still fall back to those same variables.
    pub token: Option<Token>,
    /// The `hub` cache folder holding `datasets--org--name/…` (`HF_HUB_CACHE`, else
    /// `$HF_HOME/hub`, default `~/.cache/huggingface/hub`).
    pub cache_dir: PathBuf,
    /// Resolve from the cache only, never touch the network (`HF_HUB_OFFLINE=1`).
    pub offline: bool,
    /// Files downloaded at the same time.
    pub concurrency: usize,
}

impl HubConfig {
    /// Read the process environment.
    pub fn from_env() -> Self {
        Self::from_vars(|key| std::env::var(key).ok())
    }

    /// Read settings through `var` (a stand-in for the environment), with Python's
    /// `huggingface_hub` precedence: `HF_HUB_CACHE` over `HF_HOME`, `HF_TOKEN` over the token file.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let get = |key: &str| var(key).filter(|v| !v.trim().is_empty());
        let hf_home = get("HF_HOME").map(PathBuf::from).unwrap_or_else(|| {
            get("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| get("HOME").map(|home| PathBuf::from(home).join(".cache")))
                .unwrap_or_else(|| PathBuf::from(".cache"))
                .join("huggingface")
        });
        let cache_dir = get("HF_HUB_CACHE")
            .or_else(|| get("HUGGINGFACE_HUB_CACHE"))
            .map(PathBuf::from)
            .unwrap_or_else(|| hf_home.join("hub"));
        let endpoint = get("HF_ENDPOINT").unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        let offline = get("HF_HUB_OFFLINE")
            .or_else(|| get("TRANSFORMERS_OFFLINE"))
            .is_some_and(|v| is_true(&v));
        let token = if get("HF_HUB_DISABLE_IMPLICIT_TOKEN").is_some_and(|v| is_true(&v)) {
            None
        } else {
            get("HF_TOKEN")
                .or_else(|| get("HUGGING_FACE_HUB_TOKEN"))
                .or_else(|| {
                    let path = get("HF_TOKEN_PATH")
                        .map(PathBuf::from)
                        .unwrap_or_else(|| hf_home.join("token"));
                    std::fs::read_to_string(path).ok()
                })
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .map(Token)
        };
        Self {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            token,
            cache_dir,
            offline,
            concurrency: 4,
        }
    }
}

/// Python `huggingface_hub`'s reading of boolean variables.
fn is_true(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_uppercase().as_str(),
        "1" | "ON" | "YES" | "TRUE"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> HubConfig {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        HubConfig::from_vars(|k| vars.get(k).cloned())
    }

    #[test]
    fn defaults_follow_home() {
        let c = config(&[("HOME", "/home/u")]);
        assert_eq!(c.cache_dir, PathBuf::from("/home/u/.cache/huggingface/hub"));
        assert_eq!(c.endpoint, DEFAULT_ENDPOINT);
        assert!(!c.offline);
        assert!(c.token.is_none());
    }

    #[test]
    fn hub_cache_beats_hf_home_and_endpoint_is_trimmed() {
        let c = config(&[
            ("HF_HOME", "/hf"),
            ("HF_HUB_CACHE", "/fast/hub"),
            ("HF_ENDPOINT", "http://mirror:8080/"),
            ("HF_HUB_OFFLINE", "yes"),
        ]);
        assert_eq!(c.cache_dir, PathBuf::from("/fast/hub"));
        assert_eq!(c.endpoint, "http://mirror:8080");
        assert!(c.offline);
        assert_eq!(
            config(&[("HF_HOME", "/hf")]).cache_dir,
            PathBuf::from("/hf/hub")
        );
    }

    #[test]
    fn token_from_env_then_file() {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join("token"), "hf_from_file\n").unwrap();
        let home_str = home.path().to_str().unwrap();
        let from_file = config(&[("HF_HOME", home_str)]);
        assert_eq!(from_file.token, Some(Token::new("hf_from_file")));
        let from_env = config(&[("HF_HOME", home_str), ("HF_TOKEN", "hf_env")]);
        assert_eq!(from_env.token, Some(Token::new("hf_env")));
        let disabled = config(&[
            ("HF_HOME", home_str),
            ("HF_TOKEN", "hf_env"),
            ("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1"),
        ]);
        assert!(disabled.token.is_none());
        assert!(!format!("{from_env:?}").contains("hf_env"));
    }
}
