//! The dataset card (`README.md`): YAML front matter that the `datasets` library reads
//! (`configs` to find the shards, `dataset_info` for features and splits), then a summary.

use crate::schema::card_feature;
use crate::{Manifest, SchemaKind};

pub(crate) fn render(m: &Manifest, title: &str) -> String {
    let splits = m.split_rows();
    let mut y = String::from("---\nconfigs:\n- config_name: default\n  data_files:\n");
    for split in splits.keys() {
        y += &format!("  - split: {split}\n    path: data/{split}-*.parquet\n");
    }
    y += "dataset_info:\n  features:\n";
    for spec in m.schema.fields() {
        y += &card_feature(spec);
    }
    y += "  splits:\n";
    for (split, (rows, bytes)) in &splits {
        y += &format!("  - name: {split}\n    num_bytes: {bytes}\n    num_examples: {rows}\n");
    }
    let total: u64 = splits.values().map(|v| v.1).sum();
    y += &format!("  download_size: {total}\n  dataset_size: {total}\n---\n\n");
    let kind = match m.schema {
        SchemaKind::Triplet => "image-editing triplets (source image, instruction, target image)",
        SchemaKind::Tokens => "pre-tokenized image-editing triplets (Emu3 VQ code grids)",
    };
    let c = &m.counts;
    y += &format!(
        "# {title}\n\n{kind}, schema `{}`, written by {}.\n\n\
         | split | rows | bytes |\n|---|---|---|\n",
        m.schema.tag(),
        m.tool
    );
    for (split, (rows, bytes)) in &splits {
        y += &format!("| {split} | {rows} | {bytes} |\n");
    }
    y += &format!(
        "\nRead {} rows: {} written, {} rejected, {} duplicates; {} unreadable files. \
         Rejected rows and their reasons are in `rejects/`; `manifest.json` lists every shard \
         with its sha256.\n\n```python\nfrom datasets import load_dataset\nds = load_dataset(\"<this directory>\")\n```\n",
        c.read, c.written, c.rejected, c.duplicate, c.bad_files
    );
    y
}
