//! Forward and backward of one optimizer step's micro-batches.
//!
//! The loss of an accumulated step is the mean over all its target tokens (each micro-batch's
//! mean is weighted by its share of them), so gradient accumulation changes nothing but memory.
//!
//! Activation checkpointing recomputes each decoder layer during the backward pass: the forward
//! runs under `no_grad` keeping only each layer's input; the head runs with grad and is
//! backpropagated to the last hidden state; then, from the last layer to the first, the layer is
//! rerun on its saved input with grad and backpropagated with the incoming gradient (as the
//! vector-Jacobian product of `sum(output * grad)`), yielding the gradient of its input.
//! Dropout masks repeat exactly because every layer call reseeds from (seed, step, micro, layer).

use earl_model::{Batch, Emu3ForCausalLM, IGNORE_INDEX, Sample, collate};
use tch::{Device, Kind, Tensor};

use crate::TrainError;
use crate::rng::Rng;

/// What one step's forward passes measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct StepLoss {
    /// Mean cross-entropy over the step's target tokens.
    pub loss: f64,
    pub target_tokens: i64,
    /// Non-padding tokens processed.
    pub tokens: i64,
}

/// Counts a batch's target positions (labels shifted by one, as the loss sees them).
fn target_count(samples: &[Sample]) -> i64 {
    samples
        .iter()
        .map(|s| {
            s.labels
                .iter()
                .skip(1)
                .filter(|&&l| l != IGNORE_INDEX)
                .count() as i64
        })
        .sum()
}

/// Runs forward and backward over `micro_batches`, accumulating gradients into the model.
pub fn forward_backward(
    lm: &Emu3ForCausalLM,
    micro_batches: &[Vec<Sample>],
    device: Device,
    checkpointing: bool,
    seeds: (u64, u64),
) -> Result<StepLoss, TrainError> {
    let total_targets: i64 = micro_batches.iter().map(|m| target_count(m)).sum();
    let mut out = StepLoss {
        target_tokens: total_targets,
        ..StepLoss::default()
    };
    if total_targets == 0 {
        return Ok(out);
    }
    for (micro, samples) in micro_batches.iter().enumerate() {
        let weight = target_count(samples) as f64 / total_targets as f64;
        if weight == 0.0 {
            continue;
        }
        let batch = collate(samples)?.to_device(device);
        out.tokens += batch.attention_mask.sum(Kind::Int64).int64_value(&[]);
        let seed = Rng::derive(seeds.0, &[seeds.1, micro as u64]).next_u64();
        let loss = if checkpointing {
            recompute_backward(lm, &batch, weight, seed)?
        } else {
            tch::manual_seed(seed as i64);
            let logits = lm.forward(
                &batch.input_ids,
                &batch.position_ids,
                &batch.attention_mask,
                true,
            )?;
            let loss = Emu3ForCausalLM::loss(&logits, &batch.labels)?;
            (&loss * weight).backward();
            loss.double_value(&[])
        };
        out.loss += loss * weight;
    }
    Ok(out)
}

/// One micro-batch with layer recomputation; returns its mean loss.
fn recompute_backward(
    lm: &Emu3ForCausalLM,
    batch: &Batch,
    weight: f64,
    seed: u64,
) -> Result<f64, TrainError> {
    let layer_seed = |layer: usize| Rng::derive(seed, &[layer as u64]).next_u64() as i64;
    let inputs = lm.layer_inputs(&batch.position_ids, &batch.attention_mask);
    let layers = lm.layers();

    let mut saved = Vec::with_capacity(layers.len());
    let last = tch::no_grad(|| {
        let mut hidden = lm.embed(&batch.input_ids);
        for (i, layer) in layers.iter().enumerate() {
            tch::manual_seed(layer_seed(i));
            let next = layer.forward(&hidden, &inputs, None, true);
            saved.push(hidden);
            hidden = next;
        }
        hidden
    });

    let last = last.detach().set_requires_grad(true);
    let loss = Emu3ForCausalLM::loss(&lm.head(&last), &batch.labels)?;
    (&loss * weight).backward();
    let mut grad = last.grad();

    for (i, layer) in layers.iter().enumerate().rev() {
        let input = saved[i].detach().set_requires_grad(true);
        tch::manual_seed(layer_seed(i));
        let output = layer.forward(&input, &inputs, None, true);
        vjp(&output, &grad);
        grad = input.grad();
    }
    let embedded = lm.embed(&batch.input_ids);
    vjp(&embedded, &grad);
    Ok(loss.double_value(&[]))
}

/// Backpropagates `grad` through `output` into the parameters that produced it.
fn vjp(output: &Tensor, grad: &Tensor) {
    (output.to_kind(Kind::Float) * grad.detach().to_kind(Kind::Float))
        .sum(Kind::Float)
        .backward();
}

/// Mean validation loss over `samples`, in micro-batches, without dropout or gradients.
pub fn evaluate(
    lm: &Emu3ForCausalLM,
    samples: &[Sample],
    micro_batch: usize,
    device: Device,
) -> Result<Option<f64>, TrainError> {
    let (mut weighted, mut targets) = (0.0, 0i64);
    for chunk in samples.chunks(micro_batch.max(1)) {
        let n = target_count(chunk);
        if n == 0 {
            continue;
        }
        let batch = collate(chunk)?.to_device(device);
        let loss = tch::no_grad(|| {
            let logits = lm.forward(
                &batch.input_ids,
                &batch.position_ids,
                &batch.attention_mask,
                false,
            )?;
            Ok::<_, TrainError>(Emu3ForCausalLM::loss(&logits, &batch.labels)?.double_value(&[]))
        })?;
        weighted += loss * n as f64;
        targets += n;
    }
    Ok((targets > 0).then(|| weighted / targets as f64))
}
