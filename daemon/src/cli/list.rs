//! Listing commands: one page (or `--all`) of an API list, printed as a
//! table or as the API's JSON. Every list of the API pages with a `next`
//! cursor, so they share the flags and the loop here.

use std::process::ExitCode;

use clap::{Args, ValueEnum};
use serde_json::{json, Value};

use super::{fail, EXIT_FAILED, EXIT_USAGE};
use crate::client::Client;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListOutput {
    Table,
    Json,
}

/// Paging flags shared by the listing commands.
#[derive(Debug, Clone, Args)]
pub struct Paging {
    /// Items per page (the server caps it).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Start after this cursor: the `next` printed by the previous page.
    #[arg(long)]
    pub after: Option<String>,
    /// Follow `next` to the last page.
    #[arg(long)]
    pub all: bool,
    #[arg(long, value_enum, default_value = "table")]
    pub output: ListOutput,
}

/// A table column: its header and how a cell is drawn from an item.
pub struct Column {
    pub header: &'static str,
    pub cell: fn(&Value) -> String,
}

/// What to list: the API path, the response field holding the items,
/// filters, and the table's columns.
pub struct Listing<'a> {
    pub path: String,
    pub key: &'static str,
    pub query: Vec<(String, String)>,
    pub columns: &'a [Column],
}

/// A cursor as the user types it: a scalar is `after=VALUE`; a composite
/// cursor (an object) is written `k=v&k=v`.
fn cursor_text(next: &Value) -> Option<String> {
    match next {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Object(map) => Some(
            map.iter()
                .map(|(k, v)| match v {
                    Value::String(s) => format!("{k}={s}"),
                    other => format!("{k}={other}"),
                })
                .collect::<Vec<_>>()
                .join("&"),
        ),
        other => Some(other.to_string()),
    }
}

fn cursor_query(text: &str) -> Vec<(String, String)> {
    if text.contains('=') {
        text.split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    } else {
        vec![("after".to_owned(), text.to_owned())]
    }
}

/// Fetches the page(s) and prints them.
pub fn run(client: &Client, l: Listing<'_>, p: &Paging) -> ExitCode {
    if p.all && p.after.is_some() {
        errln!("error: --all and --after cannot be used together");
        return ExitCode::from(EXIT_USAGE);
    }
    let mut items = Vec::new();
    let mut after = p.after.clone();
    let mut first: Option<Value> = None;
    let next = loop {
        let mut query = l.query.clone();
        if let Some(n) = p.limit {
            query.push(("limit".into(), n.to_string()));
        }
        if let Some(a) = &after {
            query.extend(cursor_query(a));
        }
        let page = match client.get_query(&l.path, &query) {
            Ok(v) => v,
            Err(e) => return fail(EXIT_FAILED, &e),
        };
        items.extend(page[l.key].as_array().cloned().unwrap_or_default());
        let next = cursor_text(&page["next"]);
        if first.is_none() {
            first = Some(page);
        }
        match next {
            Some(n) if p.all => after = Some(n),
            other => break other,
        }
    };
    match p.output {
        ListOutput::Json => {
            // The API's response, with every followed page's items in it.
            let mut out = first.unwrap_or_else(|| json!({}));
            out[l.key] = Value::Array(items);
            out["next"] = next.map_or(Value::Null, Value::String);
            outln!("{out:#}");
        }
        ListOutput::Table => {
            out!("{}", table(l.columns, &items));
            if let Some(n) = next {
                errln!("more: --after '{n}' (or --all)");
            }
        }
    }
    ExitCode::SUCCESS
}

/// Left-aligned columns as wide as their widest cell; the last one is not
/// padded.
pub fn table(columns: &[Column], items: &[Value]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|i| columns.iter().map(|c| (c.cell)(i)).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(n, c)| {
            rows.iter()
                .map(|r| r[n].chars().count())
                .chain([c.header.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut text = String::new();
        for (n, cell) in cells.into_iter().enumerate() {
            if n == last {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<w$}  ", w = widths[n]));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(columns.iter().map(|c| c.header).collect());
    for r in &rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

/// A string field, or `-`.
pub fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Milliseconds since the epoch as UTC, or `-`.
pub fn time(ms: &Value) -> String {
    ms.as_i64()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| "-".into())
}

macro_rules! columns {
    ($($header:literal => $cell:expr),* $(,)?) => {
        &[$(Column { header: $header, cell: $cell }),*]
    };
}

fn listing<'a>(path: String, key: &'static str, columns: &'a [Column]) -> Listing<'a> {
    Listing {
        path,
        key,
        query: Vec::new(),
        columns,
    }
}

impl Listing<'_> {
    fn filter(mut self, name: &str, value: Option<&str>) -> Self {
        if let Some(v) = value {
            self.query.push((name.to_owned(), v.to_owned()));
        }
        self
    }
}

pub fn workflows(client: &Client, p: &Paging) -> ExitCode {
    let cols = columns![
        "NAME" => |v| text(&v["name"]),
        "VERSION" => |v| text(&v["version"]),
        "SCHEDULE" => |v| text(&v["cron"]),
        "TIME ZONE" => |v| text(&v["timezone"]),
        "PAUSED" => |v| text(&v["paused"]),
        "LAST WINDOW" => |v| time(&v["last_window_start_ms"]),
        "STATE" => |v| text(&v["last_window_state"]),
        "NEXT DUE" => |v| time(&v["next_due_ms"]),
    ];
    run(
        client,
        listing("/api/v1/workflows".into(), "workflows", cols),
        p,
    )
}

pub fn workflow_versions(client: &Client, name: &str, p: &Paging) -> ExitCode {
    let cols = columns![
        "VERSION" => |v| text(&v["version"]),
        "CREATED" => |v| time(&v["created_ms"]),
        "SCHEDULE" => |v| text(&v["definition"]["schedule"]["cron"]),
        "TIME ZONE" => |v| text(&v["definition"]["schedule"]["timezone"]),
        "TASKS" => |v| v["definition"]["tasks"].as_array().map_or(0, Vec::len).to_string(),
        "PAUSED" => |v| text(&v["definition"]["paused"]),
    ];
    let path = format!("/api/v1/workflows/{name}/versions");
    run(client, listing(path, "versions", cols), p)
}

const PLUGIN_COLUMNS: &[Column] = columns![
    "NAME" => |v| text(&v["name"]),
    "VERSION" => |v| text(&v["version"]),
    "BYTES" => |v| text(&v["size"]),
    "CREATED" => |v| time(&v["created_ms"]),
    "DIGEST" => |v| text(&v["digest"]),
];

pub fn plugins(client: &Client, p: &Paging) -> ExitCode {
    let l = listing("/api/v1/plugins".into(), "plugins", PLUGIN_COLUMNS);
    run(client, l, p)
}

pub fn plugin_versions(client: &Client, name: &str, p: &Paging) -> ExitCode {
    let path = format!("/api/v1/plugins/{name}/versions");
    run(client, listing(path, "versions", PLUGIN_COLUMNS), p)
}

/// `state`, `from` and `to` filter; `from`/`to` take RFC 3339 or ms.
pub fn runs(
    client: &Client,
    workflow: &str,
    filters: [(&str, Option<&str>); 3],
    p: &Paging,
) -> ExitCode {
    let cols = columns![
        "RUN" => |v| text(&v["id"]),
        "WINDOW" => |v| time(&v["window_start_ms"]),
        "STATE" => |v| text(&v["state"]),
        "TRIGGER" => |v| text(&v["trigger"]),
        "TASKS" => |v| v["tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| format!("{}={}", text(&t["name"]), text(&t["state"])))
            .collect::<Vec<_>>()
            .join(" "),
    ];
    let mut l = listing(format!("/api/v1/workflows/{workflow}/runs"), "runs", cols);
    for (k, v) in filters {
        l = l.filter(k, v);
    }
    run(client, l, p)
}

pub fn logs(
    client: &Client,
    id: u64,
    task: Option<&str>,
    attempt: Option<u32>,
    p: &Paging,
) -> ExitCode {
    let cols = columns![
        "TIME" => |v| time(&v["at_ms"]),
        "TASK" => |v| text(&v["task"]),
        "ATTEMPT" => |v| text(&v["attempt"]),
        "SOURCE" => |v| text(&v["source"]),
        "MESSAGE" => |v| text(&v["message"]),
    ];
    let attempt = attempt.map(|a| a.to_string());
    let l = listing(format!("/api/v1/runs/{id}/logs"), "lines", cols)
        .filter("task", task)
        .filter("attempt", attempt.as_deref());
    run(client, l, p)
}

pub fn backfills(client: &Client, p: &Paging) -> ExitCode {
    let cols = columns![
        "ID" => |v| text(&v["backfill"]["id"]),
        "WORKFLOW" => |v| text(&v["backfill"]["request"]["workflow"]),
        "STATE" => |v| text(&v["backfill"]["state"]),
        "DONE" => |v| text(&v["progress"]["done"]),
        "SUCCEEDED" => |v| text(&v["progress"]["succeeded"]),
        "FAILED" => |v| text(&v["progress"]["failed"]),
        "RUNNING" => |v| text(&v["progress"]["running"]),
        "CREATED" => |v| time(&v["backfill"]["created_ms"]),
    ];
    run(
        client,
        listing("/api/v1/backfills".into(), "backfills", cols),
        p,
    )
}

pub fn backfill_windows(client: &Client, id: u64, state: Option<&str>, p: &Paging) -> ExitCode {
    let cols = columns![
        "WORKFLOW" => |v| text(&v["workflow"]),
        "WINDOW" => |v| time(&v["window_start_ms"]),
        "STATE" => |v| text(&v["state"]),
        "RUN" => |v| text(&v["run_id"]),
        "REASON" => |v| text(&v["reason"]),
    ];
    let l =
        listing(format!("/api/v1/backfills/{id}/windows"), "windows", cols).filter("state", state);
    run(client, l, p)
}

pub fn tenants(client: &Client, p: &Paging) -> ExitCode {
    let cols = columns![
        "NAME" => |v| text(&v["name"]),
        "CREATED" => |v| time(&v["created_ms"]),
        "QUOTA OVERRIDES" => |v| v["overrides"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "))
            .unwrap_or_default(),
    ];
    run(
        client,
        listing("/api/v1/tenants".into(), "tenants", cols),
        p,
    )
}

/// The calling tenant's tokens, or (`tenant` given, admin) another's.
pub fn tokens(client: &Client, tenant: Option<&str>, p: &Paging) -> ExitCode {
    let cols = columns![
        "ID" => |v| text(&v["id"]),
        "LABEL" => |v| text(&v["label"]),
        "CREATED" => |v| time(&v["created_ms"]),
        "REVOKED" => |v| text(&v["revoked"]),
    ];
    let path = match tenant {
        Some(t) => format!("/api/v1/tenants/{t}/tokens"),
        None => "/api/v1/tokens".into(),
    };
    run(client, listing(path, "tokens", cols), p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_through_their_text() {
        for next in [
            json!("hello:2"),
            json!(17),
            json!({ "after_workflow": "etl", "after": 1700000000000i64 }),
        ] {
            let text = cursor_text(&next).unwrap();
            let query = cursor_query(&text);
            match &next {
                Value::Object(m) => {
                    assert_eq!(query.len(), m.len());
                    for (k, v) in query {
                        assert_eq!(text_of(&m[&k]), v);
                    }
                }
                v => assert_eq!(query, vec![("after".to_owned(), text_of(v))]),
            }
        }
        assert_eq!(cursor_text(&Value::Null), None);
    }

    fn text_of(v: &Value) -> String {
        v.as_str().map_or_else(|| v.to_string(), str::to_owned)
    }

    #[test]
    fn table_pads_to_the_widest_cell() {
        let cols = [
            Column {
                header: "NAME",
                cell: |v| text(&v["name"]),
            },
            Column {
                header: "N",
                cell: |v| text(&v["n"]),
            },
        ];
        let t = table(
            &cols,
            &[
                json!({"name": "a-long-name", "n": 1}),
                json!({"name": "b", "n": null}),
            ],
        );
        assert_eq!(t, "NAME         N\na-long-name  1\nb            -\n");
    }

    /// Issue #13 reported a header without its newline for an empty list;
    /// every line of a table, the header included, ends with one, so the
    /// paging hint (on stderr) always starts a line of its own.
    #[test]
    fn tables_end_with_a_newline_even_when_empty() {
        let cols = [Column {
            header: "NAME",
            cell: |v| text(&v["name"]),
        }];
        assert_eq!(table(&cols, &[]), "NAME\n");
        assert!(table(&cols, &[json!({"name": "a"})]).ends_with("a\n"));
    }
}
