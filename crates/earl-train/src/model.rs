//! The model being trained: the VarStore holding the upstream-named variables, the Emu3 module
//! over it and its HF config, initialised from a checkpoint or randomly.

use std::path::Path;

use earl_model::{Emu3Config, Emu3ForCausalLM};
use tch::{Device, Kind, Tensor, nn};

use crate::TrainError;
use crate::config::ModelConfig;

pub struct TrainModel {
    pub vs: nn::VarStore,
    pub lm: Emu3ForCausalLM,
    pub config: Emu3Config,
    pub device: Device,
}

/// `auto` picks CUDA when libtorch sees a GPU.
pub fn resolve_device(name: &str) -> Result<Device, TrainError> {
    let bad = || {
        TrainError::Setting(format!(
            "model.device = {name:?}: expected auto, cpu, cuda or cuda:N"
        ))
    };
    Ok(match name {
        "auto" => Device::cuda_if_available(),
        "cpu" => Device::Cpu,
        "cuda" => Device::Cuda(0),
        other => {
            let n = other.strip_prefix("cuda:").ok_or_else(bad)?;
            Device::Cuda(n.parse().map_err(|_| bad())?)
        }
    })
}

impl TrainModel {
    /// Builds the model on `device`: weights from `model.init`, or earl-model's HF-style random
    /// weights (normal(0, initializer_range), norms 1) seeded by `seed`.
    /// bf16 applies on CUDA only; the CPU path is fp32.
    pub fn init(cfg: &ModelConfig, device: Device, seed: u64) -> Result<Self, TrainError> {
        let config = match (&cfg.init, &cfg.random) {
            (Some(dir), _) => Emu3Config::from_file(&dir.join("config.json"))?,
            (None, Some(table)) => {
                serde_json::from_value(with_hf_identity(table)).map_err(|e| {
                    TrainError::Setting(format!("model.random is not a valid Emu3 config: {e}"))
                })?
            }
            (None, None) => {
                return Err(TrainError::Setting("set model.init or model.random".into()));
            }
        };
        let mut vs = nn::VarStore::new(device);
        if cfg.bf16 && device.is_cuda() {
            vs.set_kind(Kind::BFloat16);
        }
        // New variables are drawn from torch's generator: seeding makes random init repeatable.
        tch::manual_seed(seed as i64);
        let lm = Emu3ForCausalLM::new(vs.root(), &config)?;
        if let Some(dir) = &cfg.init {
            earl_model::load_safetensors(&vs, dir)?;
        }
        Ok(Self {
            vs,
            lm,
            config,
            device,
        })
    }

    /// Reads the weights of a checkpoint written by [`TrainModel::save`].
    pub fn load(&mut self, dir: &Path) -> Result<(), TrainError> {
        Ok(earl_model::load_safetensors(&self.vs, dir)?)
    }

    /// Writes `config.json` + `model.safetensors` (sharded above earl-model's limit).
    pub fn save(&self, dir: &Path) -> Result<(), TrainError> {
        Ok(earl_model::save_safetensors(&self.vs, &self.config, dir)?)
    }

    /// Trainable variables by upstream name, sorted.
    pub fn named_parameters(&self) -> Vec<(String, Tensor)> {
        sorted(&self.vs)
    }

    pub fn parameter_count(&self) -> i64 {
        self.vs
            .variables()
            .values()
            .map(Tensor::numel)
            .map(|n| n as i64)
            .sum()
    }
}

fn sorted(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut vars: Vec<_> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// Adds the keys that let transformers pick the Emu3 classes for a saved random-init model
/// (`model_type`, `architectures`), unless the table sets them.
fn with_hf_identity(table: &serde_json::Value) -> serde_json::Value {
    let mut table = table.clone();
    if let Some(map) = table.as_object_mut() {
        map.entry("model_type").or_insert_with(|| "Emu3".into());
        map.entry("architectures")
            .or_insert_with(|| serde_json::json!(["Emu3ForCausalLM"]));
    }
    table
}
