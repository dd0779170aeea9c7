//! The encoder: a 2-D convolutional stack applied to each frame on its own, then a causal
//! temporal stack that folds `temporal_downsample_factor` frames into one latent step.

use tch::Tensor;

use crate::blocks::{AttnBlock, Mid, ResnetBlock, TemporalResBlock};
use crate::config::VqConfig;
use crate::error::Result;
use crate::layers::{CausalConv3d, Conv2d, GroupNorm, swish};
use crate::weights::WeightPath;

/// Halves H and W: one zero row/column after the image, then a stride-2 3x3 convolution.
struct Downsample {
    conv: Conv2d,
}

impl Downsample {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.conv.forward(&x.f_constant_pad_nd([0, 1, 0, 1])?)
    }
}

/// One resolution level: residual blocks (each followed by attention on attention levels),
/// then a downsampling on every level but the last.
struct DownLevel {
    blocks: Vec<ResnetBlock<GroupNorm>>,
    attns: Vec<AttnBlock<GroupNorm>>,
    downsample: Option<Downsample>,
}

/// The per-frame part, conv_in to conv_out: [N, 3, H, W] -> [N, z, H/8, W/8].
pub(crate) struct FrameEncoder {
    conv_in: Conv2d,
    levels: Vec<DownLevel>,
    mid: Mid<GroupNorm>,
    norm_out: GroupNorm,
    conv_out: Conv2d,
}

impl FrameEncoder {
    fn load(p: &WeightPath, config: &VqConfig) -> Result<Self> {
        let conv_in = Conv2d::load(&p.at("conv_in"), config.in_channels, config.ch, 3)?;
        let last = config.ch_mult.len() - 1;
        let mut c_in = config.ch;
        let mut levels = Vec::with_capacity(config.ch_mult.len());
        for (i, &mult) in config.ch_mult.iter().enumerate() {
            let level = p.at("down").at(i);
            let c_out = config.ch * mult;
            let attention = config.attn_resolutions.contains(&(i as i64));
            let mut blocks = Vec::new();
            let mut attns = Vec::new();
            for j in 0..config.num_res_blocks {
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
            let downsample = if i != last {
                let p = level.at("downsample").at("conv");
                Some(Downsample {
                    conv: Conv2d::load_strided(&p, c_out, c_out, 3, 2, 0)?,
                })
            } else {
                None
            };
            levels.push(DownLevel {
                blocks,
                attns,
                downsample,
            });
        }
        Ok(Self {
            conv_in,
            levels,
            mid: Mid::load(&p.at("mid"), c_in, config)?,
            norm_out: GroupNorm::load(&p.at("norm_out"), c_in)?,
            conv_out: Conv2d::load(&p.at("conv_out"), c_in, config.z_channels, 3)?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = self.conv_in.forward(x)?;
        for level in &self.levels {
            for (j, block) in level.blocks.iter().enumerate() {
                h = block.forward(&h, &())?;
                if let Some(attn) = level.attns.get(j) {
                    h = attn.forward(&h, &())?;
                }
            }
            if let Some(down) = &level.downsample {
                h = down.forward(&h)?;
            }
        }
        h = self.mid.forward(&h, &())?;
        self.conv_out.forward(&swish(&self.norm_out.forward(&h)?)?)
    }
}

/// The temporal part: [B, z, T, h, w] -> [B, z, T / factor, h, w]. Each `time_conv` halves T
/// with a causal (4, 3, 3) convolution of stride 2 in time; residual blocks follow.
pub(crate) struct TemporalEncoder {
    time_conv: Vec<CausalConv3d>,
    time_res_stack: Vec<TemporalResBlock>,
}

impl TemporalEncoder {
    fn load(p: &WeightPath, config: &VqConfig) -> Result<Self> {
        let z = config.z_channels;
        let time_conv = (0..config.temporal_levels())
            .map(|i| {
                CausalConv3d::load(
                    &p.at("time_conv").at(i).at("conv"),
                    z,
                    z,
                    [4, 3, 3],
                    [2, 1, 1],
                )
            })
            .collect::<Result<_>>()?;
        let time_res_stack = (0..config.num_res_blocks)
            .map(|i| TemporalResBlock::load(&p.at("time_res_stack").at(i), z))
            .collect::<Result<_>>()?;
        Ok(Self {
            time_conv,
            time_res_stack,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.shallow_clone();
        for conv in &self.time_conv {
            h = swish(&conv.forward(&h)?)?;
        }
        for block in &self.time_res_stack {
            h = block.forward(&h)?;
        }
        Ok(h)
    }
}

/// The whole encoder, loaded from `encoder.*`.
pub(crate) struct Encoder {
    pub frames: FrameEncoder,
    pub temporal: TemporalEncoder,
}

impl Encoder {
    pub fn load(p: &WeightPath, config: &VqConfig) -> Result<Self> {
        Ok(Self {
            frames: FrameEncoder::load(p, config)?,
            temporal: TemporalEncoder::load(p, config)?,
        })
    }
}
