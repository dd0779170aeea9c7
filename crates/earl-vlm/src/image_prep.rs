//! Images on the wire: decode (with size limits), optionally downscale, re-encode, base64.
//!
//! The model answers boxes in pixels of the image it was *sent*, so the prepared image records
//! both sizes and maps boxes back to the original.

use base64::Engine;
use image::{ImageEncoder, RgbImage};
use sha2::{Digest, Sha256};

use crate::error::{Result, VlmError};

/// The encoding sent to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WireFormat {
    Png,
    Jpeg,
}

/// How images are prepared before sending; part of the cache key.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ImagePrep {
    pub format: WireFormat,
    /// JPEG quality 1-100 (ignored for PNG).
    pub jpeg_quality: u8,
    /// Downscale so the longer side is at most this many pixels (never upscales).
    pub max_side: Option<u32>,
    /// Round both sides to a multiple of this (28 for Qwen2.5-VL, whose processor would
    /// otherwise resize again and answer boxes in *its* size, not ours).
    pub multiple_of: Option<u32>,
}

impl Default for ImagePrep {
    fn default() -> Self {
        ImagePrep {
            format: WireFormat::Png,
            jpeg_quality: 90,
            max_side: Some(1024),
            multiple_of: Some(28),
        }
    }
}

/// An image ready to put in a message, with the sizes needed to map boxes back.
#[derive(Debug, Clone)]
pub struct PreparedImage {
    pub data_url: String,
    pub orig_width: u32,
    pub orig_height: u32,
    pub sent_width: u32,
    pub sent_height: u32,
}

impl PreparedImage {
    /// Factors from sent pixels to original pixels, (x, y).
    pub fn scale(&self) -> (f64, f64) {
        (
            self.orig_width as f64 / self.sent_width as f64,
            self.orig_height as f64 / self.sent_height as f64,
        )
    }

    /// A box `[x1, y1, x2, y2]` in sent pixels, in original pixels (clamped to the image).
    pub fn box_to_original(&self, b: [f64; 4]) -> [f32; 4] {
        box_to_original(
            b,
            (self.sent_width, self.sent_height),
            (self.orig_width, self.orig_height),
        )
    }
}

/// A box in pixels of an image sent at `sent` (w, h), in pixels of the original `orig`.
pub fn box_to_original(b: [f64; 4], sent: (u32, u32), orig: (u32, u32)) -> [f32; 4] {
    let sx = orig.0 as f64 / sent.0.max(1) as f64;
    let sy = orig.1 as f64 / sent.1.max(1) as f64;
    let (w, h) = (orig.0 as f64, orig.1 as f64);
    [
        (b[0] * sx).clamp(0.0, w) as f32,
        (b[1] * sy).clamp(0.0, h) as f32,
        (b[2] * sx).clamp(0.0, w) as f32,
        (b[3] * sy).clamp(0.0, h) as f32,
    ]
}

/// Hex sha256 of some bytes (cache keys hash the original image bytes, not the re-encoding).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Decode any common format to RGB (Pillow's `convert("RGB")`), refusing absurd sizes.
pub fn decode_rgb(bytes: &[u8], what: &str) -> Result<RgbImage> {
    earl_image::decode_rgb(bytes, &earl_image::Limits::default()).map_err(|e| VlmError::Image {
        what: what.to_string(),
        reason: e.to_string(),
    })
}

/// The size an image of `w`x`h` is sent at under `prep`.
pub fn sent_size(w: u32, h: u32, prep: &ImagePrep) -> (u32, u32) {
    let longer = w.max(h) as f64;
    let scale = match prep.max_side {
        Some(m) if (m as f64) < longer => m as f64 / longer,
        _ => 1.0,
    };
    let fit = |side: u32| {
        let s = (side as f64 * scale).round().max(1.0);
        match prep.multiple_of {
            Some(m) if m > 1 => ((s / m as f64).round().max(1.0) as u32) * m,
            _ => s as u32,
        }
    };
    (fit(w), fit(h))
}

/// Decode, resize as `prep` says, re-encode and wrap as a `data:` URL.
pub fn prepare(bytes: &[u8], prep: &ImagePrep, what: &str) -> Result<PreparedImage> {
    let rgb = decode_rgb(bytes, what)?;
    prepare_rgb(&rgb, prep, what)
}

/// As [`prepare`], from pixels already decoded.
pub fn prepare_rgb(rgb: &RgbImage, prep: &ImagePrep, what: &str) -> Result<PreparedImage> {
    let (w, h) = rgb.dimensions();
    let (sw, sh) = sent_size(w, h, prep);
    let resized;
    let sent = if (sw, sh) == (w, h) {
        rgb
    } else {
        // Pillow-compatible bicubic, as the model's own processor would resize.
        resized = earl_image::resize_rgb(rgb, sw, sh);
        &resized
    };
    let mut buf = Vec::with_capacity((sw * sh) as usize);
    let encoded = match prep.format {
        WireFormat::Png => image::codecs::png::PngEncoder::new_with_quality(
            &mut buf,
            image::codecs::png::CompressionType::Fast,
            image::codecs::png::FilterType::Adaptive,
        )
        .write_image(sent, sw, sh, image::ExtendedColorType::Rgb8),
        WireFormat::Jpeg => {
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, prep.jpeg_quality)
                .write_image(sent, sw, sh, image::ExtendedColorType::Rgb8)
        }
    };
    encoded.map_err(|e| VlmError::Image {
        what: what.to_string(),
        reason: format!("cannot encode: {e}"),
    })?;
    let mime = match prep.format {
        WireFormat::Png => "image/png",
        WireFormat::Jpeg => "image/jpeg",
    };
    let b64 = base64::engine::general_purpose::STANDARD.encode(&buf);
    Ok(PreparedImage {
        data_url: format!("data:{mime};base64,{b64}"),
        orig_width: w,
        orig_height: h,
        sent_width: sw,
        sent_height: sh,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut buf = Vec::new();
        image::codecs::png::PngEncoder::new(&mut buf)
            .write_image(&img, w, h, image::ExtendedColorType::Rgb8)
            .unwrap();
        buf
    }

    #[test]
    fn downscales_to_max_side_and_multiple() {
        let prep = ImagePrep {
            max_side: Some(100),
            multiple_of: Some(28),
            ..ImagePrep::default()
        };
        assert_eq!(sent_size(400, 200, &prep), (112, 56));
        assert_eq!(sent_size(50, 10, &prep), (56, 28));
        let none = ImagePrep {
            max_side: None,
            multiple_of: None,
            ..prep
        };
        assert_eq!(sent_size(401, 203, &none), (401, 203));
    }

    #[test]
    fn boxes_map_back_to_original_pixels() {
        let prep = ImagePrep {
            max_side: Some(100),
            multiple_of: None,
            ..ImagePrep::default()
        };
        let p = prepare(&png(400, 200), &prep, "t").unwrap();
        assert_eq!((p.sent_width, p.sent_height), (100, 50));
        assert!(p.data_url.starts_with("data:image/png;base64,"));
        assert_eq!(
            p.box_to_original([10.0, 5.0, 100.0, 60.0]),
            [40.0, 20.0, 400.0, 200.0]
        );
    }

    #[test]
    fn jpeg_round_trips_and_garbage_is_refused() {
        let prep = ImagePrep {
            format: WireFormat::Jpeg,
            ..ImagePrep::default()
        };
        let p = prepare(&png(30, 20), &prep, "t").unwrap();
        let b64 = p.data_url.strip_prefix("data:image/jpeg;base64,").unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        let back = image::load_from_memory(&bytes).unwrap();
        assert_eq!((back.width(), back.height()), (28, 28));
        let err = prepare(b"not an image", &prep, "row 3 source").unwrap_err();
        assert!(err.to_string().contains("row 3 source"), "{err}");
    }
}
