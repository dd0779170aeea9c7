//! Choosing where and in which precision the model runs, from the strings a CLI takes.

use tch::{Device, Kind};

use crate::error::{Result, VqError};

/// Parses `cpu`, `cuda` (the first GPU) or `cuda:N`, checking that the GPU is really there.
pub fn parse_device(spec: &str) -> Result<Device> {
    let err = |reason: String| VqError::Device {
        spec: spec.to_string(),
        reason,
    };
    let index = match spec.trim().to_ascii_lowercase().as_str() {
        "cpu" => return Ok(Device::Cpu),
        "cuda" => 0,
        other => match other.strip_prefix("cuda:") {
            Some(n) => n.parse::<usize>().map_err(|_| {
                err(format!(
                    "`{n}` is not a GPU index (write cuda:0, cuda:1, ...)"
                ))
            })?,
            None => return Err(err("expected cpu, cuda or cuda:N".to_string())),
        },
    };
    if !tch::Cuda::is_available() {
        return Err(err(
            "libtorch sees no CUDA GPU (is a GPU visible and the CUDA build of torch installed?)"
                .to_string(),
        ));
    }
    let count = tch::Cuda::device_count();
    if index as i64 >= count {
        return Err(err(format!("only {count} CUDA device(s) visible")));
    }
    Ok(Device::Cuda(index))
}

/// Parses a precision name: `fp32`/`f32`/`float32` or `bf16`/`bfloat16`.
pub fn parse_kind(name: &str) -> Result<Kind> {
    match name.trim().to_ascii_lowercase().as_str() {
        "fp32" | "f32" | "float32" | "float" => Ok(Kind::Float),
        "bf16" | "bfloat16" => Ok(Kind::BFloat16),
        _ => Err(VqError::Input(format!(
            "precision `{name}`: expected fp32 or bf16"
        ))),
    }
}

/// The precisions the model computes in; anything else is refused at load time.
pub(crate) fn check_kind(kind: Kind) -> Result<Kind> {
    match kind {
        Kind::Float | Kind::BFloat16 => Ok(kind),
        kind => Err(VqError::Kind { kind }),
    }
}

/// Waits for queued GPU work, so that wall-clock timings measure the computation.
pub(crate) fn synchronize(device: Device) {
    if let Device::Cuda(index) = device {
        tch::Cuda::synchronize(index as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_and_rejects_nonsense() {
        assert_eq!(parse_device("cpu").unwrap(), Device::Cpu);
        assert_eq!(parse_device(" CPU ").unwrap(), Device::Cpu);
        for bad in ["gpu", "cuda:x", "cuda:-1", ""] {
            let msg = parse_device(bad).unwrap_err().to_string();
            assert!(msg.contains(bad.trim()), "{msg}");
        }
    }

    #[test]
    fn cuda_is_refused_without_a_gpu() {
        if !tch::Cuda::is_available() {
            let msg = parse_device("cuda:0").unwrap_err().to_string();
            assert!(msg.contains("no CUDA GPU"), "{msg}");
        }
    }

    #[test]
    fn parses_precisions() {
        assert_eq!(parse_kind("fp32").unwrap(), Kind::Float);
        assert_eq!(parse_kind("BF16").unwrap(), Kind::BFloat16);
        assert!(parse_kind("fp8").is_err());
        assert!(check_kind(Kind::Half).is_err());
    }
}
