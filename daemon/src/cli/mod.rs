//! The `tidemark` command line: the entry point and the dispatch of each
//! command to where it is done (`local` without a daemon, `remote` and
//! `list` over the API, `serve` in `crate::server`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Everything the CLI prints goes through these instead of `print!` and
/// friends, which panic with a backtrace when the reader is gone
/// (`tidemark runs list etl | head`); see [`write_or_exit`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::write_or_exit(false, format_args!($($arg)*))
    };
}
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::write_or_exit(false, format_args!("{}\n", format_args!($($arg)*)))
    };
}
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::cli::write_or_exit(true, format_args!("{}\n", format_args!($($arg)*)))
    };
}

mod args;
mod connections;
mod egress;
mod estimate;
mod gaps;
mod list;
mod local;
mod notify;
mod provenance;
mod remote;

pub use args::*;
pub use list::{ListOutput, Paging};
pub use local::run_spec;

use crate::client::Client;

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

impl ServeArgs {
    /// What flags and environment gave, in the shape of the file.
    fn overlay(&self) -> crate::config::FileConfig {
        crate::config::FileConfig {
            data: self.data.clone(),
            store: self.store.clone(),
            listen: self.listen.clone(),
            plugins: self.plugins.clone(),
            workflows: self.workflows.clone(),
            tenant: self.tenant.clone(),
            max_attempts: self.max_attempts,
            grace: self.grace.clone(),
            admin_token: self.admin_token.clone(),
            node_id: self.node_id.clone(),
            advertise: self.advertise.clone(),
            lease: self.lease.clone(),
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

/// Entry point of the binary: parses arguments, runs, returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_) | Command::Compile(_)) {
        init_tracing(crate::config::LogFormat::Text, None);
    }
    let token = cli.token.clone();
    let client = || Client::new(&cli.server).with_token(token.clone());
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Compile(a) => {
            let code = crate::executor::compile_child_main(&crate::executor::ChildArgs {
                input: a.input,
                output: a.output,
                memory_bytes: a.max_memory,
                engine_hash: a.engine_hash,
                parent: a.parent,
            });
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
        Command::CliReference => {
            out!("{}", cli_reference());
            ExitCode::SUCCESS
        }
        Command::Config(ConfigCommand::Check(args)) => match args.resolve() {
            Ok(c) => match toml::to_string(&c) {
                Ok(text) => {
                    out!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(EXIT_FAILED, &e),
            },
            Err(e) => fail(EXIT_INVALID, &e),
        },
        Command::Apply { file } => remote::apply(&client(), &file),
        Command::Task(TaskCommand::Run(args)) => local::task_run(*args),
        Command::Plugin(PluginCommand::Check { plugin }) => local::plugin_check(plugin),
        Command::Plugin(PluginCommand::Push { name, file }) => {
            remote::plugin_push(&client(), &name, &file)
        }
        Command::Plugin(PluginCommand::List { paging }) => list::plugins(&client(), &paging),
        Command::Plugin(PluginCommand::Versions { name, paging }) => {
            list::plugin_versions(&client(), &name, &paging)
        }
        Command::Plugin(PluginCommand::Delete { name, version }) => remote::delete(
            &client(),
            &format!("/api/v1/plugins/{name}/versions/{version}"),
            &format!("plugin {name} version {version} deleted"),
        ),
        Command::Workflow(c) => workflow(&client(), c),
        Command::Runs(RunsCommand::List {
            workflow,
            state,
            from,
            to,
            paging,
        }) => list::runs(
            &client(),
            &workflow,
            [
                ("state", state.as_deref()),
                ("from", from.as_deref()),
                ("to", to.as_deref()),
            ],
            &paging,
        ),
        Command::Runs(RunsCommand::Logs {
            id,
            task,
            attempt,
            paging,
        }) => list::logs(&client(), id, task.as_deref(), attempt, &paging),
        Command::Runs(RunsCommand::Show { id, output }) => remote::run_show(&client(), id, output),
        Command::Runs(RunsCommand::Why {
            id,
            compare,
            output,
        }) => provenance::why(&client(), id, compare, output),
        Command::Gaps {
            workflow,
            since,
            until,
            repair,
            propose,
            output,
        } => gaps::gaps(
            &client(),
            gaps::GapArgs {
                workflow,
                since,
                until,
                repair,
                propose,
                output,
            },
        ),
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
        Command::Backfill(BackfillCommand::List { paging }) => list::backfills(&client(), &paging),
        Command::Backfill(BackfillCommand::Windows { id, state, paging }) => {
            list::backfill_windows(&client(), id, state.as_deref(), &paging)
        }
        Command::Backfill(BackfillCommand::Status { id, output }) => {
            remote::backfill_status(&client(), id, output)
        }
        Command::Backfill(BackfillCommand::Watch { id, interval }) => {
            match humantime::parse_duration(&interval) {
                Ok(every) => remote::backfill_watch(&client(), id, every),
                Err(e) => {
                    errln!("error: --interval {interval:?}: {e}");
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
        Command::Backfill(BackfillCommand::Verify { id, output }) => {
            remote::backfill_verify(&client(), id, output)
        }
        Command::Connection(cmd) => connections::run(&client(), &cmd),
        Command::Notify(cmd) => notify::run(&client(), &cmd),
        Command::Tenant(TenantCommand::Create { name }) => remote::tenant_create(&client(), &name),
        Command::Tenant(TenantCommand::List { paging }) => list::tenants(&client(), &paging),
        Command::Tenant(TenantCommand::Tokens { name, paging }) => {
            list::tokens(&client(), Some(&name), &paging)
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
        Command::Tenant(TenantCommand::Egress(cmd)) => egress::run(&client(), cmd),
        Command::Quotas { output } => remote::quotas(&client(), output == Output::Json),
        Command::Nodes { output } => nodes(&client(), output == Output::Json),
        Command::Token(TokenCommand::Create { label }) => remote::token_create(&client(), &label),
        Command::Token(TokenCommand::List { paging }) => list::tokens(&client(), None, &paging),
        Command::Token(TokenCommand::Revoke { id }) => remote::delete(
            &client(),
            &format!("/api/v1/tokens/{id}"),
            &format!("token {id} revoked"),
        ),
    }
}

fn workflow(client: &Client, c: WorkflowCommand) -> ExitCode {
    match c {
        WorkflowCommand::List { paging } => list::workflows(client, &paging),
        WorkflowCommand::Versions { name, paging } => {
            list::workflow_versions(client, &name, &paging)
        }
        WorkflowCommand::Show { name, version } => remote::workflow_show(client, &name, version),
        WorkflowCommand::Pause { name } => remote::workflow_pause(client, &name, true),
        WorkflowCommand::Unpause { name } => remote::workflow_pause(client, &name, false),
        WorkflowCommand::Delete { name } => remote::delete(
            client,
            &format!("/api/v1/workflows/{name}"),
            &format!("workflow {name} deleted"),
        ),
    }
}

/// `tidemark nodes`: one line per node, the leader marked.
fn nodes(client: &Client, json: bool) -> ExitCode {
    let v = match client.get("/api/v1/nodes") {
        Ok(v) => v,
        Err(e) => return fail(EXIT_FAILED, &e),
    };
    if json {
        outln!("{v:#}");
        return ExitCode::SUCCESS;
    }
    let leader = v["leader"].as_str().unwrap_or("(none: electing)");
    outln!(
        "store {}, leader {leader}, lease epoch {}",
        v["store"].as_str().unwrap_or("?"),
        v["epoch"]
    );
    outln!(
        "{:<28} {:<8} {:>10} {:>9} {:<10} ADDRESS",
        "NODE",
        "ROLE",
        "HEARTBEAT",
        "ATTEMPTS",
        "LEASES"
    );
    for n in v["nodes"].as_array().into_iter().flatten() {
        let role = match (n["leader"].as_bool(), n["draining"].as_bool()) {
            (_, Some(true)) => "draining",
            (Some(true), _) => "leader",
            _ => "standby",
        };
        let leases: Vec<&str> = n["leases"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l.as_str())
            .collect();
        outln!(
            "{:<28} {:<8} {:>8}ms {:>9} {:<10} {}",
            n["id"].as_str().unwrap_or("?"),
            role,
            n["heartbeat_age_ms"],
            n["attempts"],
            if leases.is_empty() {
                "-".into()
            } else {
                leases.join(",")
            },
            n["addr"].as_str().unwrap_or("")
        );
    }
    ExitCode::SUCCESS
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
        store: c.store,
        listen: c.listen,
        plugins_dir: c.plugins,
        workflows_dir: c.workflows,
        max_concurrent_attempts: c.max_attempts,
        grace: c.grace,
        admin_token: c.admin_token,
        preload_tenant: c.tenant,
        backfill_admission_limit: c.backfill_admission_limit,
        quotas: c.quotas,
        compile_memory: c.compile_memory,
        compile_timeout: c.compile_timeout,
        node_id: c.node_id,
        advertise: c.advertise,
        lease: c.lease,
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

/// Writes to stdout (or stderr). A closed stdout ends the process quietly
/// with success, as `head` expects of the command before it; another
/// stdout error is reported and ends it with [`EXIT_FAILED`]. A failed
/// write to stderr is ignored: there is nowhere left to say anything, and
/// the command's exit code still tells. Not done by restoring SIGPIPE's
/// default action: that would also kill the CLI silently when the daemon
/// closes a connection mid-request, instead of reporting the error.
pub(crate) fn write_or_exit(stderr: bool, args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    if stderr {
        let _ = std::io::stderr().lock().write_fmt(args);
        return;
    }
    match std::io::stdout().lock().write_fmt(args) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: writing the output: {e}");
            std::process::exit(EXIT_FAILED.into())
        }
    }
}

fn fail(code: u8, err: &dyn std::error::Error) -> ExitCode {
    let mut msg = format!("error: {err}");
    let mut source = err.source();
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    errln!("{msg}");
    ExitCode::from(code)
}

/// The CLI reference in Markdown, generated from the clap definitions.
pub fn cli_reference() -> String {
    clap_markdown::help_markdown::<Cli>()
}
