//! The model's shape, read from the Hugging Face `config.json` that ships with the weights.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Result, VqError};

/// Hyper-parameters of the Emu3 VQ-VAE. Field names are the upstream `config.json` keys; keys
/// this model does not use (architectures, transformers_version, ...) are ignored, and missing
/// keys take upstream's defaults, which are the released model's values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VqConfig {
    /// Number of codebook entries: codes are in `0..codebook_size`.
    pub codebook_size: i64,
    /// Width of one codebook vector (the quantized latent channels).
    pub embed_dim: i64,
    /// Channels at the encoder output / decoder input.
    pub z_channels: i64,
    /// Upstream option for a doubled encoder output; the model never uses it (must be false).
    pub double_z: bool,
    pub in_channels: i64,
    pub out_channels: i64,
    /// Frames folded into one latent step; a still image is repeated this many times.
    pub temporal_downsample_factor: i64,
    /// Base channel count of the convolutional stages.
    pub ch: i64,
    /// Channel multiplier per resolution level; each level after the first halves H and W.
    pub ch_mult: Vec<i64>,
    pub num_res_blocks: i64,
    /// Level indices whose blocks are followed by self-attention.
    pub attn_resolutions: Vec<i64>,
    /// Training-only; inference ignores it.
    pub dropout: f64,
}

/// Upstream's defaults (the values of the released model), for keys a config.json omits.
impl Default for VqConfig {
    fn default() -> Self {
        Self {
            codebook_size: 32768,
            embed_dim: 4,
            z_channels: 4,
            double_z: false,
            in_channels: 3,
            out_channels: 3,
            temporal_downsample_factor: 4,
            ch: 256,
            ch_mult: vec![1, 2, 2, 4],
            num_res_blocks: 2,
            attn_resolutions: vec![3],
            dropout: 0.0,
        }
    }
}

/// GroupNorm in the convolutional stages always uses this many groups.
pub(crate) const NORM_GROUPS: i64 = 32;

impl VqConfig {
    /// The released BAAI/Emu3-VisionTokenizer shape (ch 256, codebook 32768).
    pub fn emu3() -> Self {
        Self::builtin_json(include_str!("../configs/emu3.json"))
    }

    /// The tiny test shape of the golden reference data (ch 32, codebook 1024).
    pub fn tiny() -> Self {
        Self::builtin_json(include_str!("../configs/tiny.json"))
    }

    /// A shape shipped with the crate, by name: `tiny` or `emu3`.
    pub fn builtin(name: &str) -> Option<Self> {
        match name {
            "tiny" => Some(Self::tiny()),
            "emu3" => Some(Self::emu3()),
            _ => None,
        }
    }

    fn builtin_json(text: &str) -> Self {
        // The embedded files are checked by the unit tests below.
        serde_json::from_str(text).expect("embedded VQ config is valid JSON")
    }

    /// Reads and checks a `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| VqError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let origin = path.display().to_string();
        let config: Self = serde_json::from_str(&text).map_err(|e| VqError::Config {
            origin: origin.clone(),
            reason: e.to_string(),
        })?;
        config.validate(&origin)?;
        Ok(config)
    }

    /// Checks that the numbers describe a model this crate can build; `origin` names the source.
    pub fn validate(&self, origin: &str) -> Result<()> {
        let fail = |reason: String| {
            Err(VqError::Config {
                origin: origin.to_string(),
                reason,
            })
        };
        let positive = [
            ("codebook_size", self.codebook_size),
            ("embed_dim", self.embed_dim),
            ("z_channels", self.z_channels),
            ("in_channels", self.in_channels),
            ("out_channels", self.out_channels),
            ("ch", self.ch),
            ("num_res_blocks", self.num_res_blocks),
            (
                "temporal_downsample_factor",
                self.temporal_downsample_factor,
            ),
        ];
        if let Some((key, value)) = positive.iter().find(|(_, v)| *v <= 0) {
            return fail(format!("{key} must be positive, got {value}"));
        }
        if self.double_z {
            return fail("double_z = true is not supported (no released model uses it)".into());
        }
        if !(self.temporal_downsample_factor as u64).is_power_of_two() {
            let t = self.temporal_downsample_factor;
            return fail(format!(
                "temporal_downsample_factor must be a power of two, got {t}"
            ));
        }
        if self.ch_mult.is_empty() || self.ch_mult.iter().any(|&m| m <= 0) {
            return fail(format!(
                "ch_mult must be non-empty and positive, got {:?}",
                self.ch_mult
            ));
        }
        if let Some(m) = self
            .ch_mult
            .iter()
            .find(|&&m| (self.ch * m) % NORM_GROUPS != 0)
        {
            let c = self.ch * m;
            return fail(format!(
                "ch * ch_mult = {c} is not a multiple of {NORM_GROUPS} groups"
            ));
        }
        Ok(())
    }

    /// How many times the encoder halves height and width (8 for the released model).
    pub fn spatial_factor(&self) -> i64 {
        1 << (self.ch_mult.len() - 1)
    }

    /// The code grid (h, w) of an image of `height` x `width` pixels. Each halving pads one
    /// row/column and rounds down, so an odd size loses its last pixel (50x70 -> 6x8).
    pub fn code_grid(&self, height: i64, width: i64) -> (i64, i64) {
        let halve = |n: i64| (0..self.ch_mult.len() - 1).fold(n, |n, _| n / 2);
        (halve(height), halve(width))
    }

    /// How many temporal halvings (and doublings in the decoder) the model has.
    pub(crate) fn temporal_levels(&self) -> usize {
        self.temporal_downsample_factor.trailing_zeros() as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_configs_are_valid() {
        for name in ["tiny", "emu3"] {
            let config = VqConfig::builtin(name).unwrap();
            config.validate(name).unwrap();
            assert_eq!(config.spatial_factor(), 8);
        }
        assert_eq!(VqConfig::emu3().ch, 256);
        assert_eq!(VqConfig::emu3().codebook_size, 32768);
        assert_eq!(VqConfig::tiny().ch, 32);
        assert_eq!(VqConfig::default(), VqConfig::emu3());
    }

    #[test]
    fn ignores_unknown_keys_and_defaults_missing_ones() {
        let config: VqConfig =
            serde_json::from_str(r#"{"ch": 64, "transformers_version": "4.44.0"}"#).unwrap();
        assert_eq!(config.ch, 64);
        assert_eq!(config.codebook_size, 32768);
    }

    #[test]
    fn code_grid_matches_upstream_downsampling() {
        let config = VqConfig::tiny();
        assert_eq!(config.code_grid(64, 64), (8, 8));
        assert_eq!(config.code_grid(48, 80), (6, 10));
        assert_eq!(config.code_grid(50, 70), (6, 8));
        assert_eq!(config.temporal_levels(), 2);
    }

    #[test]
    fn rejects_unbuildable_shapes() {
        let bad = [
            VqConfig {
                double_z: true,
                ..VqConfig::tiny()
            },
            VqConfig {
                temporal_downsample_factor: 3,
                ..VqConfig::tiny()
            },
            VqConfig {
                ch: 24,
                ..VqConfig::tiny()
            },
            VqConfig {
                ch_mult: vec![],
                ..VqConfig::tiny()
            },
            VqConfig {
                embed_dim: 0,
                ..VqConfig::tiny()
            },
        ];
        for config in bad {
            let msg = config.validate("test.json").unwrap_err().to_string();
            assert!(msg.starts_with("test.json: invalid VQ config"), "{msg}");
        }
    }
}
