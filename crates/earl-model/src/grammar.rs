//! The image-block grammar, for constrained sampling: every token of a target block is fixed
//! except the visual tokens, whose positions are fixed too once the grid size is chosen.

use tch::{Kind, Tensor};

use crate::error::{Error, Result};
use crate::layout::Grid;
use crate::tokenizer::Emu3Tokenizer;

/// The tokens a generated `h` x `w` image block + eos must be: `Some(id)` where the token is
/// forced, `None` where any visual token may come.
#[derive(Debug, Clone)]
pub struct ImageGrammar {
    steps: Vec<Option<i64>>,
    visual0: i64,
    visual_count: i64,
}

impl Emu3Tokenizer {
    /// The grammar of a target block of `h` x `w` codes followed by eos.
    pub fn image_grammar(&self, h: usize, w: usize) -> Result<ImageGrammar> {
        let codes = vec![0u16; h * w];
        let mut block = self.image_block(Grid {
            codes: &codes,
            h,
            w,
        })?;
        block.push(self.special().eos);
        let s = self.special();
        // Visual token 0 marks the free positions: the template's codes are all 0.
        let steps = block
            .into_iter()
            .map(|t| (t != s.visual0).then_some(t))
            .collect();
        Ok(ImageGrammar {
            steps,
            visual0: s.visual0,
            visual_count: s.visual_count,
        })
    }
}

impl ImageGrammar {
    /// Number of tokens to generate.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// `logits` `[B, V]` of generation step `step` with every token the grammar forbids set to
    /// -inf; sample or argmax from the result.
    pub fn constrain(&self, step: usize, logits: &Tensor) -> Result<Tensor> {
        let rule = self.steps.get(step).ok_or_else(|| {
            Error::Layout(format!(
                "step {step} is past the image block ({} tokens)",
                self.len()
            ))
        })?;
        let vocab = logits.size().last().copied().unwrap_or(0);
        let ids = Tensor::arange(vocab, (Kind::Int64, logits.device()));
        let allowed = match *rule {
            Some(id) => ids.eq(id),
            None => ids
                .ge(self.visual0)
                .logical_and(&ids.lt(self.visual0 + self.visual_count)),
        };
        if allowed.any().int64_value(&[]) == 0 {
            return Err(Error::Shape(format!(
                "logits over {vocab} tokens cannot express step {step} of the image grammar; \
                 is the model's vocab_size the tokenizer's?"
            )));
        }
        Ok(logits.masked_fill(&allowed.logical_not(), f64::NEG_INFINITY))
    }
}
