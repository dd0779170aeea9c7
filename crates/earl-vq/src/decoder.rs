//! The decoder: a causal temporal stack that unfolds one latent step into
//! `temporal_downsample_factor` frames, then a 2-D stack per frame whose normalisations are
//! conditioned on the quantized latents. A still image is the first of those frames.

use tch::Tensor;

use crate::blocks::{AttnBlock, Mid, ResnetBlock, TemporalResBlock};
use crate::config::VqConfig;
use crate::error::Result;
use crate::layers::{CausalConv3d, Conv2d, Norm, SpatialNorm, swish};
use crate::weights::WeightPath;

/// Doubles H and W: nearest-neighbour upsampling, then a 3x3 convolution.
struct Upsample {
    conv: Conv2d,
}

impl Upsample {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (_, _, h, w) = x.size4()?;
        self.conv
            .forward(&x.f_upsample_nearest2d([2 * h, 2 * w], 2.0, 2.0)?)
    }
}

/// One resolution level: residual blocks (each followed by attention on attention levels),
/// then an upsampling on every level but the first.
struct UpLevel {
    blocks: Vec<ResnetBlock<SpatialNorm>>,
    attns: Vec<AttnBlock<SpatialNorm>>,
    upsample: Option<Upsample>,
}

/// The temporal part: [N, z, T, h, w] -> [N, z, T * factor, h, w]. Residual blocks, then per
/// doubling: repeat every frame twice, causal 3x3x3 convolution, swish.
struct TemporalDecoder {
    time_res_stack: Vec<TemporalResBlock>,
    time_conv: Vec<CausalConv3d>,
}

impl TemporalDecoder {
    fn load(p: &WeightPath, config: &VqConfig) -> Result<Self> {
        let z = config.z_channels;
        let time_res_stack = (0..config.num_res_blocks)
            .map(|i| TemporalResBlock::load(&p.at("time_res_stack").at(i), z))
            .collect::<Result<_>>()?;
        let time_conv = (0..config.temporal_levels())
            .map(|i| CausalConv3d::load(&p.at("time_conv").at(i).at("conv"), z, z, [3; 3], [1; 3]))
            .collect::<Result<_>>()?;
        Ok(Self {
            time_res_stack,
            time_conv,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.shallow_clone();
        for block in &self.time_res_stack {
            h = block.forward(&h)?;
        }
        for conv in &self.time_conv {
            h = swish(&conv.forward(&h.f_repeat_interleave_self_int(2, 2, None)?)?)?;
        }
        Ok(h)
    }
}

/// The per-frame part, conv_in to conv_out: [N, z, h, w] -> [N, 3, 8h, 8w], every norm
/// conditioned on `zq` [N, embed_dim, h, w].
struct FrameDecoder {
    conv_in: Conv2d,
    mid: Mid<SpatialNorm>,
    /// Indexed by level as upstream names them (`up.0` is the full-resolution level); they
    /// run from the last to the first.
    levels: Vec<UpLevel>,
    norm_out: SpatialNorm,
    conv_out: Conv2d,
}

impl FrameDecoder {
    fn load(p: &WeightPath, config: &VqConfig) -> Result<Self> {
        let mut c_in = config.ch * config.ch_mult[config.ch_mult.len() - 1];
        let conv_in = Conv2d::load(&p.at("conv_in"), config.z_channels, c_in, 3)?;
        let mid = Mid::load(&p.at("mid"), c_in, config)?;
        let mut levels = Vec::with_capacity(config.ch_mult.len());
        for (i, &mult) in config.ch_mult.iter().enumerate().rev() {
            let level = p.at("up").at(i);
            let c_out = config.ch * mult;
            let attention = config.attn_resolutions.contains(&(i as i64));
            let mut blocks = Vec::new();
            let mut attns = Vec::new();
            for j in 0..=config.num_res_blocks {
                blocks.push(ResnetBlock::load(
                    &level.at("block").at(j),
                    c_in,
                    c_out,
                    config,
                )?);
                c_in = c_out;
                if attention {
                    attns.push(AttnBlock::load(&level.at("attn").at(j), c_out, config)?);
                }
            }
            let upsample = if i != 0 {
                Some(Upsample {
                    conv: Conv2d::load(&level.at("upsample").at("conv"), c_out, c_out, 3)?,
                })
            } else {
                None
            };
            levels.push(UpLevel {
                blocks,
                attns,
                upsample,
            });
        }
        levels.reverse();
        Ok(Self {
            conv_in,
            mid,
            levels,
            norm_out: SpatialNorm::load(&p.at("norm_out"), c_in, config)?,
            conv_out: Conv2d::load(&p.at("conv_out"), c_in, config.out_channels, 3)?,
        })
    }

    fn forward(&self, z: &Tensor, zq: &Tensor) -> Result<Tensor> {
        let mut h = self.conv_in.forward(z)?;
        h = self.mid.forward(&h, zq)?;
        for level in self.levels.iter().rev() {
            for (j, block) in level.blocks.iter().enumerate() {
                h = block.forward(&h, zq)?;
                if let Some(attn) = level.attns.get(j) {
                    h = attn.forward(&h, zq)?;
                }
            }
            if let Some(up) = &level.upsample {
                h = up.forward(&h)?;
            }
        }
        self.conv_out
            .forward(&swish(&self.norm_out.forward(&h, zq)?)?)
    }
}

/// The whole decoder, loaded from `decoder.*`.
pub(crate) struct Decoder {
    temporal: TemporalDecoder,
    frames: FrameDecoder,
}

impl Decoder {
    pub fn load(p: &WeightPath, config: &VqConfig) -> Result<Self> {
        Ok(Self {
            temporal: TemporalDecoder::load(p, config)?,
            frames: FrameDecoder::load(p, config)?,
        })
    }

    /// Decodes one latent step into its first frame. `z` is the post-quant-conv latent and
    /// `zq` the quantized one, both [B, C, 1, h, w]; the result is [B, out_channels, 8h, 8w].
    ///
    /// Upstream unfolds both through the temporal stack into `factor` frames, decodes every
    /// frame and keeps the first. The temporal stack is cheap (latent width) and runs in full;
    /// the per-frame stack, nearly all the cost, runs on frame 0 only: it works frame by
    /// frame, so frames 1.. cannot change frame 0.
    pub fn first_frame(&self, z: &Tensor, zq: &Tensor) -> Result<Tensor> {
        // Both go through the same temporal layers, batched together as upstream does.
        let both = self.temporal.forward(&Tensor::f_cat(&[z, zq], 0)?)?;
        let first = both.f_select(2, 0)?;
        let halves = first.f_chunk(2, 0)?;
        self.frames.forward(&halves[0], &halves[1])
    }
}
