//! Why an image was refused. Every message says what was found, what the rule is and what to do,
//! so a caller can write it to a reject file as is (prefixed with the row or file it came from).

/// A refused or undecodable image.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ImageError {
    /// The bytes start like no image format we know.
    #[error(
        "not a recognised image (first bytes {magic}); expected png, jpeg, webp, gif, bmp or tiff"
    )]
    UnknownFormat { magic: String },

    /// A known format this build does not decode (e.g. AVIF).
    #[error("{format} images are not supported; convert them to png, jpeg, webp, gif, bmp or tiff")]
    UnsupportedFormat { format: String },

    /// The encoded file is larger than `Limits::max_bytes`.
    #[error(
        "encoded image is {bytes} bytes, over the limit of {max}; raise Limits::max_bytes to accept it"
    )]
    TooManyBytes { bytes: u64, max: u64 },

    /// The header claims more pixels than `Limits::max_pixels` (a decompression bomb or a huge scan).
    #[error(
        "image header says {width}x{height} = {pixels} pixels, over the limit of {max} \
         (possible decompression bomb); raise Limits::max_pixels to accept it"
    )]
    TooManyPixels {
        width: u32,
        height: u32,
        pixels: u64,
        max: u64,
    },

    /// Width or height is zero: there is nothing to decode.
    #[error("image header says {width}x{height}: an image needs at least one pixel")]
    ZeroSized { width: u32, height: u32 },

    /// The long side is more than `Limits::max_aspect` times the short side.
    #[error(
        "image is {width}x{height}, aspect ratio {ratio:.2} over the limit of {max}; \
         crop it or raise Limits::max_aspect"
    )]
    AspectRatio {
        width: u32,
        height: u32,
        ratio: f64,
        max: f64,
    },

    /// The decoder needed more memory than the header justified.
    #[error("{format} decoder needed more memory than a {width}x{height} image should: {reason}")]
    DecoderLimit {
        format: &'static str,
        width: u32,
        height: u32,
        reason: String,
    },

    /// The header or the data is malformed or truncated.
    #[error("{format} image is corrupt or truncated: {reason}")]
    Corrupt {
        format: &'static str,
        reason: String,
    },
}

impl ImageError {
    /// The short reason code the data stages record in `rejects/` (`corrupt_image`,
    /// `image_too_large`, `empty_image`, `aspect_ratio`).
    pub fn reason_code(&self) -> &'static str {
        use ImageError as E;
        match self {
            E::UnknownFormat { .. } | E::UnsupportedFormat { .. } | E::Corrupt { .. } => {
                "corrupt_image"
            }
            E::TooManyBytes { .. } | E::TooManyPixels { .. } | E::DecoderLimit { .. } => {
                "image_too_large"
            }
            E::ZeroSized { .. } => "empty_image",
            E::AspectRatio { .. } => "aspect_ratio",
        }
    }
}
