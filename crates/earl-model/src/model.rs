//! The Emu3 decoder LM: a Llama-style stack (RMSNorm, RoPE, grouped-query attention, SwiGLU).
//!
//! Variables live in a `tch::nn::VarStore` under the upstream checkpoint names, so
//! `vs.variables()` is directly an HF state dict.

use tch::nn::{self, Init};
use tch::{Device, Kind, Tensor};

use crate::config::Emu3Config;
use crate::error::{Error, Result};
use crate::generate::LayerCache;

/// RMSNorm computed in f32 and cast back, as upstream.
#[derive(Debug)]
struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    fn new(p: nn::Path, size: i64, eps: f64) -> Self {
        Self {
            weight: p.var("weight", &[size], Init::Const(1.0)),
            eps,
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let kind = x.kind();
        let x = x.to_kind(Kind::Float);
        let variance = x.square().mean_dim(-1, true, Kind::Float);
        let normed = x * (variance + self.eps).rsqrt();
        &self.weight * normed.to_kind(kind)
    }
}

fn linear(p: &nn::Path, name: &str, out: i64, inp: i64, std: f64) -> Tensor {
    p.sub(name).var(
        "weight",
        &[out, inp],
        Init::Randn {
            mean: 0.0,
            stdev: std,
        },
    )
}

#[derive(Debug)]
struct Attention {
    q: Tensor,
    k: Tensor,
    v: Tensor,
    o: Tensor,
    heads: i64,
    kv_heads: i64,
    head_dim: i64,
    dropout: f64,
}

impl Attention {
    fn new(p: nn::Path, c: &Emu3Config) -> Self {
        let (h, d, kv) = (c.hidden_size, c.head_dim(), c.kv_heads());
        let std = c.initializer_range;
        Self {
            q: linear(&p, "q_proj", c.num_attention_heads * d, h, std),
            k: linear(&p, "k_proj", kv * d, h, std),
            v: linear(&p, "v_proj", kv * d, h, std),
            o: linear(&p, "o_proj", h, c.num_attention_heads * d, std),
            heads: c.num_attention_heads,
            kv_heads: kv,
            head_dim: d,
            dropout: c.attention_dropout,
        }
    }

    fn forward(
        &self,
        x: &Tensor,
        inputs: &LayerInputs,
        cache: Option<&mut LayerCache>,
        train: bool,
    ) -> Tensor {
        let (b, t) = (x.size()[0], x.size()[1]);
        let split = |w: &Tensor, heads: i64| {
            x.linear::<Tensor>(w, None)
                .view([b, t, heads, self.head_dim])
                .transpose(1, 2)
        };
        let q = inputs.rotate(&split(&self.q, self.heads));
        let mut k = inputs.rotate(&split(&self.k, self.kv_heads));
        let mut v = split(&self.v, self.kv_heads);
        if let Some(cache) = cache {
            (k, v) = cache.append(k, v);
        }
        let p = if train { self.dropout } else { 0.0 };
        // Each key/value head serves `heads / kv_heads` query heads. Expanding here (instead of
        // sdpa's `enable_gqa`) keeps the memory-efficient CUDA kernel usable with a mask.
        let (k, v) = (self.repeat_kv(&k), self.repeat_kv(&v));
        let mask = inputs.mask.to_device(q.device());
        let out =
            Tensor::scaled_dot_product_attention(&q, &k, &v, Some(&mask), p, false, None, false);
        out.transpose(1, 2)
            .reshape([b, t, self.heads * self.head_dim])
            .linear::<Tensor>(&self.o, None)
    }
}

impl Attention {
    /// `[B, kv_heads, T, D]` -> `[B, heads, T, D]`, kv head `i` serving query heads
    /// `i * rep .. (i + 1) * rep`.
    fn repeat_kv(&self, x: &Tensor) -> Tensor {
        let rep = self.heads / self.kv_heads;
        if rep == 1 {
            return x.shallow_clone();
        }
        let (b, t) = (x.size()[0], x.size()[2]);
        x.unsqueeze(2)
            .expand([b, self.kv_heads, rep, t, self.head_dim], false)
            .reshape([b, self.heads, t, self.head_dim])
    }
}

#[derive(Debug)]
struct Mlp {
    gate: Tensor,
    up: Tensor,
    down: Tensor,
}

impl Mlp {
    fn new(p: nn::Path, c: &Emu3Config) -> Self {
        let (h, i, std) = (c.hidden_size, c.intermediate_size, c.initializer_range);
        Self {
            gate: linear(&p, "gate_proj", i, h, std),
            up: linear(&p, "up_proj", i, h, std),
            down: linear(&p, "down_proj", h, i, std),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let gated =
            x.linear::<Tensor>(&self.gate, None).silu() * x.linear::<Tensor>(&self.up, None);
        gated.linear::<Tensor>(&self.down, None)
    }
}

/// One transformer block: pre-norm attention and pre-norm SwiGLU MLP, each residual branch
/// passed through `attention_dropout` in training (as upstream Emu3).
#[derive(Debug)]
pub struct DecoderLayer {
    input_norm: RmsNorm,
    attn: Attention,
    post_attention_norm: RmsNorm,
    mlp: Mlp,
    dropout: f64,
}

impl DecoderLayer {
    fn new(p: nn::Path, c: &Emu3Config) -> Self {
        Self {
            input_norm: RmsNorm::new(p.sub("input_layernorm"), c.hidden_size, c.rms_norm_eps),
            attn: Attention::new(p.sub("self_attn"), c),
            post_attention_norm: RmsNorm::new(
                p.sub("post_attention_layernorm"),
                c.hidden_size,
                c.rms_norm_eps,
            ),
            mlp: Mlp::new(p.sub("mlp"), c),
            dropout: c.attention_dropout,
        }
    }

    /// `hidden` `[B, T, H]` -> `[B, T, H]`. `cache` is only for generation.
    pub fn forward(
        &self,
        hidden: &Tensor,
        inputs: &LayerInputs,
        cache: Option<&mut LayerCache>,
        train: bool,
    ) -> Tensor {
        let attn = self
            .attn
            .forward(&self.input_norm.forward(hidden), inputs, cache, train);
        let hidden = hidden + attn.dropout(self.dropout, train);
        let mlp = self.mlp.forward(&self.post_attention_norm.forward(&hidden));
        &hidden + mlp.dropout(self.dropout, train)
    }
}

/// What every layer needs besides the hidden states: RoPE tables for the query positions and
/// the boolean attention mask `[B, 1, Tq, Tk]` (causal, padding keys off).
#[derive(Debug)]
pub struct LayerInputs {
    cos: Tensor,
    sin: Tensor,
    pub mask: Tensor,
}

impl LayerInputs {
    /// Applies the rotary embedding to `x` `[B, heads, T, D]` (rotate-half convention).
    fn rotate(&self, x: &Tensor) -> Tensor {
        let half = x.size()[3] / 2;
        let rotated = Tensor::cat(&[x.narrow(3, half, half).neg(), x.narrow(3, 0, half)], 3);
        x * &self.cos + rotated * &self.sin
    }
}

/// `Emu3ForCausalLM`: token embedding, decoder layers, final norm, LM head.
#[derive(Debug)]
pub struct Emu3ForCausalLM {
    embed_tokens: Tensor,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    lm_head: Tensor,
    /// RoPE inverse frequencies, f32 `[D/2]`.
    inv_freq: Tensor,
    config: Emu3Config,
}

impl Emu3ForCausalLM {
    /// Creates the variables under `root` with the upstream names (new weights ~ N(0,
    /// initializer_range), norms 1). Load a checkpoint into the VarStore afterwards with
    /// [`crate::load_safetensors`].
    pub fn new(root: nn::Path, config: &Emu3Config) -> Result<Self> {
        config.validate()?;
        let c = config;
        let model = root.sub("model");
        let embed_tokens = model.sub("embed_tokens").var(
            "weight",
            &[c.vocab_size, c.hidden_size],
            Init::Randn {
                mean: 0.0,
                stdev: c.initializer_range,
            },
        );
        let layers = (0..c.num_hidden_layers)
            .map(|i| DecoderLayer::new(model.sub("layers").sub(i), c))
            .collect();
        let norm = RmsNorm::new(model.sub("norm"), c.hidden_size, c.rms_norm_eps);
        let lm_head = if c.tie_word_embeddings {
            embed_tokens.shallow_clone()
        } else {
            linear(
                &root,
                "lm_head",
                c.vocab_size,
                c.hidden_size,
                c.initializer_range,
            )
        };
        let d = c.head_dim();
        let inv: Vec<f32> = (0..d / 2)
            .map(|i| (1.0 / c.rope_theta.powf(2.0 * i as f64 / d as f64)) as f32)
            .collect();
        let inv_freq = Tensor::from_slice(&inv).to_device(root.device());
        Ok(Self {
            embed_tokens,
            layers,
            norm,
            lm_head,
            inv_freq,
            config: config.clone(),
        })
    }

    pub fn config(&self) -> &Emu3Config {
        &self.config
    }

    pub fn device(&self) -> Device {
        self.embed_tokens.device()
    }

    /// Token embeddings `[B, T, H]`.
    pub fn embed(&self, input_ids: &Tensor) -> Tensor {
        Tensor::embedding(&self.embed_tokens, input_ids, -1, false, false)
    }

    pub fn layers(&self) -> &[DecoderLayer] {
        &self.layers
    }

    /// Final norm + LM head: hidden `[B, T, H]` -> logits `[B, T, V]` (in the weights' kind).
    pub fn head(&self, hidden: &Tensor) -> Tensor {
        self.norm
            .forward(hidden)
            .linear::<Tensor>(&self.lm_head, None)
    }

    /// RoPE tables and attention mask for queries at `position_ids` `[B, Tq]` attending to the
    /// last `Tq` of `Tk` keys, `attention_mask` `[B, Tk]` (1 = real token, 0 = padding).
    pub fn layer_inputs(&self, position_ids: &Tensor, attention_mask: &Tensor) -> LayerInputs {
        let device = self.device();
        let kind = self.embed_tokens.kind();
        let positions = position_ids
            .to_device(device)
            .to_kind(Kind::Float)
            .unsqueeze(-1);
        let freqs = positions * self.inv_freq.view([1, 1, -1]);
        let angles = Tensor::cat(&[&freqs, &freqs], -1).unsqueeze(1);
        let cos = angles.cos().to_kind(kind);
        let sin = angles.sin().to_kind(kind);

        let tq = position_ids.size()[1];
        let tk = attention_mask.size()[1];
        let opts = (Kind::Int64, device);
        let query_at = Tensor::arange_start(tk - tq, tk, opts).view([tq, 1]);
        let key_at = Tensor::arange(tk, opts).view([1, tk]);
        let causal = key_at.le_tensor(&query_at);
        let real_key = attention_mask.to_device(device).ne(0).view([-1, 1, 1, tk]);
        // A query always sees itself, so rows of padding stay finite (their outputs are unused).
        let mask = causal
            .logical_and(&real_key)
            .logical_or(&key_at.eq_tensor(&query_at));
        LayerInputs { cos, sin, mask }
    }

    /// Logits `[B, T, V]` for `input_ids`, `position_ids` and `attention_mask`, all `[B, T]`.
    /// `train` enables `attention_dropout`; gradients follow tch's grad mode.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        position_ids: &Tensor,
        attention_mask: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        check_shapes(input_ids, position_ids, attention_mask, 0)?;
        let inputs = self.layer_inputs(position_ids, attention_mask);
        let mut hidden = self.embed(&input_ids.to_device(self.device()));
        for layer in &self.layers {
            hidden = layer.forward(&hidden, &inputs, None, train);
        }
        Ok(self.head(&hidden))
    }

    /// Mean cross-entropy of next-token prediction (logits at t predict labels at t+1), in f32,
    /// ignoring labels equal to -100. NaN when no label counts, as upstream.
    pub fn loss(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
        let (size, label_size) = (logits.size(), labels.size());
        if size.len() != 3 || label_size != size[..2] || size[1] < 2 {
            return Err(Error::Shape(format!(
                "loss needs logits [B, T>=2, V] and labels [B, T], got {size:?} and {label_size:?}"
            )));
        }
        let (b, t, v) = (size[0], size[1], size[2]);
        let shifted = logits
            .narrow(1, 0, t - 1)
            .to_kind(Kind::Float)
            .reshape([b * (t - 1), v]);
        let targets = labels
            .to_device(logits.device())
            .narrow(1, 1, t - 1)
            .reshape([-1]);
        Ok(shifted.f_cross_entropy_loss::<Tensor>(
            &targets,
            None,
            tch::Reduction::Mean,
            crate::layout::IGNORE_INDEX,
            0.0,
        )?)
    }
}

/// Checks that ids and positions are `[B, T]` and the mask `[B, past + T]`.
pub(crate) fn check_shapes(
    ids: &Tensor,
    positions: &Tensor,
    mask: &Tensor,
    past: i64,
) -> Result<()> {
    let (i, p, m) = (ids.size(), positions.size(), mask.size());
    let ok = i.len() == 2 && p == i && m.len() == 2 && m[0] == i[0] && m[1] == i[1] + past;
    if !ok || ids.kind() != Kind::Int64 {
        return Err(Error::Shape(format!(
            "expected Int64 input_ids [B, T], position_ids [B, T] and attention_mask [B, {past} + T]; \
             got {:?} {i:?}, {p:?} and {m:?}",
            ids.kind()
        )));
    }
    Ok(())
}
