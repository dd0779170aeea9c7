//! The codebook: nearest-entry lookup for encoding, entry lookup for decoding. It always works
//! in fp32, whatever the model's precision, so that bf16 only perturbs the convolutions.

use tch::{Kind, Tensor};

use crate::config::VqConfig;
use crate::error::Result;
use crate::weights::{Init, WeightPath};

/// Spread of a random codebook: about the scale of a random-weight encoder's latents, so that
/// random models still use many different codes.
const RANDOM_CODEBOOK_BOUND: f64 = 4.5;

/// Rows of the distance matrix computed at once, bounding its memory to ~256 MiB at 32768
/// entries while keeping the matrix products large.
const DISTANCE_ELEMENTS: i64 = 1 << 26;

pub(crate) struct Quantizer {
    /// [codebook_size, embed_dim], fp32.
    codebook: Tensor,
    /// Squared length of every entry, [codebook_size].
    sq_norms: Tensor,
}

impl Quantizer {
    /// Parameters under `quantize.embedding`.
    pub fn load(p: &WeightPath, config: &VqConfig) -> Result<Self> {
        let shape = [config.codebook_size, config.embed_dim];
        let codebook =
            p.at("embedding")
                .tensor_f32("weight", &shape, Init::Uniform(RANDOM_CODEBOOK_BOUND))?;
        let sq_norms = codebook
            .f_square()?
            .f_sum_dim_intlist(1, false, None::<Kind>)?;
        Ok(Self { codebook, sq_norms })
    }

    /// The index of the nearest entry (squared Euclidean distance, first on ties) for every
    /// position of `latents` [B, embed_dim, h, w]: [B, h, w] int64.
    pub fn nearest(&self, latents: &Tensor) -> Result<Tensor> {
        let (b, e, h, w) = latents.size4()?;
        let flat = latents
            .f_to_kind(Kind::Float)?
            .f_permute([0, 2, 3, 1])?
            .f_reshape([-1, e])?;
        let rows = (DISTANCE_ELEMENTS / self.sq_norms.size()[0]).max(1);
        let codebook_t = self.codebook.f_transpose(0, 1)?;
        let mut codes = Vec::new();
        for chunk in flat.f_split(rows, 0)? {
            // |x|^2 + |c|^2 - 2 x.c, summed in upstream's order so near-ties resolve alike.
            let x_sq = chunk.f_square()?.f_sum_dim_intlist(1, true, None::<Kind>)?;
            let dot = chunk.f_mm(&codebook_t)?.f_mul_scalar(2.0)?;
            let distance = x_sq.f_add(&self.sq_norms)?.f_sub(&dot)?;
            codes.push(distance.f_argmin(1, false)?);
        }
        Ok(Tensor::f_cat(&codes, 0)?.f_reshape([b, h, w])?)
    }

    /// The entries for `codes` [B, h, w] (int64, in range): [B, embed_dim, h, w] fp32.
    pub fn lookup(&self, codes: &Tensor) -> Result<Tensor> {
        let vectors = Tensor::f_embedding(&self.codebook, codes, -1, false, false)?;
        Ok(vectors.f_permute([0, 3, 1, 2])?)
    }
}
