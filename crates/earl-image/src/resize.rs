//! The upstream resize: pick a size of about `area` pixels with the same aspect ratio, then
//! Pillow's antialiased bicubic `Image.resize`, reproduced in its fixed-point arithmetic so the
//! pixels (and hence the VQ tokens) are the ones the Python pipeline produces.
//!
//! Pillow resamples in two separable passes, horizontal first, each rounding to u8. Each output
//! pixel is a weighted sum over a window of input pixels; when shrinking, the bicubic kernel is
//! stretched by the shrink factor (that is the antialiasing). Weights are computed in f64,
//! normalised, then rounded to 22-bit fixed point; sums start at one half and are shifted back.

use image::RgbImage;

/// Fractional bits of Pillow's fixed-point weights (`PRECISION_BITS` in `Resample.c`).
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Output size for a target `area`: `round(w * sqrt(area / (w*h)))` and the same for `h`, with
/// Python's `round` (halves to even) as upstream uses; never below 1.
pub fn smart_size(width: u32, height: u32, area: u32) -> (u32, u32) {
    let scale = (f64::from(area) / (u64::from(width) * u64::from(height)) as f64).sqrt();
    let side = |v: u32| (f64::from(v) * scale).round_ties_even().max(1.0) as u32;
    (side(width), side(height))
}

/// Resizes like Pillow's `Image.resize((width, height))` with its default bicubic filter.
pub fn resize_rgb(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    assert!(
        width > 0 && height > 0,
        "resize_rgb to {width}x{height}: sizes must be positive"
    );
    let (in_w, in_h) = image.dimensions();
    let src = image.as_raw();
    let vertical = (height != in_h).then(|| Windows::bicubic(in_h, height));
    let horizontal = (width != in_w).then(|| Windows::bicubic(in_w, width));

    let raw = match (horizontal, vertical) {
        (None, None) => src.clone(),
        (Some(h), None) => resample_rows(src, in_w, 0..in_h, &h),
        (None, Some(v)) => resample_columns(src, in_w, &v, 0),
        (Some(h), Some(v)) => {
            // Only the rows the vertical pass reads go through the horizontal one.
            let rows = v.span();
            let first = rows.start;
            let temp = resample_rows(src, in_w, rows, &h);
            resample_columns(&temp, width, &v, first)
        }
    };
    RgbImage::from_raw(width, height, raw).expect("resampling yields width*height RGB pixels")
}

/// For each output pixel along one axis: the first input index and the fixed-point weights.
struct Windows {
    starts: Vec<u32>,
    weights: Vec<Vec<i32>>,
}

impl Windows {
    /// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for the bicubic filter (a = -0.5).
    fn bicubic(in_size: u32, out_size: u32) -> Self {
        const SUPPORT: f64 = 2.0;
        let scale = f64::from(in_size) / f64::from(out_size);
        let filter_scale = scale.max(1.0);
        let support = SUPPORT * filter_scale;
        let inv = 1.0 / filter_scale;
        let (mut starts, mut weights) = (Vec::new(), Vec::new());
        for out in 0..out_size {
            let center = (f64::from(out) + 0.5) * scale;
            // C's (int) cast truncates toward zero; the clamps make that a floor here.
            let lo = ((center - support + 0.5) as i64).max(0);
            let hi = ((center + support + 0.5) as i64).min(i64::from(in_size));
            let w: Vec<f64> = (lo..hi)
                .map(|x| bicubic((x as f64 - center + 0.5) * inv))
                .collect();
            let total: f64 = w.iter().sum();
            let fixed = w
                .iter()
                .map(|&k| {
                    let k = if total != 0.0 { k / total } else { k };
                    let k = k * f64::from(1u32 << PRECISION_BITS);
                    (if k < 0.0 { k - 0.5 } else { k + 0.5 }) as i32
                })
                .collect();
            starts.push(lo as u32);
            weights.push(fixed);
        }
        Windows { starts, weights }
    }

    /// The input indices any window touches.
    fn span(&self) -> std::ops::Range<u32> {
        let last = self.starts.len() - 1;
        self.starts[0]..self.starts[last] + self.weights[last].len() as u32
    }
}

/// Keys' cubic with a = -0.5 (Pillow's `bicubic_filter`).
fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Rounds a fixed-point sum back to u8 (Pillow's `clip8`: arithmetic shift, then clamp).
fn clip8(sum: i32) -> u8 {
    (sum >> PRECISION_BITS).clamp(0, 255) as u8
}

const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// Horizontal pass over `rows` of an RGB image `in_w` wide.
fn resample_rows(src: &[u8], in_w: u32, rows: std::ops::Range<u32>, h: &Windows) -> Vec<u8> {
    let stride = in_w as usize * 3;
    let out_w = h.starts.len();
    let mut out = Vec::with_capacity(rows.len() * out_w * 3);
    for y in rows {
        let row = &src[y as usize * stride..][..stride];
        for (&start, weights) in h.starts.iter().zip(&h.weights) {
            let pixels = row[start as usize * 3..].chunks_exact(3);
            let mut sum = [HALF; 3];
            for (p, &k) in pixels.zip(weights) {
                sum[0] += i32::from(p[0]) * k;
                sum[1] += i32::from(p[1]) * k;
                sum[2] += i32::from(p[2]) * k;
            }
            out.extend(sum.map(clip8));
        }
    }
    out
}

/// Vertical pass over an RGB image `width` wide whose first row is input row `first`.
fn resample_columns(src: &[u8], width: u32, v: &Windows, first: u32) -> Vec<u8> {
    let stride = width as usize * 3;
    let mut out = Vec::with_capacity(v.starts.len() * stride);
    let mut sum = vec![0i32; stride];
    for (&start, weights) in v.starts.iter().zip(&v.weights) {
        sum.fill(HALF);
        let top = (start - first) as usize;
        for (y, &k) in weights.iter().enumerate() {
            let row = &src[(top + y) * stride..][..stride];
            for (s, &p) in sum.iter_mut().zip(row) {
                *s += i32::from(p) * k;
            }
        }
        out.extend(sum.iter().map(|&s| clip8(s)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smart_size_rounds_halves_to_even_like_python() {
        // 2x8 at area 4: scale 0.5 gives exactly 1.0 x 4.0.
        assert_eq!(smart_size(2, 8, 4), (1, 4));
        // 5x5 at area 6.25 is not expressible; 10x10 at area 25 gives 5x5.
        assert_eq!(smart_size(10, 10, 25), (5, 5));
        // 1x9 at area 4: w' = 1/3*2 = 0.67 -> 1, h' = 9*2/3 = 6.
        assert_eq!(smart_size(1, 9, 4), (1, 6));
        // 5x1 at area 5: 5 x 1 exactly; 5x20 at area 25: 2.5 -> 2 (even), 10.
        assert_eq!(smart_size(5, 20, 25), (2, 10));
        // 15x60 at area 225: 7.5 -> 8 (even), 30.
        assert_eq!(smart_size(15, 60, 225), (8, 30));
        // Never zero, even for extreme ratios.
        assert_eq!(smart_size(1, 1000, 16), (1, 126));
    }

    #[test]
    fn weights_sum_to_one_and_cover_the_stretched_kernel() {
        for (inp, out) in [(451, 314), (300, 209), (100, 250), (7, 3)] {
            let w = Windows::bicubic(inp, out);
            for (start, k) in w.starts.iter().zip(&w.weights) {
                let sum: i32 = k.iter().sum();
                assert!(
                    (sum - (1 << PRECISION_BITS)).abs() <= k.len() as i32,
                    "{sum}"
                );
                assert!(*start as usize + k.len() <= inp as usize);
            }
        }
    }

    #[test]
    fn flat_images_stay_flat_and_same_size_is_a_copy() {
        let flat = RgbImage::from_pixel(37, 23, image::Rgb([200, 10, 99]));
        for (w, h) in [(10, 7), (80, 50), (37, 5), (3, 23)] {
            let out = resize_rgb(&flat, w, h);
            assert_eq!(out.dimensions(), (w, h));
            assert!(out.pixels().all(|p| p.0 == [200, 10, 99]), "{w}x{h}");
        }
        let noisy = RgbImage::from_fn(9, 4, |x, y| image::Rgb([(x * 29 + y * 7) as u8, 3, 250]));
        assert_eq!(resize_rgb(&noisy, 9, 4), noisy);
    }

    #[test]
    fn overshoot_is_clamped_not_wrapped() {
        // A hard edge makes bicubic ring below 0 and above 255.
        let edge = RgbImage::from_fn(8, 1, |x, _| image::Rgb([if x < 4 { 0 } else { 255 }; 3]));
        let up = resize_rgb(&edge, 32, 1);
        let values: Vec<u8> = up.pixels().map(|p| p.0[0]).collect();
        assert_eq!(values[0], 0);
        assert_eq!(values[31], 255);
        assert!(values.windows(2).all(|w| w[0] <= w[1]), "{values:?}");
    }
}
