//! `tidemark connection ...`: a tenant's connections. Secret values are
//! read from flags or files and sent once; nothing here prints one (the
//! daemon answers with fingerprints only).

use std::collections::BTreeMap;
use std::process::ExitCode;

use serde_json::{json, Value};

use super::args::{ConnectionCommand, SecretArgs};
use super::{fail, Output, EXIT_FAILED, EXIT_USAGE};
use crate::client::Client;

/// `KEY=VALUE` pairs of a flag; the error names the flag, never a value.
fn pairs(flag: &str, items: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for kv in items {
        let Some((k, v)) = kv.split_once('=') else {
            let key = kv
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>();
            return Err(format!("{flag} {key}...: expected NAME=VALUE"));
        };
        out.insert(k.trim().to_owned(), v.to_owned());
    }
    Ok(out)
}

fn secrets(a: &SecretArgs) -> Result<BTreeMap<String, String>, String> {
    let mut out = pairs("--secret", &a.secret)?;
    for (field, path) in pairs("--secret-file", &a.secret_file)? {
        let value = std::fs::read_to_string(&path)
            .map_err(|e| format!("--secret-file {field}={path}: {e}"))?;
        out.insert(field, value.trim_end_matches(['\n', '\r']).to_owned());
    }
    Ok(out)
}

fn print(v: &Value, output: Output) {
    if output == Output::Json {
        outln!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
        return;
    }
    outln!("name:     {}", v["name"].as_str().unwrap_or_default());
    outln!("kind:     {}", v["kind"].as_str().unwrap_or_default());
    outln!("revision: {}", v["revision"]);
    for (k, val) in v["config"].as_object().into_iter().flatten() {
        outln!("config.{k} = {}", val.as_str().unwrap_or_default());
    }
    for s in v["secrets"].as_array().into_iter().flatten() {
        outln!(
            "secrets.{} = <sealed> {}",
            s["field"].as_str().unwrap_or_default(),
            s["fingerprint"].as_str().unwrap_or_default()
        );
    }
}

pub fn run(client: &Client, cmd: &ConnectionCommand) -> ExitCode {
    let usage = |m: String| {
        errln!("error: {m}");
        ExitCode::from(EXIT_USAGE)
    };
    let answer = |r: Result<Value, crate::client::ClientError>, output: Output| match r {
        Ok(v) => {
            print(&v, output);
            ExitCode::SUCCESS
        }
        Err(e) => fail(EXIT_FAILED, &e),
    };
    match cmd {
        ConnectionCommand::Create {
            name,
            kind,
            config,
            secrets: s,
            output,
        } => {
            let (config, secrets) = match (pairs("--config", config), secrets(s)) {
                (Ok(c), Ok(s)) => (c, s),
                (Err(m), _) | (_, Err(m)) => return usage(m),
            };
            let body = json!({"name": name, "kind": kind, "config": config, "secrets": secrets});
            answer(client.post_json("/api/v1/connections", &body), *output)
        }
        ConnectionCommand::List { output } => match client.get("/api/v1/connections") {
            Ok(v) if *output == Output::Json => {
                outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                ExitCode::SUCCESS
            }
            Ok(v) => {
                outln!("{:<32} {:<5} {:>8}  SECRETS", "NAME", "KIND", "REVISION");
                for c in v["connections"].as_array().into_iter().flatten() {
                    let fields: Vec<&str> = c["secrets"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|s| s["field"].as_str())
                        .collect();
                    outln!(
                        "{:<32} {:<5} {:>8}  {}",
                        c["name"].as_str().unwrap_or_default(),
                        c["kind"].as_str().unwrap_or_default(),
                        c["revision"],
                        fields.join(",")
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(EXIT_FAILED, &e),
        },
        ConnectionCommand::Show { name, output } => {
            answer(client.get(&format!("/api/v1/connections/{name}")), *output)
        }
        ConnectionCommand::Rotate {
            name,
            config,
            secrets: s,
            output,
        } => {
            let (config, secrets) = match (pairs("--config", config), secrets(s)) {
                (Ok(c), Ok(s)) => (c, s),
                (Err(m), _) | (_, Err(m)) => return usage(m),
            };
            let mut body = json!({ "secrets": secrets });
            if !config.is_empty() {
                body["config"] = json!(config);
            }
            answer(
                client.post_json(&format!("/api/v1/connections/{name}/rotate"), &body),
                *output,
            )
        }
        ConnectionCommand::Delete { name } => super::remote::delete(
            client,
            &format!("/api/v1/connections/{name}"),
            &format!("connection {name} deleted"),
        ),
    }
}
