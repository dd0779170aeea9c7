//! Parity with upstream: decode + convert("RGB") + smart size + Pillow bicubic resize, and the
//! normalised tensor, against `../shared/golden/image_resize` (made with Pillow).

use earl_image::{Limits, RgbImage, decode_rgb, resize_rgb, smart_size, to_pixel_values};

#[test]
fn resize_matches_pillow_on_golden_images() {
    let Some(golden) = earl_golden::dir() else {
        return;
    };
    let dir = golden.join("image_resize");
    let cases = earl_golden::read_json(&dir.join("cases.json"));
    let expected = earl_golden::read_tensors(&dir.join("expected.safetensors"));
    let cases = cases["cases"]
        .as_array()
        .expect("cases.json has a cases list");
    assert_eq!(cases.len(), 8);
    for case in cases {
        let file = case["file"].as_str().unwrap();
        let area = case["area"].as_u64().unwrap() as u32;
        let pair = |key: &str| {
            let v = case[key].as_array().unwrap();
            (v[0].as_u64().unwrap() as u32, v[1].as_u64().unwrap() as u32)
        };
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let rgb = decode_rgb(&bytes, &Limits::default()).unwrap();
        assert_eq!(rgb.dimensions(), pair("orig_wh"), "{file}");
        let (w, h) = smart_size(rgb.width(), rgb.height(), area);
        assert_eq!((w, h), pair("resized_wh"), "{file}@{area}");
        let ours = resize_rgb(&rgb, w, h);

        let want = &expected[&format!("{file}@{area}:rgb")];
        assert_eq!(want.shape, vec![h as usize, w as usize, 3]);
        let diffs: Vec<f64> = ours
            .as_raw()
            .iter()
            .zip(&want.values)
            .map(|(&a, &b)| (f64::from(a) - b).abs())
            .collect();
        let within_1 = diffs.iter().filter(|&&d| d <= 1.0).count() as f64 / diffs.len() as f64;
        let max = diffs.iter().cloned().fold(0.0, f64::max);
        let exact = diffs.iter().filter(|&&d| d == 0.0).count() as f64 / diffs.len() as f64;
        println!(
            "{file}@{area} {w}x{h}: exact {:.3}%, within 1 {:.3}%, max diff {max}",
            exact * 100.0,
            within_1 * 100.0
        );
        assert!(
            within_1 >= 0.995,
            "{file}@{area}: only {:.3}% within 1",
            within_1 * 100.0
        );
        assert!(max <= 3.0, "{file}@{area}: max diff {max}");

        if let Some(want) = expected.get(&format!("{file}@{area}:pixel_values")) {
            assert_eq!(want.shape, vec![1, 3, h as usize, w as usize]);
            // The formula on Pillow's own pixels, so this checks to_pixel_values alone.
            let pillow = RgbImage::from_raw(
                w,
                h,
                expected[&format!("{file}@{area}:rgb")]
                    .values
                    .iter()
                    .map(|&v| v as u8)
                    .collect(),
            )
            .unwrap();
            let max = to_pixel_values(&pillow)
                .iter()
                .zip(want.as_f32())
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(max <= 1e-6, "{file}@{area}: pixel_values differ by {max}");
        }
    }
}
