//! Builds the web console (`console/`) with `scripts/console.sh` into
//! `OUT_DIR/console`, which `api::console` embeds. Without npm the build
//! fails with a message naming what is missing; `TIDEMARK_SKIP_CONSOLE=1`
//! embeds a placeholder page instead (for machines that only need the API).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let out =
        PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("console");
    let root =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it")).join("..");
    for p in [
        "console/src",
        "console/index.html",
        "console/package.json",
        "console/package-lock.json",
        "console/vite.config.ts",
        "console/tsconfig.json",
        "scripts/console.sh",
        "docs/openapi.json",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }
    println!("cargo:rerun-if-env-changed=TIDEMARK_SKIP_CONSOLE");

    if std::env::var_os("TIDEMARK_SKIP_CONSOLE").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(&out).expect("creating OUT_DIR/console");
        std::fs::write(
            out.join("index.html"),
            "<!doctype html><title>Tidemark</title><p>This daemon was built with \
             TIDEMARK_SKIP_CONSOLE=1: the web console is not included. The REST API is at /api/v1.</p>\n",
        )
        .expect("writing the placeholder console");
        return;
    }
    let status = Command::new("bash")
        .arg(root.join("scripts/console.sh"))
        .arg(&out)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!(
            "building the web console failed ({s}); see the output above. \
             Set TIDEMARK_SKIP_CONSOLE=1 to build the daemon without it."
        ),
        Err(e) => panic!("running scripts/console.sh: {e}"),
    }
}
