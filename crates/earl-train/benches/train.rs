//! Training throughput of earl-train at a few sizes (plain timing, no harness):
//! `cargo bench -p earl-train --bench train`. Compare with `benches/torch_llama.py`.

use earl_train::bench::{BenchSpec, run};
use serde_json::json;

fn main() {
    let device = tch::Device::cuda_if_available();
    let sizes = [
        (
            "tiny (h64 l2, vocab 184622)",
            json!({"vocab_size": 184622, "hidden_size": 64,
            "intermediate_size": 176, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "attention_dropout": 0.0}),
            2,
            512,
        ),
        (
            "small (h512 l8, vocab 32768)",
            json!({"vocab_size": 32768, "hidden_size": 512,
            "intermediate_size": 1408, "num_hidden_layers": 8, "num_attention_heads": 8,
            "num_key_value_heads": 4, "attention_dropout": 0.0}),
            2,
            1024,
        ),
    ];
    println!("| model | params | batch x seq | tokens/s | s/step | peak RSS MiB |");
    println!("|---|---|---|---|---|---|");
    for (name, model, batch, seq_len) in sizes {
        let spec = BenchSpec {
            model,
            batch,
            seq_len,
            steps: 3,
            device,
            activation_checkpointing: false,
            bf16: false,
        };
        match run(&spec) {
            Ok(r) => println!(
                "| {name} | {} | {batch} x {seq_len} | {:.0} | {:.3} | {} |",
                r.parameters,
                r.tokens_per_s,
                r.seconds_per_step,
                r.peak_rss_bytes >> 20
            ),
            Err(e) => println!("| {name} | error: {e} |"),
        }
    }
}
