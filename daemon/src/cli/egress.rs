//! `tidemark tenant egress`: a tenant's egress allowlist (admin).

use std::process::ExitCode;

use serde_json::{json, Value};

use super::args::EgressCommand;
use super::{fail, Output, EXIT_FAILED};
use crate::client::Client;

pub fn run(client: &Client, cmd: EgressCommand) -> ExitCode {
    let (name, result, output) = match cmd {
        EgressCommand::Show { name, output } => {
            let r = client.get(&format!("/api/v1/tenants/{name}/egress"));
            (name, r, output)
        }
        EgressCommand::Set {
            name,
            patterns,
            output,
        } => {
            let body = json!({ "allowed_hosts": patterns }).to_string();
            let r = client.send_bytes(
                "PUT",
                &format!("/api/v1/tenants/{name}/egress"),
                "application/json",
                body.as_bytes(),
            );
            (name, r, output)
        }
    };
    match result {
        Ok(v) => {
            print(&name, &v, output == Output::Json);
            ExitCode::SUCCESS
        }
        Err(e) => fail(EXIT_FAILED, &e),
    }
}

fn print(name: &str, v: &Value, json: bool) {
    if json {
        outln!("{v:#}");
        return;
    }
    let patterns: Vec<&str> = v["allowed_hosts"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if patterns.is_empty() {
        outln!("tenant {name}: no outbound HTTP (empty egress allowlist)");
    }
    for p in patterns {
        outln!("{p}");
    }
}
