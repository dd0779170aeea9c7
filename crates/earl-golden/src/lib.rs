//! Test support for the parity tests: where the reference data lives and how to read it.
//!
//! The reference outputs of the upstream PyTorch code sit in `../shared/golden` beside the
//! project root (override with `EARL_GOLDEN`). Under `CI=true` a missing folder is a failure;
//! elsewhere a test may skip, saying why.

use std::path::{Path, PathBuf};

/// The golden folder, or `None` (after printing why) when it is absent outside CI.
///
/// Panics under `CI=true` when the folder is missing: CI must never pass by skipping parity.
pub fn dir() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = std::env::var_os("EARL_GOLDEN")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/golden"));
    if dir.join("README.md").is_file() {
        return Some(dir.canonicalize().unwrap_or(dir));
    }
    let msg = format!("golden reference folder not found at {}", dir.display());
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{msg}: under CI=true parity tests may not skip");
    }
    eprintln!("skipping: {msg} (set EARL_GOLDEN to its path)");
    None
}

/// A tensor read from a safetensors file: shape plus values widened to f64.
#[derive(Debug, Clone)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub values: Vec<f64>,
}

impl Tensor {
    pub fn as_f32(&self) -> Vec<f32> {
        self.values.iter().map(|&v| v as f32).collect()
    }
    pub fn as_i64(&self) -> Vec<i64> {
        self.values.iter().map(|&v| v as i64).collect()
    }
}

/// Every tensor of a safetensors file, by name. Supports the dtypes the golden files use.
pub fn read_tensors(path: &Path) -> std::collections::BTreeMap<String, Tensor> {
    use safetensors::{Dtype, SafeTensors};
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let st = SafeTensors::deserialize(&bytes)
        .unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()));
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let data = view.data();
            let values: Vec<f64> = match view.dtype() {
                Dtype::F32 => data
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64)
                    .collect(),
                Dtype::F64 => data
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
                    .collect(),
                Dtype::I64 => data
                    .chunks_exact(8)
                    .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f64)
                    .collect(),
                Dtype::I32 => data
                    .chunks_exact(4)
                    .map(|b| i32::from_le_bytes(b.try_into().unwrap()) as f64)
                    .collect(),
                Dtype::U8 => data.iter().map(|&b| b as f64).collect(),
                Dtype::BOOL => data.iter().map(|&b| b as f64).collect(),
                other => panic!("{name}: dtype {other:?} not supported by earl-golden"),
            };
            (
                name,
                Tensor {
                    shape: view.shape().to_vec(),
                    values,
                },
            )
        })
        .collect()
}

/// A JSON file of the golden folder.
pub fn read_json(path: &Path) -> serde_json::Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}
