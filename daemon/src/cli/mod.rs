//! The `tidemark` command line. Arguments are parsed in two stages: clap's
//! raw structs here, then validated into domain types (`harness::RunSpec`)
//! whose errors name the bad argument.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod remote;

use crate::client::Client;
use crate::executor::{Invocation, Limits, Trigger};
use crate::harness::{self, ArgError, HarnessError, ReportJson, RunSpec};

/// Exit code of an attempt that ran and failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code of bad arguments (as clap uses).
pub const EXIT_USAGE: u8 = 2;
/// Exit code of an invalid plugin or an unreadable file.
pub const EXIT_INVALID: u8 = 3;

#[derive(Debug, Parser)]
#[command(
    name = "tidemark",
    version,
    about = "Workflow scheduler with WebAssembly tasks"
)]
pub struct Cli {
    /// The daemon's address, for commands that talk to it.
    #[arg(
        long,
        global = true,
        env = "TIDEMARK_SERVER",
        default_value = "http://127.0.0.1:7878"
    )]
    pub server: String,
    /// API token (a tenant's, or the admin token for `tenant` commands).
    #[arg(long, global = true, env = "TIDEMARK_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: scheduler, executor and HTTP API.
    Serve(ServeArgs),
    /// Create or update a workflow from a TOML or JSON file.
    Apply {
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
    },
    /// Work with single tasks locally, without a daemon.
    #[command(subcommand)]
    Task(TaskCommand),
    /// Check, push and list plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Inspect runs.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Re-run a workflow over historical windows.
    #[command(subcommand)]
    Backfill(BackfillCommand),
    /// Manage tenants (needs the admin token).
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage the calling tenant's API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Start an event run of WORKFLOW whose tasks get a JSON payload.
    Trigger {
        workflow: String,
        /// The payload (JSON text); `@FILE` reads it from a file.
        #[arg(long, default_value = "{}")]
        payload: String,
        /// Makes retries safe: the same key answers with the same run.
        #[arg(long)]
        idempotency_key: Option<String>,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Validate the daemon's configuration (file, environment, flags) and
    /// print what it resolves to.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print this CLI's reference in Markdown (docs/cli.md is made by it).
    #[command(hide = true)]
    CliReference,
    /// The calling tenant's quotas and what it uses of them.
    Quotas {
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Run the window of WORKFLOW that contains WINDOW (an RFC 3339 instant) now.
    RunWindow {
        workflow: String,
        window: String,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A TOML configuration file; flags and environment override it.
    #[arg(long, env = "TIDEMARK_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory (the sled store and compiled components).
    #[arg(long, env = "TIDEMARK_DATA")]
    pub data: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:7878].
    #[arg(long, env = "TIDEMARK_LISTEN")]
    pub listen: Option<String>,
    /// Push every .wasm in this directory at start (name = file stem).
    #[arg(long)]
    pub plugins: Option<PathBuf>,
    /// Apply every .toml in this directory at start.
    #[arg(long)]
    pub workflows: Option<PathBuf>,
    /// Attempts running at once [default: 8].
    #[arg(long, env = "TIDEMARK_MAX_ATTEMPTS")]
    pub max_attempts: Option<usize>,
    /// How long running attempts may finish after SIGTERM, e.g. 30s [default: 30s].
    #[arg(long, env = "TIDEMARK_GRACE")]
    pub grace: Option<String>,
    /// The admin token (default: DATA/admin-token, generated on first start).
    #[arg(long, env = "TIDEMARK_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Tenant that --plugins and --workflows load into (created if missing) [default: default].
    #[arg(long)]
    pub tenant: Option<String>,
    /// Log format: text or json [default: text].
    #[arg(long, env = "TIDEMARK_LOG_FORMAT")]
    pub log_format: Option<String>,
}

impl ServeArgs {
    /// What flags and environment gave, in the shape of the file.
    fn overlay(&self) -> crate::config::FileConfig {
        crate::config::FileConfig {
            data: self.data.clone(),
            listen: self.listen.clone(),
            plugins: self.plugins.clone(),
            workflows: self.workflows.clone(),
            tenant: self.tenant.clone(),
            max_attempts: self.max_attempts,
            grace: self.grace.clone(),
            admin_token: self.admin_token.clone(),
            log: crate::config::LogConfig {
                format: self.log_format.clone(),
                filter: None,
            },
            ..Default::default()
        }
    }

    /// The file (if any) under flags and environment, validated.
    fn resolve(&self) -> Result<crate::config::Config, crate::config::ConfigError> {
        let file = match &self.config {
            Some(p) => crate::config::FileConfig::load(p)?,
            None => Default::default(),
        };
        crate::config::resolve(file, self.overlay(), default_data_dir())
    }
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Exit 0 and print the effective configuration, or name the bad key
    /// and exit 3.
    Check(Box<ServeArgs>),
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// The latest run of each window of a workflow.
    List {
        workflow: String,
        /// Only runs in this state (queued, running, succeeded, failed, ...).
        #[arg(long)]
        state: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        output: ListOutput,
    },
    /// One run with its tasks and their attempts.
    Show {
        id: u64,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Re-run a failed or cancelled run from its failed tasks.
    Retry { id: u64 },
    /// Cancel a run; `--interrupt` also stops attempts in flight.
    Cancel {
        id: u64,
        #[arg(long)]
        interrupt: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum BackfillCommand {
    /// Start a backfill (or preview it with --dry-run).
    Create(Box<BackfillArgs>),
    /// Progress of a backfill.
    Status {
        id: u64,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Follow a backfill with a live progress bar until it ends; exits
    /// non-zero unless it succeeded.
    Watch {
        id: u64,
        /// How often to poll, e.g. 500ms or 2s.
        #[arg(long, default_value = "1s")]
        interval: String,
    },
    /// Hold back new windows; runs in flight finish.
    Pause {
        id: u64,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    Resume {
        id: u64,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Cancel every window not yet ended.
    Cancel {
        id: u64,
        /// Stop attempts in flight instead of letting them finish.
        #[arg(long)]
        interrupt: bool,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Re-run the failed windows of an ended backfill, each from its failed
    /// task (same id, statistics kept true).
    RetryFailed {
        id: u64,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
}

#[derive(Debug, Args)]
pub struct BackfillArgs {
    pub workflow: String,
    /// Range start: a date (in the workflow's zone) or an RFC 3339 instant.
    #[arg(long, requires = "end", conflicts_with = "dates")]
    pub start: Option<String>,
    /// Range end (exclusive).
    #[arg(long, requires = "start")]
    pub end: Option<String>,
    /// Comma-separated dates or instants; each selects its window.
    #[arg(long, value_delimiter = ',')]
    pub dates: Option<Vec<String>>,
    #[arg(long, value_parser = ["serial", "parallel"], default_value = "parallel")]
    pub mode: String,
    #[arg(long)]
    pub parallelism: Option<u32>,
    #[arg(long, value_parser = ["asc", "desc"], default_value = "asc")]
    pub order: String,
    /// missing (default: never succeeded), failed, or all.
    #[arg(long, value_parser = ["missing", "failed", "all"], default_value = "missing")]
    pub rerun: String,
    #[arg(long)]
    pub from_task: Option<String>,
    #[arg(long, value_parser = ["none", "direct", "transitive"], default_value = "none")]
    pub downstream: String,
    #[arg(long, value_parser = ["low", "normal", "high"], default_value = "low")]
    pub priority: String,
    #[arg(long)]
    pub version: Option<u32>,
    #[arg(long)]
    pub max_failed_windows: Option<u32>,
    /// When a window already has an active run: wait (default), skip it, or
    /// cancel the other run.
    #[arg(long, value_parser = ["wait", "skip", "cancel_other"], default_value = "wait")]
    pub overlap: String,
    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant and print its first API token.
    Create { name: String },
    List {
        #[arg(long, value_enum, default_value = "table")]
        output: ListOutput,
    },
    /// Delete a tenant and everything it owns.
    Delete { name: String },
    /// Show a tenant's quotas and usage; `--set`/`--unset` change its
    /// overrides (the rest keep the configured defaults).
    Quotas {
        name: String,
        /// QUOTA=VALUE, e.g. `--set concurrent_attempts=4`.
        #[arg(long = "set", value_name = "QUOTA=VALUE")]
        set: Vec<String>,
        /// Return QUOTA to the default.
        #[arg(long = "unset", value_name = "QUOTA")]
        unset: Vec<String>,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (it is shown only once).
    Create {
        #[arg(long, default_value = "")]
        label: String,
    },
    List {
        #[arg(long, value_enum, default_value = "table")]
        output: ListOutput,
    },
    Revoke {
        id: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListOutput {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Run one attempt of a plugin and print its log and outcome.
    Run(Box<TaskRunArgs>),
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Check that a file is a component implementing the tidemark:task world.
    Check {
        /// The plugin's `.wasm` component.
        plugin: PathBuf,
    },
    /// Upload a plugin to the daemon as NAME (a new version if it changed).
    Push { name: String, file: PathBuf },
    /// List the daemon's plugins.
    List {
        #[arg(long, value_enum, default_value = "table")]
        output: ListOutput,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TriggerArg {
    Scheduled,
    Backfill,
    Manual,
    Event,
}

#[derive(Debug, Args)]
pub struct TaskRunArgs {
    /// The plugin's `.wasm` component.
    pub plugin: PathBuf,
    /// Run for this day (in --tz), e.g. 2024-03-01.
    #[arg(long, conflicts_with_all = ["window_start", "window_end"])]
    pub window: Option<String>,
    /// Window start, an RFC 3339 instant (with --window-end).
    #[arg(long)]
    pub window_start: Option<String>,
    /// Window end, an RFC 3339 instant (with --window-start).
    #[arg(long)]
    pub window_end: Option<String>,
    /// IANA time zone of the window.
    #[arg(long, default_value = "UTC")]
    pub tz: String,
    /// A task parameter, KEY=VALUE; repeatable.
    #[arg(long = "param", short = 'p')]
    pub params: Vec<String>,
    /// Fuel for the attempt.
    #[arg(long)]
    pub fuel: Option<u64>,
    /// Memory cap, e.g. 64MiB.
    #[arg(long)]
    pub memory: Option<String>,
    /// Wall-clock timeout, e.g. 5s.
    #[arg(long)]
    pub timeout: Option<String>,
    /// Log cap, e.g. 1MiB.
    #[arg(long)]
    pub log_limit: Option<String>,
    /// Cap on staged dataset bytes, e.g. 64MiB.
    #[arg(long)]
    pub output_limit: Option<String>,
    /// Keep datasets and checkpoints in this directory (a sled store)
    /// instead of memory, so later runs see them.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Attempt number passed to the task (1 = first attempt).
    #[arg(long, default_value_t = 1)]
    pub attempt: u32,
    /// Trigger kind passed to the task.
    #[arg(long, value_enum, default_value = "manual")]
    pub trigger: TriggerArg,
    /// File whose bytes become the event payload.
    #[arg(long)]
    pub payload: Option<PathBuf>,
    #[arg(long, default_value = "local")]
    pub tenant: String,
    #[arg(long, default_value = "local")]
    pub workflow: String,
    /// Task name (defaults to the plugin file's stem).
    #[arg(long)]
    pub task: Option<String>,
    /// Directory of compiled components (default: ~/.cache/tidemark/components).
    #[arg(long, env = "TIDEMARK_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Compile the plugin without using the compiled-component cache.
    #[arg(long)]
    pub no_cache: bool,
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
}

/// Entry point of the binary: parses arguments, runs, returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_)) {
        init_tracing(crate::config::LogFormat::Text, None);
    }
    let token = cli.token.clone();
    let client = || Client::new(&cli.server).with_token(token.clone());
    let out = |o: ListOutput| {
        if o == ListOutput::Json {
            Output::Json
        } else {
            Output::Text
        }
    };
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::CliReference => {
            print!("{}", cli_reference());
            ExitCode::SUCCESS
        }
        Command::Config(ConfigCommand::Check(args)) => match args.resolve() {
            Ok(c) => match toml::to_string(&c) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(EXIT_FAILED, &e),
            },
            Err(e) => fail(EXIT_INVALID, &e),
        },
        Command::Apply { file } => remote::apply(&client(), &file),
        Command::Task(TaskCommand::Run(args)) => task_run(*args),
        Command::Plugin(PluginCommand::Check { plugin }) => plugin_check(plugin),
        Command::Plugin(PluginCommand::Push { name, file }) => {
            remote::plugin_push(&client(), &name, &file)
        }
        Command::Plugin(PluginCommand::List { output }) => {
            remote::plugin_list(&client(), out(output))
        }
        Command::Runs(RunsCommand::List {
            workflow,
            state,
            output,
        }) => remote::runs_list(&client(), &workflow, state.as_deref(), out(output)),
        Command::Runs(RunsCommand::Show { id, output }) => remote::run_show(&client(), id, output),
        Command::Runs(RunsCommand::Retry { id }) => {
            remote::run_action(&client(), &format!("/api/v1/runs/{id}/retry"))
        }
        Command::Runs(RunsCommand::Cancel { id, interrupt }) => remote::run_action(
            &client(),
            &format!("/api/v1/runs/{id}/cancel?interrupt={interrupt}"),
        ),
        Command::Trigger {
            workflow,
            payload,
            idempotency_key,
            output,
        } => remote::trigger(
            &client(),
            &workflow,
            &payload,
            idempotency_key.as_deref(),
            output,
        ),
        Command::RunWindow {
            workflow,
            window,
            output,
        } => remote::run_window(&client(), &workflow, &window, output),
        Command::Backfill(BackfillCommand::Create(args)) => {
            remote::backfill_create(&client(), &args)
        }
        Command::Backfill(BackfillCommand::Status { id, output }) => {
            remote::backfill_status(&client(), id, output)
        }
        Command::Backfill(BackfillCommand::Watch { id, interval }) => {
            match humantime::parse_duration(&interval) {
                Ok(every) => remote::backfill_watch(&client(), id, every),
                Err(e) => {
                    eprintln!("error: --interval {interval:?}: {e}");
                    ExitCode::from(EXIT_USAGE)
                }
            }
        }
        Command::Backfill(BackfillCommand::Pause { id, output }) => {
            remote::backfill_action(&client(), id, "pause", output)
        }
        Command::Backfill(BackfillCommand::Resume { id, output }) => {
            remote::backfill_action(&client(), id, "resume", output)
        }
        Command::Backfill(BackfillCommand::Cancel {
            id,
            interrupt,
            output,
        }) => {
            let action = if interrupt {
                "cancel?interrupt=true"
            } else {
                "cancel"
            };
            remote::backfill_action(&client(), id, action, output)
        }
        Command::Backfill(BackfillCommand::RetryFailed { id, output }) => {
            remote::backfill_action(&client(), id, "retry-failed", output)
        }
        Command::Tenant(TenantCommand::Create { name }) => remote::tenant_create(&client(), &name),
        Command::Tenant(TenantCommand::List { output }) => {
            remote::list(&client(), "/api/v1/tenants", "tenants", out(output))
        }
        Command::Tenant(TenantCommand::Delete { name }) => remote::delete(
            &client(),
            &format!("/api/v1/tenants/{name}"),
            &format!("tenant {name} deleted"),
        ),
        Command::Tenant(TenantCommand::Quotas {
            name,
            set,
            unset,
            output,
        }) => remote::tenant_quotas(&client(), &name, &set, &unset, output == Output::Json),
        Command::Quotas { output } => remote::quotas(&client(), output == Output::Json),
        Command::Token(TokenCommand::Create { label }) => remote::token_create(&client(), &label),
        Command::Token(TokenCommand::List { output }) => {
            remote::list(&client(), "/api/v1/tokens", "tokens", out(output))
        }
        Command::Token(TokenCommand::Revoke { id }) => remote::delete(
            &client(),
            &format!("/api/v1/tokens/{id}"),
            &format!("token {id} revoked"),
        ),
    }
}

fn init_tracing(format: crate::config::LogFormat, filter: Option<&str>) {
    let default = if std::env::args().nth(1).as_deref() == Some("serve") {
        "info"
    } else {
        "warn"
    };
    // RUST_LOG wins over the configured filter.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter.unwrap_or(default)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        crate::config::LogFormat::Text => builder.try_init(),
        crate::config::LogFormat::Json => builder.json().try_init(),
    };
}

fn default_data_dir() -> PathBuf {
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local").join("share")))
        .map(|d| d.join("tidemark"))
        .unwrap_or_else(|| PathBuf::from("tidemark-data"))
}

fn serve(args: ServeArgs) -> ExitCode {
    let c = match args.resolve() {
        Ok(c) => c,
        Err(e) => return fail(EXIT_INVALID, &e),
    };
    init_tracing(c.log_format, c.log_filter.as_deref());
    let config = crate::server::ServeConfig {
        data_dir: c.data,
        listen: c.listen,
        plugins_dir: c.plugins,
        workflows_dir: c.workflows,
        max_concurrent_attempts: c.max_attempts,
        grace: c.grace,
        admin_token: c.admin_token,
        preload_tenant: c.tenant,
        backfill_admission_limit: c.backfill_admission_limit,
        quotas: c.quotas,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(EXIT_FAILED, &e),
    };
    match runtime.block_on(crate::server::serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(EXIT_FAILED, &e),
    }
}

fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("tidemark").join("components"))
}

fn fail(code: u8, err: &dyn std::error::Error) -> ExitCode {
    let mut msg = format!("error: {err}");
    let mut source = err.source();
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    eprintln!("{msg}");
    ExitCode::from(code)
}

/// Stage two: raw arguments to a validated [`RunSpec`].
pub fn run_spec(args: &TaskRunArgs) -> Result<RunSpec, ArgError> {
    let tz = harness::parse_tz(&args.tz)?;
    let (start, end) = match (&args.window, &args.window_start, &args.window_end) {
        (Some(day), _, _) => harness::day_window(day, tz)?,
        (None, Some(s), Some(e)) => (
            harness::parse_instant("window-start", s)?,
            harness::parse_instant("window-end", e)?,
        ),
        (None, None, None) => {
            let yesterday = (chrono::Utc::now().with_timezone(&tz).date_naive())
                .pred_opt()
                .unwrap_or_default();
            harness::day_window(&yesterday.format("%Y-%m-%d").to_string(), tz)?
        }
        _ => return Err(ArgError::HalfWindow),
    };
    if start >= end {
        return Err(ArgError::EmptyWindow {
            start: start.to_string(),
            end: end.to_string(),
        });
    }
    let params = args
        .params
        .iter()
        .map(|p| harness::parse_param(p))
        .collect::<Result<Vec<_>, _>>()?;
    let mut limits = Limits::default();
    if let Some(f) = args.fuel {
        limits.fuel = f;
    }
    if let Some(m) = &args.memory {
        limits.memory_bytes = harness::parse_memory(m)?;
    }
    if let Some(t) = &args.timeout {
        limits.timeout = harness::parse_timeout(t)?;
    }
    if let Some(l) = &args.log_limit {
        limits.log_bytes = harness::parse_memory(l)?;
    }
    if let Some(o) = &args.output_limit {
        limits.output_bytes = harness::parse_memory(o)?;
    }
    let task = args.task.clone().unwrap_or_else(|| {
        args.plugin
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "task".into())
    });
    Ok(RunSpec {
        plugin: args.plugin.clone(),
        invocation: Invocation {
            tenant: args.tenant.clone(),
            workflow: args.workflow.clone(),
            task,
            run_id: format!("local-{}", std::process::id()),
            window_start_ms: start,
            window_end_ms: end,
            timezone: tz.name().to_owned(),
            attempt: args.attempt.max(1),
            trigger: match args.trigger {
                TriggerArg::Scheduled => Trigger::Scheduled,
                TriggerArg::Backfill => Trigger::Backfill,
                TriggerArg::Manual => Trigger::Manual,
                TriggerArg::Event => Trigger::Event,
            },
            params,
            payload: Vec::new(),
        },
        limits,
        data_dir: args.data.clone(),
        cache_dir: if args.no_cache {
            None
        } else {
            args.cache_dir.clone().or_else(default_cache_dir)
        },
    })
}

fn task_run(args: TaskRunArgs) -> ExitCode {
    let mut spec = match run_spec(&args) {
        Ok(s) => s,
        Err(e) => return fail(EXIT_USAGE, &e),
    };
    if let Some(p) = &args.payload {
        match std::fs::read(p) {
            Ok(bytes) => spec.invocation.payload = bytes,
            Err(source) => {
                let e = HarnessError::Read {
                    path: p.display().to_string(),
                    source,
                };
                return fail(EXIT_INVALID, &e);
            }
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(EXIT_INVALID, &e),
    };
    let report = match runtime.block_on(harness::run_task(&spec)) {
        Ok(r) => r,
        Err(e) => return fail(EXIT_INVALID, &e),
    };
    let mut out = std::io::stdout().lock();
    let printed = match args.output {
        Output::Json => serde_json::to_writer_pretty(&mut out, &ReportJson::new(&report))
            .map_err(std::io::Error::other)
            .and_then(|()| writeln!(out)),
        Output::Text => print_report(&mut out, &report, &spec),
    };
    if let Err(e) = printed {
        return fail(EXIT_INVALID, &e);
    }
    if report.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    }
}

fn print_report(
    out: &mut impl Write,
    r: &crate::executor::AttemptReport,
    spec: &RunSpec,
) -> std::io::Result<()> {
    for line in &r.log {
        writeln!(
            out,
            "{:>6}ms {:<6} {}",
            line.at_ms,
            line.source.as_str(),
            line.message
        )?;
    }
    match &r.result {
        Ok(summary) => writeln!(out, "succeeded: {summary}")?,
        Err(e) => writeln!(out, "failed: {e}")?,
    }
    let fuel = r
        .fuel_consumed
        .map_or_else(|| "unknown".to_owned(), |f| f.to_string());
    writeln!(
        out,
        "fuel {fuel}, memory peak {}, {:.3} ms",
        bytesize::ByteSize::b(r.memory_peak as u64),
        r.elapsed.as_secs_f64() * 1000.0
    )?;
    if r.succeeded() {
        let where_ = match &spec.data_dir {
            Some(d) => format!("committed to {}", d.display()),
            None => "in memory, discarded".into(),
        };
        writeln!(
            out,
            "outputs: {} entries in {} datasets ({where_})",
            r.outputs.len(),
            r.outputs.datasets().len()
        )?;
    }
    Ok(())
}

fn plugin_check(path: PathBuf) -> ExitCode {
    match harness::check_plugin(&path, default_cache_dir()) {
        Ok(p) => {
            println!(
                "ok: {} implements tidemark:task/task ({}, {} bytes)",
                path.display(),
                p.digest,
                p.size
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(EXIT_INVALID, &e),
    }
}

/// The CLI reference in Markdown, generated from the clap definitions.
pub fn cli_reference() -> String {
    clap_markdown::help_markdown::<Cli>()
}
