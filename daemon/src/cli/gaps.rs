//! `gaps`: a workflow's missing, failed and stale windows with the reason
//! for each, and (with `--repair` or `--propose`) the backfill that
//! repairs them.

use std::process::ExitCode;

use serde_json::{json, Value};

use super::list::time;
use super::remote::print_json;
use super::{fail, Output, EXIT_FAILED};
use crate::client::Client;

pub struct GapArgs {
    pub workflow: String,
    pub since: Option<String>,
    pub until: Option<String>,
    pub repair: bool,
    pub propose: bool,
    pub output: Output,
}

pub fn gaps(client: &Client, a: GapArgs) -> ExitCode {
    let path = format!("/api/v1/workflows/{}/gaps", a.workflow);
    let answer = if a.repair || a.propose {
        let body = json!({"since": a.since, "until": a.until, "propose": a.propose});
        client.post_json(&format!("{path}/repair"), &body)
    } else {
        let query: Vec<(String, String)> = [("since", &a.since), ("until", &a.until)]
            .into_iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.to_owned(), v)))
            .collect();
        client.get_query(&path, &query)
    };
    let v = match answer {
        Ok(v) => v,
        Err(e) => return fail(EXIT_FAILED, &e),
    };
    if a.output == Output::Json {
        return print_json(&v);
    }
    let report = if a.repair || a.propose {
        &v["report"]
    } else {
        &v
    };
    print_report(report);
    if a.repair || a.propose {
        match v["backfill"]["backfill"]["id"].as_u64() {
            Some(id) if a.propose => {
                outln!(
                    "proposed backfill {id} (paused): `tidemark backfill resume {id}` approves it"
                )
            }
            Some(id) => outln!("created backfill {id}"),
            None => outln!("nothing to repair"),
        }
    } else if !report["plan"].is_null() {
        outln!(
            "repair with `tidemark gaps {} --repair` (or --propose to create it paused)",
            report["workflow"].as_str().unwrap_or("?")
        );
    }
    ExitCode::SUCCESS
}

fn print_report(r: &Value) {
    let gaps = r["gaps"].as_array().cloned().unwrap_or_default();
    outln!(
        "{}: {} of {} windows from {} to {}{}",
        r["workflow"].as_str().unwrap_or("?"),
        match gaps.len() {
            0 => "no gaps".to_owned(),
            _ => r["summary"].as_str().unwrap_or("?").to_owned(),
        },
        r["scanned"],
        time(&r["since_ms"]),
        time(&r["until_ms"]),
        if r["truncated"] == true {
            " (truncated: the newest were examined)"
        } else {
            ""
        }
    );
    for g in &gaps {
        let run = match g["run_id"].as_u64() {
            Some(id) => format!("run {id}"),
            None => "-".to_owned(),
        };
        outln!(
            "  {}  {:<8} {:<10} {}",
            time(&g["window_start_ms"]),
            g["kind"].as_str().unwrap_or("?"),
            run,
            g["reason"].as_str().unwrap_or("")
        );
    }
}
