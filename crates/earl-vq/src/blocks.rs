//! The blocks the encoder and decoder are stacked from: residual and attention blocks over
//! single frames (generic in their normalisation), and the residual block over time.

use tch::Tensor;

use crate::config::VqConfig;
use crate::error::Result;
use crate::layers::{BatchNorm3d, CausalConv3d, Conv2d, Norm, swish};
use crate::weights::WeightPath;

/// norm -> swish -> conv, twice, plus the input (through a 1x1 conv when the width changes).
pub(crate) struct ResnetBlock<N: Norm> {
    norm1: N,
    conv1: Conv2d,
    norm2: N,
    conv2: Conv2d,
    nin_shortcut: Option<Conv2d>,
}

impl<N: Norm> ResnetBlock<N> {
    pub fn load(p: &WeightPath, c_in: i64, c_out: i64, config: &VqConfig) -> Result<Self> {
        let nin_shortcut = if c_in != c_out {
            Some(Conv2d::load(&p.at("nin_shortcut"), c_in, c_out, 1)?)
        } else {
            None
        };
        Ok(Self {
            norm1: N::load(&p.at("norm1"), c_in, config)?,
            conv1: Conv2d::load(&p.at("conv1"), c_in, c_out, 3)?,
            norm2: N::load(&p.at("norm2"), c_out, config)?,
            conv2: Conv2d::load(&p.at("conv2"), c_out, c_out, 3)?,
            nin_shortcut,
        })
    }

    pub fn forward(&self, x: &Tensor, cond: &N::Cond) -> Result<Tensor> {
        let h = self.conv1.forward(&swish(&self.norm1.forward(x, cond)?)?)?;
        let h = self
            .conv2
            .forward(&swish(&self.norm2.forward(&h, cond)?)?)?;
        let skip = match &self.nin_shortcut {
            Some(conv) => conv.forward(x)?,
            None => x.shallow_clone(),
        };
        Ok(skip.f_add(&h)?)
    }
}

/// Single-head self-attention over the pixels of a frame, with a residual connection.
pub(crate) struct AttnBlock<N: Norm> {
    norm: N,
    q: Conv2d,
    k: Conv2d,
    v: Conv2d,
    proj_out: Conv2d,
}

impl<N: Norm> AttnBlock<N> {
    pub fn load(p: &WeightPath, channels: i64, config: &VqConfig) -> Result<Self> {
        Ok(Self {
            norm: N::load(&p.at("norm"), channels, config)?,
            q: Conv2d::load(&p.at("q"), channels, channels, 1)?,
            k: Conv2d::load(&p.at("k"), channels, channels, 1)?,
            v: Conv2d::load(&p.at("v"), channels, channels, 1)?,
            proj_out: Conv2d::load(&p.at("proj_out"), channels, channels, 1)?,
        })
    }

    pub fn forward(&self, x: &Tensor, cond: &N::Cond) -> Result<Tensor> {
        let (b, c, h, w) = x.size4()?;
        let normed = self.norm.forward(x, cond)?;
        // [B, C, H, W] -> [B, 1, H*W, C]: one head whose tokens are the pixels.
        let tokens =
            |t: Tensor| -> Result<Tensor> { Ok(t.f_reshape([b, 1, c, h * w])?.f_transpose(2, 3)?) };
        let q = tokens(self.q.forward(&normed)?)?;
        let k = tokens(self.k.forward(&normed)?)?;
        let v = tokens(self.v.forward(&normed)?)?;
        // The default scale 1/sqrt(C) is upstream's.
        let out = Tensor::f_scaled_dot_product_attention::<Tensor>(
            &q, &k, &v, None, 0.0, false, None, false,
        )?;
        let out = out.f_transpose(2, 3)?.f_reshape([b, c, h, w])?;
        Ok(x.f_add(&self.proj_out.forward(&out)?)?)
    }
}

/// The bottleneck: residual, attention, residual, at the lowest resolution.
pub(crate) struct Mid<N: Norm> {
    block_1: ResnetBlock<N>,
    attn_1: AttnBlock<N>,
    block_2: ResnetBlock<N>,
}

impl<N: Norm> Mid<N> {
    pub fn load(p: &WeightPath, channels: i64, config: &VqConfig) -> Result<Self> {
        Ok(Self {
            block_1: ResnetBlock::load(&p.at("block_1"), channels, channels, config)?,
            attn_1: AttnBlock::load(&p.at("attn_1"), channels, config)?,
            block_2: ResnetBlock::load(&p.at("block_2"), channels, channels, config)?,
        })
    }

    pub fn forward(&self, x: &Tensor, cond: &N::Cond) -> Result<Tensor> {
        let h = self.block_1.forward(x, cond)?;
        let h = self.attn_1.forward(&h, cond)?;
        self.block_2.forward(&h, cond)
    }
}

/// The residual block over [B, C, T, H, W]: BatchNorm -> swish -> causal 3x3x3 conv, twice.
/// Input and output widths are always the latent width, so there is no shortcut conv.
pub(crate) struct TemporalResBlock {
    norm1: BatchNorm3d,
    conv1: CausalConv3d,
    norm2: BatchNorm3d,
    conv2: CausalConv3d,
}

impl TemporalResBlock {
    pub fn load(p: &WeightPath, channels: i64) -> Result<Self> {
        let conv = |name: &str| CausalConv3d::load(&p.at(name), channels, channels, [3; 3], [1; 3]);
        Ok(Self {
            norm1: BatchNorm3d::load(&p.at("norm1"), channels)?,
            conv1: conv("conv1")?,
            norm2: BatchNorm3d::load(&p.at("norm2"), channels)?,
            conv2: conv("conv2")?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.conv1.forward(&swish(&self.norm1.forward(x)?)?)?;
        let h = self.conv2.forward(&swish(&self.norm2.forward(&h)?)?)?;
        Ok(x.f_add(&h)?)
    }
}
