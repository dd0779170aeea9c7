//! Where parameter values come from: a safetensors checkpoint read by the upstream names, or a
//! seeded generator for random-weight demos and benchmarks. Modules ask for each tensor by its
//! dotted path once, while they are built; the source checks the shape and places it on the
//! device in the model's precision.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Display;
use std::io::Read;
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use safetensors::{Dtype, SafeTensors};
use sha2::{Digest, Sha256};
use tch::{Device, Kind, Tensor};

use crate::error::{Result, VqError};

/// How a randomly initialised tensor is drawn; a checkpoint ignores it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Init {
    Zeros,
    Ones,
    /// Uniform in [-bound, bound].
    Uniform(f64),
    /// Upstream's conv init (Kaiming, fan-out, ReLU gain), drawn uniform with the same variance.
    KaimingFanOut,
}

enum Source {
    Checkpoint {
        path: PathBuf,
        tensors: RefCell<HashMap<String, Tensor>>,
    },
    Random {
        rng: RefCell<Box<StdRng>>,
    },
}

/// A source of named parameters for one model build.
pub(crate) struct Weights {
    source: Source,
    device: Device,
    kind: Kind,
}

/// Checkpoint tensors that hold no parameter (BatchNorm's step counter).
fn is_bookkeeping(name: &str) -> bool {
    name.ends_with(".num_batches_tracked")
}

impl Weights {
    /// Reads every tensor of a safetensors file (onto the CPU, as stored) and its sha256.
    pub fn checkpoint(path: &Path, device: Device, kind: Kind) -> Result<(Self, String)> {
        let bytes = std::fs::read(path).map_err(|source| VqError::Io {
            path: path.into(),
            source,
        })?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let bad = |reason: String| VqError::Checkpoint {
            path: path.into(),
            reason,
        };
        let file = SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
        let mut tensors = HashMap::new();
        for (name, view) in file.tensors() {
            let stored = match view.dtype() {
                Dtype::F32 => Kind::Float,
                Dtype::F16 => Kind::Half,
                Dtype::BF16 => Kind::BFloat16,
                Dtype::F64 => Kind::Double,
                Dtype::I64 => Kind::Int64,
                other => {
                    return Err(bad(format!(
                        "tensor `{name}` has unsupported dtype {other:?}"
                    )));
                }
            };
            let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
            let tensor = Tensor::f_from_data_size(view.data(), &shape, stored)?;
            tensors.insert(name, tensor);
        }
        let source = Source::Checkpoint {
            path: path.into(),
            tensors: RefCell::new(tensors),
        };
        Ok((
            Self {
                source,
                device,
                kind,
            },
            sha256,
        ))
    }

    /// Draws every parameter from a generator seeded with `seed` (the same on every device).
    pub fn random(seed: u64, device: Device, kind: Kind) -> Self {
        let rng = RefCell::new(Box::new(StdRng::seed_from_u64(seed)));
        Self {
            source: Source::Random { rng },
            device,
            kind,
        }
    }

    pub fn device(&self) -> Device {
        self.device
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn root(&self) -> WeightPath<'_> {
        WeightPath {
            weights: self,
            prefix: String::new(),
        }
    }

    /// Fails when the checkpoint holds parameters the model did not ask for: the config and
    /// the weights then describe different models, and silently dropping weights would hide it.
    pub fn finish(self) -> Result<()> {
        if let Source::Checkpoint { path, tensors } = self.source {
            let mut left: Vec<String> = tensors
                .into_inner()
                .into_keys()
                .filter(|n| !is_bookkeeping(n))
                .collect();
            left.sort();
            if let Some(example) = left.first() {
                return Err(VqError::UnusedTensors {
                    path,
                    count: left.len(),
                    example: example.clone(),
                });
            }
        }
        Ok(())
    }

    fn take(&self, name: &str, shape: &[i64], init: Init, kind: Kind) -> Result<Tensor> {
        let cpu =
            match &self.source {
                Source::Checkpoint { path, tensors } => {
                    let tensor = tensors.borrow_mut().remove(name).ok_or_else(|| {
                        VqError::MissingTensor {
                            path: path.clone(),
                            name: name.to_string(),
                        }
                    })?;
                    if tensor.size() != shape {
                        return Err(VqError::ShapeMismatch {
                            path: path.clone(),
                            name: name.to_string(),
                            found: tensor.size(),
                            expected: shape.to_vec(),
                        });
                    }
                    tensor
                }
                Source::Random { rng } => random_tensor(&mut rng.borrow_mut(), shape, init)?,
            };
        Ok(cpu.f_to_kind(kind)?.f_to_device(self.device)?)
    }
}

fn random_tensor(rng: &mut StdRng, shape: &[i64], init: Init) -> Result<Tensor> {
    let numel: i64 = shape.iter().product();
    let bound = match init {
        Init::Zeros => return Ok(Tensor::f_zeros(shape, (Kind::Float, Device::Cpu))?),
        Init::Ones => return Ok(Tensor::f_ones(shape, (Kind::Float, Device::Cpu))?),
        Init::Uniform(bound) => bound,
        Init::KaimingFanOut => {
            // shape = [out, in, kernel...]: fan-out = out * kernel volume; std = sqrt(2 / fan-out).
            let fan_out = shape[0] * shape[2..].iter().product::<i64>();
            (6.0 / fan_out as f64).sqrt()
        }
    } as f32;
    let values: Vec<f32> = (0..numel)
        .map(|_| rng.random_range(-bound..=bound))
        .collect();
    Ok(Tensor::f_from_slice(&values)?.f_reshape(shape)?)
}

/// A dotted prefix inside the parameter tree, e.g. `encoder.down.0.block.1`.
pub(crate) struct WeightPath<'a> {
    weights: &'a Weights,
    prefix: String,
}

impl<'a> WeightPath<'a> {
    /// The sub-path `self.part`.
    pub fn at(&self, part: impl Display) -> WeightPath<'a> {
        let prefix = if self.prefix.is_empty() {
            part.to_string()
        } else {
            format!("{}.{part}", self.prefix)
        };
        WeightPath {
            weights: self.weights,
            prefix,
        }
    }

    /// The parameter `self.name`, in the model's precision.
    pub fn tensor(&self, name: &str, shape: &[i64], init: Init) -> Result<Tensor> {
        self.weights
            .take(&self.at(name).prefix, shape, init, self.weights.kind)
    }

    /// The parameter `self.name`, kept in fp32 whatever the model's precision.
    pub fn tensor_f32(&self, name: &str, shape: &[i64], init: Init) -> Result<Tensor> {
        self.weights
            .take(&self.at(name).prefix, shape, init, Kind::Float)
    }
}

/// The file holding the weights in a model folder.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The file holding the config in a model folder.
pub const CONFIG_FILE: &str = "config.json";

/// The sha256 (lower-case hex) of a model folder's `model.safetensors`: the identity of the
/// weights recorded with every token row.
pub fn checkpoint_sha256(dir: &Path) -> Result<String> {
    let path = dir.join(WEIGHTS_FILE);
    let io = |source| VqError::Io {
        path: path.clone(),
        source,
    };
    let mut file = std::fs::File::open(&path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}
