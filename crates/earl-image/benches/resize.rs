// `cargo bench -p earl-image`: decode + smart resize throughput on the images given as
// arguments (default: the four golden images). Compare with `benches/pillow_resize.py`.

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let files: Vec<std::path::PathBuf> = if args.is_empty() {
        let Some(golden) = earl_golden::dir() else {
            return;
        };
        ["chelsea.png", "coffee.png", "camera.png", "horse.png"]
            .iter()
            .map(|f| golden.join("image_resize").join(f))
            .collect()
    } else {
        args.iter().map(Into::into).collect()
    };
    let images: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(f).unwrap_or_else(|e| panic!("reading {}: {e}", f.display())))
        .collect();
    for area in [65_536, 262_144] {
        match earl_image::bench_resize(&images, area, 20) {
            Ok(report) => println!("{report}"),
            Err(e) => panic!("benchmark image refused: {e}"),
        }
    }
}
