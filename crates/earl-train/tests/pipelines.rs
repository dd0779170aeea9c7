//! The shipped training configs parse and validate.

use std::path::Path;

use earl_train::TrainConfig;

#[test]
fn shipped_configs_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines");
    let emu3 = TrainConfig::load(&dir.join("sft-emu3.toml")).unwrap();
    assert_eq!(
        (emu3.optim.lr, emu3.optim.min_lr, emu3.schedule.warmup_steps),
        (1e-4, 1e-5, 30)
    );
    assert!(emu3.model.bf16 && emu3.model.activation_checkpointing);
    assert_eq!(
        (emu3.data.context_length, emu3.data.image_area),
        (3000, 65536)
    );
    let tiny = TrainConfig::load(&dir.join("sft-tiny.toml")).unwrap();
    assert_eq!(tiny.model.random.unwrap()["vocab_size"], 184622);
}
