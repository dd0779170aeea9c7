//! Tokenize throughput (prep, encode, pipeline) for the tiny and the real VQ shape with random
//! weights, batch 1/8/32.
//!
//! `cargo run -p earl-tokenize --example bench_tokenize -- [cpu|cuda] [fp32|bf16] [images]`

use earl_tokenize::{TokenizeBenchSpec, bench_tokenize, format_bench};
use earl_vq::{VqConfig, VqModel, parse_device, parse_kind};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let device = parse_device(args.first().map_or("cpu", String::as_str))?;
    let kind = parse_kind(args.get(1).map_or("fp32", String::as_str))?;
    let images: usize = args.get(2).map_or(Ok(32), |a| a.parse())?;
    for (name, config) in [("tiny", VqConfig::tiny()), ("emu3", VqConfig::emu3())] {
        let model = VqModel::random(&config, 0, device, kind)?;
        let spec = TokenizeBenchSpec {
            images,
            ..Default::default()
        };
        println!("VQ {name} (random weights), {device:?} {kind:?}, 1024x768 JPEG -> area 65536");
        print!("{}", format_bench(&bench_tokenize(&model, &spec)?));
    }
    Ok(())
}
