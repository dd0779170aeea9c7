//! The training configuration: one TOML file (`pipelines/sft-*.toml`), every field documented
//! beside its default. Unknown keys are errors, so a typo never silently trains the wrong thing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::TrainError;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub model: ModelConfig,
    #[serde(default)]
    pub data: DataConfig,
    #[serde(default)]
    pub optim: OptimConfig,
    #[serde(default)]
    pub schedule: ScheduleConfig,
    #[serde(default)]
    pub checkpoint: CheckpointConfig,
    #[serde(default)]
    pub eval: EvalConfig,
    /// Seed for data order, initialisation and dropout.
    #[serde(default = "default_seed")]
    pub seed: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// A HF checkpoint directory (`config.json` + safetensors) to start from. Relative paths
    /// are resolved against the config file's directory.
    #[serde(default)]
    pub init: Option<PathBuf>,
    /// Without `init`: the HF `config.json` fields of a randomly initialised model (the missing
    /// ones take the Emu3 defaults).
    #[serde(default)]
    pub random: Option<serde_json::Value>,
    /// Directory holding the text tokenizer (`qwen.tiktoken` + `emu3_vision_tokens.txt`);
    /// None uses earl-model's default lookup.
    #[serde(default)]
    pub tokenizer: Option<PathBuf>,
    /// bf16 weights with fp32 master weights and moments (CUDA only; CPU always trains fp32).
    #[serde(default)]
    pub bf16: bool,
    /// Recompute each decoder layer in the backward pass instead of keeping its activations.
    #[serde(default)]
    pub activation_checkpointing: bool,
    /// `cpu`, `cuda`, `cuda:N`, or `auto` (CUDA when available).
    #[serde(default = "default_device")]
    pub device: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Dataset name -> mixing coefficient, as upstream EARL: 2.5 repeats a dataset twice and
    /// adds a random half of it, 0.3 keeps a random 30 %. A dataset missing here takes 1.0;
    /// an empty table upsamples every dataset to the size of the largest.
    #[serde(default)]
    pub coefficients: BTreeMap<String, f64>,
    /// Resize area the codes were made at (checked against each row's `image_area`; 0 = any).
    #[serde(default)]
    pub image_area: u32,
    /// Samples longer than this many tokens are skipped and counted.
    #[serde(default = "default_context")]
    pub context_length: usize,
    /// Rows per micro-batch on each rank.
    #[serde(default = "default_batch")]
    pub micro_batch_size: usize,
    /// Rows held in each dataset's shuffle buffer.
    #[serde(default = "default_shuffle_buffer")]
    pub shuffle_buffer: usize,
    /// Built samples queued ahead of the trainer.
    #[serde(default = "default_prefetch")]
    pub prefetch: usize,
    /// Append " Let's think step by step. <|start thinking|> ..." when a row has CoT text.
    #[serde(default)]
    pub use_cot: bool,
    /// Fraction of training rows (by a hash of their id) held out for validation when a
    /// dataset has no `validation`/`test` shards.
    #[serde(default = "default_holdout")]
    pub holdout_fraction: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimConfig {
    #[serde(default = "default_lr")]
    pub lr: f64,
    #[serde(default = "default_min_lr")]
    pub min_lr: f64,
    /// Decoupled weight decay (AdamW); not applied to 1-D tensors (RMSNorm weights, biases).
    #[serde(default = "default_wd")]
    pub weight_decay: f64,
    #[serde(default = "default_beta1")]
    pub beta1: f64,
    #[serde(default = "default_beta2")]
    pub beta2: f64,
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// Global gradient-norm clip; 0 disables.
    #[serde(default = "default_clip")]
    pub max_grad_norm: f64,
    /// Micro-batches per optimizer step.
    #[serde(default = "one")]
    pub grad_accum: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Linear warm-up from 0 over this many optimizer steps, then cosine to `min_lr`.
    #[serde(default)]
    pub warmup_steps: u64,
    /// Optimizer steps in the whole run (the cosine's length). 0 = `epochs` over the mixture.
    #[serde(default)]
    pub total_steps: u64,
    /// Passes over the mixed data when `total_steps` is 0.
    #[serde(default = "default_epochs")]
    pub epochs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    /// Write a checkpoint every this many optimizer steps (0 = only when the run stops).
    #[serde(default = "default_ckpt_every")]
    pub every: u64,
    /// Keep the newest K checkpoints...
    #[serde(default = "default_keep_last")]
    pub keep_last: usize,
    /// ...and, besides them, every checkpoint whose step is a multiple of this (0 = none).
    #[serde(default)]
    pub keep_every: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    /// Validation loss every N optimizer steps (0 = never).
    #[serde(default)]
    pub every: u64,
    /// Held-out rows in the validation slice (split evenly across datasets, as upstream).
    #[serde(default = "default_val_rows")]
    pub rows: usize,
}

fn default_seed() -> u64 {
    42
}
fn default_device() -> String {
    "auto".into()
}
fn default_context() -> usize {
    3000
}
fn default_batch() -> usize {
    2
}
fn default_shuffle_buffer() -> usize {
    1024
}
fn default_prefetch() -> usize {
    64
}
fn default_holdout() -> f64 {
    0.0
}
fn default_lr() -> f64 {
    1e-4
}
fn default_min_lr() -> f64 {
    1e-5
}
fn default_wd() -> f64 {
    0.1
}
fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.95
}
fn default_eps() -> f64 {
    1e-6
}
fn default_clip() -> f64 {
    5.0
}
fn one() -> usize {
    1
}
fn default_epochs() -> u64 {
    1
}
fn default_ckpt_every() -> u64 {
    100
}
fn default_keep_last() -> usize {
    3
}
fn default_val_rows() -> usize {
    1000
}

macro_rules! default_from_serde {
    ($($t:ty),*) => {$(
        impl Default for $t {
            fn default() -> Self {
                toml::from_str("").expect("all fields have serde defaults")
            }
        }
    )*};
}
default_from_serde!(
    DataConfig,
    OptimConfig,
    ScheduleConfig,
    CheckpointConfig,
    EvalConfig
);

impl TrainConfig {
    /// Reads and validates a TOML config; relative model paths become relative to the file.
    pub fn load(path: &Path) -> Result<Self, TrainError> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
        let mut config: TrainConfig = toml::from_str(&text).map_err(|e| TrainError::Config {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [&mut config.model.init, &mut config.model.tokenizer]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        config.validate().map_err(|reason| TrainError::Config {
            path: path.to_owned(),
            reason,
        })?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.model.init.is_none() == self.model.random.is_none() {
            return Err(
                "set exactly one of model.init (a HF checkpoint dir) and model.random \
                        (a config table for random initialisation)"
                    .into(),
            );
        }
        if self.data.micro_batch_size == 0 || self.optim.grad_accum == 0 {
            return Err("data.micro_batch_size and optim.grad_accum must be at least 1".into());
        }
        if self.optim.min_lr > self.optim.lr {
            return Err(format!(
                "optim.min_lr {} exceeds optim.lr {}",
                self.optim.min_lr, self.optim.lr
            ));
        }
        if let Some((name, c)) = self
            .data
            .coefficients
            .iter()
            .find(|(_, c)| c.is_nan() || **c < 0.0)
        {
            return Err(format!(
                "data.coefficients.{name} = {c}: must be a number >= 0"
            ));
        }
        if !(0.0..1.0).contains(&self.data.holdout_fraction) {
            return Err("data.holdout_fraction must be in [0, 1)".into());
        }
        Ok(())
    }
}
