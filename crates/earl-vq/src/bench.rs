//! The encode benchmark: this crate's one-frame encoder against upstream's all-frames
//! encoder on the same weights and images, plus decode throughput. A library function so
//! that binaries can run it in the ordinary (dev) build.

use std::fmt::Write as _;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tch::Tensor;

use crate::device::synchronize;
use crate::error::Result;
use crate::model::{EncodeMode, VqModel};

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchSpec {
    pub batch_sizes: Vec<i64>,
    pub height: i64,
    pub width: i64,
    /// Timed calls per measurement (at least one).
    pub iters: usize,
    /// Untimed calls first (allocator, cuDNN algorithm search).
    pub warmup: usize,
    /// Seed of the random images.
    pub seed: u64,
}

impl Default for BenchSpec {
    fn default() -> Self {
        Self {
            batch_sizes: vec![1],
            height: 256,
            width: 256,
            iters: 1,
            warmup: 1,
            seed: 0,
        }
    }
}

/// One batch size's result.
#[derive(Debug, Clone)]
pub struct BenchRow {
    pub batch: i64,
    pub height: i64,
    pub width: i64,
    /// [`EncodeMode::OneFrame`] throughput.
    pub encode_images_per_s: f64,
    /// [`EncodeMode::UpstreamStyle`] throughput.
    pub upstream_encode_images_per_s: f64,
    pub decode_images_per_s: f64,
    /// Whether both encoders gave exactly the same codes.
    pub codes_identical: bool,
}

impl BenchRow {
    pub fn speedup(&self) -> f64 {
        self.encode_images_per_s / self.upstream_encode_images_per_s
    }
}

/// Images [shape] uniform in [-1, 1], the same for a given seed on every machine (CPU, fp32).
pub fn random_pixels(shape: [i64; 4], seed: u64) -> Result<Tensor> {
    let mut rng = StdRng::seed_from_u64(seed);
    let n: i64 = shape.iter().product();
    let values: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..=1.0)).collect();
    Ok(Tensor::f_from_slice(&values)?.f_reshape(shape)?)
}

/// Runs `spec` on `model` (whatever its weights, device and precision).
pub fn bench_encode(model: &VqModel, spec: &BenchSpec) -> Result<Vec<BenchRow>> {
    let (warmup, iters) = (spec.warmup, spec.iters.max(1));
    let mut rows = Vec::new();
    for &batch in &spec.batch_sizes {
        let pixels = random_pixels([batch, 3, spec.height, spec.width], spec.seed)?
            .f_to_device(model.device())?;
        let (encode_s, codes) = timed(model, warmup, iters, || model.encode(&pixels))?;
        let (upstream_s, upstream_codes) = timed(model, warmup, iters, || {
            model.encode_with(&pixels, EncodeMode::UpstreamStyle)
        })?;
        let (decode_s, _) = timed(model, warmup, iters, || model.decode(&codes))?;
        let images = (batch as usize * iters) as f64;
        rows.push(BenchRow {
            batch,
            height: spec.height,
            width: spec.width,
            encode_images_per_s: images / encode_s,
            upstream_encode_images_per_s: images / upstream_s,
            decode_images_per_s: images / decode_s,
            codes_identical: codes.f_equal(&upstream_codes)?,
        });
    }
    Ok(rows)
}

/// Seconds for `iters` (at least one) calls of `f` after `warmup` untimed ones, and the
/// last result.
fn timed(
    model: &VqModel,
    warmup: usize,
    iters: usize,
    f: impl Fn() -> Result<Tensor>,
) -> Result<(f64, Tensor)> {
    for _ in 0..warmup {
        let _ = f()?;
    }
    synchronize(model.device());
    let start = Instant::now();
    let mut out = f()?;
    for _ in 1..iters {
        out = f()?;
    }
    synchronize(model.device());
    Ok((start.elapsed().as_secs_f64(), out))
}

/// The rows as a plain-text table.
pub fn format_table(rows: &[BenchRow]) -> String {
    let mut out = String::from(
        "batch  size      encode img/s  upstream-style img/s  speedup  decode img/s  same codes\n",
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:>5}  {:>4}x{:<4} {:>12.3}  {:>20.3}  {:>6.2}x  {:>12.3}  {}",
            r.batch,
            r.height,
            r.width,
            r.encode_images_per_s,
            r.upstream_encode_images_per_s,
            r.speedup(),
            r.decode_images_per_s,
            if r.codes_identical { "yes" } else { "NO" },
        );
    }
    out
}
