//! The decode + resize benchmark body, callable from the CLI (`earl-data bench`) in any profile.

use std::time::{Duration, Instant};

use crate::{ImageError, Limits, decode_rgb, resize_rgb, smart_size};

/// Throughput of `decode_rgb` + `smart_size` + `resize_rgb` over a set of encoded images.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchReport {
    pub area: u32,
    /// Images processed in total (`images.len() * iters`).
    pub images: usize,
    pub decode: Duration,
    pub resize: Duration,
}

impl BenchReport {
    /// Whole images (decode and resize) per second.
    pub fn images_per_sec(&self) -> f64 {
        self.images as f64 / (self.decode + self.resize).as_secs_f64()
    }
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let per = |d: Duration| d.as_secs_f64() * 1e3 / self.images.max(1) as f64;
        write!(
            f,
            "area {:>7}  {:>5} images  decode {:>7.2} ms/img  resize {:>7.2} ms/img  {:>8.1} img/s",
            self.area,
            self.images,
            per(self.decode),
            per(self.resize),
            self.images_per_sec()
        )
    }
}

/// Decodes and resizes every image `iters` times (with default limits), timing the two halves.
pub fn bench_resize(
    images: &[Vec<u8>],
    area: u32,
    iters: usize,
) -> Result<BenchReport, ImageError> {
    let mut report = BenchReport {
        area,
        images: 0,
        decode: Duration::ZERO,
        resize: Duration::ZERO,
    };
    let limits = Limits::default();
    for _ in 0..iters {
        for bytes in images {
            let start = Instant::now();
            let rgb = decode_rgb(bytes, &limits)?;
            let decoded = Instant::now();
            let (w, h) = smart_size(rgb.width(), rgb.height(), area);
            std::hint::black_box(resize_rgb(&rgb, w, h));
            report.resize += decoded.elapsed();
            report.decode += decoded - start;
            report.images += 1;
        }
    }
    Ok(report)
}
