//! Runs one task attempt in a fresh, limited sandbox.
//!
//! One [`Executor`] owns the wasmtime `Engine` (component model, fuel, epoch
//! interruption, pooling allocator), the `Linker` with WASI p2 and the task
//! world's host interfaces, a ticker thread that drives epochs, and the
//! cache of loaded plugins. Each attempt gets its own `Store` with its own
//! limits; nothing a guest does can outlive its attempt or reach the daemon.

mod attempt;
mod bindings;
mod blob;
mod cache;
mod compile;
mod host;
mod http;
mod limits;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Engine, Store, Trap, UpdateDeadline};

pub use attempt::{AttemptError, AttemptReport, ErrorKind, LogLine, LogSource};
pub use blob::{ObjectAccess, StagedContainer, StagedObjects};
pub use cache::{digest, Plugin, PluginError};
pub use compile::{child_main as compile_child_main, ChildArgs, CompileLimits, Compiler};
pub use host::check_dataset_name;
pub use host::MAX_READS;
pub use http::{HttpOutcome, HttpRequestRecord};
pub use limits::Limits;

use crate::store::{TaskData, TaskScope};
use bindings::{Task, TaskError, TriggerKind};
use host::{HostState, HostTrap};

/// How often the epoch advances: the granularity of deadlines and of the
/// yields that keep a spinning guest from holding a runtime thread.
const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Why a run (and so this attempt) exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Scheduled,
    Backfill,
    Manual,
    Event,
}

/// Everything the guest learns about the attempt (`context` in the WIT).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub tenant: String,
    pub workflow: String,
    pub task: String,
    pub run_id: String,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    pub timezone: String,
    pub attempt: u32,
    pub trigger: Trigger,
    pub params: Vec<(String, String)>,
    pub payload: Vec<u8>,
}

/// Executor set-up.
#[derive(Debug, Clone, Default)]
pub struct ExecutorConfig {
    /// Where compiled components are kept across restarts; `None` compiles
    /// every plugin on each load.
    pub cache_dir: Option<PathBuf>,
    /// Component instances that may be alive at once (pool size).
    pub max_instances: Option<u32>,
}

/// Failure to set up the executor.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    #[error("configuring the wasm engine: {message}")]
    Engine { message: String },
    #[error("creating the component cache directory {path}: {source}")]
    CacheDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Loads plugins and runs attempts. Cheap to share behind an `Arc`.
pub struct Executor {
    engine: Engine,
    linker: Linker<HostState>,
    cache: cache::ComponentCache,
    loaded: Mutex<HashMap<String, Arc<Plugin>>>,
    ticker: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

/// What an engine is for: running attempts, or only compiling (the child
/// of [`compile`]). Both compile identically, so the compiler's artifacts
/// load into the runtime engine.
pub(crate) enum EngineKind {
    Runtime { max_instances: Option<u32> },
    Compiler,
}

/// Bytes of each linear memory kept mapped between attempts.
const KEEP_RESIDENT: usize = 4 << 20;

pub(crate) fn new_engine(kind: EngineKind) -> Result<Engine, ExecutorError> {
    let mut wasm = wasmtime::Config::new();
    wasm.wasm_component_model(true)
        .consume_fuel(true)
        .epoch_interruption(true);
    // The pooling allocator reuses pre-reserved slots, which is what
    // makes an instantiation take microseconds instead of mmap calls. The
    // compiler instantiates nothing, and its reservations (terabytes of
    // address space) would not fit under its address-space limit; the
    // allocation strategy is not part of the compiled code's settings.
    if let EngineKind::Runtime { max_instances } = kind {
        let mut pool = wasmtime::PoolingAllocationConfig::default();
        if let Some(n) = max_instances {
            pool.total_component_instances(n)
                .total_core_instances(n.saturating_mul(8))
                .total_memories(n.saturating_mul(8))
                .total_tables(n.saturating_mul(8));
        }
        // Resetting a slot with madvise unmaps its pages, and every unmap
        // is a TLB shootdown across cores; with tiny tasks that was the
        // largest kernel cost per attempt. Kept-resident pages are reset in
        // place instead (only the dirty ones where the kernel can say which,
        // PAGEMAP_SCAN on Linux 6.7+), and the remaining decommits batched.
        pool.linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(64 << 10)
            .async_stack_keep_resident(64 << 10)
            .decommit_batch_size(32)
            .pagemap_scan(wasmtime::Enabled::Auto);
        wasm.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    }
    Engine::new(&wasm).map_err(|e| ExecutorError::Engine {
        message: format!("{e:#}"),
    })
}

impl Executor {
    pub fn new(config: ExecutorConfig) -> Result<Self, ExecutorError> {
        let engine_err = |e: wasmtime::Error| ExecutorError::Engine {
            message: format!("{e:#}"),
        };
        let engine = new_engine(EngineKind::Runtime {
            max_instances: config.max_instances,
        })?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(engine_err)?;
        // Outbound HTTP for tasks that import it; every request passes the
        // attempt's egress policy (`http::EgressHooks`).
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(engine_err)?;
        Task::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(engine_err)?;

        let cache = cache::ComponentCache::new(&engine, config.cache_dir)?;

        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let engine = engine.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("tidemark-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| ExecutorError::Engine {
                    message: format!("starting the epoch ticker thread: {e}"),
                })?
        };

        Ok(Executor {
            engine,
            linker,
            cache,
            loaded: Mutex::new(HashMap::new()),
            ticker: Some(ticker),
            stop,
        })
    }

    /// Compiles plugins with `compiler` from now on (in-process by
    /// default); `tidemark serve` compiles uploads in a limited child.
    pub fn with_compiler(mut self, compiler: Compiler) -> Self {
        self.cache.set_compiler(compiler);
        self
    }

    /// Validates `wasm` against the task world and prepares it for fast
    /// instantiation, compiling it only if neither memory nor the disk cache
    /// has it. CPU-heavy on a miss: call from a blocking context.
    pub fn load(&self, wasm: &[u8]) -> Result<Arc<Plugin>, PluginError> {
        let digest = cache::digest(wasm);
        if let Some(p) = self.lock_loaded().get(&digest) {
            return Ok(p.clone());
        }
        let plugin = Arc::new(self.cache.load(&self.engine, &self.linker, wasm, digest)?);
        self.lock_loaded()
            .insert(plugin.digest.clone(), plugin.clone());
        Ok(plugin)
    }

    /// A plugin already loaded, by digest.
    pub fn get(&self, digest: &str) -> Option<Arc<Plugin>> {
        self.lock_loaded().get(digest).cloned()
    }

    fn lock_loaded(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Plugin>>> {
        // The map stays consistent even if a holder panicked: entries are
        // inserted whole.
        self.loaded.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs one attempt of `plugin` under `limits`. Never panics and never
    /// fails itself: every outcome, including traps and limit breaches, is in
    /// the report.
    pub async fn run(
        &self,
        plugin: &Plugin,
        inv: &Invocation,
        limits: &Limits,
        data: Arc<dyn TaskData>,
    ) -> AttemptReport {
        self.run_cancellable(plugin, inv, limits, data, &CancelFlag::default())
            .await
    }

    /// [`Executor::run`], interrupted (within one epoch tick) once `cancel`
    /// is raised: the attempt then fails with [`AttemptError::Cancelled`].
    pub async fn run_cancellable(
        &self,
        plugin: &Plugin,
        inv: &Invocation,
        limits: &Limits,
        data: Arc<dyn TaskData>,
        cancel: &CancelFlag,
    ) -> AttemptReport {
        let started = Instant::now();
        let scope = TaskScope {
            tenant: inv.tenant.clone(),
            workflow: inv.workflow.clone(),
            task: inv.task.clone(),
            window_start: inv.window_start_ms,
        };
        let mut host = HostState::new(scope, data, limits, cancel);
        host.blob.run_id = inv.run_id.parse().unwrap_or_default();
        host.blob.attempt = inv.attempt;
        let mut store = Store::new(&self.engine, host);
        store.limiter(|s| &mut s.limiter);
        if let Err(e) = store.set_fuel(limits.fuel) {
            let mut report = failed_before_start(started, format!("setting fuel: {e:#}"));
            report.plugin_digest = Some(plugin.digest.clone());
            return report;
        }
        let deadline = started + limits.timeout;
        store.set_epoch_deadline(1);
        let flag = cancel.clone();
        store.epoch_deadline_callback(move |_| {
            Ok(if Instant::now() >= deadline || flag.is_raised() {
                UpdateDeadline::Interrupt
            } else {
                // Hand the thread back to the runtime every tick so a
                // spinning guest cannot starve other tasks on it.
                UpdateDeadline::Yield(1)
            })
        });

        let ctx = to_context(inv);
        let result = async {
            let task = plugin.pre.instantiate_async(&mut store).await?;
            task.call_run(&mut store, &ctx).await
        }
        .await;

        let fuel_left = store.get_fuel().unwrap_or(0);
        let state = store.data_mut();
        state.drain_output_pipes();
        let (http, http_log) = state.http.take_records();
        let (reads, reads_omitted) = state.reads.take();
        if !http_log.is_empty() {
            state.log.extend(http_log);
            // Stable: lines of one instant keep their order.
            state.log.sort_by_key(|l| l.at_ms);
        }
        let mut fuel_consumed = Some(limits.fuel.saturating_sub(fuel_left));
        let result = match result {
            Ok(Ok(outcome)) => Ok(outcome.summary),
            Ok(Err(TaskError::Retryable(message))) => Err(AttemptError::Task {
                retryable: true,
                message,
            }),
            Ok(Err(TaskError::Fatal(message))) => Err(AttemptError::Task {
                retryable: false,
                message,
            }),
            Err(_) if cancel.is_raised() => {
                fuel_consumed = None;
                Err(AttemptError::Cancelled)
            }
            Err(e) => {
                let err = classify(&e, state, limits);
                if matches!(err, AttemptError::DeadlineExceeded { .. }) {
                    fuel_consumed = None;
                }
                Err(err)
            }
        };
        let outputs = if result.is_ok() {
            std::mem::take(&mut state.outputs)
        } else {
            Default::default()
        };
        AttemptReport {
            result,
            log: std::mem::take(&mut state.log),
            outputs,
            fuel_consumed,
            memory_peak: state.limiter.memory_peak(),
            elapsed: started.elapsed(),
            http,
            objects: std::mem::take(&mut state.blob.staged),
            reads,
            reads_omitted,
            plugin_digest: Some(plugin.digest.clone()),
        }
    }
}

/// Raised to interrupt a running attempt; shared by every attempt of a run.
#[derive(Debug, Clone, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    pub fn raise(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_raised(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            // The ticker only sleeps and increments; it cannot panic, and if
            // it did there is nothing left to clean up.
            let _ = t.join();
        }
    }
}

fn failed_before_start(started: Instant, message: String) -> AttemptReport {
    AttemptReport {
        result: Err(AttemptError::Host { message }),
        log: Vec::new(),
        outputs: Default::default(),
        fuel_consumed: None,
        memory_peak: 0,
        elapsed: started.elapsed(),
        http: Vec::new(),
        objects: Default::default(),
        reads: Vec::new(),
        reads_omitted: 0,
        plugin_digest: None,
    }
}

/// Names the reason a guest call failed, most specific first: a breach a
/// host function recorded, the memory cap, a full output pipe, then the trap
/// code itself.
fn classify(err: &wasmtime::Error, state: &mut HostState, limits: &Limits) -> AttemptError {
    if let Some(breach) = state.breach.take() {
        return breach;
    }
    if let Some(HostTrap(e)) = err.downcast_ref::<HostTrap>() {
        return e.clone();
    }
    if state.limiter.memory_hit() {
        return AttemptError::MemoryLimit {
            limit: limits.memory_bytes,
        };
    }
    let full = |len: usize| len + MAX_PIPE_SLACK >= limits.log_bytes;
    if full(state.stdout.contents().len()) || full(state.stderr.contents().len()) {
        return AttemptError::LogLimit {
            limit: limits.log_bytes,
        };
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => AttemptError::FuelExhausted { limit: limits.fuel },
        Some(Trap::Interrupt) => AttemptError::DeadlineExceeded {
            timeout_ms: limits.timeout.as_millis() as u64,
        },
        Some(trap) => AttemptError::Trap {
            message: match panic_message(state) {
                Some(panic) => format!("{trap}: {panic}"),
                None => trap.to_string(),
            },
        },
        None => AttemptError::Trap {
            message: format!("{err:#}"),
        },
    }
}

/// A write that would not fit is refused whole, so a "full" pipe can end a
/// little short of its capacity.
const MAX_PIPE_SLACK: usize = 4096;

/// The message of a Rust guest's panic, as its default hook printed it to
/// stderr ("panicked at src/lib.rs:3:5:\nboom").
fn panic_message(state: &HostState) -> Option<String> {
    let stderr = state.stderr.contents();
    let text = String::from_utf8_lossy(&stderr);
    let at = text.rfind("panicked at ")?;
    let rest = &text[at..];
    let end = rest.find("\nnote:").unwrap_or(rest.len());
    Some(rest[..end].trim().replace('\n', " "))
}

fn to_context(inv: &Invocation) -> bindings::Context {
    bindings::Context {
        tenant: inv.tenant.clone(),
        workflow: inv.workflow.clone(),
        task: inv.task.clone(),
        run_id: inv.run_id.clone(),
        window: bindings::Window {
            start: inv.window_start_ms,
            end: inv.window_end_ms,
            timezone: inv.timezone.clone(),
        },
        attempt: inv.attempt,
        trigger: match inv.trigger {
            Trigger::Scheduled => TriggerKind::Scheduled,
            Trigger::Backfill => TriggerKind::Backfill,
            Trigger::Manual => TriggerKind::Manual,
            Trigger::Event => TriggerKind::Event,
        },
        params: inv.params.clone(),
        payload: inv.payload.clone(),
    }
}
