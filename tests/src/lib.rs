//! Shared helpers of Tidemark's black-box tests and benchmarks: the compiled
//! plugins (built by `build.rs`) and the `tidemark` binary.

use std::path::PathBuf;

pub mod pg;

include!(concat!(env!("OUT_DIR"), "/plugins.rs"));

/// The `tidemark` binary of the same build profile as the running test.
/// `scripts/test.sh` builds it before running the tests.
pub fn tidemark_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test-binary> -> target/<profile>/tidemark
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("tidemark"))
        .expect("test binary has no parent directory");
    assert!(
        bin.exists(),
        "{} is missing: build it first (`cargo build --release -p tidemark`)",
        bin.display()
    );
    bin
}

/// A compiled-component cache directory shared by all tests of one build,
/// so each plugin is compiled once per suite run, not once per test.
pub fn shared_cache_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("tidemark-test-components"))
        .expect("test binary has no parent directory")
}
