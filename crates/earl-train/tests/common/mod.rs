//! Shared test support: synthetic token datasets written through earl-format, and tiny configs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use earl_format::{DatasetWriter, FinishInfo, Opened, SchemaKind, TokenRow, WriterOptions};
use earl_train::TrainConfig;
use earl_train::rng::Rng;

/// Writes a `tokens.v1` dataset of `rows` rows (`h` x `w` random codes below `alphabet`) into
/// `dir`, cutting a shard every `rows_per_shard` rows. `split` names every row's split.
pub fn write_dataset(
    dir: &Path,
    rows: usize,
    (h, w): (u16, u16),
    alphabet: u64,
    rows_per_shard: usize,
    split: &str,
    seed: u64,
) -> PathBuf {
    let opts = WriterOptions {
        target_shard_bytes: 1,
        ..WriterOptions::for_kind(SchemaKind::Tokens)
    };
    let Opened::Writer(mut writer) =
        DatasetWriter::open(dir, SchemaKind::Tokens, opts, "earl-train test").unwrap()
    else {
        panic!("fresh directory expected")
    };
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let mut rng = Rng::new(seed);
    let mut codes = |n: usize| {
        (0..n)
            .map(|_| rng.below(alphabet) as u16)
            .collect::<Vec<_>>()
    };
    let all: Vec<TokenRow> = (0..rows)
        .map(|i| TokenRow {
            id: format!("{name}/{i}"),
            source_dataset: name.clone(),
            upstream_id: i.to_string(),
            split: split.into(),
            instruction: format!("edit number {i}"),
            source_codes: codes(usize::from(h * w)),
            source_h: h,
            source_w: w,
            target_codes: codes(usize::from(h * w)),
            target_h: h,
            target_w: w,
            cot_text: None,
            cot_bbox: None,
            vq_checkpoint: "test".into(),
            image_area: 65536,
        })
        .collect();
    write_rows(&mut writer, &all, rows_per_shard, split);
    writer
        .finish(serde_json::json!({"done": true}), FinishInfo::default())
        .unwrap();
    dir.to_owned()
}

fn write_rows(writer: &mut Box<DatasetWriter>, rows: &[TokenRow], per_shard: usize, split: &str) {
    for (k, chunk) in rows.chunks(per_shard.max(1)).enumerate() {
        let batch = TokenRow::to_batch(chunk).unwrap();
        writer.write(split, &batch, &[]).unwrap();
        writer.commit(serde_json::json!({ "chunk": k })).unwrap();
    }
}

/// A tiny Emu3 (hidden 64, 2 layers, the full 184622-token vocabulary) config for CPU tests.
pub fn tiny_config() -> TrainConfig {
    let text = r#"
seed = 3
[model]
device = "cpu"
[model.random]
vocab_size = 184622
hidden_size = 64
intermediate_size = 176
num_hidden_layers = 2
num_attention_heads = 4
num_key_value_heads = 2
attention_dropout = 0.0
[data]
context_length = 400
micro_batch_size = 4
shuffle_buffer = 16
prefetch = 8
[optim]
lr = 1e-2
min_lr = 1e-3
weight_decay = 0.0
[schedule]
warmup_steps = 0
total_steps = 6
[checkpoint]
every = 0
keep_last = 2
"#;
    let config: TrainConfig = toml::from_str(text).unwrap();
    config.validate().unwrap();
    config
}
