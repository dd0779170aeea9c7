//! The primitive layers: convolutions (plain and time-causal), the three normalisations, and
//! the swish activation. Each loads its own parameters by their upstream names.

use tch::Tensor;

use crate::config::{NORM_GROUPS, VqConfig};
use crate::error::Result;
use crate::weights::{Init, WeightPath};

/// x * sigmoid(x), the activation used everywhere in the model.
pub(crate) fn swish(x: &Tensor) -> Result<Tensor> {
    Ok(x.f_silu()?)
}

/// A 2-D convolution with a square kernel.
pub(crate) struct Conv2d {
    weight: Tensor,
    bias: Tensor,
    stride: i64,
    padding: i64,
}

impl Conv2d {
    pub fn load(p: &WeightPath, c_in: i64, c_out: i64, kernel: i64) -> Result<Self> {
        Self::load_strided(p, c_in, c_out, kernel, 1, kernel / 2)
    }

    pub fn load_strided(
        p: &WeightPath,
        c_in: i64,
        c_out: i64,
        kernel: i64,
        stride: i64,
        padding: i64,
    ) -> Result<Self> {
        let weight = p.tensor(
            "weight",
            &[c_out, c_in, kernel, kernel],
            Init::KaimingFanOut,
        )?;
        let bound = 1.0 / ((c_in * kernel * kernel) as f64).sqrt();
        let bias = p.tensor("bias", &[c_out], Init::Uniform(bound))?;
        Ok(Self {
            weight,
            bias,
            stride,
            padding,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (s, p) = (self.stride, self.padding);
        Ok(x.f_conv2d(&self.weight, Some(&self.bias), [s, s], [p, p], [1, 1], 1)?)
    }
}

/// A 3-D convolution over [B, C, T, H, W] that is causal in time: two zero frames go in front
/// (never behind), and H/W are padded to keep their size at stride 1.
pub(crate) struct CausalConv3d {
    weight: Tensor,
    bias: Tensor,
    stride: [i64; 3],
    /// Padding in `constant_pad_nd` order: W left/right, H top/bottom, T front/back.
    pad: [i64; 6],
}

/// Zero frames the causal convolutions put before the first one, whatever their kernel.
const CAUSAL_FRONT: i64 = 2;

impl CausalConv3d {
    /// Parameters live under `p.conv` (the wrapped `Conv3d`).
    pub fn load(
        p: &WeightPath,
        c_in: i64,
        c_out: i64,
        kernel: [i64; 3],
        stride: [i64; 3],
    ) -> Result<Self> {
        let p = p.at("conv");
        let weight = p.tensor(
            "weight",
            &[c_out, c_in, kernel[0], kernel[1], kernel[2]],
            Init::KaimingFanOut,
        )?;
        let bound = 1.0 / ((c_in * kernel.iter().product::<i64>()) as f64).sqrt();
        let bias = p.tensor("bias", &[c_out], Init::Uniform(bound))?;
        let (ph, pw) = (kernel[1] - stride[1], kernel[2] - stride[2]);
        let pad = [pw - pw / 2, pw / 2, ph - ph / 2, ph / 2, CAUSAL_FRONT, 0];
        Ok(Self {
            weight,
            bias,
            stride,
            pad,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.f_constant_pad_nd(self.pad)?;
        Ok(x.f_conv3d(
            &self.weight,
            Some(&self.bias),
            self.stride,
            [0, 0, 0],
            [1, 1, 1],
            1,
        )?)
    }
}

/// GroupNorm with 32 groups, as in every convolutional stage.
pub(crate) struct GroupNorm {
    weight: Tensor,
    bias: Tensor,
}

impl GroupNorm {
    const EPS: f64 = 1e-6;

    pub fn load(p: &WeightPath, channels: i64) -> Result<Self> {
        let weight = p.tensor("weight", &[channels], Init::Ones)?;
        let bias = p.tensor("bias", &[channels], Init::Zeros)?;
        Ok(Self { weight, bias })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.f_group_norm(
            NORM_GROUPS,
            Some(&self.weight),
            Some(&self.bias),
            Self::EPS,
            true,
        )?)
    }
}

/// BatchNorm over [B, C, T, H, W] at inference: the stored running statistics, never the batch's.
pub(crate) struct BatchNorm3d {
    weight: Tensor,
    bias: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
}

impl BatchNorm3d {
    const EPS: f64 = 1e-5;

    pub fn load(p: &WeightPath, channels: i64) -> Result<Self> {
        Ok(Self {
            weight: p.tensor("weight", &[channels], Init::Ones)?,
            bias: p.tensor("bias", &[channels], Init::Zeros)?,
            running_mean: p.tensor("running_mean", &[channels], Init::Zeros)?,
            running_var: p.tensor("running_var", &[channels], Init::Ones)?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.f_batch_norm(
            Some(&self.weight),
            Some(&self.bias),
            Some(&self.running_mean),
            Some(&self.running_var),
            false,
            0.0,
            Self::EPS,
            true,
        )?)
    }
}

/// The decoder's normalisation: GroupNorm, then a per-pixel scale and shift computed from the
/// quantized latents `zq` (upsampled to the feature map by nearest neighbour).
pub(crate) struct SpatialNorm {
    norm: GroupNorm,
    conv_y: Conv2d,
    conv_b: Conv2d,
}

impl SpatialNorm {
    pub fn forward(&self, x: &Tensor, zq: &Tensor) -> Result<Tensor> {
        let (_, _, h, w) = x.size4()?;
        let zq = zq.f_upsample_nearest2d([h, w], None, None)?;
        let scale = self.conv_y.forward(&zq)?;
        let shift = self.conv_b.forward(&zq)?;
        Ok(self.norm.forward(x)?.f_mul(&scale)?.f_add(&shift)?)
    }
}

/// A normalisation layer of a residual or attention block. The encoder's is plain GroupNorm;
/// the decoder's is conditioned on the quantized latents.
pub(crate) trait Norm: Sized {
    /// What the norm is conditioned on: `()` in the encoder, the latents `zq` in the decoder.
    type Cond: ?Sized;
    fn load(p: &WeightPath, channels: i64, config: &VqConfig) -> Result<Self>;
    fn forward(&self, x: &Tensor, cond: &Self::Cond) -> Result<Tensor>;
}

impl Norm for GroupNorm {
    type Cond = ();
    fn load(p: &WeightPath, channels: i64, _: &VqConfig) -> Result<Self> {
        GroupNorm::load(p, channels)
    }
    fn forward(&self, x: &Tensor, _: &()) -> Result<Tensor> {
        GroupNorm::forward(self, x)
    }
}

impl Norm for SpatialNorm {
    type Cond = Tensor;
    fn load(p: &WeightPath, channels: i64, config: &VqConfig) -> Result<Self> {
        let zq = config.embed_dim;
        Ok(Self {
            norm: GroupNorm::load(&p.at("norm_layer"), channels)?,
            conv_y: Conv2d::load(&p.at("conv_y"), zq, channels, 1)?,
            conv_b: Conv2d::load(&p.at("conv_b"), zq, channels, 1)?,
        })
    }
    fn forward(&self, x: &Tensor, zq: &Tensor) -> Result<Tensor> {
        SpatialNorm::forward(self, x, zq)
    }
}
