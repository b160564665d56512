//! The `tidemark` command line's arguments, as clap parses them. They are
//! validated into domain types where they are used (`harness::RunSpec`,
//! the API), so errors name the bad argument.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use super::list::Paging;

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
    /// Check, push, list and delete plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// List, inspect, pause and delete workflows.
    #[command(subcommand)]
    Workflow(WorkflowCommand),
    /// Inspect runs.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Re-run a workflow over historical windows.
    #[command(subcommand)]
    Backfill(BackfillCommand),
    /// Manage tenants (needs the admin token).
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// The tenant's connections (HTTP APIs, S3 buckets, directories) and
    /// their sealed secrets.
    #[command(subcommand)]
    Connection(ConnectionCommand),
    /// Webhook notifications: targets and their event types, and the
    /// delivery log.
    #[command(subcommand)]
    Notify(NotifyCommand),
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
    /// Compile one component under limits, for the daemon (internal: the
    /// daemon runs it as a child so a compiler bomb cannot hurt it).
    #[command(name = "__compile", hide = true)]
    Compile(CompileArgs),
    /// The daemons sharing the store: which one leads, heartbeats, leases
    /// and attempts (needs the admin token).
    Nodes {
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// The calling tenant's quotas and what it uses of them.
    Quotas {
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Windows of WORKFLOW that are missing, failed, or stale (an input they
    /// read, or an upstream window they waited for, was committed again
    /// since), each with its reason, and the backfill that repairs them.
    Gaps {
        workflow: String,
        /// First window start, RFC 3339 [default: the workflow's repair lookback, 7 days].
        #[arg(long)]
        since: Option<String>,
        /// Window starts before this, RFC 3339 [default: now].
        #[arg(long)]
        until: Option<String>,
        /// Create the backfill that repairs them, and start it.
        #[arg(long, conflicts_with = "propose")]
        repair: bool,
        /// Create the repair backfill paused, for someone to approve (resume).
        #[arg(long)]
        propose: bool,
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
    /// Data directory (the embedded store, compiled components, tokens).
    #[arg(long, env = "TIDEMARK_DATA")]
    pub data: Option<PathBuf>,
    /// Keep state in PostgreSQL at this URL (postgres://user[:password]@host:port/db)
    /// instead of the embedded store in the data directory.
    #[arg(long, env = "TIDEMARK_STORE", hide_env_values = true)]
    pub store: Option<String>,
    /// Address to listen on [default: 127.0.0.1:7878].
    #[arg(long, env = "TIDEMARK_LISTEN")]
    pub listen: Option<String>,
    /// Push every .wasm in this directory at start (name = file stem).
    #[arg(long)]
    pub plugins: Option<PathBuf>,
    /// Apply every .toml in this directory at start.
    #[arg(long)]
    pub workflows: Option<PathBuf>,
    /// Attempts running at once [default: 32].
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
    /// This daemon's name among nodes sharing a PostgreSQL store [default: host name and pid].
    #[arg(long, env = "TIDEMARK_NODE_ID")]
    pub node_id: Option<String>,
    /// URL other nodes forward API requests to [default: http:// and --listen].
    #[arg(long, env = "TIDEMARK_ADVERTISE")]
    pub advertise: Option<String>,
    /// Engine lease on a PostgreSQL store: how long a silent node keeps its work, e.g. 5s [default: 5s].
    #[arg(long, env = "TIDEMARK_LEASE")]
    pub lease: Option<String>,
}

/// See `executor::ChildArgs`.
#[derive(Debug, Args)]
pub struct CompileArgs {
    #[arg(long)]
    pub input: PathBuf,
    #[arg(long)]
    pub output: PathBuf,
    /// Address-space limit, bytes.
    #[arg(long)]
    pub max_memory: u64,
    #[arg(long)]
    pub engine_hash: String,
    #[arg(long)]
    pub parent: u32,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Exit 0 and print the effective configuration, or name the bad key
    /// and exit 3.
    Check(Box<ServeArgs>),
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// The latest run of each window of a workflow, by window.
    List {
        workflow: String,
        /// Only runs in this state (queued, running, succeeded, failed, ...).
        #[arg(long)]
        state: Option<String>,
        /// Windows starting at or after this instant (RFC 3339 or ms).
        #[arg(long)]
        from: Option<String>,
        /// Windows starting before this instant (RFC 3339 or ms).
        #[arg(long)]
        to: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
    /// The log lines of a run's attempts, in order.
    Logs {
        id: u64,
        /// Only this task's lines.
        #[arg(long)]
        task: Option<String>,
        /// Only this attempt's lines (1 = first).
        #[arg(long)]
        attempt: Option<u32>,
        #[command(flatten)]
        paging: Paging,
    },
    /// One run with its tasks and their attempts.
    Show {
        id: u64,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Why a run exists: its cause, who asked, its workflow version, the
    /// plugin digests its tasks ran and the upstream windows and dataset
    /// partitions it read; with `--compare`, what changed between two runs
    /// of one window.
    Why {
        id: u64,
        /// Another run of the same window to compare with.
        #[arg(long, value_name = "OTHER")]
        compare: Option<u64>,
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
    /// The tenant's backfills with their progress, oldest first.
    List {
        #[command(flatten)]
        paging: Paging,
    },
    /// The windows of a backfill (every affected workflow), by workflow and
    /// window.
    Windows {
        id: u64,
        /// Only windows in this state (running, succeeded, failed, skipped,
        /// cancelled).
        #[arg(long)]
        state: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
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
    /// Re-read every object-storage output the backfill's windows published
    /// and compare it with what was committed: consistent, missing objects,
    /// size or checksum mismatch, extra unpublished objects. Exits 1 if any
    /// output is inconsistent.
    Verify {
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
    /// Only these downstream workflows (comma-separated or repeated); the
    /// cascade passes only through them. Needs --downstream.
    #[arg(long, value_delimiter = ',', value_name = "WORKFLOW")]
    pub include_downstream: Vec<String>,
    /// Never these downstream workflows, nor what is reached only through
    /// them (comma-separated or repeated). Needs --downstream.
    #[arg(long, value_delimiter = ',', value_name = "WORKFLOW")]
    pub exclude_downstream: Vec<String>,
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
    /// Off-peak hours in which windows may start, e.g. "Mon-Fri 20:00-06:00"
    /// (repeatable; with --timezone).
    #[arg(long = "allowed-hours", requires = "timezone")]
    pub allowed_hours: Vec<String>,
    /// IANA time zone of --allowed-hours, e.g. Europe/Berlin.
    #[arg(long, requires = "allowed_hours")]
    pub timezone: Option<String>,
    /// Start no window before this RFC 3339 instant.
    #[arg(long)]
    pub start_at: Option<String>,
    /// Budget: pause before a window that would bring the wall time past
    /// this (e.g. 90m, 2h; from the first window's start).
    #[arg(long, value_parser = wall_seconds)]
    pub max_wall: Option<i64>,
    /// Budget: pause before a window that would bring the fuel past this.
    #[arg(long, allow_negative_numbers = true)]
    pub max_fuel: Option<i64>,
    /// Budget: pause before a window that would bring the bytes written
    /// past this.
    #[arg(long, allow_negative_numbers = true)]
    pub max_bytes: Option<i64>,
    /// Print the plan and its estimate, and change nothing.
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
        #[command(flatten)]
        paging: Paging,
    },
    /// A tenant's tokens (never their secrets).
    Tokens {
        name: String,
        #[command(flatten)]
        paging: Paging,
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
    /// A tenant's egress allowlist: the hosts its tasks may call over HTTP.
    #[command(subcommand)]
    Egress(EgressCommand),
}

#[derive(Debug, Subcommand)]
pub enum EgressCommand {
    /// Print a tenant's egress allowlist, one pattern per line.
    Show {
        name: String,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Replace a tenant's egress allowlist (no pattern: no outbound HTTP).
    Set {
        name: String,
        /// `scheme://host[:port]`, e.g. `https://api.example.com`,
        /// `https://*.example.com`, `http://10.0.0.0/8:8000-8100`.
        #[arg(value_name = "PATTERN")]
        patterns: Vec<String>,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
}

/// Secret values of a connection: on the command line, or (better, as a
/// command line can be seen by other users) from files.
#[derive(Debug, clap::Args)]
pub struct SecretArgs {
    /// FIELD=VALUE, e.g. `--secret token=...`.
    #[arg(long = "secret", value_name = "FIELD=VALUE")]
    pub secret: Vec<String>,
    /// FIELD=PATH: the value is the file's content (a final newline dropped).
    #[arg(long = "secret-file", value_name = "FIELD=PATH")]
    pub secret_file: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum ConnectionCommand {
    /// Create a connection; its secrets are sealed and never shown again.
    Create {
        name: String,
        /// http, s3, gcs, azure or fs.
        #[arg(long)]
        kind: String,
        /// KEY=VALUE settings, e.g. `--config base_url=https://api.example.com`.
        #[arg(long = "config", value_name = "KEY=VALUE")]
        config: Vec<String>,
        #[command(flatten)]
        secrets: SecretArgs,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// The tenant's connections (secret fields by name only).
    List {
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// One connection: settings, and each secret's fingerprint.
    Show {
        name: String,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Replace secrets (others keep theirs) and, with --config, all settings.
    Rotate {
        name: String,
        #[arg(long = "config", value_name = "KEY=VALUE")]
        config: Vec<String>,
        #[command(flatten)]
        secrets: SecretArgs,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Delete a connection no workflow names.
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Create a webhook target; payloads are signed with a secret of
    /// CONNECTION (HMAC-SHA256) and sent within the egress allowlist.
    Create {
        name: String,
        /// The `http(s)://` URL payloads are POSTed to.
        #[arg(long)]
        url: String,
        /// The connection whose secret signs the payloads.
        #[arg(long)]
        connection: String,
        /// The connection's secret field that signs (default `token`).
        #[arg(long)]
        secret_field: Option<String>,
        /// An event type: backfill.ended, backfill.paused, backfill.stuck,
        /// run.failed or gap.detected (repeat the flag for several).
        #[arg(long = "event", value_name = "TYPE", required = true)]
        events: Vec<String>,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// The tenant's targets.
    List {
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Delete a target; its pending deliveries fail at their next attempt.
    Delete { name: String },
    /// The delivery log, newest first: attempts, last status and error.
    Deliveries {
        /// Deliveries older than this id (the `next` of the last page).
        #[arg(long)]
        before: Option<u64>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// One delivery, with the payload it sends.
    Delivery {
        id: u64,
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
        #[command(flatten)]
        paging: Paging,
    },
    Revoke {
        id: u64,
    },
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
    /// Every plugin version of the tenant, by name and version.
    List {
        #[command(flatten)]
        paging: Paging,
    },
    /// The versions of one plugin with digest, size and creation time.
    Versions {
        name: String,
        #[command(flatten)]
        paging: Paging,
    },
    /// Delete a plugin version that no workflow version uses.
    Delete { name: String, version: u32 },
}

#[derive(Debug, Subcommand)]
pub enum WorkflowCommand {
    /// The tenant's workflows: schedule, paused, last window and next due.
    List {
        #[command(flatten)]
        paging: Paging,
    },
    /// Print a workflow's definition (newest, or `--version N`) as JSON.
    Show {
        name: String,
        #[arg(long)]
        version: Option<u32>,
    },
    /// Every version of a workflow.
    Versions {
        name: String,
        #[command(flatten)]
        paging: Paging,
    },
    /// Stop creating new windows (a new version with `paused = true`).
    Pause {
        name: String,
    },
    Unpause {
        name: String,
    },
    /// Delete a workflow (refused while it has active runs or backfills).
    Delete {
        name: String,
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
    /// Let the task send HTTP requests to hosts matching this
    /// `scheme://host[:port]` pattern (e.g. `https://api.example.com`,
    /// `http://127.0.0.1:8080`); repeatable. Without it: no network.
    #[arg(long = "allow-host", value_name = "PATTERN")]
    pub allow_hosts: Vec<String>,
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

/// `--max-wall`: a duration (`90m`, `2h`), or bare seconds.
fn wall_seconds(v: &str) -> Result<i64, String> {
    if let Ok(n) = v.parse::<i64>() {
        return Ok(n);
    }
    humantime::parse_duration(v)
        .map(|d| d.as_secs().min(i64::MAX as u64) as i64)
        .map_err(|e| format!("{v:?} is not a duration such as 90m or 2h: {e}"))
}
