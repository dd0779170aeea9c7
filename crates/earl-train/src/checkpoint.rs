//! The run directory and its checkpoints.
//!
//! ```text
//! <run>/checkpoints/step-000120/config.json         HF config (transformers' Emu3 loads it)
//!                              /model.safetensors   upstream names (or shards + index)
//!                              /optimizer.safetensors  exp_avg.*, exp_avg_sq.*, master.* (bf16)
//!                              /trainer.json        step, loader position, seed, counters
//! <run>/metrics.jsonl, <run>/tb/events.out.tfevents.*
//! ```
//! A checkpoint is written into `checkpoints/.tmp-step-N`, synced, and renamed into place, so a
//! `step-N` directory is always complete. Resuming takes the highest `step-N`.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::TrainError;
use crate::adamw::AdamW;
use crate::loader::{Position, StatsSnapshot};
use crate::model::TrainModel;

/// `trainer.json`: everything besides tensors that a resumed run needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainerState {
    /// Optimizer steps completed.
    pub step: u64,
    /// The loader position after the last sample of `step`.
    pub loader: Position,
    /// Seed of all randomness; dropout and data order derive from (seed, step), so there is no
    /// generator state to store beyond it.
    pub seed: u64,
    /// The schedule length the run was planned with (kept so a resume does not re-plan).
    pub total_steps: u64,
    pub loader_stats: StatsSnapshot,
    /// The training config as run, for the record.
    pub config: serde_json::Value,
}

pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub const TRAINER_FILE: &str = "trainer.json";

pub struct RunDir {
    pub root: PathBuf,
}

impl RunDir {
    pub fn create(root: &Path) -> Result<Self, TrainError> {
        let dir = root.join("checkpoints");
        std::fs::create_dir_all(&dir).map_err(|e| TrainError::io(&dir, e))?;
        Ok(Self {
            root: root.to_owned(),
        })
    }

    pub fn checkpoints_dir(&self) -> PathBuf {
        self.root.join("checkpoints")
    }

    /// Finished checkpoints, by step.
    pub fn checkpoints(&self) -> Result<BTreeMap<u64, PathBuf>, TrainError> {
        let dir = self.checkpoints_dir();
        let entries = std::fs::read_dir(&dir).map_err(|e| TrainError::io(&dir, e))?;
        let mut out = BTreeMap::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(step) = name.to_str().and_then(|n| n.strip_prefix("step-")) else {
                continue;
            };
            if let Ok(step) = step.parse::<u64>()
                && entry.path().join(TRAINER_FILE).is_file()
            {
                out.insert(step, entry.path());
            }
        }
        Ok(out)
    }

    pub fn latest(&self) -> Result<Option<PathBuf>, TrainError> {
        Ok(self.checkpoints()?.into_values().next_back())
    }

    /// Writes a complete checkpoint atomically, then applies the retention policy.
    pub fn save(
        &self,
        model: &TrainModel,
        optim: &AdamW,
        state: &TrainerState,
        keep_last: usize,
        keep_every: u64,
    ) -> Result<PathBuf, TrainError> {
        let dir = self.checkpoints_dir();
        let name = format!("step-{:06}", state.step);
        let tmp = dir.join(format!(".tmp-{name}"));
        let done = dir.join(&name);
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
        }
        std::fs::create_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;

        model.save(&tmp)?;
        let moments = optim.state_tensors();
        Tensor::write_safetensors(&moments, tmp.join(OPTIMIZER_FILE))?;
        let json = serde_json::to_vec_pretty(state)
            .map_err(|e| TrainError::Checkpoint(format!("encoding trainer.json: {e}")))?;
        std::fs::write(tmp.join(TRAINER_FILE), json)
            .map_err(|e| TrainError::io(&tmp.join(TRAINER_FILE), e))?;
        sync_tree(&tmp)?;

        if done.exists() {
            std::fs::remove_dir_all(&done).map_err(|e| TrainError::io(&done, e))?;
        }
        std::fs::rename(&tmp, &done).map_err(|e| TrainError::io(&done, e))?;
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| TrainError::io(&dir, e))?;
        self.prune(keep_last, keep_every)?;
        Ok(done)
    }

    /// Deletes checkpoints that are neither among the newest `keep_last` nor at a multiple of
    /// `keep_every`.
    fn prune(&self, keep_last: usize, keep_every: u64) -> Result<(), TrainError> {
        let all = self.checkpoints()?;
        let newest: Vec<u64> = all.keys().rev().take(keep_last.max(1)).copied().collect();
        for (step, path) in all {
            let kept =
                newest.contains(&step) || (keep_every > 0 && step.is_multiple_of(keep_every));
            if !kept {
                std::fs::remove_dir_all(&path).map_err(|e| TrainError::io(&path, e))?;
            }
        }
        Ok(())
    }
}

/// Reads `trainer.json` and the optimizer tensors of a checkpoint.
pub fn load_state(dir: &Path) -> Result<(TrainerState, BTreeMap<String, Tensor>), TrainError> {
    let path = dir.join(TRAINER_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| TrainError::io(&path, e))?;
    let state: TrainerState = serde_json::from_str(&text).map_err(|e| {
        TrainError::Checkpoint(format!(
            "{}: {e}; delete this checkpoint to resume from the one before",
            path.display()
        ))
    })?;
    let tensors = Tensor::read_safetensors(dir.join(OPTIMIZER_FILE))?
        .into_iter()
        .collect();
    Ok((state, tensors))
}

fn sync_tree(dir: &Path) -> Result<(), TrainError> {
    let entries = std::fs::read_dir(dir).map_err(|e| TrainError::io(dir, e))?;
    for entry in entries.flatten() {
        let path = entry.path();
        File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(|e| TrainError::io(&path, e))?;
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| TrainError::io(dir, e))
}
