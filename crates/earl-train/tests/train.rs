//! Whole training runs of a tiny Emu3 (full vocabulary) on CPU over real tokens.v1 shards.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use earl_train::metrics::read_jsonl;
use earl_train::{TrainConfig, TrainOptions, train};

fn dataset(root: &Path, rows: usize) -> PathBuf {
    common::write_dataset(&root.join("synthetic"), rows, (3, 3), 8, 4, "train", 5)
}

/// libtorch's random generator (dropout, initialisation) is process-global: runs in one test
/// process take turns so that each one's seeding holds.
static TORCH: Mutex<()> = Mutex::new(());

fn run(shards: &Path, config: &TrainConfig, out: &Path, max_steps: Option<u64>) -> Vec<f64> {
    let _turn = TORCH.lock().unwrap_or_else(|e| e.into_inner());
    let opts = TrainOptions {
        shards: vec![shards.to_owned()],
        config: config.clone(),
        out: out.to_owned(),
        max_steps,
    };
    train(&opts, &AtomicBool::new(false)).unwrap();
    read_jsonl(&out.join("metrics.jsonl"))
        .unwrap()
        .iter()
        .map(|m| m.loss)
        .collect()
}

#[test]
fn tiny_model_overfits_eight_samples() {
    let root = tempfile::tempdir().unwrap();
    let shards = dataset(root.path(), 8);
    let mut config = common::tiny_config();
    config.data.micro_batch_size = 8;
    config.schedule.total_steps = 24;
    config.schedule.warmup_steps = 0;
    config.optim.lr = 1e-2;
    config.optim.min_lr = 1e-2;
    config.eval.every = 0;
    let losses = run(&shards, &config, &root.path().join("run"), None);
    let (first, last) = (losses[0], *losses.last().unwrap());
    println!("overfit losses {losses:?}");
    assert_eq!(losses.len(), 24);
    assert!(last < 0.2 * first, "loss fell from {first} to only {last}");

    // The final checkpoint is a HF-style directory plus the trainer state.
    let ckpt = root.path().join("run/checkpoints/step-000024");
    for file in [
        "config.json",
        "model.safetensors",
        "optimizer.safetensors",
        "trainer.json",
    ] {
        assert!(ckpt.join(file).is_file(), "{file} missing");
    }
    let tb = std::fs::read_dir(root.path().join("run/tb"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let scalars = earl_train::tfevents::read_scalars(&tb.path()).unwrap();
    let logged: Vec<f32> = scalars
        .iter()
        .filter(|s| s.tag == "train/loss")
        .map(|s| s.value)
        .collect();
    assert_eq!(logged.len(), 24);
    assert!((f64::from(logged[23]) - last).abs() < 1e-4);
}

#[test]
fn stopped_and_resumed_run_matches_an_uninterrupted_one() {
    let root = tempfile::tempdir().unwrap();
    let shards = dataset(root.path(), 24);
    let mut config = common::tiny_config();
    // Dropout on, accumulation, warm-up, clipping and weight decay all in play.
    config.model.random.as_mut().unwrap()["attention_dropout"] = serde_json::json!(0.1);
    config.data.micro_batch_size = 2;
    config.optim.grad_accum = 2;
    config.optim.max_grad_norm = 1.0;
    config.optim.weight_decay = 0.1;
    config.schedule.warmup_steps = 2;
    config.schedule.total_steps = 6;
    config.checkpoint.keep_last = 1;
    config.eval.every = 3;
    config.eval.rows = 4;
    config.data.holdout_fraction = 0.2;

    let straight = run(&shards, &config, &root.path().join("straight"), None);
    let out = root.path().join("resumed");
    let first = run(&shards, &config, &out, Some(3));
    assert_eq!(first.len(), 3);
    assert!(out.join("checkpoints/step-000003/trainer.json").is_file());
    let resumed = run(&shards, &config, &out, None);
    println!("straight {straight:?}\nresumed  {resumed:?}");
    assert_eq!(resumed.len(), 6);
    for (a, b) in straight.iter().zip(&resumed) {
        assert!((a - b).abs() <= 1e-6, "straight {a} vs resumed {b}");
    }
    // Retention: only the newest checkpoint is kept.
    let kept: Vec<_> = std::fs::read_dir(out.join("checkpoints"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(kept.len(), 1);
    assert!(out.join("checkpoints/step-000006").is_dir());
    let val = read_jsonl(&out.join("metrics.jsonl")).unwrap();
    assert!(val[2].val_loss.is_some() && val[5].val_loss.is_some());
}

#[test]
fn activation_checkpointing_gives_the_same_losses() {
    let root = tempfile::tempdir().unwrap();
    let shards = dataset(root.path(), 8);
    let mut config = common::tiny_config();
    config.schedule.total_steps = 3;
    let plain = run(&shards, &config, &root.path().join("plain"), None);
    config.model.activation_checkpointing = true;
    let recomputed = run(&shards, &config, &root.path().join("recomputed"), None);
    println!("plain {plain:?}\nrecomputed {recomputed:?}");
    for (a, b) in plain.iter().zip(&recomputed) {
        assert!((a - b).abs() < 1e-4, "plain {a} vs recomputed {b}");
    }
}

#[test]
fn sigterm_leaves_a_checkpoint() {
    let root = tempfile::tempdir().unwrap();
    let shards = dataset(root.path(), 8);
    let config_path = root.path().join("sft.toml");
    let mut config = common::tiny_config();
    config.schedule.total_steps = 100_000;
    std::fs::write(&config_path, toml::to_string(&config).unwrap()).unwrap();
    let out = root.path().join("run");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_earl-train"))
        .args([
            "--shards",
            shards.to_str().unwrap(),
            "--config",
            config_path.to_str().unwrap(),
        ])
        .args(["--out", out.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let metrics = out.join("metrics.jsonl");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while std::fs::read_to_string(&metrics).map_or(true, |t| t.lines().count() < 2) {
        assert!(
            std::time::Instant::now() < deadline,
            "no training step within 120 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status}");
    let steps = read_jsonl(&metrics).unwrap().len() as u64;
    assert!(
        out.join(format!("checkpoints/step-{steps:06}/model.safetensors"))
            .is_file()
    );
}
