//! Images for the EARL pipeline: safe decoding, Pillow-compatible RGB, the upstream resize.
//!
//! - [`probe`] reads a header (format, size) without decoding pixels;
//! - [`decode_rgb`] refuses oversized, empty or too-elongated images from the header
//!   ([`Limits`]), then decodes PNG, JPEG, WebP, GIF (first frame), BMP or TIFF to 8-bit RGB with
//!   the meaning of Pillow's `convert("RGB")`;
//! - [`smart_size`] + [`resize_rgb`] reproduce upstream's resize to a pixel budget (Pillow
//!   bicubic, bit-exact);
//! - [`to_pixel_values`] gives the normalised channels-first tensor the VQ encoder takes.

mod bench;
mod decode;
mod error;
mod pixels;
mod resize;

pub use bench::{BenchReport, bench_resize};
pub use decode::{Format, ImageInfo, Limits, decode_rgb, probe};
pub use error::ImageError;
pub use image::RgbImage;
pub use pixels::to_pixel_values;
pub use resize::{resize_rgb, smart_size};
