//! The training benchmark body: tokens per second and peak resident memory of a model size on
//! synthetic batches. `benches/train.rs` prints a table of it; a CLI can call it in the dev
//! profile. `benches/torch_llama.py` times transformers' Llama at the same sizes for a ratio.

use std::time::Instant;

use earl_model::Sample;
use serde::Serialize;
use tch::Device;

use crate::TrainError;
use crate::adamw::{AdamW, AdamWConfig};
use crate::config::ModelConfig;
use crate::metrics::Memory;
use crate::model::TrainModel;
use crate::rng::Rng;
use crate::sft::clip_factor;
use crate::step::forward_backward;

#[derive(Debug, Clone)]
pub struct BenchSpec {
    /// HF config fields of the model (as `[model.random]` in a training config).
    pub model: serde_json::Value,
    pub batch: usize,
    pub seq_len: usize,
    /// Timed optimizer steps (after one warm-up step).
    pub steps: usize,
    pub device: Device,
    pub activation_checkpointing: bool,
    pub bf16: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    pub parameters: i64,
    pub tokens_per_s: f64,
    pub seconds_per_step: f64,
    pub peak_rss_bytes: u64,
}

/// Full training steps (forward, backward, clip, AdamW) on random tokens, labels everywhere.
pub fn run(spec: &BenchSpec) -> Result<BenchResult, TrainError> {
    let model_cfg = ModelConfig {
        init: None,
        random: Some(spec.model.clone()),
        tokenizer: None,
        bf16: spec.bf16,
        activation_checkpointing: spec.activation_checkpointing,
        device: "cpu".into(),
    };
    let model = TrainModel::init(&model_cfg, spec.device, 0)?;
    let vocab = model.config.vocab_size as u64;
    let mut optim = AdamW::new(
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-6,
            weight_decay: 0.1,
        },
        model.named_parameters(),
    );
    let mut rng = Rng::new(1);
    let batch: Vec<Sample> = (0..spec.batch)
        .map(|_| {
            let ids: Vec<i64> = (0..spec.seq_len).map(|_| rng.below(vocab) as i64).collect();
            Sample {
                labels: ids.clone(),
                input_ids: ids,
            }
        })
        .collect();
    let micro = [batch];
    let mut step = |i: u64| -> Result<(), TrainError> {
        forward_backward(
            &model.lm,
            &micro,
            spec.device,
            spec.activation_checkpointing,
            (0, i),
        )?;
        let norm = optim.grad_norm();
        optim.step(1e-4, clip_factor(norm, 5.0));
        Ok(())
    };
    step(0)?;
    let started = Instant::now();
    for i in 0..spec.steps {
        step(i as u64 + 1)?;
    }
    if let Device::Cuda(index) = spec.device {
        tch::Cuda::synchronize(index as i64);
    }
    let seconds = started.elapsed().as_secs_f64() / spec.steps.max(1) as f64;
    Ok(BenchResult {
        parameters: model.parameter_count(),
        tokens_per_s: (spec.batch * spec.seq_len) as f64 / seconds,
        seconds_per_step: seconds,
        peak_rss_bytes: Memory::now().peak_rss_bytes,
    })
}
