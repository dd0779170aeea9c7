//! HF-compatible checkpoints: `config.json` + `model.safetensors`, or shards
//! `model-0000i-of-0000n.safetensors` listed by `model.safetensors.index.json`.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors, View};
use serde::{Deserialize, Serialize};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::config::Emu3Config;
use crate::error::{Error, Result};

/// Shards are cut above this many bytes (the `save_pretrained` default of 5 GB).
pub const SHARD_BYTES: usize = 5_000_000_000;

const SINGLE: &str = "model.safetensors";
const INDEX: &str = "model.safetensors.index.json";

#[derive(Debug, Serialize, Deserialize)]
struct ShardIndex {
    #[serde(default)]
    metadata: serde_json::Map<String, serde_json::Value>,
    weight_map: BTreeMap<String, String>,
}

/// Fills every variable of `vs` from the checkpoint in `dir` by name, converting dtype and
/// device to the variable's. Fails naming the missing tensors or a shape mismatch; tensors of
/// the checkpoint that the model does not use are ignored.
pub fn load_safetensors(vs: &VarStore, dir: &Path) -> Result<()> {
    let variables = vs.variables();
    let files = checkpoint_files(dir)?;
    let mut filled = std::collections::HashSet::new();
    let _no_grad = tch::no_grad_guard();
    for file in &files {
        let bytes = std::fs::read(file).map_err(Error::io(file))?;
        let st = SafeTensors::deserialize(&bytes).map_err(|source| Error::SafeTensors {
            path: file.clone(),
            source,
        })?;
        for (name, view) in st.tensors() {
            let Some(var) = variables.get(&name) else {
                continue;
            };
            let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
            if shape != var.size() {
                return Err(Error::Checkpoint {
                    path: file.clone(),
                    reason: format!(
                        "{name} has shape {shape:?} but the model expects {:?}; does config.json \
                         match these weights?",
                        var.size()
                    ),
                });
            }
            let kind = kind_of(view.dtype()).ok_or_else(|| Error::Checkpoint {
                path: file.clone(),
                reason: format!("{name}: dtype {:?} is not supported", view.dtype()),
            })?;
            let src = Tensor::f_from_data_size(view.data(), &shape, kind)?;
            var.shallow_clone().f_copy_(&src)?;
            filled.insert(name);
        }
    }
    let mut missing: Vec<&String> = variables.keys().filter(|n| !filled.contains(*n)).collect();
    if !missing.is_empty() {
        missing.sort();
        return Err(Error::Checkpoint {
            path: dir.to_path_buf(),
            reason: format!(
                "{} of the model's {} tensors are missing, e.g. {:?}",
                missing.len(),
                variables.len(),
                &missing[..missing.len().min(5)]
            ),
        });
    }
    Ok(())
}

/// The weight files of a checkpoint directory: the index's shards, else `model.safetensors`.
fn checkpoint_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index_path = dir.join(INDEX);
    if index_path.is_file() {
        let text = std::fs::read_to_string(&index_path).map_err(Error::io(&index_path))?;
        let index: ShardIndex = serde_json::from_str(&text).map_err(|source| Error::Json {
            path: index_path.clone(),
            source,
        })?;
        let mut files: Vec<PathBuf> = index.weight_map.values().map(|f| dir.join(f)).collect();
        files.sort();
        files.dedup();
        return Ok(files);
    }
    let single = dir.join(SINGLE);
    if single.is_file() {
        return Ok(vec![single]);
    }
    Err(Error::Checkpoint {
        path: dir.to_path_buf(),
        reason: format!("neither {SINGLE} nor {INDEX} is there"),
    })
}

fn kind_of(dtype: Dtype) -> Option<Kind> {
    Some(match dtype {
        Dtype::F32 => Kind::Float,
        Dtype::BF16 => Kind::BFloat16,
        Dtype::F16 => Kind::Half,
        Dtype::F64 => Kind::Double,
        Dtype::I64 => Kind::Int64,
        Dtype::I32 => Kind::Int,
        Dtype::U8 => Kind::Uint8,
        Dtype::BOOL => Kind::Bool,
        _ => return None,
    })
}

fn dtype_of(kind: Kind) -> Option<Dtype> {
    Some(match kind {
        Kind::Float => Dtype::F32,
        Kind::BFloat16 => Dtype::BF16,
        Kind::Half => Dtype::F16,
        Kind::Double => Dtype::F64,
        Kind::Int64 => Dtype::I64,
        Kind::Int => Dtype::I32,
        Kind::Uint8 => Dtype::U8,
        Kind::Bool => Dtype::BOOL,
        _ => return None,
    })
}

/// A variable as a safetensors view; bytes are copied to the CPU only when written.
struct TensorView {
    tensor: Tensor,
    dtype: Dtype,
    shape: Vec<usize>,
}

impl View for TensorView {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        let cpu = self.tensor.to_device(Device::Cpu).contiguous();
        let mut bytes = vec![0u8; self.data_len()];
        cpu.copy_data_u8(&mut bytes, cpu.numel());
        Cow::Owned(bytes)
    }
    fn data_len(&self) -> usize {
        self.tensor.numel() * self.tensor.kind().elt_size_in_bytes()
    }
}

/// Writes `config.json` and the weights of `vs` under their variable names (the upstream
/// names), one file up to [`SHARD_BYTES`], else shards plus an index. Each file is written to a
/// temporary name and renamed; stale weight files of an earlier save are removed.
pub fn save_safetensors(vs: &VarStore, config: &Emu3Config, dir: &Path) -> Result<()> {
    save_with_shard_size(vs, config, dir, SHARD_BYTES)
}

/// [`save_safetensors`] with an explicit shard size (tests use a small one).
pub fn save_with_shard_size(
    vs: &VarStore,
    config: &Emu3Config,
    dir: &Path,
    shard_bytes: usize,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
    let mut vars: Vec<(String, TensorView)> = Vec::new();
    for (name, tensor) in vs.variables() {
        let dtype = dtype_of(tensor.kind()).ok_or_else(|| Error::Checkpoint {
            path: dir.to_path_buf(),
            reason: format!("{name}: kind {:?} cannot be saved", tensor.kind()),
        })?;
        let shape = tensor.size().iter().map(|&d| d as usize).collect();
        vars.push((
            name,
            TensorView {
                tensor: tensor.detach(),
                dtype,
                shape,
            },
        ));
    }
    vars.sort_by(|a, b| a.0.cmp(&b.0));

    let mut shards: Vec<Vec<(String, TensorView)>> = vec![Vec::new()];
    let mut current = 0usize;
    let total: usize = vars.iter().map(|(_, v)| v.data_len()).sum();
    for (name, view) in vars {
        let len = view.data_len();
        if current > 0 && current + len > shard_bytes {
            shards.push(Vec::new());
            current = 0;
        }
        current += len;
        if let Some(shard) = shards.last_mut() {
            shard.push((name, view));
        }
    }

    let n = shards.len();
    let mut written = Vec::new();
    let mut weight_map = BTreeMap::new();
    for (i, shard) in shards.into_iter().enumerate() {
        let file = if n == 1 {
            SINGLE.to_string()
        } else {
            format!("model-{:05}-of-{n:05}.safetensors", i + 1)
        };
        for (name, _) in &shard {
            weight_map.insert(name.clone(), file.clone());
        }
        let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
        let path = dir.join(&file);
        write_atomic(&path, |tmp| {
            safetensors::serialize_to_file(shard, Some(metadata), tmp).map_err(|source| {
                Error::SafeTensors {
                    path: path.clone(),
                    source,
                }
            })
        })?;
        written.push(file);
    }
    if n > 1 {
        let mut metadata = serde_json::Map::new();
        metadata.insert("total_size".into(), total.into());
        let index = ShardIndex {
            metadata,
            weight_map,
        };
        let text = serde_json::to_string_pretty(&index).map_err(|source| Error::Json {
            path: dir.join(INDEX),
            source,
        })?;
        write_text(&dir.join(INDEX), &text)?;
        written.push(INDEX.to_string());
    }
    let config_text = serde_json::to_string_pretty(config).map_err(|source| Error::Json {
        path: dir.join("config.json"),
        source,
    })?;
    write_text(&dir.join("config.json"), &config_text)?;
    remove_stale(dir, &written)
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    write_atomic(path, |tmp| {
        std::fs::write(tmp, text).map_err(Error::io(tmp))
    })
}

fn write_atomic(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    write(&tmp)?;
    std::fs::rename(&tmp, path).map_err(Error::io(path))
}

/// Removes weight files and indexes in `dir` that this save did not write.
fn remove_stale(dir: &Path, written: &[String]) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(Error::io(dir))? {
        let path = entry.map_err(Error::io(dir))?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let weights =
            name.starts_with("model") && (name.ends_with(".safetensors") || name == INDEX);
        if weights && !written.iter().any(|w| w == name) {
            std::fs::remove_file(&path).map_err(Error::io(&path))?;
        }
    }
    Ok(())
}
