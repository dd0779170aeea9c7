//! Tokenize throughput: CPU preparation (decode + resize) and batched encoding, measured
//! separately; the pipeline runs them concurrently, so it goes at about the slower of the two.
//! A library function so binaries can run it in the ordinary (dev) build.

use std::fmt::Write as _;
use std::time::Instant;

use earl_vq::VqModel;
use rayon::prelude::*;
use tch::Tensor;

use crate::TokenizeError;
use crate::prep::prepare;

#[derive(Debug, Clone)]
pub struct TokenizeBenchSpec {
    pub batch_sizes: Vec<usize>,
    /// Images per measurement (rounded up to whole batches).
    pub images: usize,
    /// Size of the synthetic JPEG that is decoded and resized.
    pub source_size: (u32, u32),
    pub image_area: u32,
}

impl Default for TokenizeBenchSpec {
    fn default() -> Self {
        TokenizeBenchSpec {
            batch_sizes: vec![1, 8, 32],
            images: 32,
            source_size: (1024, 768),
            image_area: 65536,
        }
    }
}

#[derive(Debug, Clone)]
pub struct TokenizeBenchRow {
    pub batch: usize,
    pub size: (u32, u32),
    /// Decode + resize + normalise, on all rayon threads.
    pub prep_images_per_s: f64,
    pub encode_images_per_s: f64,
}

impl TokenizeBenchRow {
    /// The pipeline's rate: its slower stage.
    pub fn pipeline_images_per_s(&self) -> f64 {
        self.prep_images_per_s.min(self.encode_images_per_s)
    }
}

/// Measures `spec` on `model` (whatever its weights, device and precision).
pub fn bench_tokenize(
    model: &VqModel,
    spec: &TokenizeBenchSpec,
) -> Result<Vec<TokenizeBenchRow>, TokenizeError> {
    let jpeg = synthetic_jpeg(spec.source_size)?;
    let limits = earl_image::Limits::default();
    let min_side = model.config().spatial_factor() as u32;
    let n = spec.images.max(1);
    let started = Instant::now();
    let prepared = (0..n)
        .into_par_iter()
        .map(|_| prepare(&jpeg, spec.image_area, &limits, min_side))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|(_, why)| TokenizeError::Input(format!("bench image: {why}")))?;
    let prep_rate = n as f64 / started.elapsed().as_secs_f64();
    let (w, h) = prepared[0].size;
    let one = &prepared[0].pixels;
    let mut rows = Vec::new();
    for &batch in &spec.batch_sizes {
        let batch = batch.max(1);
        let pixels: Vec<f32> = (0..batch).flat_map(|_| one.iter().copied()).collect();
        let shape = [batch as i64, 3, i64::from(h), i64::from(w)];
        let tensor = Tensor::f_from_slice(&pixels)
            .and_then(|t| t.f_reshape(shape))
            .map_err(earl_vq::VqError::from)?;
        let calls = n.div_ceil(batch);
        sync(&model.encode(&tensor)?)?; // warm-up: allocator, cuDNN algorithm search
        let started = Instant::now();
        for _ in 0..calls {
            // Copying the codes back to the CPU is part of the work, and waits for the device.
            sync(&model.encode(&tensor)?)?;
        }
        rows.push(TokenizeBenchRow {
            batch,
            size: (w, h),
            prep_images_per_s: prep_rate,
            encode_images_per_s: (calls * batch) as f64 / started.elapsed().as_secs_f64(),
        });
    }
    Ok(rows)
}

fn sync(codes: &Tensor) -> Result<(), TokenizeError> {
    let _on_cpu = codes
        .f_to_device(tch::Device::Cpu)
        .map_err(earl_vq::VqError::from)?;
    Ok(())
}

/// A smooth colour gradient with some texture, JPEG-encoded like most dataset images.
fn synthetic_jpeg((w, h): (u32, u32)) -> Result<Vec<u8>, TokenizeError> {
    let im = image::RgbImage::from_fn(w, h, |x, y| {
        let t = ((x * 7 + y * 13) % 31) as u8;
        image::Rgb([
            (x * 255 / w) as u8 ^ t,
            (y * 255 / h) as u8,
            ((x + y) % 256) as u8,
        ])
    });
    let mut out = Vec::new();
    im.write_to(
        &mut std::io::Cursor::new(&mut out),
        image::ImageFormat::Jpeg,
    )
    .map_err(|e| TokenizeError::Input(format!("encoding the bench image: {e}")))?;
    Ok(out)
}

/// The rows as a plain-text table.
pub fn format_bench(rows: &[TokenizeBenchRow]) -> String {
    let mut out =
        String::from("batch  resized    prep img/s  encode img/s  pipeline img/s (slower stage)\n");
    for r in rows {
        let _ = writeln!(
            out,
            "{:>5}  {:>4}x{:<4} {:>10.1}  {:>12.2}  {:>14.2}",
            r.batch,
            r.size.0,
            r.size.1,
            r.prep_images_per_s,
            r.encode_images_per_s,
            r.pipeline_images_per_s()
        );
    }
    out
}
