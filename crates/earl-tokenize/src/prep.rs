//! The CPU half of tokenizing one image: decode, RGB, smart resize, scale to [-1, 1].

use earl_image::{Limits, decode_rgb, resize_rgb, smart_size, to_pixel_values};

/// An image as the encoder takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// Size of the decoded original.
    pub orig: (u32, u32),
    /// Size after the smart resize (`width`, `height`).
    pub size: (u32, u32),
    /// Channels-first `[3, height, width]` values in [-1, 1].
    pub pixels: Vec<f32>,
}

/// Decodes `bytes` under `limits` and resizes to about `area` pixels. An image whose resized
/// side is below `min_side` (the VQ's downsampling factor) would give an empty grid: refused.
pub fn prepare(
    bytes: &[u8],
    area: u32,
    limits: &Limits,
    min_side: u32,
) -> Result<Prepared, (&'static str, String)> {
    let rgb = decode_rgb(bytes, limits).map_err(|e| (e.reason_code(), e.to_string()))?;
    let orig = rgb.dimensions();
    let (w, h) = smart_size(orig.0, orig.1, area);
    if w < min_side || h < min_side {
        return Err((
            "image_too_small",
            format!(
                "{}x{} resizes to {w}x{h} at --image-area {area}, below the VQ's {min_side} \
                 pixels per code; raise --image-area",
                orig.0, orig.1
            ),
        ));
    }
    let resized = resize_rgb(&rgb, w, h);
    Ok(Prepared {
        orig,
        size: (w, h),
        pixels: to_pixel_values(&resized),
    })
}

/// A `[x1, y1, x2, y2]` box in pixels of an image of size `from` moved to one of size `to`
/// (`x * w'/w`, `y * h'/h`).
pub fn rescale_bbox(bbox: [f32; 4], from: (u32, u32), to: (u32, u32)) -> [f32; 4] {
    let sx = to.0 as f32 / from.0 as f32;
    let sy = to.1 as f32 / from.1 as f32;
    [bbox[0] * sx, bbox[1] * sy, bbox[2] * sx, bbox[3] * sy]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bbox_follows_the_resize_on_each_axis() {
        // 600x400 -> 300x100: x halves, y quarters.
        let b = rescale_bbox([60.0, 40.0, 600.0, 400.0], (600, 400), (300, 100));
        assert_eq!(b, [30.0, 10.0, 300.0, 100.0]);
        // The real resize of a 451x300 image to area 65536 (314x209).
        let (w, h) = smart_size(451, 300, 65536);
        let b = rescale_bbox([451.0, 300.0, 0.0, 150.0], (451, 300), (w, h));
        assert!(
            (b[0] - w as f32).abs() < 1e-3 && (b[1] - h as f32).abs() < 1e-3,
            "{b:?}"
        );
        assert!((b[3] - h as f32 / 2.0).abs() < 1e-3, "{b:?}");
    }

    #[test]
    fn undecodable_bytes_are_a_corrupt_image() {
        let (reason, detail) = prepare(b"not an image at all", 4096, &Limits::default(), 8)
            .err()
            .unwrap();
        assert_eq!(reason, "corrupt_image", "{detail}");
    }

    #[test]
    fn tiny_area_is_refused_not_encoded_to_nothing() {
        let mut png = Vec::new();
        image::RgbImage::new(40, 20)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let (reason, _) = prepare(&png, 64, &Limits::default(), 8).err().unwrap();
        assert_eq!(reason, "image_too_small");
        let p = prepare(&png, 800, &Limits::default(), 8).unwrap();
        assert_eq!((p.orig, p.size), ((40, 20), (40, 20)));
        assert_eq!(p.pixels.len(), 3 * 40 * 20);
    }
}
