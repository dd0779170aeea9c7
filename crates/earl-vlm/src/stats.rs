//! Counters the client keeps while it runs, summarised at the end of a stage.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Live counters, shared by every request of one client.
#[derive(Debug, Default)]
pub struct Stats {
    requests: AtomicU64,
    retries: AtomicU64,
    failures: AtomicU64,
    rejected: AtomicU64,
    cache_hits: AtomicU64,
    tokens_in: AtomicU64,
    tokens_out: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
}

/// What a run cost: HTTP requests sent, how many were retries, how many requests failed for
/// good, tokens, and the latency of successful exchanges.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    /// HTTP exchanges attempted, retries included.
    pub requests: u64,
    /// Attempts that followed a failed one (transport or validation).
    pub retries: u64,
    /// Requests that ended in an error after all attempts.
    pub failures: u64,
    /// Requests whose every reply failed validation.
    pub rejected: u64,
    /// Answers served from the disk cache (no request sent).
    pub cache_hits: u64,
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub latency_p50_ms: f64,
    pub latency_p95_ms: f64,
}

impl Stats {
    pub(crate) fn sent(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn failed(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn cache_hit(&self) {
        self.cache_hits.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn answered(&self, latency: Duration, tokens_in: u64, tokens_out: u64) {
        self.tokens_in.fetch_add(tokens_in, Ordering::Relaxed);
        self.tokens_out.fetch_add(tokens_out, Ordering::Relaxed);
        if let Ok(mut l) = self.latencies_us.lock() {
            l.push(latency.as_micros() as u64);
        }
    }

    /// A snapshot of the counters with latency percentiles.
    pub fn usage(&self) -> Usage {
        let mut lat = self
            .latencies_us
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default();
        lat.sort_unstable();
        Usage {
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
            tokens_in: self.tokens_in.load(Ordering::Relaxed),
            tokens_out: self.tokens_out.load(Ordering::Relaxed),
            latency_p50_ms: percentile(&lat, 0.50),
            latency_p95_ms: percentile(&lat, 0.95),
        }
    }
}

/// Nearest-rank percentile of sorted microseconds, in milliseconds (0 when empty).
fn percentile(sorted_us: &[u64], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted_us.len() as f64).ceil() as usize).clamp(1, sorted_us.len());
    sorted_us[rank - 1] as f64 / 1000.0
}

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "requests {} (retries {}), failures {}, rejected {}, cache hits {}, \
             tokens in/out {}/{}, latency p50 {:.0} ms p95 {:.0} ms",
            self.requests,
            self.retries,
            self.failures,
            self.rejected,
            self.cache_hits,
            self.tokens_in,
            self.tokens_out,
            self.latency_p50_ms,
            self.latency_p95_ms
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.95), 95.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
        assert_eq!(percentile(&[7000], 0.95), 7.0);
    }
}
