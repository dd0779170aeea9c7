//! earl-vlm: talk to a vision-language model behind an OpenAI-compatible server (vLLM).
//!
//! - [`Client`]: `POST {base}/v1/chat/completions` with text and images in one user message,
//!   strict JSON-schema replies, bounded concurrency, retries with backoff and `Retry-After`,
//!   and a disk [`Cache`] so a rerun sends no request whose answer is stored.
//! - [`PromptTemplate`]: TOML prompts with an id and version (`pipelines/prompts/`).
//! - [`cot`] + [`annotate`]: the `cot-annotate` stage (reasoning trace + edit box per triplet).
//! - [`viescore`] + [`score`]: the VIEScore verifier and the `score` stage.
//! - [`bench`]: requests/s against a loopback server, for `earl-data bench vlm`.

pub mod annotate;
pub mod bench;
pub mod cache;
pub mod client;
pub mod config;
pub mod cot;
pub mod error;
pub mod image_prep;
pub mod reply;
pub mod score;
pub mod stats;
pub mod template;
pub mod viescore;

pub use cache::{Cache, CacheKey, CachedReply, KeyParts};
pub use client::{Answer, ChatRequest, Client, Completion, ResponseSchema};
pub use config::{ApiKey, ClientConfig, Sampling};
pub use error::{Result, VlmError};
pub use image_prep::{ImagePrep, PreparedImage, WireFormat};
pub use stats::Usage;
pub use template::PromptTemplate;
pub use viescore::{Verifier, VieScore, parse_scores};
