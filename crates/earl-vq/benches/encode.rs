//! `cargo bench -p earl-vq`: one-frame vs upstream-style encoding on random weights.
//! Options come from the environment: VQ_BENCH_CONFIG (tiny|emu3, default tiny),
//! VQ_BENCH_DEVICE (default cpu), VQ_BENCH_KIND (fp32|bf16), VQ_BENCH_SIZE (default 256),
//! VQ_BENCH_BATCHES (default 1,4).

use std::env::var;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = var("VQ_BENCH_CONFIG").unwrap_or_else(|_| "tiny".into());
    let config = earl_vq::VqConfig::builtin(&name).ok_or(format!("unknown config {name}"))?;
    let device = earl_vq::parse_device(&var("VQ_BENCH_DEVICE").unwrap_or_else(|_| "cpu".into()))?;
    let kind = earl_vq::parse_kind(&var("VQ_BENCH_KIND").unwrap_or_else(|_| "fp32".into()))?;
    let size: i64 = var("VQ_BENCH_SIZE")
        .unwrap_or_else(|_| "256".into())
        .parse()?;
    let batch_sizes = var("VQ_BENCH_BATCHES")
        .unwrap_or_else(|_| "1,4".into())
        .split(',')
        .map(|b| b.trim().parse())
        .collect::<Result<Vec<i64>, _>>()?;
    let model = earl_vq::VqModel::random(&config, 0, device, kind)?;
    let spec = earl_vq::BenchSpec {
        batch_sizes,
        height: size,
        width: size,
        iters: 3,
        ..Default::default()
    };
    let rows = earl_vq::bench_encode(&model, &spec)?;
    println!(
        "config {name}, {device:?}, {kind:?}\n{}",
        earl_vq::format_table(&rows)
    );
    Ok(())
}
