//! Files that are not task components are rejected with a message that names
//! what is wrong.

use tidemark::executor::PluginError;

use crate::executor;

fn load_err(bytes: &[u8]) -> PluginError {
    executor().load(bytes).expect_err("must be rejected")
}

#[test]
fn not_wasm() {
    assert!(matches!(
        load_err(b"#!/bin/sh\necho hi\n"),
        PluginError::NotWasm
    ));
}

#[test]
fn core_module() {
    let module = wat::parse_str("(module (func (export \"run\")))").unwrap();
    let err = load_err(&module);
    assert!(matches!(err, PluginError::CoreModule), "{err}");
    assert!(err.to_string().contains("wasm32-wasip2"));
}

#[test]
fn component_without_run() {
    let c = wat::parse_str("(component)").unwrap();
    let err = load_err(&c);
    assert!(matches!(err, PluginError::MissingRun { .. }), "{err}");
    assert!(err.to_string().contains("does not export `run`"), "{err}");
}

#[test]
fn component_with_wrong_run_signature() {
    let c = wat::parse_str(
        r#"(component
            (core module $m (func (export "run")))
            (core instance $i (instantiate $m))
            (func (export "run") (canon lift (core func $i "run"))))"#,
    )
    .unwrap();
    let err = load_err(&c);
    assert!(matches!(err, PluginError::WrongRun { .. }), "{err}");
}

#[test]
fn component_with_unknown_import() {
    let c = wat::parse_str(
        r#"(component
            (import "evil:net/socket" (instance (export "connect" (func))))
            (core module $m (func (export "run")))
            (core instance $i (instantiate $m))
            (func (export "run") (canon lift (core func $i "run"))))"#,
    )
    .unwrap();
    let err = load_err(&c);
    assert!(matches!(err, PluginError::UnknownImport { .. }), "{err}");
    assert!(err.to_string().contains("evil:net/socket"), "{err}");
}

#[test]
fn component_importing_an_empty_foreign_instance() {
    let c = wat::parse_str(
        r#"(component
            (import "evil:net/nothing" (instance))
            (core module $m (func (export "run")))
            (core instance $i (instantiate $m))
            (func (export "run") (canon lift (core func $i "run"))))"#,
    )
    .unwrap();
    let err = load_err(&c);
    assert!(err.to_string().contains("evil:net/nothing"), "{err}");
}

#[test]
fn garbage_after_a_component_header() {
    let mut bytes = b"\0asm\x0d\0\x01\0".to_vec();
    bytes.extend_from_slice(&[0xff; 32]);
    assert!(matches!(load_err(&bytes), PluginError::Invalid { .. }));
}

#[test]
fn compiled_components_are_cached_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = std::fs::read(tidemark_tests::plugins::HELLO).unwrap();
    let config = tidemark::executor::ExecutorConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        max_instances: Some(4),
    };
    let first = tidemark::executor::Executor::new(config.clone()).unwrap();
    let p = first.load(&wasm).unwrap();
    assert!(!p.from_cache);
    drop(first);
    // A new executor (as after a restart) loads without compiling.
    let second = tidemark::executor::Executor::new(config).unwrap();
    let p = second.load(&wasm).unwrap();
    assert!(p.from_cache);
    assert!(p.digest.starts_with("sha256:"));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}
