//! CUDA check, for a GPU machine (compiles everywhere):
//!
//! ```text
//! cargo run -p earl-vq --example cuda_check -- --device cuda
//! ```
//!
//! 1. The golden tiny VQ on the GPU: fp32 codes against the CPU's and upstream's, decoded
//!    pixels against upstream's, and the fraction of codes bf16 changes.
//! 2. Throughput of the released shape (random weights) at 256x256, batch 8 and 32, fp32 and
//!    bf16: one-frame and upstream-style encode, and decode.

use anyhow::{Context, Result, bail};
use clap::Parser;
use earl_vq::{BenchSpec, VqConfig, VqModel};
use tch::{Device, Kind, Tensor};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "cuda")]
    device: String,
    #[arg(long, default_value = "8,32", value_delimiter = ',')]
    batch: Vec<i64>,
    #[arg(long, default_value_t = 256)]
    size: i64,
    #[arg(long, default_value_t = 3)]
    iters: usize,
    /// Skip the throughput part.
    #[arg(long)]
    parity_only: bool,
}

fn fraction_equal(a: &Tensor, b: &Tensor) -> f64 {
    let b = b.to_device(a.device());
    a.eq_tensor(&b)
        .to_kind(Kind::Float)
        .mean(Kind::Float)
        .double_value(&[])
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a.to_device(Device::Cpu) - b.to_device(Device::Cpu))
        .abs()
        .max()
        .double_value(&[])
}

fn golden_tensor(t: &earl_golden::Tensor, codes: bool) -> Tensor {
    let shape: Vec<i64> = t.shape.iter().map(|&d| d as i64).collect();
    let flat = if codes {
        Tensor::from_slice(&t.as_i64())
    } else {
        Tensor::from_slice(&t.as_f32())
    };
    flat.reshape(shape)
}

fn parity(device: Device) -> Result<()> {
    let Some(golden) = earl_golden::dir() else {
        bail!("golden folder not found")
    };
    let dir = golden.join("vq_tiny");
    let inputs = earl_golden::read_tensors(&dir.join("inputs.safetensors"));
    let expected = earl_golden::read_tensors(&dir.join("expected.safetensors"));
    let cpu = VqModel::load(&dir, Device::Cpu, Kind::Float)?;
    let gpu = VqModel::load(&dir, device, Kind::Float)?;
    let gpu_bf16 = VqModel::load(&dir, device, Kind::BFloat16)?;
    println!("golden tiny VQ on {device:?}");
    for i in 0..3 {
        let pixels = golden_tensor(&inputs[&format!("pixels_{i}")], false);
        let codes = golden_tensor(&expected[&format!("codes_{i}")], true);
        let decoded = golden_tensor(&expected[&format!("decoded_{i}")], false);
        let cpu_codes = cpu.encode(&pixels)?;
        let gpu_codes = gpu.encode(&pixels)?;
        let bf16_codes = gpu_bf16.encode(&pixels)?;
        let gpu_decoded = gpu.decode(&codes)?;
        let bf16_decoded = gpu_bf16.decode(&codes)?;
        println!(
            "  case {i} {:?}: fp32 codes == CPU: {} ({:.2}% equal), == upstream {:.2}%; \
             decoded max diff fp32 {:.2e}, bf16 {:.2e}; bf16 codes changed {:.2}%",
            pixels.size(),
            gpu_codes.to_device(Device::Cpu).equal(&cpu_codes),
            100.0 * fraction_equal(&gpu_codes, &cpu_codes),
            100.0 * fraction_equal(&gpu_codes, &codes),
            max_abs_diff(&gpu_decoded, &decoded),
            max_abs_diff(&bf16_decoded, &decoded),
            100.0 * (1.0 - fraction_equal(&bf16_codes, &cpu_codes)),
        );
    }
    Ok(())
}

fn throughput(device: Device, args: &Args) -> Result<()> {
    let config = VqConfig::emu3();
    let spec = BenchSpec {
        batch_sizes: args.batch.clone(),
        height: args.size,
        width: args.size,
        iters: args.iters,
        warmup: 1,
        seed: 0,
    };
    let pixels = earl_vq::random_pixels([8, 3, args.size, args.size], 1)?;
    let mut fp32_codes = None;
    for kind in [Kind::Float, Kind::BFloat16] {
        let model = VqModel::random(&config, 0, device, kind)?;
        let codes = model.encode(&pixels)?.to_device(Device::Cpu);
        if let Some(reference) = &fp32_codes {
            println!(
                "released shape, random weights: bf16 changes {:.2}% of codes",
                100.0 * (1.0 - fraction_equal(&codes, reference))
            );
        }
        fp32_codes.get_or_insert(codes);
        let rows = earl_vq::bench_encode(&model, &spec)?;
        println!("released shape (ch 256), random weights, {device:?} {kind:?}:");
        print!("{}", earl_vq::format_table(&rows));
    }
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    let device = earl_vq::parse_device(&args.device).context("--device")?;
    tch::Cuda::cudnn_set_benchmark(true);
    parity(device)?;
    if !args.parity_only {
        throughput(device, &args)?;
    }
    Ok(())
}
