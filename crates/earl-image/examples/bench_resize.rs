//! `cargo run -p earl-image --example bench_resize [FILES]`: the resize benchmark in the dev
//! profile, without building the release profile that `cargo bench` needs. Same body.

include!("../benches/resize.rs");
