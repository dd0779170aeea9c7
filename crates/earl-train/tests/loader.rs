//! The streaming loader over real tokens.v1 shards: mixture proportions, determinism, resume,
//! rank split, and unreadable shards.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use earl_model::{Emu3Tokenizer, Sample};
use earl_train::loader::{Loader, LoaderConfig, Position, Source, coefficients};

fn tokenizer() -> Arc<Emu3Tokenizer> {
    Arc::new(Emu3Tokenizer::load(None).expect("qwen.tiktoken (pip install dashscope)"))
}

fn config(sources: &[Source], table: &[(&str, f64)]) -> LoaderConfig {
    let table: BTreeMap<String, f64> = table.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    LoaderConfig {
        coefficients: coefficients(sources, &table).unwrap(),
        context_length: 1000,
        image_area: 0,
        shuffle_buffer: 8,
        prefetch: 4,
        holdout_fraction: 0.0,
        use_cot: false,
        seed: 11,
        epochs: Some(1),
        rank: 0,
        world_size: 1,
    }
}

fn drain(mut loader: Loader) -> (Vec<Sample>, Loader) {
    let mut all = Vec::new();
    loop {
        let batch = loader.next_batch(5);
        if batch.is_empty() {
            return (all, loader);
        }
        all.extend(batch);
    }
}

/// Rows of the 2x2 dataset have 2 end-of-line tokens per image, the 3x3 ones 3.
fn is_small(sample: &Sample, tok: &Emu3Tokenizer) -> bool {
    sample
        .input_ids
        .iter()
        .filter(|&&t| t == tok.special().eol)
        .count()
        == 4
}

fn two_datasets(root: &Path) -> Vec<Source> {
    let a = common::write_dataset(&root.join("big"), 40, (2, 2), 64, 10, "train", 1);
    let b = common::write_dataset(&root.join("small"), 10, (3, 3), 64, 4, "train", 2);
    vec![Source::open(&a).unwrap(), Source::open(&b).unwrap()]
}

#[test]
fn coefficients_set_each_dataset_share_as_upstream() {
    let root = tempfile::tempdir().unwrap();
    let sources = two_datasets(root.path());
    let tok = tokenizer();

    // No coefficients: every dataset upsampled to the largest (40 + 40).
    let loader = Loader::start(
        sources.clone(),
        config(&sources, &[]),
        tok.clone(),
        Position::default(),
    );
    let (all, _) = drain(loader);
    let small = all.iter().filter(|s| is_small(s, &tok)).count();
    assert_eq!((small, all.len() - small), (40, 40));
    // Interleaved, not concatenated: the first half holds about half of each.
    let first_half = all[..40].iter().filter(|s| is_small(s, &tok)).count();
    assert!(
        (12..=28).contains(&first_half),
        "first half has {first_half} of the big dataset"
    );

    // big x 0.5, small x 2.5 -> 20 + 25.
    let cfg = config(&sources, &[("big", 0.5), ("small", 2.5)]);
    let (all, loader) = drain(Loader::start(
        sources.clone(),
        cfg,
        tok.clone(),
        Position::default(),
    ));
    let small = all.iter().filter(|s| is_small(s, &tok)).count();
    assert_eq!((small, all.len() - small), (20, 25));
    assert_eq!(loader.stats().samples, 45);

    // A coefficient for a dataset that is not there is refused.
    let table = BTreeMap::from([("nope".to_string(), 1.0)]);
    assert!(coefficients(&sources, &table).is_err());
}

#[test]
fn stream_is_deterministic_resumable_and_split_by_rank() {
    let root = tempfile::tempdir().unwrap();
    let sources = two_datasets(root.path());
    let tok = tokenizer();
    let cfg = config(&sources, &[]);
    let (all, _) = drain(Loader::start(
        sources.clone(),
        cfg.clone(),
        tok.clone(),
        Position::default(),
    ));
    let (again, _) = drain(Loader::start(
        sources.clone(),
        cfg.clone(),
        tok.clone(),
        Position::default(),
    ));
    assert_eq!(all, again);

    // Stop after 23 samples, resume from the saved position: the same tail.
    let mut loader = Loader::start(
        sources.clone(),
        cfg.clone(),
        tok.clone(),
        Position::default(),
    );
    let head = loader.next_batch(23);
    let position = loader.position();
    drop(loader);
    let (tail, _) = drain(Loader::start(
        sources.clone(),
        cfg.clone(),
        tok.clone(),
        position,
    ));
    assert_eq!([head, tail].concat(), all);

    // Two ranks partition the stream.
    let ranked = |rank| LoaderConfig {
        rank,
        world_size: 2,
        ..cfg.clone()
    };
    let (r0, _) = drain(Loader::start(
        sources.clone(),
        ranked(0),
        tok.clone(),
        Position::default(),
    ));
    let (r1, _) = drain(Loader::start(
        sources.clone(),
        ranked(1),
        tok.clone(),
        Position::default(),
    ));
    assert_eq!(r0.len() + r1.len(), all.len());
    let interleaved: Vec<Sample> = r0
        .iter()
        .zip(&r1)
        .flat_map(|(a, b)| [a.clone(), b.clone()])
        .collect();
    assert_eq!(interleaved, all);

    // A different seed, a different order.
    let (other, _) = drain(Loader::start(
        sources.clone(),
        LoaderConfig { seed: 12, ..cfg },
        tok,
        Position::default(),
    ));
    assert_ne!(other, all);
}

#[test]
fn too_long_rows_and_unreadable_shards_are_skipped_and_counted() {
    let root = tempfile::tempdir().unwrap();
    let dir = common::write_dataset(&root.path().join("cut"), 15, (2, 2), 64, 5, "train", 3);
    let source = Source::open(&dir).unwrap();
    assert_eq!(source.train_shards.len(), 3);
    // Truncate one shard (its Parquet footer is lost) and corrupt another's tail.
    let first = &source.train_shards[0].0;
    let bytes = std::fs::read(first).unwrap();
    std::fs::write(first, &bytes[..bytes.len() / 2]).unwrap();
    let second = &source.train_shards[1].0;
    let mut bytes = std::fs::read(second).unwrap();
    let n = bytes.len();
    bytes[n / 3..n - 8].fill(0xAB);
    std::fs::write(second, bytes).unwrap();

    let sources = vec![source];
    let tok = tokenizer();
    let cfg = config(&sources, &[]);
    let (all, loader) = drain(Loader::start(
        sources.clone(),
        cfg.clone(),
        tok.clone(),
        Position::default(),
    ));
    // The readable shard is repeated to fill the epoch's quota.
    assert_eq!(all.len(), 15);
    assert!(loader.stats().corrupt_shards >= 2, "{:?}", loader.stats());

    // Rows over the context length are dropped and counted.
    let short = LoaderConfig {
        context_length: 10,
        ..cfg
    };
    let (all, loader) = drain(Loader::start(sources, short, tok, Position::default()));
    assert!(all.is_empty());
    assert_eq!(loader.stats().too_long, 15);
}
