//! Token rows back into pictures: both grids decoded, source | target side by side, and the
//! CoT box outlined on the source.

use std::path::Path;

use earl_format::{Dataset, TokenRow, read_shard};
use earl_vq::{VqError, VqModel};
use image::{Rgb, RgbImage};
use tch::{Kind, Tensor};

use crate::TokenizeError;

/// Finds the row `id` in a `tokens.v1` dataset.
pub fn find_row(dir: &Path, id: &str) -> Result<Option<TokenRow>, TokenizeError> {
    let data = Dataset::open(dir)?;
    for shard in data.shards(None) {
        for batch in read_shard(&shard, 1024)? {
            let batch = batch.map_err(|e| {
                TokenizeError::Input(format!("{}: reading rows: {e}", shard.display()))
            })?;
            if let Some(row) = TokenRow::from_batch(&batch)?
                .into_iter()
                .find(|r| r.id == id)
            {
                return Ok(Some(row));
            }
        }
    }
    Ok(None)
}

/// The image of an `h x w` code grid (8h x 8w pixels for the Emu3 VQ).
pub fn codes_to_image(
    model: &VqModel,
    codes: &[u16],
    h: u16,
    w: u16,
) -> Result<RgbImage, TokenizeError> {
    let err = VqError::from;
    let values: Vec<i64> = codes.iter().map(|&c| i64::from(c)).collect();
    let grid = Tensor::f_from_slice(&values)
        .and_then(|t| t.f_reshape([1, i64::from(h), i64::from(w)]))
        .map_err(err)?;
    let pixels = model.decode(&grid)?;
    // [-1, 1] channels-first -> u8 channels-last, as the upstream post-processing does.
    let hwc = pixels
        .f_squeeze_dim(0)
        .and_then(|t| t.f_permute([1, 2, 0]))
        .and_then(|t| ((t + 1.0) * 127.5).f_round())
        .and_then(|t| t.f_clamp(0.0, 255.0))
        .and_then(|t| t.f_to_kind(Kind::Uint8))
        .and_then(|t| t.f_to_device(tch::Device::Cpu))
        .and_then(|t| t.f_contiguous())
        .map_err(err)?;
    let (ph, pw, _) = hwc.size3().map_err(err)?;
    let raw: Vec<u8> = Vec::try_from(hwc.flatten(0, -1)).map_err(err)?;
    RgbImage::from_raw(pw as u32, ph as u32, raw)
        .ok_or_else(|| TokenizeError::Input("decoded image has the wrong size".into()))
}

/// Source | target side by side (a 4-pixel white gap), the CoT box outlined in red on the source.
pub fn render_row(model: &VqModel, row: &TokenRow) -> Result<RgbImage, TokenizeError> {
    if row.vq_checkpoint != model.checkpoint_id() {
        return Err(TokenizeError::Input(format!(
            "row {} was encoded by VQ {}, but --vq is {}; render with the same tokenizer",
            row.id,
            row.vq_checkpoint,
            model.checkpoint_id()
        )));
    }
    let mut src = codes_to_image(model, &row.source_codes, row.source_h, row.source_w)?;
    let tgt = codes_to_image(model, &row.target_codes, row.target_h, row.target_w)?;
    if let Some(b) = row.cot_bbox {
        outline(&mut src, b, Rgb([255, 0, 0]));
    }
    let gap = 4;
    let (w, h) = (
        src.width() + gap + tgt.width(),
        src.height().max(tgt.height()),
    );
    let mut out = RgbImage::from_pixel(w, h, Rgb([255, 255, 255]));
    image::imageops::replace(&mut out, &src, 0, 0);
    image::imageops::replace(&mut out, &tgt, i64::from(src.width() + gap), 0);
    Ok(out)
}

/// Draws a 2-pixel rectangle `[x1, y1, x2, y2]`, clipped to the image.
fn outline(im: &mut RgbImage, b: [f32; 4], color: Rgb<u8>) {
    let (w, h) = (im.width() as i64, im.height() as i64);
    if w == 0 || h == 0 {
        return;
    }
    let clip = |v: f32, max: i64| (v.round() as i64).clamp(0, max - 1);
    let (x1, x2) = (clip(b[0].min(b[2]), w), clip(b[0].max(b[2]), w));
    let (y1, y2) = (clip(b[1].min(b[3]), h), clip(b[1].max(b[3]), h));
    for t in 0..2 {
        for x in x1..=x2 {
            for y in [(y1 + t).min(y2), (y2 - t).max(y1)] {
                im.put_pixel(x as u32, y as u32, color);
            }
        }
        for y in y1..=y2 {
            for x in [(x1 + t).min(x2), (x2 - t).max(x1)] {
                im.put_pixel(x as u32, y as u32, color);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outline_draws_the_border_only() {
        let mut im = RgbImage::new(20, 10);
        outline(&mut im, [2.0, 1.0, 12.0, 8.0], Rgb([255, 0, 0]));
        assert_eq!(im.get_pixel(2, 5)[0], 255);
        assert_eq!(im.get_pixel(12, 1)[0], 255);
        assert_eq!(im.get_pixel(7, 4)[0], 0, "inside stays untouched");
        assert_eq!(im.get_pixel(15, 5)[0], 0, "outside stays untouched");
        // Out-of-range boxes are clipped, never a panic.
        outline(&mut im, [-5.0, -5.0, 100.0, 100.0], Rgb([0, 255, 0]));
        assert_eq!(im.get_pixel(19, 9)[1], 255);
    }
}
