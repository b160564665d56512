//! Loading plugins: validation against the task world, compilation, and the
//! on-disk cache of compiled components.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker};
use wasmtime::Engine;

use super::bindings::TaskPre;
use super::compile::{self, CompileLimits, Compiler};
use super::host::HostState;
use super::ExecutorError;

/// A validated plugin, ready to instantiate.
pub struct Plugin {
    /// `sha256:<hex>` of the component's bytes.
    pub digest: String,
    /// Size of the component, bytes.
    pub size: usize,
    /// The component's exports, by name.
    pub exports: Vec<String>,
    /// Whether it came from the compiled-component cache.
    pub from_cache: bool,
    /// How long compiling (or loading the compiled form) took.
    pub load_time: Duration,
    pub(super) pre: TaskPre<HostState>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("digest", &self.digest)
            .field("size", &self.size)
            .field("from_cache", &self.from_cache)
            .finish_non_exhaustive()
    }
}

/// Why a file is not a usable plugin. The message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("not a WebAssembly file (it does not start with the `\\0asm` magic bytes)")]
    NotWasm,
    #[error(
        "this is a core WebAssembly module, not a component: build for the \
         `wasm32-wasip2` target (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule,
    #[error("invalid WebAssembly component: {message}")]
    Invalid { message: String },
    #[error(
        "the component does not export `run`, so it does not implement the \
         tidemark:task/task world (it exports: {exports})"
    )]
    MissingRun { exports: String },
    #[error("the component's `run` export does not match the tidemark:task/task world: {message}")]
    WrongRun { message: String },
    #[error("the component imports something Tidemark does not provide: {message}")]
    UnknownImport { message: String },
    #[error("compiled-component cache at {path}: {source}")]
    Cache {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The component is refused (nothing is stored); a smaller or simpler
    /// one may compile, or the operator can raise the limit.
    #[error(
        "compiling the component needs more than the compiler's memory limit of {} \
         (compile_memory in the daemon's configuration); split large functions",
        bytesize::ByteSize::b(*limit)
    )]
    CompileMemory { limit: u64 },
    #[error(
        "compiling the component takes longer than the compiler's time limit of {} \
         (compile_timeout in the daemon's configuration)",
        humantime::format_duration(*limit)
    )]
    CompileTimeout { limit: Duration },
    /// The compiler process could not run or crashed for another reason.
    #[error("the plugin compiler failed: {message}")]
    Compiler { message: String },
}

/// `sha256:<hex>` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

pub(super) struct ComponentCache {
    dir: Option<PathBuf>,
    /// Compiled code only loads into an engine with the same settings and
    /// version; the file name carries this hash so a change recompiles.
    engine_hash: u64,
    compiler: Compiler,
}

/// The engine's compatibility hash as a number (cache file names, and the
/// check that a compiler child's engine matches).
pub(super) fn engine_hash(engine: &Engine) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    h.finish()
}

impl ComponentCache {
    pub fn new(engine: &Engine, dir: Option<PathBuf>) -> Result<Self, ExecutorError> {
        if let Some(d) = &dir {
            std::fs::create_dir_all(d).map_err(|source| ExecutorError::CacheDir {
                path: d.display().to_string(),
                source,
            })?;
        }
        Ok(ComponentCache {
            dir,
            engine_hash: engine_hash(engine),
            compiler: Compiler::InProcess,
        })
    }

    pub fn set_compiler(&mut self, compiler: Compiler) {
        self.compiler = compiler;
    }

    pub fn load(
        &self,
        engine: &Engine,
        linker: &Linker<HostState>,
        wasm: &[u8],
        digest: String,
    ) -> Result<Plugin, PluginError> {
        check_header(wasm)?;
        let started = Instant::now();
        let (component, from_cache) = match (&self.dir, &self.compiler) {
            (None, Compiler::InProcess) => (compile(engine, wasm)?, false),
            (None, Compiler::Subprocess(limits)) => {
                (self.compile_in_child_uncached(engine, limits, wasm)?, false)
            }
            (Some(dir), _) => {
                let hex = digest.trim_start_matches("sha256:");
                let path = dir.join(format!("{hex}-{:016x}.cwasm", self.engine_hash));
                self.load_cached(engine, wasm, &path)?
            }
        };
        let load_time = started.elapsed();
        let exports = validate(engine, &component)?;
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| PluginError::UnknownImport {
                message: format!("{e:#}"),
            })?;
        let pre = TaskPre::new(pre).map_err(|e| PluginError::WrongRun {
            message: format!("{e:#}"),
        })?;
        Ok(Plugin {
            digest,
            size: wasm.len(),
            exports,
            from_cache,
            load_time,
            pre,
        })
    }

    fn load_cached(
        &self,
        engine: &Engine,
        wasm: &[u8],
        path: &Path,
    ) -> Result<(Component, bool), PluginError> {
        if path.exists() {
            // SAFETY: the file was written by `precompile_component` of an
            // engine with the same compatibility hash (it is in the name),
            // atomically via rename, in a directory only the daemon writes.
            // A file that fails its own checks is recompiled below.
            match unsafe { Component::deserialize_file(engine, path) } {
                Ok(c) => return Ok((c, true)),
                Err(e) => tracing::warn!(
                    path = %path.display(),
                    "discarding unusable compiled component: {e:#}"
                ),
            }
        }
        let cache_err = |source| PluginError::Cache {
            path: path.display().to_string(),
            source,
        };
        let tmp = unique_tmp(path);
        match &self.compiler {
            Compiler::InProcess => {
                let compiled =
                    engine
                        .precompile_component(wasm)
                        .map_err(|e| PluginError::Invalid {
                            message: format!("{e:#}"),
                        })?;
                std::fs::write(&tmp, &compiled).map_err(cache_err)?;
            }
            // Writes `tmp` only if it succeeds, so a refused component
            // leaves nothing in the cache.
            Compiler::Subprocess(limits) => {
                compile::compile_in_child(limits, self.engine_hash, wasm, &tmp)?
            }
        }
        std::fs::rename(&tmp, path).map_err(cache_err)?;
        // SAFETY: written just above by this engine, or by a compiler child
        // whose engine has this engine's compatibility hash (it checks).
        let c = unsafe { Component::deserialize_file(engine, path) }.map_err(|e| {
            PluginError::Invalid {
                message: format!("{e:#}"),
            }
        })?;
        Ok((c, false))
    }

    /// A child's compilation without a cache directory: through a file in
    /// the temporary directory, removed once loaded.
    fn compile_in_child_uncached(
        &self,
        engine: &Engine,
        limits: &CompileLimits,
        wasm: &[u8],
    ) -> Result<Component, PluginError> {
        let tmp = unique_tmp(&std::env::temp_dir().join("tidemark-component.cwasm"));
        compile::compile_in_child(limits, self.engine_hash, wasm, &tmp)?;
        // SAFETY: written just now by a compiler whose engine has this
        // engine's compatibility hash (the child checks it).
        let loaded = unsafe { Component::deserialize_file(engine, &tmp) };
        // Best effort: the mapping stays valid after the unlink.
        let _ = std::fs::remove_file(&tmp);
        loaded.map_err(|e| PluginError::Invalid {
            message: format!("{e:#}"),
        })
    }
}

/// A file name beside `path`, unique per call: threads of one process may
/// compile the same plugin at once, and each must rename only its own file.
fn unique_tmp(path: &Path) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    path.with_extension(format!("tmp{}-{n}", std::process::id()))
}

fn compile(engine: &Engine, wasm: &[u8]) -> Result<Component, PluginError> {
    Component::from_binary(engine, wasm).map_err(|e| PluginError::Invalid {
        message: format!("{e:#}"),
    })
}

fn check_header(wasm: &[u8]) -> Result<(), PluginError> {
    if wasm.len() < 8 || &wasm[..4] != b"\0asm" {
        return Err(PluginError::NotWasm);
    }
    // Bytes 4..8 are the version and layer: 1,0 / 0,0 for a core module.
    if wasm[4..8] == [1, 0, 0, 0] {
        return Err(PluginError::CoreModule);
    }
    Ok(())
}

fn validate(engine: &Engine, component: &Component) -> Result<Vec<String>, PluginError> {
    let ty = component.component_type();
    let exports: Vec<(String, bool)> = ty
        .exports(engine)
        .map(|(name, item)| {
            (
                name.to_owned(),
                matches!(item.ty, ComponentItem::ComponentFunc(_)),
            )
        })
        .collect();
    // The linker would also refuse most of these, but it accepts an import
    // that asks for nothing (an empty instance); name every foreign import.
    let foreign: Vec<String> = ty
        .imports(engine)
        .map(|(name, _)| name.to_owned())
        .filter(|name| !(name.starts_with("wasi:") || name.starts_with("tidemark:task/")))
        .collect();
    if !foreign.is_empty() {
        return Err(PluginError::UnknownImport {
            message: format!(
                "{} (only tidemark:task/* and wasi:* 0.2 interfaces are linked)",
                foreign.join(", ")
            ),
        });
    }
    if !exports.iter().any(|(n, is_func)| n == "run" && *is_func) {
        let names: Vec<&str> = exports.iter().map(|(n, _)| n.as_str()).collect();
        return Err(PluginError::MissingRun {
            exports: if names.is_empty() {
                "nothing".into()
            } else {
                names.join(", ")
            },
        });
    }
    Ok(exports.into_iter().map(|(n, _)| n).collect())
}
