//! Throughput of the client against a loopback server with a fixed latency.
//!
//! Each request encodes a fresh image (so encoding cost is counted), sends it and waits for the
//! server's reply after `latency`. The ideal rate is `concurrency / latency`; the table reports
//! how close the client gets, and its CPU time per request (getrusage: the whole process
//! minus the server's thread).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use image::RgbImage;
use serde_json::json;
use tokio::sync::oneshot;

use crate::client::{ChatRequest, Client};
use crate::config::{ClientConfig, Sampling};
use crate::error::{Result, VlmError};
use crate::image_prep::{ImagePrep, WireFormat, prepare_rgb};

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub latency: Duration,
    pub levels: Vec<usize>,
    /// Wall time each level should take; sets its request count (at least one per slot).
    pub seconds_per_level: f64,
    /// Side of the square test image encoded per request.
    pub image_side: u32,
    pub format: WireFormat,
    /// Worker threads of the client's runtime.
    pub client_threads: usize,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            latency: Duration::from_millis(200),
            levels: vec![1, 16, 64, 256],
            seconds_per_level: 2.5,
            image_side: 256,
            format: WireFormat::Jpeg,
            client_threads: 2,
        }
    }
}

/// One level's result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchRow {
    pub concurrency: usize,
    pub requests: usize,
    pub seconds: f64,
    pub requests_per_s: f64,
    /// `requests_per_s / (concurrency / latency)`.
    pub ratio_of_ideal: f64,
    /// Client CPU (user + system) per request, image encoding included.
    pub cpu_ms_per_request: f64,
    pub latency_p50_ms: f64,
    pub latency_p95_ms: f64,
}

/// Run every level and return the table.
pub fn run(opts: &BenchOptions) -> Result<Vec<BenchRow>> {
    let server = Server::start(opts.latency)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.client_threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| VlmError::Config(format!("cannot start a runtime: {e}")))?;
    let image = Arc::new(RgbImage::from_fn(
        opts.image_side,
        opts.image_side,
        |x, y| image::Rgb([(x * 7 + y) as u8, (y * 3) as u8, (x ^ y) as u8]),
    ));
    let mut rows = Vec::new();
    for &c in &opts.levels {
        let n = ((c as f64 * opts.seconds_per_level / opts.latency.as_secs_f64()).round() as usize)
            .max(c);
        let mut cfg = ClientConfig::new(format!("http://{}", server.addr), "bench");
        cfg.concurrency = c;
        cfg.timeout = opts.latency * 20 + Duration::from_secs(5);
        let client = Client::new(cfg, None)?;
        let prep = ImagePrep {
            format: opts.format,
            max_side: None,
            multiple_of: None,
            ..ImagePrep::default()
        };
        let cpu0 = cpu_seconds(libc::RUSAGE_SELF) - server.cpu_seconds();
        let t0 = Instant::now();
        let errors = rt.block_on(async {
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..n {
                let (client, image, prep) = (client.clone(), image.clone(), prep.clone());
                tasks.spawn(async move {
                    let url = prepare_rgb(&image, &prep, "bench image")?.data_url;
                    let req = ChatRequest {
                        system: String::new(),
                        images: vec![url],
                        text: "Describe the image.".into(),
                        schema: None,
                        sampling: Sampling::default(),
                    };
                    client.chat(&req).await.map(|_| ())
                });
            }
            let mut errors = 0;
            while let Some(r) = tasks.join_next().await {
                if !matches!(r, Ok(Ok(()))) {
                    errors += 1;
                }
            }
            errors
        });
        let secs = t0.elapsed().as_secs_f64();
        let cpu = cpu_seconds(libc::RUSAGE_SELF) - server.cpu_seconds() - cpu0;
        if errors > 0 {
            return Err(VlmError::Config(format!(
                "bench: {errors} of {n} requests failed at concurrency {c}"
            )));
        }
        let usage = client.usage();
        let rps = n as f64 / secs;
        rows.push(BenchRow {
            concurrency: c,
            requests: n,
            seconds: secs,
            requests_per_s: rps,
            ratio_of_ideal: rps / (c as f64 / opts.latency.as_secs_f64()),
            cpu_ms_per_request: cpu * 1000.0 / n as f64,
            latency_p50_ms: usage.latency_p50_ms,
            latency_p95_ms: usage.latency_p95_ms,
        });
    }
    Ok(rows)
}

/// The table as text.
pub fn render(rows: &[BenchRow], opts: &BenchOptions) -> String {
    let mut s = format!(
        "vlm client vs loopback server, latency {} ms, {}x{} {:?} per request\n\
         concurrency  requests  seconds   req/s  ideal  ratio  cpu ms/req  p50 ms  p95 ms\n",
        opts.latency.as_millis(),
        opts.image_side,
        opts.image_side,
        opts.format
    );
    for r in rows {
        s.push_str(&format!(
            "{:>11}  {:>8}  {:>7.2}  {:>6.1}  {:>5.0}  {:>5.2}  {:>10.2}  {:>6.0}  {:>6.0}\n",
            r.concurrency,
            r.requests,
            r.seconds,
            r.requests_per_s,
            r.concurrency as f64 / opts.latency.as_secs_f64(),
            r.ratio_of_ideal,
            r.cpu_ms_per_request,
            r.latency_p50_ms,
            r.latency_p95_ms
        ));
    }
    s
}

/// CPU seconds (user + system) of the process or the calling thread.
fn cpu_seconds(who: libc::c_int) -> f64 {
    // SAFETY: getrusage only writes the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(who, &mut u) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// A minimal chat-completions server on its own thread: waits `latency`, answers a fixed reply.
struct Server {
    addr: std::net::SocketAddr,
    cpu: Arc<std::sync::Mutex<f64>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(latency: Duration) -> Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.set_nonblocking(true).map(|_| l))
            .map_err(|e| VlmError::Config(format!("bench: cannot bind 127.0.0.1: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| VlmError::Config(format!("bench: {e}")))?;
        let cpu = Arc::new(std::sync::Mutex::new(0.0));
        let (stop, stopped) = oneshot::channel::<()>();
        let cpu_out = cpu.clone();
        let thread = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            let app = Router::new().route(
                "/v1/chat/completions",
                post(move |_body: axum::body::Bytes| async move {
                    tokio::time::sleep(latency).await;
                    axum::Json(json!({
                        "id": "bench", "object": "chat.completion", "model": "bench",
                        "choices": [{"index": 0, "finish_reason": "stop",
                            "message": {"role": "assistant", "content": "{\"score\": [7, 8]}"}}],
                        "usage": {"prompt_tokens": 300, "completion_tokens": 9}
                    }))
                }),
            );
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                    let _ = stopped.await;
                });
                // The server's CPU is published while it runs, so levels can subtract it.
                let publish = async {
                    loop {
                        if let Ok(mut c) = cpu_out.lock() {
                            *c = cpu_seconds(libc::RUSAGE_THREAD);
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                };
                tokio::select! { _ = serve => {}, _ = publish => {} }
            });
        });
        Ok(Server {
            addr,
            cpu,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    fn cpu_seconds(&self) -> f64 {
        self.cpu.lock().map(|c| *c).unwrap_or(0.0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_run_reaches_the_server_and_reports() {
        let opts = BenchOptions {
            latency: Duration::from_millis(20),
            levels: vec![1, 4],
            seconds_per_level: 0.1,
            image_side: 32,
            ..BenchOptions::default()
        };
        let rows = run(&opts).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].requests, 20);
        for r in &rows {
            assert!(r.ratio_of_ideal > 0.2 && r.ratio_of_ideal <= 1.05, "{r:?}");
            assert!(r.latency_p50_ms >= 20.0, "{r:?}");
        }
        assert!(render(&rows, &opts).contains("concurrency"));
    }
}
