//! Compiles every plugin in `plugins/` for `wasm32-wasip2` and exposes each
//! `.wasm` path as a constant (`tidemark_tests::plugins::HELLO`), as
//! wasmtime's test-programs and spin's test-components do.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().to_path_buf();
    let plugins = root.join("plugins");
    for dir in ["plugins", "sdk", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out: keep the guest
    // build next to the host build so it is cached with it.
    let target_dir = out_dir
        .ancestors()
        .nth(4)
        .map(|t| t.join("plugins"))
        .unwrap_or_else(|| out_dir.join("plugins"));

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--manifest-path",
        ])
        .arg(plugins.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        // The host build's flags (coverage, sanitizers) must not leak into
        // the guests.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .status()
        .expect("running cargo to build the plugins");
    assert!(
        status.success(),
        "building the plugins failed; is the target installed? `rustup target add wasm32-wasip2`"
    );

    let wasm_dir = target_dir.join("wasm32-wasip2").join("release");
    let mut consts = String::from("/// Paths of the compiled plugins.\npub mod plugins {\n");
    for name in members(&plugins) {
        let file = wasm_dir.join(format!("{}.wasm", name.replace('-', "_")));
        assert!(
            file.exists(),
            "plugin {name} was not built: {}",
            file.display()
        );
        consts.push_str(&format!(
            "    pub const {}: &str = {:?};\n",
            name.replace('-', "_").to_uppercase(),
            file.display().to_string()
        ));
    }
    // Python and JavaScript plugins, built from the same wit/ by their own
    // toolchains (installed on first use by the script).
    let guests = target_dir.with_file_name("guest-plugins");
    println!(
        "cargo:rerun-if-changed={}",
        root.join("scripts/guests.sh").display()
    );
    let status = Command::new("bash")
        .arg(root.join("scripts/guests.sh"))
        .arg(&guests)
        .status()
        .expect("running scripts/guests.sh");
    assert!(
        status.success(),
        "building the Python/JavaScript plugins failed (scripts/guests.sh); are python3 and npm installed?"
    );
    let mut built: Vec<PathBuf> = std::fs::read_dir(&guests)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .collect();
    built.sort();
    for file in built {
        let stem = file.file_stem().unwrap().to_string_lossy().to_uppercase();
        consts.push_str(&format!(
            "    pub const {stem}: &str = {:?};\n",
            file.display().to_string()
        ));
    }
    consts.push_str("}\n");
    std::fs::write(out_dir.join("plugins.rs"), consts).unwrap();
}

/// Plugin crates: the directories of `plugins/` that hold a Cargo.toml.
fn members(plugins: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(plugins)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("Cargo.toml").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
