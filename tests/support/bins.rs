//! The workspace's binaries, for tests that run them as a user would.
//!
//! Cargo only builds a package's own binaries for its tests, so the end-to-end tests here ask
//! cargo to build `earl-data` / `earl-train` once (a no-op when fresh) and run them from the
//! target directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().expect("workspace root")
}

/// Path to a built binary of the workspace (`earl-data`, `earl-train`).
pub fn bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "--bin", "earl-data", "--bin", "earl-train"])
            .current_dir(root())
            .status()
            .expect("running cargo build");
        assert!(status.success(), "cargo build of the binaries failed");
    });
    // Tests run from target/<profile>/deps/; the binaries sit one level up.
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target profile dir");
    dir.join(name)
}

/// Runs `earl-data` with `args`, returning its output (stdout, stderr, status).
pub fn earl_data(args: &[&str]) -> Output {
    Command::new(bin("earl-data")).args(args).current_dir(root()).output().expect("running earl-data")
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
