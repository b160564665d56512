//! Commands that need no daemon: `task run` and `plugin check`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use super::{fail, Output, TaskRunArgs, TriggerArg, EXIT_FAILED, EXIT_INVALID, EXIT_USAGE};
use crate::executor::{Invocation, Limits, Trigger};
use crate::harness::{self, ArgError, HarnessError, ReportJson, RunSpec};

fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("tidemark").join("components"))
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
    // Locally, one list plays both the tenant's and the task's part.
    let allowed = crate::egress::Allowlist::parse(&args.allow_hosts)?;
    limits.egress.tenant = allowed.clone();
    limits.egress.task = allowed;
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

pub fn task_run(args: TaskRunArgs) -> ExitCode {
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
    for h in &r.http {
        writeln!(
            out,
            "http {} {} {} ({}): {} bytes out, {} bytes in, {} ms",
            h.method,
            h.host,
            h.status.map_or_else(|| "-".to_owned(), |s| s.to_string()),
            h.outcome.as_label(),
            h.bytes_out,
            h.bytes_in,
            h.ms
        )?;
    }
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

pub fn plugin_check(path: PathBuf) -> ExitCode {
    match harness::check_plugin(&path, default_cache_dir()) {
        Ok(p) => {
            outln!(
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
