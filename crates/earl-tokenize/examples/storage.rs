//! Bytes per row of a tokens.v1 dataset at 256x256 (two 32x32 grids of uniformly random codes
//! from the 32768-entry Emu3 codebook: the incompressible worst case), for the storage figure
//! beside `benches/storage.py`.
//!
//! `cargo run -p earl-tokenize --example storage [rows, default 4096]`

use earl_format::{DatasetWriter, FinishInfo, Opened, SchemaKind, TokenRow, WriterOptions};
use rand::{Rng, SeedableRng};

fn main() -> anyhow::Result<()> {
    let rows: usize = std::env::args().nth(1).map_or(Ok(4096), |a| a.parse())?;
    let tmp = tempfile::tempdir()?;
    let opts = WriterOptions::for_kind(SchemaKind::Tokens);
    let Opened::Writer(mut w) = DatasetWriter::open(tmp.path(), SchemaKind::Tokens, opts, "x")?
    else {
        anyhow::bail!("fresh directory expected")
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let mut grid = || {
        (0..1024)
            .map(|_| rng.random_range(0..32768u16))
            .collect::<Vec<_>>()
    };
    for chunk in 0..rows.div_ceil(256) {
        let batch: Vec<TokenRow> = (chunk * 256..((chunk + 1) * 256).min(rows))
            .map(|i| TokenRow {
                id: format!("omniedit/{i:06}"),
                source_dataset: "omniedit".into(),
                upstream_id: format!("{i:06}"),
                split: "train".into(),
                instruction: "Turn the sky into a sunset with warm orange light.".into(),
                source_codes: grid(),
                source_h: 32,
                source_w: 32,
                target_codes: grid(),
                target_h: 32,
                target_w: 32,
                vq_checkpoint: "random".into(),
                image_area: 65536,
                ..Default::default()
            })
            .collect();
        w.count_read(batch.len() as u64);
        let sources: Vec<String> = batch.iter().map(|r| r.id.clone()).collect();
        w.write("train", &TokenRow::to_batch(&batch)?, &sources)?;
    }
    let m = w.finish(serde_json::json!({}), FinishInfo::default())?;
    let bytes: u64 = m.shards.iter().map(|s| s.bytes).sum();
    println!(
        "tokens.v1 (zstd Parquet), two 32x32 grids: {:.0} bytes/sample over {rows} rows \
         (raw u16 codes alone: 4096)",
        bytes as f64 / rows as f64
    );
    Ok(())
}
