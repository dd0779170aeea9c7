//! The chat-completions client: bounded concurrency, retries with backoff, validated answers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::cache::{Cache, CacheKey, CachedReply};
use crate::config::{ClientConfig, Sampling};
use crate::error::{Result, VlmError};
use crate::stats::{Stats, Usage};

/// A JSON schema the reply must follow (`response_format: json_schema`, strict).
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseSchema {
    pub name: String,
    pub schema: Value,
}

/// One request: an optional system prompt, then one user message of images and text.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub system: String,
    /// `data:` URLs (see [`crate::image_prep::prepare`]), placed before the text.
    pub images: Vec<String>,
    pub text: String,
    pub schema: Option<ResponseSchema>,
    pub sampling: Sampling,
}

impl ChatRequest {
    /// The request body for `POST /v1/chat/completions`.
    pub fn body(&self, model: &str) -> Value {
        let mut content: Vec<Value> = self
            .images
            .iter()
            .map(|url| json!({"type": "image_url", "image_url": {"url": url}}))
            .collect();
        content.push(json!({"type": "text", "text": self.text}));
        let mut messages = Vec::new();
        if !self.system.is_empty() {
            messages.push(json!({"role": "system", "content": self.system}));
        }
        messages.push(json!({"role": "user", "content": content}));
        let mut body = json!({
            "model": model,
            "messages": messages,
            "max_tokens": self.sampling.max_tokens,
            "temperature": self.sampling.temperature,
        });
        if let Some(seed) = self.sampling.seed {
            body["seed"] = json!(seed);
        }
        // vLLM >= 0.12 ignores the old `guided_json`; `response_format` is the supported way.
        if let Some(s) = &self.schema {
            body["response_format"] = json!({
                "type": "json_schema",
                "json_schema": {"name": s.name, "schema": s.schema, "strict": true},
            });
        }
        body
    }
}

/// A reply of the server.
#[derive(Debug, Clone)]
pub struct Completion {
    pub text: String,
    pub finish_reason: Option<String>,
    pub tokens_in: u64,
    pub tokens_out: u64,
}

/// A validated answer, and where it came from.
#[derive(Debug, Clone)]
pub struct Answer<T> {
    pub value: T,
    /// The reply text the value was parsed from.
    pub raw: String,
    /// True when served from the cache (no request sent).
    pub cached: bool,
}

#[derive(Deserialize)]
struct Envelope {
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<UsageBody>,
}

#[derive(Deserialize)]
struct Choice {
    message: MessageBody,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct MessageBody {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct UsageBody {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

/// Why one HTTP exchange failed.
enum Failure {
    /// Worth another attempt, after `after` if the server said so.
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    Fatal(VlmError),
}

/// A client for one endpoint and model. Cheap to clone; clones share limits, cache and stats.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: ClientConfig,
    url: String,
    http: reqwest::Client,
    permits: Semaphore,
    stats: Stats,
    cache: Option<Cache>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("cfg", &self.inner.cfg)
            .field("cache", &self.inner.cache)
            .finish()
    }
}

impl Client {
    pub fn new(cfg: ClientConfig, cache: Option<Cache>) -> Result<Self> {
        cfg.validate()?;
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .pool_max_idle_per_host(cfg.concurrency)
            .build()
            .map_err(|e| VlmError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Client {
            inner: Arc::new(Inner {
                url: cfg.chat_url(),
                permits: Semaphore::new(cfg.concurrency),
                cfg,
                http,
                stats: Stats::default(),
                cache,
            }),
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.cfg
    }

    /// Counters so far.
    pub fn usage(&self) -> Usage {
        self.inner.stats.usage()
    }

    /// Send one request, retrying connection errors, timeouts, 408, 429 and 5xx with
    /// exponential backoff and jitter (or the server's `Retry-After`).
    pub async fn chat(&self, req: &ChatRequest) -> Result<Completion> {
        let inner = &self.inner;
        let body = serde_json::to_vec(&req.body(&inner.cfg.model))
            .map_err(|e| VlmError::Config(format!("cannot serialise the request: {e}")))?;
        let mut last = String::new();
        for attempt in 1..=inner.cfg.max_attempts {
            if attempt > 1 {
                inner.stats.retried();
            }
            let outcome = {
                let _permit = inner.permits.acquire().await.map_err(|_| {
                    VlmError::Config("the client's request limiter was closed".into())
                })?;
                inner.stats.sent();
                let start = Instant::now();
                let outcome = self.exchange(body.clone()).await;
                if let Ok(c) = &outcome {
                    inner
                        .stats
                        .answered(start.elapsed(), c.tokens_in, c.tokens_out);
                }
                outcome
            };
            match outcome {
                Ok(c) => return Ok(c),
                Err(Failure::Fatal(e)) => {
                    inner.stats.failed();
                    return Err(e);
                }
                Err(Failure::Retry { reason, after }) => {
                    tracing::debug!(attempt, %reason, "retrying");
                    last = reason;
                    if attempt < inner.cfg.max_attempts {
                        tokio::time::sleep(self.backoff(attempt, after)).await;
                    }
                }
            }
        }
        inner.stats.failed();
        Err(VlmError::Exhausted {
            url: inner.url.clone(),
            attempts: inner.cfg.max_attempts,
            last,
        })
    }

    /// Ask until `parse` accepts a reply (at most `parse_attempts` replies), using and filling
    /// the cache under `key`. `build` makes the request only when the cache has no answer (it
    /// encodes images, so it runs on the blocking pool).
    ///
    /// A parse retry bumps the seed, so a deterministic server can answer differently.
    pub async fn ask<T, B, P>(&self, key: Option<CacheKey>, build: B, parse: P) -> Result<Answer<T>>
    where
        B: FnOnce() -> Result<ChatRequest> + Send + 'static,
        P: Fn(&str) -> std::result::Result<T, String>,
    {
        let inner = &self.inner;
        if let (Some(key), Some(cache)) = (&key, &inner.cache)
            && let Some(hit) = cache.get(&key.key)
            && let Ok(value) = parse(&hit.text)
        {
            inner.stats.cache_hit();
            return Ok(Answer {
                value,
                raw: hit.text,
                cached: true,
            });
        }
        let mut req = tokio::task::spawn_blocking(build)
            .await
            .map_err(|e| VlmError::Config(format!("request builder panicked: {e}")))??;
        let base_seed = req.sampling.seed;
        let attempts = inner.cfg.parse_attempts;
        let mut last = (String::new(), String::new());
        for attempt in 0..attempts {
            if attempt > 0 {
                inner.stats.retried();
                req.sampling.seed = base_seed.map(|s| s.wrapping_add(attempt as u64));
            }
            let reply = self.chat(&req).await?;
            match parse(&reply.text) {
                Ok(value) => {
                    if let (Some(key), Some(cache)) = (key, &inner.cache) {
                        let entry = CachedReply {
                            key: key.key,
                            model: inner.cfg.model.clone(),
                            template: key.template,
                            text: reply.text.clone(),
                            tokens_in: reply.tokens_in,
                            tokens_out: reply.tokens_out,
                        };
                        let cache = cache.clone();
                        tokio::task::spawn_blocking(move || cache.put(&entry))
                            .await
                            .map_err(|e| {
                                VlmError::Config(format!("cache writer panicked: {e}"))
                            })??;
                    }
                    return Ok(Answer {
                        value,
                        raw: reply.text,
                        cached: false,
                    });
                }
                Err(reason) => {
                    let reason = match reply.finish_reason.as_deref() {
                        Some("length") => format!("{reason} (reply cut at max_tokens)"),
                        _ => reason,
                    };
                    last = (reason, reply.text);
                }
            }
        }
        inner.stats.rejected();
        Err(VlmError::Rejected {
            reason: last.0,
            raw: last.1,
            attempts,
        })
    }

    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let cfg = &self.inner.cfg;
        if let Some(after) = retry_after {
            return after.min(cfg.backoff_max);
        }
        let exp = cfg
            .backoff_base
            .saturating_mul(1u32 << (attempt - 1).min(20))
            .min(cfg.backoff_max);
        // "Equal jitter": half fixed, half random, so retries of many requests spread out.
        let half = exp / 2;
        let jitter = rand::random_range(0..=half.as_micros() as u64);
        half + Duration::from_micros(jitter)
    }

    async fn exchange(&self, body: Vec<u8>) -> std::result::Result<Completion, Failure> {
        let inner = &self.inner;
        let mut rb = inner
            .http
            .post(&inner.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(key) = &inner.cfg.api_key {
            rb = rb.bearer_auth(key.expose());
        }
        let resp = rb.send().await.map_err(|e| Failure::Retry {
            reason: describe(&e),
            after: None,
        })?;
        let status = resp.status();
        if status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
            || status.is_server_error()
        {
            let after = retry_after(resp.headers());
            let text = snippet(resp.text().await.unwrap_or_default());
            return Err(Failure::Retry {
                reason: format!("HTTP {}: {text}", status.as_u16()),
                after,
            });
        }
        if !status.is_success() {
            let text = snippet(resp.text().await.unwrap_or_default());
            return Err(Failure::Fatal(VlmError::Http {
                url: inner.url.clone(),
                status: status.as_u16(),
                body: text,
            }));
        }
        let bytes = resp.bytes().await.map_err(|e| Failure::Retry {
            reason: format!("reply cut off: {}", describe(&e)),
            after: None,
        })?;
        let env: Envelope = serde_json::from_slice(&bytes).map_err(|e| Failure::Retry {
            reason: format!(
                "malformed response body ({e}): {}",
                snippet(String::from_utf8_lossy(&bytes).into_owned())
            ),
            after: None,
        })?;
        let usage = env.usage.unwrap_or(UsageBody {
            prompt_tokens: 0,
            completion_tokens: 0,
        });
        let choice = env
            .choices
            .into_iter()
            .next()
            .ok_or_else(|| Failure::Retry {
                reason: "response has no choices".into(),
                after: None,
            })?;
        Ok(Completion {
            text: choice.message.content.unwrap_or_default(),
            finish_reason: choice.finish_reason,
            tokens_in: usage.prompt_tokens,
            tokens_out: usage.completion_tokens,
        })
    }
}

/// `Retry-After` in seconds (integer or decimal). HTTP dates are not parsed; the client falls
/// back to its own backoff for them.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let secs: f64 = v.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "transport error"
    };
    let mut msg = format!("{kind}: {e}");
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    msg
}

/// The first 300 characters of a body, for error messages.
fn snippet(s: String) -> String {
    match s.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_follows_the_openai_shape() {
        let req = ChatRequest {
            system: "sys".into(),
            images: vec!["data:image/png;base64,AA==".into()],
            text: "hi".into(),
            schema: Some(ResponseSchema {
                name: "s".into(),
                schema: json!({"type": "object"}),
            }),
            sampling: Sampling::default(),
        };
        let b = req.body("m");
        assert_eq!(b["model"], "m");
        assert_eq!(b["messages"][0]["role"], "system");
        assert_eq!(b["messages"][1]["content"][0]["type"], "image_url");
        assert_eq!(b["messages"][1]["content"][1]["text"], "hi");
        assert_eq!(b["response_format"]["type"], "json_schema");
        assert_eq!(b["response_format"]["json_schema"]["strict"], true);
        assert!(b.get("guided_json").is_none());
        assert_eq!(b["seed"], 0);
    }

    #[test]
    fn retry_after_reads_seconds() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after", "0.05".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(50)));
        h.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let mut cfg = ClientConfig::new("http://h", "m");
        cfg.backoff_base = Duration::from_millis(100);
        cfg.backoff_max = Duration::from_millis(500);
        let c = Client::new(cfg, None).unwrap();
        for attempt in 1..10 {
            let d = c.backoff(attempt, None);
            let exp = (100u64 << (attempt - 1)).min(500);
            assert!(
                d.as_millis() as u64 >= exp / 2 && d.as_millis() as u64 <= exp,
                "{d:?}"
            );
        }
        let ra = c.backoff(1, Some(Duration::from_secs(9)));
        assert_eq!(ra, Duration::from_millis(500));
    }
}
