//! The model against the upstream PyTorch reference outputs in ../shared/golden/vq_tiny:
//! latents, codes and decoded pixels for three image sizes, one of them odd.

use std::path::PathBuf;

use earl_vq::{EncodeMode, VqConfig, VqModel};
use tch::{Device, Kind, Tensor};

fn golden_vq() -> Option<PathBuf> {
    earl_golden::dir().map(|dir| dir.join("vq_tiny"))
}

fn to_tensor(t: &earl_golden::Tensor) -> Tensor {
    let shape: Vec<i64> = t.shape.iter().map(|&d| d as i64).collect();
    Tensor::from_slice(&t.as_f32()).reshape(shape)
}

fn to_codes(t: &earl_golden::Tensor) -> Tensor {
    let shape: Vec<i64> = t.shape.iter().map(|&d| d as i64).collect();
    Tensor::from_slice(&t.as_i64()).reshape(shape)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a - b).abs().max().double_value(&[])
}

fn fraction_equal(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    a.eq_tensor(b)
        .to_kind(Kind::Float)
        .mean(Kind::Float)
        .double_value(&[])
}

/// The three golden cases: (pixels, latent, codes, decoded).
fn cases(dir: &std::path::Path) -> Vec<(Tensor, Tensor, Tensor, Tensor)> {
    let inputs = earl_golden::read_tensors(&dir.join("inputs.safetensors"));
    let expected = earl_golden::read_tensors(&dir.join("expected.safetensors"));
    (0..3)
        .map(|i| {
            (
                to_tensor(&inputs[&format!("pixels_{i}")]),
                to_tensor(&expected[&format!("latent_{i}")]),
                to_codes(&expected[&format!("codes_{i}")]),
                to_tensor(&expected[&format!("decoded_{i}")]),
            )
        })
        .collect()
}

#[test]
fn matches_upstream_on_the_golden_cases() {
    let Some(dir) = golden_vq() else { return };
    let model = VqModel::load(&dir, Device::Cpu, Kind::Float).unwrap();
    for (i, (pixels, latent, codes, decoded)) in cases(&dir).iter().enumerate() {
        let ours_latent = model.latents(pixels, EncodeMode::OneFrame).unwrap();
        let scale = latent.abs().max().double_value(&[]);
        let latent_diff = max_abs_diff(&ours_latent, latent);
        let ours_codes = model.encode(pixels).unwrap();
        let same = fraction_equal(&ours_codes, codes);
        let ours_decoded = model.decode(codes).unwrap();
        let decoded_diff = max_abs_diff(&ours_decoded, decoded);
        println!(
            "case {i} {:?}: latent max diff {latent_diff:.3e} (scale {scale:.2}), codes equal \
             {:.2}%, decoded max diff {decoded_diff:.3e}",
            pixels.size(),
            same * 100.0
        );
        assert!(
            latent_diff / scale < 1e-3,
            "case {i}: latents differ by {latent_diff}"
        );
        assert!(same >= 0.99, "case {i}: only {same} of the codes match");
        assert!(
            decoded_diff < 1e-3,
            "case {i}: decoded pixels differ by {decoded_diff}"
        );
    }
}

#[test]
fn one_frame_encoding_equals_upstream_style() {
    let Some(dir) = golden_vq() else { return };
    let model = VqModel::load(&dir, Device::Cpu, Kind::Float).unwrap();
    for (pixels, ..) in cases(&dir) {
        let once = model.encode_with(&pixels, EncodeMode::OneFrame).unwrap();
        let upstream = model
            .encode_with(&pixels, EncodeMode::UpstreamStyle)
            .unwrap();
        assert!(
            once.equal(&upstream),
            "codes differ for {:?}",
            pixels.size()
        );
        let a = model.latents(&pixels, EncodeMode::OneFrame).unwrap();
        let b = model.latents(&pixels, EncodeMode::UpstreamStyle).unwrap();
        println!(
            "{:?}: one-frame vs upstream-style latents {:.3e}",
            pixels.size(),
            max_abs_diff(&a, &b)
        );
    }
}

#[test]
fn a_batch_encodes_and_decodes_like_its_images() {
    let Some(dir) = golden_vq() else { return };
    let model = VqModel::load(&dir, Device::Cpu, Kind::Float).unwrap();
    let (pixels, _, codes, decoded) = cases(&dir).swap_remove(0);
    let batch = Tensor::cat(&[&pixels, &pixels.flip([3])], 0);
    let batch_codes = model.encode(&batch).unwrap();
    assert_eq!(batch_codes.size(), [2, 8, 8]);
    assert!(fraction_equal(&batch_codes.narrow(0, 0, 1), &codes) >= 0.99);
    let flipped_alone = model.encode(&pixels.flip([3])).unwrap();
    assert!(batch_codes.narrow(0, 1, 1).equal(&flipped_alone));
    let both = Tensor::cat(&[&codes, &codes], 0);
    let pixels_out = model.decode(&both).unwrap();
    assert!(max_abs_diff(&pixels_out.narrow(0, 1, 1), &decoded) < 1e-3);
}

#[test]
fn identifies_the_checkpoint_and_ships_its_config() {
    let Some(dir) = golden_vq() else { return };
    let model = VqModel::load(&dir, Device::Cpu, Kind::Float).unwrap();
    let sha = earl_vq::checkpoint_sha256(&dir).unwrap();
    assert_eq!(sha.len(), 64);
    assert_eq!(model.checkpoint_id(), sha);
    let golden = VqConfig::from_file(&dir.join("config.json")).unwrap();
    assert_eq!(golden, VqConfig::tiny());
    assert_eq!(model.config(), &golden);
}

/// A model folder with the golden weights and a different config.json.
fn folder_with_config(dir: &std::path::Path, config: &VqConfig) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("config.json"),
        serde_json::to_string(config).unwrap(),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        dir.join("model.safetensors"),
        tmp.path().join("model.safetensors"),
    )
    .unwrap();
    tmp
}

#[test]
fn a_config_that_does_not_fit_the_weights_is_refused_by_name() {
    let Some(dir) = golden_vq() else { return };
    let expect = |config: VqConfig, needle: &str| {
        let tmp = folder_with_config(&dir, &config);
        let err = VqModel::load(tmp.path(), Device::Cpu, Kind::Float)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains(needle), "expected `{needle}` in: {err}");
    };
    let tiny = VqConfig::tiny();
    expect(
        VqConfig {
            ch: 64,
            ..tiny.clone()
        },
        "`encoder.conv_in.weight` has shape [32, 3, 3, 3]",
    );
    expect(
        VqConfig {
            attn_resolutions: vec![2, 3],
            ..tiny.clone()
        },
        "no tensor `encoder.down.2.attn.0.norm.weight`",
    );
    expect(
        VqConfig {
            num_res_blocks: 1,
            ..tiny.clone()
        },
        "tensor(s) the config does not use",
    );
    expect(
        VqConfig {
            codebook_size: 512,
            ..tiny
        },
        "`quantize.embedding.weight`",
    );
}

#[test]
fn random_models_are_reproducible_and_check_their_inputs() {
    let config = VqConfig::tiny();
    let a = VqModel::random(&config, 7, Device::Cpu, Kind::Float).unwrap();
    let b = VqModel::random(&config, 7, Device::Cpu, Kind::Float).unwrap();
    let pixels = earl_vq::random_pixels([2, 3, 40, 56], 1).unwrap();
    let codes = a.encode(&pixels).unwrap();
    assert_eq!(codes.size(), [2, 5, 7]);
    assert!(codes.equal(&b.encode(&pixels).unwrap()));
    assert_eq!(a.checkpoint_id(), b.checkpoint_id());
    assert!(a.checkpoint_id().starts_with("random:config-"));
    let distinct = codes
        .flatten(0, -1)
        .unique_dim(0, true, false, false)
        .0
        .size()[0];
    assert!(
        distinct > 10,
        "a random model should use many codes, used {distinct}"
    );
    let image = a.decode(&codes).unwrap();
    assert_eq!(image.size(), [2, 3, 40, 56]);
    assert_eq!(image.kind(), Kind::Float);

    let msg = |r: earl_vq::Result<Tensor>| r.err().unwrap().to_string();
    assert!(
        msg(a.encode(&Tensor::zeros([1, 4, 64, 64], (Kind::Float, Device::Cpu))))
            .contains("[batch, 3, height, width]")
    );
    assert!(
        msg(a.encode(&Tensor::zeros([1, 3, 4, 64], (Kind::Float, Device::Cpu))))
            .contains("at least 8")
    );
    assert!(
        msg(a.encode(&Tensor::zeros([1, 3, 64, 64], (Kind::Int64, Device::Cpu))))
            .contains("floating-point")
    );
    assert!(
        msg(a.decode(&Tensor::from_slice(&[0i64, 1024]).reshape([1, 1, 2]))).contains("code 1024")
    );
    assert!(msg(a.decode(&Tensor::from_slice(&[-1i64, 3]).reshape([1, 1, 2]))).contains("code -1"));
    assert!(
        msg(a.decode(&Tensor::zeros([1, 2, 2], (Kind::Float, Device::Cpu)))).contains("integer")
    );
    assert!(VqModel::random(&config, 0, Device::Cpu, Kind::Half).is_err());
}

#[test]
fn the_benchmark_compares_both_encoders() {
    let model = VqModel::random(&VqConfig::tiny(), 0, Device::Cpu, Kind::Float).unwrap();
    let spec = earl_vq::BenchSpec {
        batch_sizes: vec![1, 2],
        height: 32,
        width: 48,
        iters: 1,
        warmup: 0,
        seed: 3,
    };
    let rows = earl_vq::bench_encode(&model, &spec).unwrap();
    assert_eq!(rows.len(), 2);
    for row in &rows {
        assert!(row.codes_identical);
        assert!(row.encode_images_per_s > 0.0 && row.upstream_encode_images_per_s > 0.0);
    }
    let table = earl_vq::format_table(&rows);
    assert_eq!(table.lines().count(), 3, "{table}");
}
