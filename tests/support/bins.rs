//! Running the workspace's binaries as a user would.
//!
//! The end-to-end tests in `tests/e2e/` are test targets of the package that owns the binary
//! (e.g. `crates/earl-data/Cargo.toml` lists `tests/e2e/data_*.rs`), so cargo builds the binary
//! in the same build and hands its path over as `CARGO_BIN_EXE_<name>`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("workspace root")
}

/// Runs a workspace binary (give `env!("CARGO_BIN_EXE_<name>")`) from the workspace root.
pub fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .current_dir(root())
        .output()
        .expect("running the binary")
}

/// The project's Python (`.venv`, made by `./setup.sh`), or `None` (with a reason printed)
/// outside CI when it is missing. Under `CI=true` a missing venv is a failure.
pub fn python() -> Option<PathBuf> {
    let py = root().join(".venv/bin/python");
    if py.is_file() {
        return Some(py);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{} missing: ./setup.sh makes it", py.display());
    }
    eprintln!("skipping: {} missing (run ./setup.sh)", py.display());
    None
}

/// Text of an output, for assertions with context.
pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
