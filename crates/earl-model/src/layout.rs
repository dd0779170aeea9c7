//! The sequence layout of upstream SFT: image blocks, prompt/target samples and batches.
//!
//! Image block: `<|image start|>` "h*w" `<|image token|>` then each row of visual tokens followed
//! by `<|extra_200|>` (eol), then `<|extra_201|>` (eof) `<|image end|>`.
//! Sample: prompt = bos + source block + instruction (labels -100); target = [CoT text] + target
//! block + eos. The CoT text is ` Let's think step by step. <|start thinking|> {cot}<|end thinking|>`
//! (the "thinking" markers are plain text to the tokenizer, as upstream).

use tch::{Device, Tensor};

use crate::error::{Error, Result};
use crate::tokenizer::Emu3Tokenizer;

/// Label value that the loss ignores.
pub const IGNORE_INDEX: i64 = -100;
/// Input id used for left padding (upstream pads with 0, masked out by the attention mask).
pub const PAD_ID: i64 = 0;

/// One image's VQ codes, row-major `h` x `w`.
#[derive(Debug, Clone, Copy)]
pub struct Grid<'a> {
    pub codes: &'a [u16],
    pub h: usize,
    pub w: usize,
}

/// A decoded image block: the codes and the grid size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeGrid {
    pub codes: Vec<u16>,
    pub h: usize,
    pub w: usize,
}

/// One training sequence: `labels` equals `input_ids` over the target and -100 over the prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub input_ids: Vec<i64>,
    pub labels: Vec<i64>,
}

/// A left-padded batch: CPU `Int64` tensors of shape `[B, T]`.
#[derive(Debug)]
pub struct Batch {
    pub input_ids: Tensor,
    pub attention_mask: Tensor,
    pub labels: Tensor,
    pub position_ids: Tensor,
}

impl Batch {
    pub fn to_device(&self, device: Device) -> Batch {
        Batch {
            input_ids: self.input_ids.to_device(device),
            attention_mask: self.attention_mask.to_device(device),
            labels: self.labels.to_device(device),
            position_ids: self.position_ids.to_device(device),
        }
    }
}

const COT_PREFIX: &str = " Let's think step by step. <|start thinking|> ";
const COT_SUFFIX: &str = "<|end thinking|>";

impl Emu3Tokenizer {
    /// The token ids of one image block.
    pub fn image_block(&self, grid: Grid<'_>) -> Result<Vec<i64>> {
        let Grid { codes, h, w } = grid;
        if h == 0 || w == 0 || codes.len() != h * w {
            return Err(Error::Layout(format!(
                "a grid of {h}x{w} needs {} codes, got {}",
                h * w,
                codes.len()
            )));
        }
        let ids = self.special();
        let mut out = Vec::with_capacity(h * (w + 1) + 12);
        out.push(ids.boi);
        out.extend(self.encode(&format!("{h}*{w}"))?);
        out.push(ids.img);
        for row in codes.chunks_exact(w) {
            for &code in row {
                out.push(self.visual_id(code)?);
            }
            out.push(ids.eol);
        }
        out.extend([ids.eof, ids.eoi]);
        Ok(out)
    }

    /// The generation prompt: bos + source image block + instruction.
    pub fn prompt_ids(&self, source: Grid<'_>, instruction: &str) -> Result<Vec<i64>> {
        let mut out = vec![self.special().bos];
        out.extend(self.image_block(source)?);
        out.extend(self.encode(instruction)?);
        Ok(out)
    }

    /// The SFT sample of one edit: loss only on the (CoT +) target image block + eos.
    pub fn build_sample(
        &self,
        source: Grid<'_>,
        instruction: &str,
        target: Grid<'_>,
        cot: Option<&str>,
    ) -> Result<Sample> {
        let prompt = self.prompt_ids(source, instruction)?;
        let mut answer = match cot {
            Some(cot) => self.encode(&format!("{COT_PREFIX}{cot}{COT_SUFFIX}"))?,
            None => Vec::new(),
        };
        answer.extend(self.image_block(target)?);
        answer.push(self.special().eos);

        let mut labels = vec![IGNORE_INDEX; prompt.len()];
        labels.extend_from_slice(&answer);
        let mut input_ids = prompt;
        input_ids.extend(answer);
        Ok(Sample { input_ids, labels })
    }

    /// Reads the first image block in `ids` (e.g. a generation) back into a code grid.
    pub fn parse_image_block(&self, ids: &[i64]) -> Result<CodeGrid> {
        let s = self.special();
        let bad = |why: String| Error::Layout(format!("not a well-formed image block: {why}"));
        let start = ids
            .iter()
            .position(|&t| t == s.boi)
            .ok_or_else(|| bad("no <|image start|>".into()))?;
        let rest = &ids[start + 1..];
        let img = rest
            .iter()
            .position(|&t| t == s.img)
            .ok_or_else(|| bad("no <|image token|>".into()))?;
        let size = self.decode(&rest[..img])?;
        let (h, w) = size
            .split_once('*')
            .and_then(|(h, w)| Some((h.parse::<usize>().ok()?, w.parse::<usize>().ok()?)))
            .filter(|&(h, w)| h > 0 && w > 0)
            .ok_or_else(|| bad(format!("size text {size:?} is not \"h*w\"")))?;
        let mut body = rest[img + 1..].iter();
        let mut codes = Vec::with_capacity(h * w);
        for row in 0..h {
            for col in 0..w {
                let t = *body
                    .next()
                    .ok_or_else(|| bad(format!("ends inside row {row}")))?;
                let code = t - s.visual0;
                if !(0..s.visual_count).contains(&code) {
                    return Err(bad(format!(
                        "row {row} col {col}: token {t} is not a visual token"
                    )));
                }
                codes.push(code as u16);
            }
            if body.next() != Some(&s.eol) {
                return Err(bad(format!("row {row} is not followed by <|extra_200|>")));
            }
        }
        if body.next() != Some(&s.eof) || body.next() != Some(&s.eoi) {
            return Err(bad(
                "the last row is not followed by <|extra_201|><|image end|>".into(),
            ));
        }
        Ok(CodeGrid { codes, h, w })
    }
}

/// Left-pads samples to the longest: input ids `PAD_ID`, mask 0, labels -100, and position ids
/// `cumsum(mask) - 1` with padded positions set to 1 (as upstream).
pub fn collate(samples: &[Sample]) -> Result<Batch> {
    let t = samples.iter().map(|s| s.input_ids.len()).max().unwrap_or(0);
    if t == 0 {
        return Err(Error::Layout(
            "cannot collate an empty batch or empty samples".into(),
        ));
    }
    let b = samples.len();
    let mut input_ids = vec![PAD_ID; b * t];
    let mut mask = vec![0i64; b * t];
    let mut labels = vec![IGNORE_INDEX; b * t];
    let mut positions = vec![1i64; b * t];
    for (row, s) in samples.iter().enumerate() {
        if s.labels.len() != s.input_ids.len() {
            return Err(Error::Layout(format!(
                "sample {row}: {} input ids but {} labels",
                s.input_ids.len(),
                s.labels.len()
            )));
        }
        let pad = t - s.input_ids.len();
        let at = row * t + pad;
        input_ids[at..(row + 1) * t].copy_from_slice(&s.input_ids);
        labels[at..(row + 1) * t].copy_from_slice(&s.labels);
        for (i, j) in (at..(row + 1) * t).enumerate() {
            mask[j] = 1;
            positions[j] = i as i64;
        }
    }
    let tensor = |v: Vec<i64>| Tensor::from_slice(&v).view([b as i64, t as i64]);
    Ok(Batch {
        input_ids: tensor(input_ids),
        attention_mask: tensor(mask),
        labels: tensor(labels),
        position_ids: tensor(positions),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: usize) -> Sample {
        Sample {
            input_ids: (10..10 + n as i64).collect(),
            labels: vec![IGNORE_INDEX; n],
        }
    }

    #[test]
    fn collate_left_pads() {
        let batch = collate(&[sample(3), sample(1)]).unwrap();
        let row = |t: &Tensor, r: i64| Vec::<i64>::try_from(t.get(r)).unwrap();
        assert_eq!(row(&batch.input_ids, 1), [0, 0, 10]);
        assert_eq!(row(&batch.attention_mask, 1), [0, 0, 1]);
        assert_eq!(row(&batch.position_ids, 1), [1, 1, 0]);
        assert_eq!(row(&batch.position_ids, 0), [0, 1, 2]);
        assert_eq!(row(&batch.labels, 1), [-100, -100, -100]);
    }

    #[test]
    fn collate_rejects_bad_input() {
        assert!(collate(&[]).is_err());
        let bad = Sample {
            input_ids: vec![1, 2],
            labels: vec![1],
        };
        assert!(
            collate(&[bad])
                .unwrap_err()
                .to_string()
                .contains("sample 0")
        );
    }
}
