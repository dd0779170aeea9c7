//! Client throughput against a loopback server with 200 ms latency:
//! `cargo run -p earl-vlm --example bench_vlm [seconds_per_level]`.

fn main() {
    let mut opts = earl_vlm::bench::BenchOptions::default();
    if let Some(s) = std::env::args().nth(1).and_then(|s| s.parse().ok()) {
        opts.seconds_per_level = s;
    }
    match earl_vlm::bench::run(&opts) {
        Ok(rows) => print!("{}", earl_vlm::bench::render(&rows, &opts)),
        Err(e) => {
            eprintln!("bench failed: {e}");
            std::process::exit(1);
        }
    }
}
