//! Called from the `build.rs` of every package that links tch into a binary or a test.
//!
//! torch-sys exports the directory of the libtorch it linked as `DEP_TCH_LIBTORCH_LIB` to
//! packages that depend on it directly. We bake that directory into the rpath, and force
//! `libtorch_cuda.so` into the link when it exists: with `--as-needed` the linker would drop
//! it (nothing references it by symbol) and CUDA would silently be unavailable.

use std::path::Path;

pub fn link_libtorch() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        println!(
            "cargo:warning=DEP_TCH_LIBTORCH_LIB is unset: add torch-sys as a direct dependency"
        );
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    if Path::new(&lib).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}
