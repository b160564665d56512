//! `tidemark serve`: the daemon. Opens the store (embedded sled in the data
//! directory, or PostgreSQL with `--store postgres://...`), optionally loads
//! plugins and workflow files, serves the API and drives the engine until
//! SIGTERM/SIGINT, then shuts down gracefully.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::clock::SystemClock;
use crate::config::StoreLocation;
use crate::engine::{Engine, EngineConfig, EngineError};
use crate::executor::{CompileLimits, Compiler, Executor, ExecutorConfig, ExecutorError};
use crate::store::{PgStore, SledStore, StateStore, StoreError};
use crate::tenancy::Tenancy;
use crate::workflow::RawWorkflow;

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub data_dir: PathBuf,
    pub store: StoreLocation,
    pub listen: SocketAddr,
    /// Push every `*.wasm` here at start (name = file stem, `_` → `-`).
    pub plugins_dir: Option<PathBuf>,
    /// Apply every `*.toml` here at start.
    pub workflows_dir: Option<PathBuf>,
    pub max_concurrent_attempts: usize,
    /// How long running attempts may finish after a shutdown signal.
    pub grace: Duration,
    /// The admin token; `None` uses (or creates) `DATA_DIR/admin-token`.
    pub admin_token: Option<String>,
    /// The tenant that preloaded plugins and workflows belong to; created
    /// if missing, with its first token written to `DATA_DIR/<tenant>-token`.
    pub preload_tenant: String,
    pub backfill_admission_limit: usize,
    /// Every tenant's quotas unless overridden.
    pub quotas: crate::quota::Quotas,
    /// Limits of compiling a plugin (in a child process): address space,
    /// bytes, and time.
    pub compile_memory: u64,
    pub compile_timeout: Duration,
    /// This daemon among the nodes sharing a PostgreSQL store.
    pub node_id: String,
    /// `None`: http:// and the address it listens on (loopback for an
    /// unspecified address such as 0.0.0.0).
    pub advertise: Option<String>,
    pub lease: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    // The store's message already carries its causes, and the CLI prints
    // an error's sources after it: `error` is not a `source`, so a bad
    // store is one line.
    #[error("opening the store {location}: {error}")]
    Store { location: String, error: StoreError },
    #[error(transparent)]
    Executor(#[from] ExecutorError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("{path}: {message}")]
    Preload { path: String, message: String },
    /// The engine refused a preloaded file: for a store error, another try
    /// may succeed (see the cluster's start).
    #[error("{path}")]
    PreloadRefused {
        path: String,
        #[source]
        source: EngineError,
    },
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Secrets(#[from] crate::secrets::SecretsError),
    #[error("serving HTTP: {0}")]
    Http(#[source] std::io::Error),
    #[error(transparent)]
    Tenancy(#[from] crate::tenancy::TenancyError),
    #[error("installing signal handlers: {0}")]
    Signal(#[source] std::io::Error),
    #[error("finding the tidemark binary to compile plugins with: {0}")]
    Exe(#[source] std::io::Error),
}

fn files(dir: &Path, ext: &str) -> Result<Vec<PathBuf>, ServeError> {
    let entries = std::fs::read_dir(dir).map_err(|e| ServeError::Preload {
        path: dir.display().to_string(),
        message: e.to_string(),
    })?;
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    out.sort();
    Ok(out)
}

async fn preload(engine: &Engine, tenancy: &Tenancy, cfg: &ServeConfig) -> Result<(), ServeError> {
    if cfg.plugins_dir.is_none() && cfg.workflows_dir.is_none() {
        return Ok(());
    }
    let tenant = cfg.preload_tenant.clone();
    if !tenancy.tenant_exists(&tenant)? {
        let (_, _, secret) = tenancy.create_tenant(&tenant, engine.clock().now_ms())?;
        let path = cfg.data_dir.join(format!("{tenant}-token"));
        write_secret(&path, &secret)?;
        println!(
            "created tenant {tenant}; its token is in {}",
            path.display()
        );
    }
    if let Some(dir) = &cfg.plugins_dir {
        for path in files(dir, "wasm")? {
            let bad = |message: String| ServeError::Preload {
                path: path.display().to_string(),
                message,
            };
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().replace('_', "-"))
                .unwrap_or_default();
            let wasm = std::fs::read(&path).map_err(|e| bad(e.to_string()))?;
            let meta = engine
                .push_plugin(&tenant, &name, wasm)
                .await
                .map_err(|source| ServeError::PreloadRefused {
                    path: path.display().to_string(),
                    source,
                })?;
            tracing::info!(plugin = name, version = meta.version, "plugin loaded");
        }
    }
    if let Some(dir) = &cfg.workflows_dir {
        // Upstream workflows must exist before their dependents: apply in
        // rounds until nothing more succeeds.
        let mut pending = files(dir, "toml")?;
        while !pending.is_empty() {
            let before = pending.len();
            let mut failed = Vec::new();
            let mut last_error = String::new();
            for path in std::mem::take(&mut pending) {
                let text = std::fs::read_to_string(&path).map_err(|e| ServeError::Preload {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?;
                let raw = RawWorkflow::from_toml(&text).map_err(|e| ServeError::Preload {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?;
                match engine.apply_workflow(&tenant, raw).await {
                    Ok(w) => {
                        tracing::info!(workflow = w.name, version = w.version, "workflow applied")
                    }
                    Err(e) => {
                        last_error = format!("{}: {e}", path.display());
                        failed.push(path);
                    }
                }
            }
            if failed.len() == before {
                // No progress this round: the error is real, not ordering.
                return Err(ServeError::Preload {
                    path: dir.display().to_string(),
                    message: last_error,
                });
            }
            pending = failed;
        }
    }
    Ok(())
}

fn write_secret(path: &Path, secret: &str) -> Result<(), ServeError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    use std::io::Write;
    opts.open(path)
        .and_then(|mut f| f.write_all(format!("{secret}\n").as_bytes()))
        .map_err(|e| ServeError::Preload {
            path: path.display().to_string(),
            message: e.to_string(),
        })
}

/// Listens for SIGTERM and SIGINT from the moment it is created, so a signal
/// sent right after the daemon says it is listening is not lost.
struct ShutdownSignal {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl ShutdownSignal {
    fn install() -> Result<Self, ServeError> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let err = |e| ServeError::Signal(e);
            Ok(ShutdownSignal {
                term: signal(SignalKind::terminate()).map_err(err)?,
                int: signal(SignalKind::interrupt()).map_err(err)?,
            })
        }
        #[cfg(not(unix))]
        Ok(ShutdownSignal {})
    }

    async fn recv(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

pub async fn serve(cfg: ServeConfig) -> Result<(), ServeError> {
    if let StoreLocation::Postgres(url) = &cfg.store {
        // Connects, checks the schema version and migrates; every message
        // names the URL without its password.
        let store = PgStore::open(url).map_err(|error| ServeError::Store {
            location: "on PostgreSQL".into(),
            error,
        })?;
        return serve_node(cfg, store).await;
    }
    let state_dir = cfg.data_dir.join("state");
    let store: Arc<dyn StateStore> =
        Arc::new(
            SledStore::open(&state_dir).map_err(|error| ServeError::Store {
                location: format!("in {}", state_dir.display()),
                error,
            })?,
        );
    let executor = executor(&cfg)?;
    let engine = open_engine(&cfg, store, executor, None).await?;
    let tenancy = open_tenancy(&cfg, &engine)?;
    preload(&engine, &tenancy, &cfg).await?;
    let (listener, addr) = listen(&cfg).await?;
    let signal = ShutdownSignal::install()?;
    // Scripts and tests wait for this line to know the port.
    println!("tidemark listening on http://{addr}");
    tracing::info!(%addr, data = %cfg.data_dir.display(), store = cfg.store.display(), "serving");
    let membership = crate::cluster::Membership::Embedded {
        id: cfg.node_id.clone(),
        addr: advertise(&cfg, addr),
        started_ms: engine.clock().now_ms(),
    };
    let (stop_tx, stop_rx) = stop_on(signal);
    let http = axum::serve(
        listener,
        crate::api::app_in(engine.clone(), tenancy, membership),
    )
    .with_graceful_shutdown(stopped(stop_rx.clone()));
    let driver = async {
        let outcome = engine.run_until(stopped(stop_rx), cfg.grace).await;
        // A driver that gave up (the store cannot write) stops the API too.
        let _ = stop_tx.send(true);
        outcome
    };
    let (http, driver) = tokio::join!(http, driver);
    http.map_err(ServeError::Http)?;
    Ok(driver?)
}

/// A node of a cluster on PostgreSQL: the API at once (forwarded to the
/// leader while this node stands by), the engine while it holds the lease.
async fn serve_node(cfg: ServeConfig, base: PgStore) -> Result<(), ServeError> {
    if cfg.admin_token.is_none() {
        tracing::warn!(
            "no admin token configured: nodes sharing a store need the same one \
             (--admin-token or TIDEMARK_ADMIN_TOKEN), or admin requests fail on the others"
        );
    }
    let executor = executor(&cfg)?;
    let (listener, addr) = listen(&cfg).await?;
    let signal = ShutdownSignal::install()?;
    let front =
        crate::cluster::front::Front::new(base.clone(), cfg.node_id.clone(), &admin_token(&cfg)?);
    let node = crate::cluster::NodeConfig {
        id: cfg.node_id.clone(),
        advertise: advertise(&cfg, addr),
        lease: cfg.lease,
    };
    tracing::info!(%addr, node = node.id, advertise = node.advertise, store = cfg.store.display(), "serving as a cluster node");
    // Said once the node leads (its engine open, preloads done) or stands
    // by: scripts and tests wait for it before they call the API.
    let ready = move || println!("tidemark listening on http://{addr}");
    let (stop_tx, stop_rx) = stop_on(signal);
    let http =
        axum::serve(listener, front.router()).with_graceful_shutdown(stopped(stop_rx.clone()));
    let membership = crate::cluster::Membership::Shared {
        store: base.clone(),
        id: node.id.clone(),
    };
    let start = |fenced: PgStore, tenure: Arc<crate::cluster::tenure::Tenure>| {
        let (cfg, executor, membership) = (&cfg, executor.clone(), membership.clone());
        async move {
            use crate::cluster::node::StartError;
            // A store error may pass (the database comes back); a bad
            // preload file will not.
            let classify = |e: ServeError| match &e {
                ServeError::Engine(EngineError::Store(_))
                | ServeError::PreloadRefused {
                    source: EngineError::Store(_),
                    ..
                }
                | ServeError::Tenancy(crate::tenancy::TenancyError::Store(_)) => {
                    StartError::Transient(e)
                }
                _ => StartError::Fatal(e),
            };
            let engine = open_engine(cfg, Arc::new(fenced), executor, Some(tenure))
                .await
                .map_err(classify)?;
            let tenancy = open_tenancy(cfg, &engine).map_err(classify)?;
            preload(&engine, &tenancy, cfg).await.map_err(classify)?;
            let router = crate::api::app_in(engine.clone(), tenancy, membership);
            Ok((engine, router))
        }
    };
    let driver = async {
        let outcome =
            crate::cluster::node::run(base, node, front, start, stop_rx.clone(), cfg.grace, ready)
                .await;
        let _ = stop_tx.send(true);
        outcome
    };
    let (http, driver) = tokio::join!(http, driver);
    http.map_err(ServeError::Http)?;
    driver
}

fn advertise(cfg: &ServeConfig, bound: SocketAddr) -> String {
    match &cfg.advertise {
        Some(a) => a.clone(),
        None if bound.ip().is_unspecified() => format!("http://127.0.0.1:{}", bound.port()),
        None => format!("http://{bound}"),
    }
}

fn executor(cfg: &ServeConfig) -> Result<Arc<Executor>, ServeError> {
    // Plugins are uploaded by tenants: compiled in a child of this binary
    // under limits, so a compiler bomb cannot take the daemon down (#9).
    let compiler = Compiler::Subprocess(CompileLimits {
        program: std::env::current_exe().map_err(ServeError::Exe)?,
        memory_bytes: cfg.compile_memory,
        timeout: cfg.compile_timeout,
    });
    Ok(Arc::new(
        Executor::new(ExecutorConfig {
            cache_dir: Some(cfg.data_dir.join("components")),
            max_instances: Some((cfg.max_concurrent_attempts * 2).max(16) as u32),
        })?
        .with_compiler(compiler),
    ))
}

async fn open_engine(
    cfg: &ServeConfig,
    store: Arc<dyn StateStore>,
    executor: Arc<Executor>,
    tenure: Option<Arc<crate::cluster::tenure::Tenure>>,
) -> Result<Engine, ServeError> {
    // Connection secrets are sealed with a key from TIDEMARK_SECRETS_KEY or
    // `DATA_DIR/secrets-key` (generated once, mode 0600).
    let configured_key = std::env::var("TIDEMARK_SECRETS_KEY").ok();
    let (sealing_key, _) =
        crate::secrets::SealingKey::load_or_generate(&cfg.data_dir, configured_key.as_deref())?;
    Ok(Engine::open(
        store,
        executor,
        Arc::new(SystemClock),
        EngineConfig {
            sealing_key: Some(sealing_key),
            // `fs` connections: the embedded object store.
            objects_dir: Some(cfg.data_dir.join("objects")),
            max_concurrent_attempts: cfg.max_concurrent_attempts,
            backfill_admission_limit: cfg.backfill_admission_limit,
            quotas: cfg.quotas.clone(),
            tenure,
            ..EngineConfig::default()
        },
    )
    .await?)
}

fn open_tenancy(cfg: &ServeConfig, engine: &Engine) -> Result<Tenancy, ServeError> {
    Ok(Tenancy::new(engine.store().clone(), &admin_token(cfg)?))
}

/// The configured admin token, else the data directory's (made and said
/// once, the first time).
fn admin_token(cfg: &ServeConfig) -> Result<String, ServeError> {
    let (admin, generated) = crate::tenancy::admin_token(&cfg.data_dir, cfg.admin_token.clone())?;
    if generated {
        // Only the path: stdout is the daemon's log under a service manager
        // or a container, and the token opens every tenant.
        println!(
            "generated the admin token into {} (mode 0600)",
            cfg.data_dir.join("admin-token").display()
        );
    }
    Ok(admin)
}

async fn listen(cfg: &ServeConfig) -> Result<(tokio::net::TcpListener, SocketAddr), ServeError> {
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: cfg.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Listen {
        addr: cfg.listen,
        source,
    })?;
    Ok((listener, addr))
}

type Stop = (
    Arc<tokio::sync::watch::Sender<bool>>,
    tokio::sync::watch::Receiver<bool>,
);

/// A stop flag that the first SIGTERM/SIGINT sets.
fn stop_on(signal: ShutdownSignal) -> Stop {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let tx = stop_tx.clone();
    tokio::spawn(async move {
        signal.recv().await;
        tracing::info!("shutdown requested");
        let _ = tx.send(true);
    });
    (stop_tx, stop_rx)
}

async fn stopped(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}
