//! The vision tokenizer as a whole: images in [-1, 1] to code grids, and code grids back to
//! images, batched, on the device and in the precision chosen at load time.

use std::path::Path;

use sha2::{Digest, Sha256};
use tch::{Device, Kind, Tensor};

use crate::config::VqConfig;
use crate::decoder::Decoder;
use crate::device::check_kind;
use crate::encoder::Encoder;
use crate::error::{Result, VqError};
use crate::layers::CausalConv3d;
use crate::quantizer::Quantizer;
use crate::weights::{CONFIG_FILE, WEIGHTS_FILE, Weights};

/// How a still image goes through the encoder's per-frame stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeMode {
    /// Once, its output repeated along time for the temporal layers. The per-frame stack sees
    /// each frame alone, so the repeated frames would give identical outputs: this computes
    /// the same codes for a quarter of the work.
    OneFrame,
    /// As upstream: the image repeated `temporal_downsample_factor` times, every copy encoded.
    /// Kept to show (test, benchmark) that `OneFrame` is equivalent.
    UpstreamStyle,
}

/// The Emu3 VQ-VAE (BAAI/Emu3-VisionTokenizer) for still images, inference only.
pub struct VqModel {
    config: VqConfig,
    encoder: Encoder,
    quant_conv: CausalConv3d,
    quantizer: Quantizer,
    post_quant_conv: CausalConv3d,
    decoder: Decoder,
    device: Device,
    kind: Kind,
    checkpoint_id: String,
}

impl VqModel {
    /// Loads a model folder holding the upstream `config.json` and `model.safetensors`, onto
    /// `device`, computing in `kind` (`Kind::Float`, or `Kind::BFloat16` on CUDA).
    pub fn load(dir: &Path, device: Device, kind: Kind) -> Result<Self> {
        let kind = check_kind(kind)?;
        let config = VqConfig::from_file(&dir.join(CONFIG_FILE))?;
        let (weights, sha256) = Weights::checkpoint(&dir.join(WEIGHTS_FILE), device, kind)?;
        Self::build(config, weights, sha256)
    }

    /// A model of shape `config` with every parameter drawn from a generator seeded with
    /// `seed`: the same weights on every device. For demos and benchmarks.
    pub fn random(config: &VqConfig, seed: u64, device: Device, kind: Kind) -> Result<Self> {
        let kind = check_kind(kind)?;
        config.validate("random VQ config")?;
        let shape = serde_json::to_vec(config).map_err(|e| VqError::Config {
            origin: "random VQ config".into(),
            reason: e.to_string(),
        })?;
        let config_hash = hex::encode(&Sha256::digest(&shape)[..8]);
        let id = format!("random:config-{config_hash}:seed-{seed}");
        Self::build(config.clone(), Weights::random(seed, device, kind), id)
    }

    /// Every parameter is requested here, once, by its upstream name.
    fn build(config: VqConfig, weights: Weights, checkpoint_id: String) -> Result<Self> {
        let (z, e) = (config.z_channels, config.embed_dim);
        let (device, kind) = (weights.device(), weights.kind());
        let model = {
            let root = weights.root();
            Self {
                encoder: Encoder::load(&root.at("encoder"), &config)?,
                quant_conv: CausalConv3d::load(&root.at("quant_conv"), z, e, [3, 1, 1], [1; 3])?,
                quantizer: Quantizer::load(&root.at("quantize"), &config)?,
                post_quant_conv: CausalConv3d::load(
                    &root.at("post_quant_conv"),
                    e,
                    z,
                    [3, 1, 1],
                    [1; 3],
                )?,
                decoder: Decoder::load(&root.at("decoder"), &config)?,
                config,
                device,
                kind,
                checkpoint_id,
            }
        };
        weights.finish()?;
        Ok(model)
    }

    pub fn config(&self) -> &VqConfig {
        &self.config
    }

    pub fn device(&self) -> Device {
        self.device
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Identity of the weights: the sha256 of `model.safetensors`, or `random:config-..:seed-N`.
    pub fn checkpoint_id(&self) -> &str {
        &self.checkpoint_id
    }

    /// Codes [B, h, w] (int64, on the model's device) of images [B, 3, H, W] in [-1, 1],
    /// h = H / 8 and w = W / 8 rounded down.
    pub fn encode(&self, pixels: &Tensor) -> Result<Tensor> {
        self.encode_with(pixels, EncodeMode::OneFrame)
    }

    /// [`VqModel::encode`] with an explicit [`EncodeMode`].
    pub fn encode_with(&self, pixels: &Tensor, mode: EncodeMode) -> Result<Tensor> {
        tch::no_grad(|| self.quantizer.nearest(&self.latents_inner(pixels, mode)?))
    }

    /// The continuous latents [B, embed_dim, h, w] (fp32) that `encode` quantizes.
    pub fn latents(&self, pixels: &Tensor, mode: EncodeMode) -> Result<Tensor> {
        tch::no_grad(|| Ok(self.latents_inner(pixels, mode)?.f_to_kind(Kind::Float)?))
    }

    fn latents_inner(&self, pixels: &Tensor, mode: EncodeMode) -> Result<Tensor> {
        let x = self.check_pixels(pixels)?;
        let (b, c, h, w) = x.size4()?;
        let t = self.config.temporal_downsample_factor;
        let frames = match mode {
            EncodeMode::OneFrame => {
                let f = self.encoder.frames.forward(&x)?;
                let (_, z, fh, fw) = f.size4()?;
                f.f_unsqueeze(2)?.f_expand([b, z, t, fh, fw], false)?
            }
            EncodeMode::UpstreamStyle => {
                let copies = x.f_unsqueeze(1)?.f_expand([b, t, c, h, w], false)?;
                let f = self
                    .encoder
                    .frames
                    .forward(&copies.f_reshape([b * t, c, h, w])?)?;
                let (_, z, fh, fw) = f.size4()?;
                f.f_reshape([b, t, z, fh, fw])?.f_permute([0, 2, 1, 3, 4])?
            }
        };
        // [B, z, T, h, w] -> one latent step [B, z, 1, h, w] -> [B, embed_dim, h, w].
        let z = self.encoder.temporal.forward(&frames)?;
        Ok(self.quant_conv.forward(&z)?.f_select(2, 0)?)
    }

    /// Images [B, 3, 8h, 8w] (fp32, on the model's device, nominally in [-1, 1]) of codes
    /// [B, h, w] (any integer type, each in `0..codebook_size`).
    pub fn decode(&self, codes: &Tensor) -> Result<Tensor> {
        tch::no_grad(|| {
            let codes = self.check_codes(codes)?;
            let zq = self
                .quantizer
                .lookup(&codes)?
                .f_to_kind(self.kind)?
                .f_unsqueeze(2)?;
            let z = self.post_quant_conv.forward(&zq)?;
            Ok(self.decoder.first_frame(&z, &zq)?.f_to_kind(Kind::Float)?)
        })
    }

    fn check_pixels(&self, pixels: &Tensor) -> Result<Tensor> {
        let shape = pixels.size();
        let channels = self.config.in_channels;
        let min = self.config.spatial_factor();
        let bad = |why: String| Err(VqError::Input(format!("pixels of shape {shape:?}: {why}")));
        if shape.len() != 4 || shape[1] != channels {
            return bad(format!("expected [batch, {channels}, height, width]"));
        }
        if shape[0] == 0 {
            return bad("the batch is empty".into());
        }
        if shape[2] < min || shape[3] < min {
            return bad(format!("height and width must be at least {min}"));
        }
        if !pixels.is_floating_point() {
            return bad(format!(
                "expected floating-point values in [-1, 1], got {:?}",
                pixels.kind()
            ));
        }
        Ok(pixels.f_to_device(self.device)?.f_to_kind(self.kind)?)
    }

    fn check_codes(&self, codes: &Tensor) -> Result<Tensor> {
        let shape = codes.size();
        let n = self.config.codebook_size;
        let bad = |why: String| Err(VqError::Input(format!("codes of shape {shape:?}: {why}")));
        if shape.len() != 3 || shape.contains(&0) {
            return bad("expected a non-empty [batch, height, width] grid".into());
        }
        if codes.is_floating_point() || codes.kind() == Kind::Bool {
            return bad(format!("expected integer codes, got {:?}", codes.kind()));
        }
        let codes = codes.f_to_device(self.device)?.f_to_kind(Kind::Int64)?;
        let (lo, hi) = (
            codes.f_min()?.f_int64_value(&[])?,
            codes.f_max()?.f_int64_value(&[])?,
        );
        if lo < 0 || hi >= n {
            return bad(format!(
                "code {} is outside the codebook 0..{n}",
                if lo < 0 { lo } else { hi }
            ));
        }
        Ok(codes)
    }
}
