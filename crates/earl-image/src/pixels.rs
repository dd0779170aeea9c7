//! The model's input tensor: what the upstream image processor makes of a resized image.

use image::RgbImage;

/// Channels-first `[3, h, w]` values in [-1, 1]: `(v / 255 - 0.5) / 0.5`, the rescale and
/// normalise (mean 0.5, std 0.5) of the Emu3 image processor, flattened row-major.
pub fn to_pixel_values(image: &RgbImage) -> Vec<f32> {
    let plane = image.width() as usize * image.height() as usize;
    let mut out = vec![0f32; 3 * plane];
    for (i, p) in image.as_raw().chunks_exact(3).enumerate() {
        for (c, &v) in p.iter().enumerate() {
            out[c * plane + i] = (f32::from(v) / 255.0 - 0.5) / 0.5;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_first_and_scaled_to_unit_range() {
        let im = RgbImage::from_raw(2, 1, vec![0, 255, 51, 255, 0, 102]).unwrap();
        let v = to_pixel_values(&im);
        let want = [-1.0, 1.0, 1.0, -1.0, -0.6, -0.2];
        assert!(
            v.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6),
            "{v:?}"
        );
    }
}
