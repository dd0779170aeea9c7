//! Parity of the Emu3 decoder with upstream on the tiny random model (`golden/lm_tiny`).

use std::path::{Path, PathBuf};

use earl_model::{Emu3Config, Emu3ForCausalLM, KvCache, load_safetensors, save_safetensors};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

struct Golden {
    dir: PathBuf,
    input_ids: Tensor,
    attention_mask: Tensor,
    position_ids: Tensor,
    labels: Tensor,
    logits: Tensor,
    loss: f64,
    greedy: Vec<i64>,
}

fn golden() -> Option<Golden> {
    let dir = earl_golden::dir()?.join("lm_tiny");
    let t = earl_golden::read_tensors(&dir.join("expected.safetensors"));
    let int = |k: &str| {
        let x = &t[k];
        let shape: Vec<i64> = x.shape.iter().map(|&d| d as i64).collect();
        Tensor::from_slice(&x.as_i64()).view(shape.as_slice())
    };
    let logits = {
        let x = &t["logits"];
        let shape: Vec<i64> = x.shape.iter().map(|&d| d as i64).collect();
        Tensor::from_slice(&x.as_f32()).view(shape.as_slice())
    };
    let cases = earl_golden::read_json(&dir.join("cases.json"));
    Some(Golden {
        input_ids: int("input_ids"),
        attention_mask: int("attention_mask"),
        position_ids: int("position_ids"),
        labels: int("labels"),
        logits,
        loss: cases["loss"].as_f64().unwrap(),
        greedy: cases["greedy_row0_new_tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect(),
        dir,
    })
}

fn load(dir: &Path) -> (VarStore, Emu3ForCausalLM) {
    let config = Emu3Config::from_file(&dir.join("config.json")).unwrap();
    let vs = VarStore::new(Device::Cpu);
    let model = Emu3ForCausalLM::new(vs.root(), &config).unwrap();
    load_safetensors(&vs, dir).unwrap();
    (vs, model)
}

/// Max |a - b| over the positions where `mask` is 1.
fn max_diff_masked(a: &Tensor, b: &Tensor, mask: &Tensor) -> f64 {
    let keep = mask.ne(0).unsqueeze(-1).to_kind(Kind::Float);
    ((a - b).abs() * keep).max().double_value(&[])
}

#[test]
fn logits_and_loss_match_upstream() {
    let Some(g) = golden() else { return };
    let (_vs, model) = load(&g.dir);
    let logits = tch::no_grad(|| {
        model
            .forward(&g.input_ids, &g.position_ids, &g.attention_mask, false)
            .unwrap()
    });
    let diff = max_diff_masked(&logits, &g.logits, &g.attention_mask);
    println!("lm_tiny logits max abs diff (real positions): {diff:.3e}");
    assert!(diff < 1e-4, "logits differ by {diff}");

    let loss = Emu3ForCausalLM::loss(&logits, &g.labels)
        .unwrap()
        .double_value(&[]);
    println!("lm_tiny loss {loss:.7} (upstream {:.7})", g.loss);
    assert!((loss - g.loss).abs() < 1e-4, "loss {loss} vs {}", g.loss);
}

#[test]
fn greedy_generation_with_cache_matches_upstream() {
    let Some(g) = golden() else { return };
    let (_vs, model) = load(&g.dir);
    let row0 = g.input_ids.narrow(0, 0, 1);
    let new = model
        .generate_greedy(&row0, &Tensor::ones_like(&row0), 8)
        .unwrap();
    assert_eq!(Vec::<i64>::try_from(new.view([-1])).unwrap(), g.greedy);

    // The same continuation for row 0 when it is batched with a left-padded row.
    let batched = model
        .generate_greedy(&g.input_ids, &g.attention_mask, 8)
        .unwrap();
    assert_eq!(Vec::<i64>::try_from(batched.get(0)).unwrap(), g.greedy);

    // Cached step logits equal a full forward over prompt + generated tokens (padded row too).
    let _no_grad = tch::no_grad_guard();
    let full_ids = Tensor::cat(&[&g.input_ids, &batched], 1);
    let mask = Tensor::cat(&[&g.attention_mask, &Tensor::ones_like(&batched)], 1);
    let positions = (mask.cumsum(-1, Kind::Int64) - 1).masked_fill(&mask.eq(0), 1);
    let full = model.forward(&full_ids, &positions, &mask, false).unwrap();
    let mut cache = KvCache::new(model.layers().len());
    let t = g.input_ids.size()[1];
    let prefix = model
        .forward_cached(
            &g.input_ids,
            &positions.narrow(1, 0, t),
            &mask.narrow(1, 0, t),
            &mut cache,
        )
        .unwrap();
    let step = model
        .forward_cached(
            &batched.narrow(1, 0, 1),
            &positions.narrow(1, t, 1),
            &mask.narrow(1, 0, t + 1),
            &mut cache,
        )
        .unwrap();
    let cached = Tensor::cat(&[prefix, step], 1);
    let diff = max_diff_masked(
        &cached,
        &full.narrow(1, 0, t + 1),
        &mask.narrow(1, 0, t + 1),
    );
    assert!(diff < 1e-4, "cached logits differ by {diff}");
}

#[test]
fn dropout_only_in_training() {
    let Some(g) = golden() else { return };
    let mut config = Emu3Config::from_file(&g.dir.join("config.json")).unwrap();
    config.attention_dropout = 0.5;
    let vs = VarStore::new(Device::Cpu);
    let model = Emu3ForCausalLM::new(vs.root(), &config).unwrap();
    load_safetensors(&vs, &g.dir).unwrap();
    let run = |train| {
        model
            .forward(&g.input_ids, &g.position_ids, &g.attention_mask, train)
            .unwrap()
    };
    let eval = run(false);
    assert!(max_diff_masked(&eval, &g.logits, &g.attention_mask) < 1e-4);
    let train = run(true);
    assert!(max_diff_masked(&train, &g.logits, &g.attention_mask) > 1e-2);
    // Training mode still gives finite, differentiable logits and loss.
    let loss = Emu3ForCausalLM::loss(&train, &g.labels).unwrap();
    loss.backward();
    let grad = vs.variables()["model.layers.0.self_attn.q_proj.weight"].grad();
    assert!(
        grad.isfinite().all().int64_value(&[]) == 1
            && grad.abs().sum(Kind::Float).double_value(&[]) > 0.0
    );
}

#[test]
fn checkpoint_round_trip_keeps_upstream_names() {
    let Some(g) = golden() else { return };
    let (vs, model) = load(&g.dir);
    let upstream = earl_golden::read_tensors(&g.dir.join("model.safetensors"));
    let mut names: Vec<String> = vs.variables().into_keys().collect();
    names.sort();
    assert_eq!(names, upstream.keys().cloned().collect::<Vec<_>>());

    let tmp = std::env::temp_dir().join(format!("earl-model-ckpt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    // Small shards, so the index path is exercised; then a single file replaces them.
    earl_model::checkpoint::save_with_shard_size(&vs, model.config(), &tmp, 400_000).unwrap();
    assert!(tmp.join("model.safetensors.index.json").is_file());
    assert!(!tmp.join("model.safetensors").exists());
    let reloaded = load(&tmp).1;
    let _no_grad = tch::no_grad_guard();
    let a = model
        .forward(&g.input_ids, &g.position_ids, &g.attention_mask, false)
        .unwrap();
    let b = reloaded
        .forward(&g.input_ids, &g.position_ids, &g.attention_mask, false)
        .unwrap();
    assert_eq!(max_diff_masked(&a, &b, &g.attention_mask), 0.0);

    save_safetensors(&vs, model.config(), &tmp).unwrap();
    assert!(tmp.join("model.safetensors").is_file());
    assert!(!tmp.join("model.safetensors.index.json").exists());
    let saved = earl_golden::read_tensors(&tmp.join("model.safetensors"));
    assert_eq!(
        saved.keys().collect::<Vec<_>>(),
        upstream.keys().collect::<Vec<_>>()
    );
    let config = earl_golden::read_json(&tmp.join("config.json"));
    assert_eq!(config["model_type"], "Emu3");
    assert_eq!(config["num_key_value_heads"], 2);

    // A config that does not fit the weights fails naming the tensor.
    let mut wrong = model.config().clone();
    wrong.intermediate_size = 128;
    let vs2 = VarStore::new(Device::Cpu);
    let _m = Emu3ForCausalLM::new(vs2.root(), &wrong).unwrap();
    let err = load_safetensors(&vs2, &tmp).unwrap_err().to_string();
    assert!(err.contains("mlp") && err.contains("shape"), "{err}");
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn bf16_model_loads_and_runs() {
    let Some(g) = golden() else { return };
    let config = Emu3Config::from_file(&g.dir.join("config.json")).unwrap();
    let mut vs = VarStore::new(Device::Cpu);
    vs.set_kind(Kind::BFloat16);
    let model = Emu3ForCausalLM::new(vs.root(), &config).unwrap();
    load_safetensors(&vs, &g.dir).unwrap();
    let logits = tch::no_grad(|| {
        model
            .forward(&g.input_ids, &g.position_ids, &g.attention_mask, false)
            .unwrap()
    });
    assert_eq!(logits.kind(), Kind::BFloat16);
    let diff = max_diff_masked(&logits.to_kind(Kind::Float), &g.logits, &g.attention_mask);
    println!("lm_tiny bf16 logits max abs diff: {diff:.3e}");
    assert!(diff < 0.1, "bf16 logits differ by {diff}");
}

/// On a machine with CUDA: the same logits and greedy tokens on the GPU, and a bf16 training
/// step (dropout on) that yields finite gradients. Skips (printing why) without CUDA.
#[test]
fn cuda_matches_cpu_when_available() {
    let Some(g) = golden() else { return };
    if !tch::Cuda::is_available() {
        eprintln!("skipping: no CUDA device");
        return;
    }
    let device = Device::Cuda(0);
    let config = Emu3Config::from_file(&g.dir.join("config.json")).unwrap();
    let vs = VarStore::new(device);
    let model = Emu3ForCausalLM::new(vs.root(), &config).unwrap();
    load_safetensors(&vs, &g.dir).unwrap();
    let logits = tch::no_grad(|| {
        model
            .forward(&g.input_ids, &g.position_ids, &g.attention_mask, false)
            .unwrap()
    });
    let diff = max_diff_masked(&logits.to_device(Device::Cpu), &g.logits, &g.attention_mask);
    println!("lm_tiny CUDA f32 logits max abs diff: {diff:.3e}");
    assert!(diff < 1e-3, "CUDA logits differ by {diff}");
    let row0 = g.input_ids.narrow(0, 0, 1);
    let new = model
        .generate_greedy(&row0, &Tensor::ones_like(&row0), 8)
        .unwrap();
    assert_eq!(
        Vec::<i64>::try_from(new.to_device(Device::Cpu).view([-1])).unwrap(),
        g.greedy
    );

    let mut config = config;
    config.attention_dropout = 0.1;
    let mut vs = VarStore::new(device);
    vs.set_kind(Kind::BFloat16);
    let model = Emu3ForCausalLM::new(vs.root(), &config).unwrap();
    load_safetensors(&vs, &g.dir).unwrap();
    let logits = model
        .forward(&g.input_ids, &g.position_ids, &g.attention_mask, true)
        .unwrap();
    let loss = Emu3ForCausalLM::loss(&logits, &g.labels).unwrap();
    loss.backward();
    for (name, var) in vs.variables() {
        let finite = var.grad().isfinite().all().int64_value(&[]) == 1;
        assert!(finite, "{name}: non-finite gradient");
    }
}
