//! AdamW over plain tensors. tch's optimizer keeps its moments inside libtorch where they cannot
//! be saved, so the moments (and, for bf16 models, fp32 master weights) live here as named
//! tensors that go into `optimizer.safetensors` beside the model.
//!
//! Weight decay: decoupled (Loshchilov & Hutter), applied to every tensor of rank >= 2
//! (projections, embeddings, lm_head) and never to 1-D tensors — in Emu3 those are exactly the
//! RMSNorm weights (it has no biases); this matches HF Trainer's exclusion of norms and biases.

use std::collections::BTreeMap;

use tch::{Kind, Tensor};

use crate::TrainError;

#[derive(Debug, Clone, Copy)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

/// One trained tensor's optimizer state.
struct ParamState {
    /// The model's variable (bf16 or fp32), updated in place after each step.
    param: Tensor,
    /// fp32 copy the update is applied to; `None` when the model itself is fp32.
    master: Option<Tensor>,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    decay: bool,
}

pub struct AdamW {
    config: AdamWConfig,
    params: BTreeMap<String, ParamState>,
    /// Completed optimizer steps (the bias-correction exponent).
    pub steps: u64,
}

impl AdamW {
    /// Tracks every named trainable variable; non-fp32 variables get an fp32 master copy.
    pub fn new(config: AdamWConfig, variables: impl IntoIterator<Item = (String, Tensor)>) -> Self {
        let params = variables
            .into_iter()
            .map(|(name, param)| {
                let master = (param.kind() != Kind::Float)
                    .then(|| tch::no_grad(|| param.to_kind(Kind::Float).detach()));
                let zeros = || Tensor::zeros(param.size(), (Kind::Float, param.device()));
                let state = ParamState {
                    decay: param.dim() >= 2,
                    exp_avg: zeros(),
                    exp_avg_sq: zeros(),
                    master,
                    param,
                };
                (name, state)
            })
            .collect();
        Self {
            config,
            params,
            steps: 0,
        }
    }

    /// The global L2 norm of all gradients (fp32), over parameters that have one.
    pub fn grad_norm(&self) -> f64 {
        let squares: Vec<Tensor> = self
            .params
            .values()
            .filter_map(|p| {
                let g = p.param.grad();
                g.defined()
                    .then(|| g.to_kind(Kind::Float).square().sum(Kind::Float))
            })
            .collect();
        if squares.is_empty() {
            return 0.0;
        }
        Tensor::stack(&squares, 0)
            .sum(Kind::Float)
            .sqrt()
            .double_value(&[])
    }

    /// One update with learning rate `lr`; gradients are multiplied by `grad_scale` first
    /// (the clipping factor). Gradients are zeroed afterwards.
    pub fn step(&mut self, lr: f64, grad_scale: f64) {
        self.steps += 1;
        let AdamWConfig {
            beta1,
            beta2,
            eps,
            weight_decay,
        } = self.config;
        let t = self.steps as i32;
        let bias1 = 1.0 - beta1.powi(t);
        let bias2_sqrt = (1.0 - beta2.powi(t)).sqrt();
        tch::no_grad(|| {
            for p in self.params.values_mut() {
                let mut grad = p.param.grad();
                if !grad.defined() {
                    continue;
                }
                let g = grad.to_kind(Kind::Float) * grad_scale;
                let mut weights = p.master.as_ref().unwrap_or(&p.param).shallow_clone();
                if p.decay && weight_decay != 0.0 {
                    let _ = weights.g_mul_scalar_(1.0 - lr * weight_decay);
                }
                let _ = p.exp_avg.g_mul_scalar_(beta1);
                let _ = p.exp_avg.g_add_(&(&g * (1.0 - beta1)));
                let _ = p.exp_avg_sq.g_mul_scalar_(beta2);
                let _ = p.exp_avg_sq.g_add_(&(g.square() * (1.0 - beta2)));
                let denom = p.exp_avg_sq.sqrt() / bias2_sqrt + eps;
                let _ = weights.g_sub_(&(&p.exp_avg / denom * (lr / bias1)));
                if let Some(master) = &p.master {
                    p.param.copy_(&master.to_kind(p.param.kind()));
                }
                let _ = grad.zero_();
            }
        });
    }

    pub fn zero_grad(&mut self) {
        for p in self.params.values_mut() {
            let mut grad = p.param.grad();
            if grad.defined() {
                let _ = grad.zero_();
            }
        }
    }

    /// Named state tensors for `optimizer.safetensors`.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (name, p) in &self.params {
            out.push((format!("exp_avg.{name}"), p.exp_avg.shallow_clone()));
            out.push((format!("exp_avg_sq.{name}"), p.exp_avg_sq.shallow_clone()));
            if let Some(master) = &p.master {
                out.push((format!("master.{name}"), master.shallow_clone()));
            }
        }
        out
    }

    /// Restores the moments (and master weights) written by [`AdamW::state_tensors`].
    pub fn load_state(
        &mut self,
        steps: u64,
        mut tensors: BTreeMap<String, Tensor>,
    ) -> Result<(), TrainError> {
        let missing = |key: &str| {
            TrainError::Checkpoint(format!(
                "optimizer.safetensors has no tensor {key:?}: the checkpoint was written for a \
             different model; start a fresh --out directory"
            ))
        };
        tch::no_grad(|| {
            for (name, p) in self.params.iter_mut() {
                for (key, slot) in [
                    ("exp_avg", &mut p.exp_avg),
                    ("exp_avg_sq", &mut p.exp_avg_sq),
                ] {
                    let key = format!("{key}.{name}");
                    let saved = tensors.remove(&key).ok_or_else(|| missing(&key))?;
                    slot.copy_(&saved.to_device(slot.device()).to_kind(Kind::Float));
                }
                if let Some(master) = &mut p.master {
                    let key = format!("master.{name}");
                    let saved = tensors.remove(&key).ok_or_else(|| missing(&key))?;
                    master.copy_(&saved.to_device(master.device()).to_kind(Kind::Float));
                    p.param.copy_(&master.to_kind(p.param.kind()));
                }
            }
            Ok::<_, TrainError>(())
        })?;
        self.steps = steps;
        Ok(())
    }
}
