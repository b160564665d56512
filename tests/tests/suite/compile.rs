//! Issue #9: a plugin upload could take the whole daemon down. A ~1.4 MB
//! component (one function, 4,000 locals, 100,000 `if` blocks) made
//! Cranelift allocate 26 GB during `PUT /plugins/...`. Uploads are now
//! compiled in a child process under an address-space limit and a deadline.

use std::ffi::OsStr;
use std::time::Instant;

use serde_json::Value;
use tidemark::client::{Client, ClientError};
use tidemark_tests::plugins::*;

use crate::daemon::Daemon;

/// A component whose one core function has `locals` locals and `ifs` `if`
/// blocks, each reading one local and writing another: register
/// allocation over that graph needs memory far beyond its size. The
/// component exports nothing, but it is compiled before it is validated.
fn compiler_bomb(locals: usize, ifs: usize) -> Vec<u8> {
    let mut wat = String::from("(component (core module (func (param i32) (local");
    wat.push_str(&" i32".repeat(locals));
    wat.push(')');
    for i in 0..ifs {
        let (read, write) = (i % locals + 1, (i * 7919) % locals + 1);
        wat.push_str(&format!(
            " local.get 0 if local.get {read} i32.const 1 i32.add local.set {write} end"
        ));
    }
    wat.push_str(")))");
    wat::parse_str(&wat).expect("the bomb is valid WebAssembly")
}

fn push(d: &Daemon, token: &str, name: &str, wasm: &[u8]) -> Result<Value, ClientError> {
    Client::new(&d.url)
        .with_token(Some(token.to_owned()))
        .send_bytes(
            "PUT",
            &format!("/api/v1/plugins/{name}"),
            "application/wasm",
            wasm,
        )
}

fn plugin_names(d: &Daemon, token: &str) -> Vec<String> {
    let v = Client::new(&d.url)
        .with_token(Some(token.to_owned()))
        .get("/api/v1/plugins")
        .expect("listing plugins");
    v["plugins"]
        .as_array()
        .expect("a plugins array")
        .iter()
        .map(|p| format!("{}@{}", p["name"].as_str().unwrap_or("?"), p["version"]))
        .collect()
}

/// Files in the compiled-component cache.
fn cached(data: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(data.join("components"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn a_compiler_bomb_is_refused_without_hurting_the_daemon() {
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("tidemark.toml");
    // Lowered so the test is quick: the bomb passes 512 MiB in about two
    // seconds (and 3 GiB in seven); ordinary plugins need far less.
    std::fs::write(
        &config,
        "compile_memory = \"512MiB\"\ncompile_timeout = \"60s\"\n",
    )
    .unwrap();
    let mut d = Daemon::start_with_args(
        data.path(),
        None,
        None,
        &[OsStr::new("--config"), config.as_os_str()],
    );
    d.login_as_new_tenant("mallory");
    let mallory = d.token.clone().unwrap();
    d.login_as_new_tenant("acme");
    let acme = d.token.clone().unwrap();
    // An ordinary plugin compiles in the child and loads in the daemon.
    push(&d, &acme, "hello", &std::fs::read(HELLO).unwrap()).expect("pushing hello");
    let before = (plugin_names(&d, &acme), plugin_names(&d, &mallory));
    let cache_before = cached(data.path());

    let bomb = compiler_bomb(2_000, 20_000);
    let started = Instant::now();
    let refused = push(&d, &mallory, "bomb", &bomb);
    let took = started.elapsed();
    match refused {
        Err(ClientError::Api {
            status, message, ..
        }) => {
            assert!((400..500).contains(&status), "HTTP {status}: {message}");
            assert!(
                message.contains("memory limit of 512.0 MiB") && message.contains("compile_memory"),
                "{message}"
            );
        }
        other => panic!("the bomb was not refused: {other:?}"),
    }
    eprintln!("the bomb was refused after {took:?}");

    // The daemon still serves both tenants, compiles the next upload, and
    // kept nothing of the bomb.
    assert_eq!(
        (plugin_names(&d, &acme), plugin_names(&d, &mallory)),
        before
    );
    assert_eq!(
        cached(data.path()),
        cache_before,
        "nothing left in the cache"
    );
    push(&d, &acme, "echo", &std::fs::read(ECHO).unwrap()).expect("pushing echo after the bomb");
    assert_eq!(plugin_names(&d, &acme), ["echo@1", "hello@1"]);
    assert_eq!(d.terminate(), 0);
}
