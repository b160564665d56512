//! `tidemark notify ...`: webhook targets and the delivery log. A target
//! names the connection whose secret signs; nothing here sees the secret.

use std::process::ExitCode;

use serde_json::{json, Value};

use super::args::NotifyCommand;
use super::{fail, Output, EXIT_FAILED};
use crate::client::Client;

fn json_out(v: &Value) {
    outln!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn target_line(t: &Value) {
    let events: Vec<&str> = t["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    outln!(
        "{:<24} {:<40} {:<16} {}",
        t["name"].as_str().unwrap_or_default(),
        t["url"].as_str().unwrap_or_default(),
        format!(
            "{}.{}",
            t["connection"].as_str().unwrap_or_default(),
            t["secret_field"].as_str().unwrap_or_default()
        ),
        events.join(",")
    );
}

fn delivery_line(d: &Value) {
    let status = d["last_status"]
        .as_u64()
        .map_or("-".to_owned(), |s| s.to_string());
    outln!(
        "{:<18} {:<16} {:<16} {:<9} {:>8} {:>6}  {}",
        d["delivery_id"],
        d["event"].as_str().unwrap_or_default(),
        d["target"].as_str().unwrap_or_default(),
        d["state"].as_str().unwrap_or_default(),
        d["attempts"],
        status,
        d["last_error"].as_str().unwrap_or_default()
    );
}

pub fn run(client: &Client, cmd: &NotifyCommand) -> ExitCode {
    match cmd {
        NotifyCommand::Create {
            name,
            url,
            connection,
            secret_field,
            events,
            output,
        } => {
            let mut body =
                json!({"name": name, "url": url, "connection": connection, "events": events});
            if let Some(f) = secret_field {
                body["secret_field"] = json!(f);
            }
            match client.post_json("/api/v1/notifications/targets", &body) {
                Ok(v) if *output == Output::Json => {
                    json_out(&v);
                    ExitCode::SUCCESS
                }
                Ok(v) => {
                    target_line(&v);
                    ExitCode::SUCCESS
                }
                Err(e) => fail(EXIT_FAILED, &e),
            }
        }
        NotifyCommand::List { output } => match client.get("/api/v1/notifications/targets") {
            Ok(v) if *output == Output::Json => {
                json_out(&v);
                ExitCode::SUCCESS
            }
            Ok(v) => {
                outln!("{:<24} {:<40} {:<16} EVENTS", "NAME", "URL", "SIGNED BY");
                for t in v["targets"].as_array().into_iter().flatten() {
                    target_line(t);
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(EXIT_FAILED, &e),
        },
        NotifyCommand::Delete { name } => super::remote::delete(
            client,
            &format!("/api/v1/notifications/targets/{name}"),
            &format!("notification target {name} deleted"),
        ),
        NotifyCommand::Deliveries {
            before,
            limit,
            output,
        } => {
            let mut query = vec![("limit".to_owned(), limit.to_string())];
            if let Some(b) = before {
                query.push(("before".to_owned(), b.to_string()));
            }
            match client.get_query("/api/v1/notifications/deliveries", &query) {
                Ok(v) if *output == Output::Json => {
                    json_out(&v);
                    ExitCode::SUCCESS
                }
                Ok(v) => {
                    outln!(
                        "{:<18} {:<16} {:<16} {:<9} {:>8} {:>6}  ERROR",
                        "ID",
                        "EVENT",
                        "TARGET",
                        "STATE",
                        "ATTEMPTS",
                        "STATUS"
                    );
                    for d in v["deliveries"].as_array().into_iter().flatten() {
                        delivery_line(d);
                    }
                    if let Some(next) = v["next"].as_u64() {
                        outln!("(more: --before {next})");
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => fail(EXIT_FAILED, &e),
            }
        }
        NotifyCommand::Delivery { id, output } => {
            match client.get(&format!("/api/v1/notifications/deliveries/{id}")) {
                Ok(v) if *output == Output::Json => {
                    json_out(&v);
                    ExitCode::SUCCESS
                }
                Ok(v) => {
                    delivery_line(&v);
                    json_out(&v["payload"]);
                    ExitCode::SUCCESS
                }
                Err(e) => fail(EXIT_FAILED, &e),
            }
        }
    }
}
