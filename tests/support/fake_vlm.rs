//! A loopback OpenAI-compatible chat server for the earl-vlm tests.
//!
//! It answers `POST /v1/chat/completions` the way vLLM does, with plausible replies chosen by
//! the request's `response_format` schema name (`cot_edit`, `viescore_sc`, `viescore_pq`), and
//! injects faults on demand: queued for the next requests ([`FakeVlm::push`]) or for every
//! request whose text contains a marker ([`FakeVlm::rule`]). It records every request so tests
//! can count what was sent.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// A misbehaviour for one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Answer normally after this extra wait.
    Latency(Duration),
    /// 429 with this `Retry-After` value.
    TooMany { retry_after: String },
    /// An error status (500, 503, 400, ...).
    Status(u16),
    /// Send the headers, then drop the connection mid-body.
    Drop,
    /// Wait this long before answering (longer than the client's timeout).
    Hang(Duration),
    /// 200 with a body that is not JSON.
    Malformed,
    /// 200 with this as the model's message content.
    Content(String),
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub body: Value,
    /// The user message's text part.
    pub text: String,
    pub images: usize,
    pub authorization: Option<String>,
    /// Hash of the request without its seed: equal for a request and its retries.
    pub key: String,
    pub fault: Option<Fault>,
}

#[derive(Default)]
struct Inner {
    queue: Mutex<VecDeque<Fault>>,
    rules: Mutex<Vec<(String, Fault)>>,
    latency: Mutex<Duration>,
    seen: Mutex<Vec<Seen>>,
    /// Requests answered with a normal reply, by key.
    answered: Mutex<HashMap<String, usize>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// The running server; stops when dropped.
pub struct FakeVlm {
    addr: SocketAddr,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeVlm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeVlm {
    /// Bind 127.0.0.1:0 and serve on the current tokio runtime.
    pub async fn start() -> FakeVlm {
        let inner = Arc::new(Inner::default());
        let app = Router::new()
            .route("/v1/chat/completions", post(handle))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeVlm { addr, inner, task }
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Faults for the next requests, in order (one request each).
    pub fn push(&self, faults: impl IntoIterator<Item = Fault>) {
        self.inner.queue.lock().unwrap().extend(faults);
    }

    /// A fault for every request whose user text contains `needle`.
    pub fn rule(&self, needle: &str, fault: Fault) {
        self.inner
            .rules
            .lock()
            .unwrap()
            .push((needle.to_string(), fault));
    }

    /// Latency added to every reply.
    pub fn set_latency(&self, d: Duration) {
        *self.inner.latency.lock().unwrap() = d;
    }

    /// Every request received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.inner.seen.lock().unwrap().clone()
    }

    pub fn requests(&self) -> usize {
        self.inner.seen.lock().unwrap().len()
    }

    /// Requests answered normally (no fault, or only added latency).
    pub fn answered(&self) -> usize {
        self.inner.answered.lock().unwrap().values().sum()
    }

    /// The most times one request (seed aside) was answered normally.
    pub fn max_answers_per_request(&self) -> usize {
        self.inner
            .answered
            .lock()
            .unwrap()
            .values()
            .copied()
            .max()
            .unwrap_or(0)
    }

    /// The most requests that were in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.inner.max_in_flight.load(Ordering::SeqCst)
    }
}

async fn handle(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    let now = inner.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    inner.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let resp = respond(&inner, &headers, &body).await;
    inner.in_flight.fetch_sub(1, Ordering::SeqCst);
    resp
}

async fn respond(inner: &Inner, headers: &HeaderMap, body: &[u8]) -> Response {
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return (StatusCode::BAD_REQUEST, "request body is not JSON").into_response();
    };
    let user = req["messages"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["role"] == "user"))
        .cloned()
        .unwrap_or(Value::Null);
    let parts = user["content"].as_array().cloned().unwrap_or_default();
    let text: String = parts
        .iter()
        .filter_map(|p| p["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let images: Vec<&str> = parts
        .iter()
        .filter_map(|p| p["image_url"]["url"].as_str())
        .collect();
    let mut unseeded = req.clone();
    if let Some(o) = unseeded.as_object_mut() {
        o.remove("seed");
    }
    let key = hex::encode(Sha256::digest(unseeded.to_string().as_bytes()));
    let fault = inner.queue.lock().unwrap().pop_front().or_else(|| {
        let rules = inner.rules.lock().unwrap();
        rules
            .iter()
            .find(|(needle, _)| text.contains(needle.as_str()))
            .map(|(_, f)| f.clone())
    });
    inner.seen.lock().unwrap().push(Seen {
        body: req.clone(),
        text: text.clone(),
        images: images.len(),
        authorization: headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        key: key.clone(),
        fault: fault.clone(),
    });
    let latency = *inner.latency.lock().unwrap();
    tokio::time::sleep(latency).await;
    let normal = !matches!(fault, Some(Fault::Content(_)));

    let content = match fault {
        Some(Fault::TooMany { retry_after }) => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, retry_after)],
                Json(json!({"error": {"message": "rate limited", "type": "rate_limit"}})),
            )
                .into_response();
        }
        Some(Fault::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return (
                status,
                Json(json!({"error": {"message": format!("fake {code}")}})),
            )
                .into_response();
        }
        Some(Fault::Drop) => {
            let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
                Ok(Bytes::from_static(
                    b"{\"id\": \"chatcmpl-1\", \"choices\": [",
                )),
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "dropped",
                )),
            ];
            return Response::builder()
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from_stream(futures_util::stream::iter(chunks)))
                .unwrap_or_default();
        }
        Some(Fault::Malformed) => {
            return (StatusCode::OK, "<html>upstream proxy error</html>").into_response();
        }
        Some(Fault::Hang(d)) => {
            tokio::time::sleep(d).await;
            default_content(&req, &text, &images)
        }
        Some(Fault::Latency(d)) => {
            tokio::time::sleep(d).await;
            default_content(&req, &text, &images)
        }
        Some(Fault::Content(c)) => c,
        None => default_content(&req, &text, &images),
    };
    if normal {
        *inner.answered.lock().unwrap().entry(key).or_default() += 1;
    }
    Json(completion(
        &req,
        &content,
        text.len() / 4 + 300 * images.len(),
    ))
    .into_response()
}

fn completion(req: &Value, content: &str, prompt_tokens: usize) -> Value {
    json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": req["model"],
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": "stop"
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": content.len() / 4,
            "total_tokens": prompt_tokens + content.len() / 4
        }
    })
}

/// A plausible reply for the prompt the request's schema names.
fn default_content(req: &Value, text: &str, images: &[&str]) -> String {
    let schema = req["response_format"]["json_schema"]["name"]
        .as_str()
        .unwrap_or("");
    let h = Sha256::digest(text.as_bytes());
    match schema {
        "cot_edit" => {
            let (w, h) = images
                .first()
                .and_then(|u| image_size(u))
                .unwrap_or((100, 100));
            json!({
                "change": "Recolour the main subject as the instruction asks.",
                "location": "The subject in the centre of the picture.",
                "preserve": "The background, the framing and the lighting stay as they are.",
                "outcome": "The same photo with only the subject changed.",
                "bbox": [w / 4, h / 5, w * 3 / 4, h * 4 / 5],
            })
            .to_string()
        }
        "viescore_sc" => json!({
            "reasoning": "The instruction was mostly followed and little else changed.",
            "score": [4 + h[0] % 7, 5 + h[1] % 6],
        })
        .to_string(),
        "viescore_pq" => json!({
            "reasoning": "Natural lighting, no visible artifacts.",
            "score": [8, 7],
        })
        .to_string(),
        _ => "OK".to_string(),
    }
}

/// Width and height of a `data:image/...;base64,` URL.
pub fn image_size(url: &str) -> Option<(u32, u32)> {
    let b64 = url.split_once(";base64,")?.1;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .ok()?
        .into_dimensions()
        .ok()
}
