//! Safe decoding: look at the header first, refuse what is too big, then decode and convert to
//! RGB the way Pillow's `Image.convert("RGB")` does, so that tokens match the upstream pipeline.

use std::io::Cursor;

use image::{DynamicImage, ImageReader, RgbImage};

use crate::ImageError;

/// The encoded formats this crate decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Png,
    Jpeg,
    WebP,
    Gif,
    Bmp,
    Tiff,
}

impl Format {
    /// The lower-case name stored in datasets (`source_format`): png, jpeg, webp, gif, bmp, tiff.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Png => "png",
            Format::Jpeg => "jpeg",
            Format::WebP => "webp",
            Format::Gif => "gif",
            Format::Bmp => "bmp",
            Format::Tiff => "tiff",
        }
    }

    fn from_image(format: image::ImageFormat) -> Result<Self, ImageError> {
        use image::ImageFormat as F;
        Ok(match format {
            F::Png => Format::Png,
            F::Jpeg => Format::Jpeg,
            F::WebP => Format::WebP,
            F::Gif => Format::Gif,
            F::Bmp => Format::Bmp,
            F::Tiff => Format::Tiff,
            other => {
                let format = other.extensions_str().first().copied().unwrap_or("unknown");
                return Err(ImageError::UnsupportedFormat {
                    format: format.to_string(),
                });
            }
        })
    }

    fn to_image(self) -> image::ImageFormat {
        use image::ImageFormat as F;
        match self {
            Format::Png => F::Png,
            Format::Jpeg => F::Jpeg,
            Format::WebP => F::WebP,
            Format::Gif => F::Gif,
            Format::Bmp => F::Bmp,
            Format::Tiff => F::Tiff,
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the header says about an encoded image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageInfo {
    pub width: u32,
    pub height: u32,
    pub format: Format,
    /// Size of the encoded bytes.
    pub bytes: u64,
}

/// What `decode_rgb` accepts. Checked on the header, before any pixel is decoded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Most pixels (width x height). Default 89_478_485, Pillow's `MAX_IMAGE_PIXELS`.
    pub max_pixels: u64,
    /// Largest encoded file in bytes. Default 64 MiB.
    pub max_bytes: u64,
    /// Largest long side / short side. Default 5.0, as in the upstream data filter.
    pub max_aspect: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_pixels: 89_478_485,
            max_bytes: 64 << 20,
            max_aspect: 5.0,
        }
    }
}

impl Limits {
    /// Refuses an image whose header breaks a limit.
    pub fn check(&self, info: &ImageInfo) -> Result<(), ImageError> {
        if info.bytes > self.max_bytes {
            return Err(ImageError::TooManyBytes {
                bytes: info.bytes,
                max: self.max_bytes,
            });
        }
        let (width, height) = (info.width, info.height);
        let pixels = u64::from(width) * u64::from(height);
        if pixels > self.max_pixels {
            return Err(ImageError::TooManyPixels {
                width,
                height,
                pixels,
                max: self.max_pixels,
            });
        }
        let ratio = f64::from(width.max(height)) / f64::from(width.min(height));
        if ratio > self.max_aspect {
            return Err(ImageError::AspectRatio {
                width,
                height,
                ratio,
                max: self.max_aspect,
            });
        }
        Ok(())
    }
}

/// Reads only the header: format, width, height. Cheap; allocates nothing for pixels.
pub fn probe(bytes: &[u8]) -> Result<ImageInfo, ImageError> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ImageError::Corrupt {
            format: "image",
            reason: e.to_string(),
        })?;
    let format = match reader.format() {
        Some(format) => Format::from_image(format)?,
        None => {
            return Err(ImageError::UnknownFormat {
                magic: magic(bytes),
            });
        }
    };
    let (width, height) = reader.into_dimensions().map_err(|e| corrupt(format, e))?;
    if width == 0 || height == 0 {
        return Err(ImageError::ZeroSized { width, height });
    }
    Ok(ImageInfo {
        width,
        height,
        format,
        bytes: bytes.len() as u64,
    })
}

/// Decodes a whole image (the first frame of an animation) to 8-bit RGB, after checking its
/// header against `limits`. Alpha is dropped, not composited, as Pillow's `convert("RGB")` does.
pub fn decode_rgb(bytes: &[u8], limits: &Limits) -> Result<RgbImage, ImageError> {
    // Refuse oversized files before even parsing their header.
    if bytes.len() as u64 > limits.max_bytes {
        return Err(ImageError::TooManyBytes {
            bytes: bytes.len() as u64,
            max: limits.max_bytes,
        });
    }
    let info = probe(bytes)?;
    limits.check(&info)?;

    if info.format == Format::Jpeg {
        return decode_jpeg(bytes, &info);
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), info.format.to_image());
    reader.limits(decoder_limits(&info));
    let image = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(reason) => ImageError::DecoderLimit {
            format: info.format.as_str(),
            width: info.width,
            height: info.height,
            reason: reason.to_string(),
        },
        e => corrupt(info.format, e),
    })?;
    Ok(to_rgb_like_pillow(image))
}

/// JPEG through zune-jpeg in strict mode, which fails on a truncated file (as Pillow does)
/// where `image` would fill the missing rows with grey. Grey and CMYK come out as RGB.
fn decode_jpeg(bytes: &[u8], info: &ImageInfo) -> Result<RgbImage, ImageError> {
    use zune_core::{bytestream::ZCursor, colorspace::ColorSpace, options::DecoderOptions};
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::RGB)
        .set_strict_mode(true)
        .set_max_width(info.width as usize)
        .set_max_height(info.height as usize);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    let corrupt = |reason: String| ImageError::Corrupt {
        format: "jpeg",
        reason,
    };
    let raw = decoder.decode().map_err(|e| corrupt(e.to_string()))?;
    let len = raw.len();
    RgbImage::from_raw(info.width, info.height, raw).ok_or_else(|| {
        corrupt(format!(
            "decoded {len} bytes, not the {}x{}x3 the header says",
            info.width, info.height
        ))
    })
}

/// The decoder may allocate what the header's size justifies (16 bytes a pixel covers RGBA
/// float) plus working room, and no more: a lying header cannot make it allocate gigabytes.
fn decoder_limits(info: &ImageInfo) -> image::Limits {
    let pixels = u64::from(info.width) * u64::from(info.height);
    let mut limits = image::Limits::no_limits();
    limits.max_image_width = Some(info.width);
    limits.max_image_height = Some(info.height);
    limits.max_alloc = Some(pixels * 16 + (64 << 20));
    limits
}

/// Pillow's `convert("RGB")`: grey is replicated, alpha dropped; 16-bit colour keeps the high
/// byte (Pillow's `;16B` unpackers), while 16-bit grey (Pillow mode `I;16`) is clipped to 255.
fn to_rgb_like_pillow(image: DynamicImage) -> RgbImage {
    let (w, h) = (image.width(), image.height());
    let high = |v: u16| (v >> 8) as u8;
    match image {
        DynamicImage::ImageRgb8(rgb) => rgb,
        DynamicImage::ImageRgba8(im) => map_pixels(w, h, im.as_raw(), 4, |p| [p[0], p[1], p[2]]),
        DynamicImage::ImageLuma8(im) => map_pixels(w, h, im.as_raw(), 1, |p| [p[0]; 3]),
        DynamicImage::ImageLumaA8(im) => map_pixels(w, h, im.as_raw(), 2, |p| [p[0]; 3]),
        DynamicImage::ImageLuma16(im) => {
            map_pixels(w, h, im.as_raw(), 1, |p| [p[0].min(255) as u8; 3])
        }
        DynamicImage::ImageLumaA16(im) => map_pixels(w, h, im.as_raw(), 2, |p| [high(p[0]); 3]),
        DynamicImage::ImageRgb16(im) => map_pixels(w, h, im.as_raw(), 3, |p| {
            [high(p[0]), high(p[1]), high(p[2])]
        }),
        DynamicImage::ImageRgba16(im) => map_pixels(w, h, im.as_raw(), 4, |p| {
            [high(p[0]), high(p[1]), high(p[2])]
        }),
        // Float images (TIFF) have no Pillow RGB path worth copying: scale and round.
        other => other.to_rgb8(),
    }
}

fn map_pixels<T: Copy>(
    width: u32,
    height: u32,
    samples: &[T],
    channels: usize,
    f: impl Fn(&[T]) -> [u8; 3],
) -> RgbImage {
    let raw: Vec<u8> = samples.chunks_exact(channels).flat_map(f).collect();
    RgbImage::from_raw(width, height, raw).expect("one RGB triple per decoded pixel")
}

fn corrupt(format: Format, e: image::ImageError) -> ImageError {
    ImageError::Corrupt {
        format: format.as_str(),
        reason: e.to_string(),
    }
}

fn magic(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(8)];
    if head.is_empty() {
        return "none: the input is empty".to_string();
    }
    head.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}
