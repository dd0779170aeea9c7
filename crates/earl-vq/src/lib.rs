//! earl-vq: the Emu3 vision tokenizer (the VQ-VAE of `BAAI/Emu3-VisionTokenizer`), turning
//! images into grids of codebook indices and back.
//!
//! ```text
//! pixels [B,3,H,W] -> encoder (per frame, then over time) -> quant_conv -> nearest codebook
//!        entry -> codes [B,H/8,W/8] -> codebook lookup -> post_quant_conv -> decoder
//!        (over time, then per frame, normalised by the quantized latents) -> pixels [B,3,H',W']
//! ```
//!
//! The model reads the upstream `config.json` and `model.safetensors` by the upstream
//! parameter names, so the released checkpoint and the tiny test one go through one path.
//! A still image is, upstream, a clip of `temporal_downsample_factor` identical frames; this
//! crate runs the expensive per-frame stacks on one frame only (see [`EncodeMode`] and
//! [`VqModel::decode`]), with the same codes.
//!
//! ```no_run
//! # fn main() -> Result<(), earl_vq::VqError> {
//! let device = earl_vq::parse_device("cpu")?;
//! let model = earl_vq::VqModel::load("weights/emu3-vq".as_ref(), device, tch::Kind::Float)?;
//! let pixels = tch::Tensor::zeros([1, 3, 256, 256], (tch::Kind::Float, device));
//! let codes = model.encode(&pixels)?; // [1, 32, 32]
//! let image = model.decode(&codes)?; // [1, 3, 256, 256]
//! # Ok(()) }
//! ```

mod bench;
mod blocks;
mod config;
mod decoder;
mod device;
mod encoder;
mod error;
mod layers;
mod model;
mod quantizer;
mod weights;

pub use bench::{BenchRow, BenchSpec, bench_encode, format_table, random_pixels};
pub use config::VqConfig;
pub use device::{parse_device, parse_kind};
pub use error::{Result, VqError};
pub use model::{EncodeMode, VqModel};
pub use weights::{CONFIG_FILE, WEIGHTS_FILE, checkpoint_sha256};
