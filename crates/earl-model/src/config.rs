//! The HF `config.json` of an Emu3 causal LM.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The architecture numbers of `Emu3ForCausalLM`. Keys this crate does not use (token ids,
/// `architectures`, `model_type`, ...) are kept in `extra` so a saved checkpoint still loads
/// upstream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Emu3Config {
    pub vocab_size: i64,
    pub hidden_size: i64,
    pub intermediate_size: i64,
    pub num_hidden_layers: i64,
    pub num_attention_heads: i64,
    /// Grouped-query attention: key/value heads (defaults to `num_attention_heads`).
    #[serde(default)]
    pub num_key_value_heads: Option<i64>,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    #[serde(default = "default_theta")]
    pub rope_theta: f64,
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: i64,
    /// Dropout on attention probabilities and on both residual branches, in training only.
    #[serde(default)]
    pub attention_dropout: f64,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Std of the normal initialisation of new weights.
    #[serde(default = "default_init")]
    pub initializer_range: f64,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Only `null` (plain RoPE) is supported.
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

fn default_eps() -> f64 {
    1e-5
}
fn default_theta() -> f64 {
    1e6
}
fn default_max_positions() -> i64 {
    9216
}
fn default_init() -> f64 {
    0.02
}
fn default_act() -> String {
    "silu".into()
}

impl Emu3Config {
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
        let config: Self = serde_json::from_str(&text).map_err(|source| Error::Json {
            path: path.to_path_buf(),
            source,
        })?;
        config.validate().map_err(|e| match e {
            Error::Config(reason) => Error::BadFile {
                path: path.to_path_buf(),
                reason,
            },
            other => other,
        })?;
        Ok(config)
    }

    pub fn kv_heads(&self) -> i64 {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    pub fn head_dim(&self) -> i64 {
        self.hidden_size / self.num_attention_heads
    }

    /// Checks what the model code relies on.
    pub fn validate(&self) -> Result<()> {
        let fail = |why: String| Err(Error::Config(why));
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.kv_heads()),
        ];
        if let Some((name, v)) = positive.iter().find(|(_, v)| *v <= 0) {
            return fail(format!("{name} must be positive, got {v}"));
        }
        if self.hidden_size % self.num_attention_heads != 0 || self.head_dim() % 2 != 0 {
            return fail(format!(
                "hidden_size {} must split into {} heads of an even size",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.num_attention_heads % self.kv_heads() != 0 {
            return fail(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                self.num_attention_heads,
                self.kv_heads()
            ));
        }
        if self.hidden_act != "silu" {
            return fail(format!(
                "hidden_act {:?} is not supported (only silu)",
                self.hidden_act
            ));
        }
        if self.rope_scaling.as_ref().is_some_and(|v| !v.is_null()) {
            return fail("rope_scaling is not supported (Emu3 uses plain RoPE)".into());
        }
        if !(0.0..1.0).contains(&self.attention_dropout) {
            return fail(format!(
                "attention_dropout {} is not in [0, 1)",
                self.attention_dropout
            ));
        }
        Ok(())
    }
}
