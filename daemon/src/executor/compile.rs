//! Compiling components where a compiler bomb cannot hurt the daemon.
//!
//! Cranelift's memory grows with the shape of the code, not its size: a
//! 1.4 MB component (one function with 4,000 locals and 100,000 `if`
//! blocks) made it allocate 26 GB during a plugin upload (issue #9), and
//! wasmtime has no limit for what compilation allocates. So untrusted
//! components are compiled by a child process of the same binary
//! (`tidemark __compile`, [`child_main`]) under an address-space limit
//! (RLIMIT_AS) and a deadline; it writes the precompiled artifact and the
//! daemon loads that like a cached one. A bomb then ends the child, with an
//! error that names the limit, instead of the daemon.
//!
//! In-process compilation stays the default for library users (tests, the
//! local harness), which have no binary to run and trust their components.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::PluginError;

/// How components are compiled.
#[derive(Debug, Clone, Default)]
pub enum Compiler {
    /// In this process, without limits: for trusted components.
    #[default]
    InProcess,
    /// In a child process under limits: for uploads.
    Subprocess(CompileLimits),
}

/// Limits of a compilation in a child process.
#[derive(Debug, Clone)]
pub struct CompileLimits {
    /// The `tidemark` binary (it has the hidden `__compile` command).
    pub program: PathBuf,
    /// The child's address space (RLIMIT_AS), bytes.
    pub memory_bytes: u64,
    /// Wall-clock time before the child is killed.
    pub timeout: Duration,
}

/// Exit code of the child for a component wasmtime refuses (its message is
/// on stderr); anything else that is not success is a crash or a limit.
pub const EXIT_INVALID_COMPONENT: i32 = 3;
/// Exit code of the child whose engine settings differ from the daemon's, so
/// its artifact could not be loaded (a binary replaced under the daemon).
pub const EXIT_ENGINE_MISMATCH: i32 = 4;

/// What the daemon asks of the child (`tidemark __compile` flags).
#[derive(Debug, Clone)]
pub struct ChildArgs {
    pub input: PathBuf,
    pub output: PathBuf,
    pub memory_bytes: u64,
    /// The daemon's engine compatibility hash, hex.
    pub engine_hash: String,
    /// The daemon's process id: the child dies with it.
    pub parent: u32,
}

/// Only so much of the child's stderr is kept: its last lines say why.
const MAX_STDERR: u64 = 64 * 1024;

/// Compiles `wasm` in a child under `limits`, writing the precompiled
/// component to `output`. On failure nothing is left at `output`.
pub(super) fn compile_in_child(
    limits: &CompileLimits,
    engine_hash: u64,
    wasm: &[u8],
    output: &Path,
) -> Result<(), PluginError> {
    let input = PathBuf::from(format!("{}.wasm", output.display()));
    let io_err = |what: &str, path: &Path, e: std::io::Error| PluginError::Compiler {
        message: format!("{what} {}: {e}", path.display()),
    };
    std::fs::write(&input, wasm).map_err(|e| io_err("writing", &input, e))?;
    let result = run_child(limits, engine_hash, &input, output);
    // Best effort: the input is only a hand-over, and a failed child may
    // have left part of the output.
    let _ = std::fs::remove_file(&input);
    if result.is_err() {
        let _ = std::fs::remove_file(output);
    }
    result
}

fn run_child(
    limits: &CompileLimits,
    engine_hash: u64,
    input: &Path,
    output: &Path,
) -> Result<(), PluginError> {
    let mut child = Command::new(&limits.program)
        .arg("__compile")
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(output)
        .arg("--max-memory")
        .arg(limits.memory_bytes.to_string())
        .arg("--engine-hash")
        .arg(format!("{engine_hash:016x}"))
        .arg("--parent")
        .arg(std::process::id().to_string())
        // Each glibc malloc arena reserves 64 MiB of address space; with
        // one per thread they would eat the limit before the compiler.
        .env("MALLOC_ARENA_MAX", "2")
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| PluginError::Compiler {
            message: format!("starting {}: {e}", limits.program.display()),
        })?;
    // Read stderr on a thread so a chatty child cannot block on a full pipe
    // while we wait for it.
    let stderr = child.stderr.take().map(|s| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = s.take(MAX_STDERR).read_to_string(&mut text);
            text
        })
    });
    let deadline = Instant::now() + limits.timeout;
    let (status, timed_out) = loop {
        match child.try_wait() {
            Ok(Some(status)) => break (status, false),
            Ok(None) if Instant::now() >= deadline => {
                // Kill and reap; an error means it just exited by itself.
                let _ = child.kill();
                let status = child.wait().map_err(|e| PluginError::Compiler {
                    message: format!("waiting for the compiler process: {e}"),
                })?;
                break (status, true);
            }
            // std has no wait with a timeout; a compile takes from
            // milliseconds to seconds, so polling costs nothing here.
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => {
                return Err(PluginError::Compiler {
                    message: format!("waiting for the compiler process: {e}"),
                })
            }
        }
    };
    let stderr = stderr
        .and_then(|h| h.join().ok())
        .unwrap_or_default()
        .trim()
        .to_owned();
    classify(limits, status, timed_out, stderr)
}

/// Turns how the child ended into the error the uploader sees.
fn classify(
    limits: &CompileLimits,
    status: ExitStatus,
    timed_out: bool,
    stderr: String,
) -> Result<(), PluginError> {
    use std::os::unix::process::ExitStatusExt;
    if timed_out {
        return Err(PluginError::CompileTimeout {
            limit: limits.timeout,
        });
    }
    match status.code() {
        Some(0) => return Ok(()),
        Some(EXIT_INVALID_COMPONENT) => return Err(PluginError::Invalid { message: stderr }),
        _ => {}
    }
    // Rust aborts (SIGABRT) after "memory allocation of N bytes failed";
    // other allocation failures surface as messages of their own.
    let out_of_memory = status.signal() == Some(libc::SIGABRT)
        || [
            "memory allocation",
            "Cannot allocate memory",
            "out of memory",
        ]
        .iter()
        .any(|m| stderr.contains(m));
    if out_of_memory {
        return Err(PluginError::CompileMemory {
            limit: limits.memory_bytes,
        });
    }
    let last = stderr.lines().last().unwrap_or("no message");
    Err(PluginError::Compiler {
        message: format!("the compiler process failed ({status}): {last}"),
    })
}

/// The child: limits itself, compiles `input` to `output`, and returns its
/// exit code (messages go to stderr, which the daemon reads).
pub fn child_main(args: &ChildArgs) -> i32 {
    if let Err(e) = confine(args) {
        eprintln!("error: setting up the compiler process: {e}");
        return 1;
    }
    let engine = match super::new_engine(super::EngineKind::Compiler) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let hash = format!("{:016x}", super::cache::engine_hash(&engine));
    if hash != args.engine_hash {
        eprintln!(
            "error: the compiler's engine settings ({hash}) differ from the daemon's ({}); \
             was the binary replaced? restart the daemon",
            args.engine_hash
        );
        return EXIT_ENGINE_MISMATCH;
    }
    let wasm = match std::fs::read(&args.input) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: reading {}: {e}", args.input.display());
            return 1;
        }
    };
    let compiled = match engine.precompile_component(&wasm) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e:#}");
            return EXIT_INVALID_COMPONENT;
        }
    };
    if let Err(e) = std::fs::write(&args.output, compiled) {
        eprintln!("error: writing {}: {e}", args.output.display());
        return 1;
    }
    0
}

/// Caps the address space and ties the child's life to the daemon's.
fn confine(args: &ChildArgs) -> std::io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: args.memory_bytes as libc::rlim_t,
        rlim_max: args.memory_bytes as libc::rlim_t,
    };
    // SAFETY: plain system calls with valid arguments; they touch no memory
    // of ours beyond the struct passed by reference.
    unsafe {
        if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // A daemon killed mid-compile must not leave its compiler running.
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    // The daemon may have died before the line above took effect.
    if std::os::unix::process::parent_id() != args.parent {
        return Err(std::io::Error::other("the daemon is gone"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn limits() -> CompileLimits {
        CompileLimits {
            program: "tidemark".into(),
            memory_bytes: 512 << 20,
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn how_the_child_ended_names_the_limit() {
        let l = limits();
        let exited = |code: i32| ExitStatus::from_raw(code << 8);
        let signalled = ExitStatus::from_raw;
        assert!(classify(&l, exited(0), false, String::new()).is_ok());
        let e = classify(&l, signalled(libc::SIGKILL), true, String::new()).unwrap_err();
        assert!(matches!(e, PluginError::CompileTimeout { .. }), "{e}");
        let e = classify(&l, signalled(libc::SIGABRT), false, String::new()).unwrap_err();
        assert!(matches!(e, PluginError::CompileMemory { .. }), "{e}");
        let stderr = "memory allocation of 671088640 bytes failed".to_owned();
        let e = classify(&l, exited(134), false, stderr).unwrap_err();
        assert!(matches!(e, PluginError::CompileMemory { .. }), "{e}");
        let e = classify(&l, exited(3), false, "bad magic".into()).unwrap_err();
        assert!(
            matches!(&e, PluginError::Invalid { message } if message == "bad magic"),
            "{e}"
        );
        let e = classify(&l, exited(101), false, "a\nthread panicked".into()).unwrap_err();
        assert!(e.to_string().contains("thread panicked"), "{e}");
    }
}
