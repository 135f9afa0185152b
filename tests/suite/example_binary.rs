//! Where the example programs are that `cargo test` builds: `target/<profile>/examples/`,
//! beside the `target/<profile>/deps/` that holds the test binary. A run that selects
//! only the suite (`cargo test --test suite ...`) does not build them: build them first
//! with `cargo build --examples` in the same profile (`--release` for `cargo test
//! --release`).

use std::path::{Path, PathBuf};

/// The path of the example program `name` built in this test binary's profile.
///
/// Panics, naming the missing file and the command that builds it, if it is not there.
pub fn path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let path = profile
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: `cargo test` builds the examples; with `--test suite` alone, \
         run `cargo build --examples` in the same profile first",
        path.display()
    );
    path
}
