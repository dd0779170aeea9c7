//! Autoregressive generation with a key/value cache.

use tch::{Kind, Tensor};

use crate::error::{Error, Result};
use crate::model::{Emu3ForCausalLM, check_shapes};

/// One layer's cached keys and values (after RoPE), `[B, kv_heads, T, D]`.
#[derive(Debug, Default)]
pub struct LayerCache {
    kv: Option<(Tensor, Tensor)>,
}

impl LayerCache {
    /// Appends this step's keys and values; returns the full ones to attend to.
    pub(crate) fn append(&mut self, k: Tensor, v: Tensor) -> (Tensor, Tensor) {
        let full = match self.kv.take() {
            Some((pk, pv)) => (Tensor::cat(&[pk, k], 2), Tensor::cat(&[pv, v], 2)),
            None => (k, v),
        };
        self.kv = Some((full.0.shallow_clone(), full.1.shallow_clone()));
        full
    }

    fn len(&self) -> i64 {
        self.kv.as_ref().map_or(0, |(k, _)| k.size()[2])
    }
}

/// Keys and values of every layer for the tokens seen so far.
#[derive(Debug)]
pub struct KvCache {
    layers: Vec<LayerCache>,
}

impl KvCache {
    pub fn new(num_layers: usize) -> Self {
        Self {
            layers: (0..num_layers).map(|_| LayerCache::default()).collect(),
        }
    }

    /// Number of cached positions.
    pub fn len(&self) -> i64 {
        self.layers.first().map_or(0, LayerCache::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Emu3ForCausalLM {
    /// Runs `input_ids` `[B, T]` after what `cache` holds, appending to it. `attention_mask` covers
    /// the cached and the new positions, `[B, cache.len() + T]`. Returns logits `[B, T, V]`.
    pub fn forward_cached(
        &self,
        input_ids: &Tensor,
        position_ids: &Tensor,
        attention_mask: &Tensor,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        check_shapes(input_ids, position_ids, attention_mask, cache.len())?;
        if cache.layers.len() != self.layers().len() {
            return Err(Error::Shape(format!(
                "the cache has {} layers, the model {}",
                cache.layers.len(),
                self.layers().len()
            )));
        }
        let inputs = self.layer_inputs(position_ids, attention_mask);
        let mut hidden = self.embed(&input_ids.to_device(self.device()));
        for (layer, layer_cache) in self.layers().iter().zip(&mut cache.layers) {
            hidden = layer.forward(&hidden, &inputs, Some(layer_cache), false);
        }
        Ok(self.head(&hidden))
    }

    /// Generates `max_new_tokens` tokens after the (left-padded) `prompt` `[B, T]` with
    /// `attention_mask` `[B, T]`, without gradients and without dropout. `pick` turns the
    /// last-position logits `[B, V]` into the next tokens `[B]` (argmax, sampling, a grammar...).
    /// Returns the new tokens `[B, max_new_tokens]`.
    pub fn generate(
        &self,
        prompt: &Tensor,
        attention_mask: &Tensor,
        max_new_tokens: i64,
        mut pick: impl FnMut(&Tensor) -> Tensor,
    ) -> Result<Tensor> {
        let _no_grad = tch::no_grad_guard();
        let device = self.device();
        let mut mask = attention_mask.to_device(device).to_kind(Kind::Int64);
        let positions = (mask.cumsum(-1, Kind::Int64) - 1).masked_fill(&mask.eq(0), 1);
        check_shapes(prompt, &positions, &mask, 0)?;
        let b = prompt.size()[0];
        let mut cache = KvCache::new(self.layers().len());
        let mut logits =
            self.forward_cached(&prompt.to_device(device), &positions, &mask, &mut cache)?;
        let last_position = positions.narrow(1, positions.size()[1] - 1, 1);
        let mut tokens = Vec::with_capacity(max_new_tokens.max(0) as usize);
        for step in 0..max_new_tokens {
            let last = logits.select(1, -1);
            let next = pick(&last).to_device(device).to_kind(Kind::Int64);
            if next.size() != [b] {
                return Err(Error::Shape(format!(
                    "step {step}: the picker returned {:?} tokens, expected [{b}]",
                    next.size()
                )));
            }
            let next = next.view([b, 1]);
            tokens.push(next.shallow_clone());
            if step + 1 == max_new_tokens {
                break;
            }
            mask = Tensor::cat(&[&mask, &Tensor::ones([b, 1], (Kind::Int64, device))], 1);
            logits =
                self.forward_cached(&next, &(&last_position + (step + 1)), &mask, &mut cache)?;
        }
        Ok(if tokens.is_empty() {
            Tensor::zeros([b, 0], (Kind::Int64, device))
        } else {
            Tensor::cat(&tokens, 1)
        })
    }

    /// [`Self::generate`] taking the most likely token each step.
    pub fn generate_greedy(
        &self,
        prompt: &Tensor,
        attention_mask: &Tensor,
        max_new_tokens: i64,
    ) -> Result<Tensor> {
        self.generate(prompt, attention_mask, max_new_tokens, |logits| {
            logits.argmax(-1, false)
        })
    }
}
