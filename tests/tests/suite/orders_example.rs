//! The orders example (`examples/orders/orders.toml`) as `scripts/run.sh`
//! sets it up: the real daemon with the example plugins and workflows, the
//! real orders API (`scripts/orders_api.py`), the tenant's allowlist and
//! `lake` connection made with the CLI, then one window whose published
//! JSON Lines must be exactly what the API served, transformed.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use tidemark_tests::plugins::{
    ETL_EXTRACT, ETL_LOAD, ETL_TRANSFORM, HELLO, ORDERS_EXTRACT, ORDERS_TRANSFORM,
};

use crate::daemon::{plugin_dir, wait_for, Daemon, ADMIN};

/// 2024-03-01T10:00:00Z.
const WINDOW: i64 = 1_709_287_200_000;
const H: i64 = 3_600_000;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `scripts/orders_api.py` on a free port, killed when dropped.
struct OrdersApi {
    child: Child,
    url: String,
}

impl Drop for OrdersApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn orders_api() -> OrdersApi {
    let mut child = Command::new("python3")
        .arg(repo().join("scripts/orders_api.py"))
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 scripts/orders_api.py");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("orders API listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    OrdersApi { child, url }
}

/// Every order the API serves for `[from, to)`, following its pages.
fn served(api: &str, from: i64, to: i64) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor = "0".to_owned();
    loop {
        let page: Value = ureq::get(&format!(
            "{api}/v1/orders?from={from}&to={to}&limit=7&cursor={cursor}"
        ))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
        out.extend(page["orders"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(n) => cursor = n.to_owned(),
            None => return out,
        }
    }
}

#[test]
fn the_orders_example_publishes_the_apis_records_as_json_lines() {
    let api = orders_api();
    let port = api.url.rsplit(':').next().unwrap().to_owned();
    let data = tempfile::tempdir().unwrap();
    let plugins = plugin_dir(&[
        HELLO,
        ETL_EXTRACT,
        ETL_TRANSFORM,
        ETL_LOAD,
        ORDERS_EXTRACT,
        ORDERS_TRANSFORM,
    ]);
    let d = Daemon::start(
        data.path(),
        Some(plugins.path()),
        Some(&repo().join("examples")),
    );
    let token = d.token.clone().expect("default tenant token");
    let cli = |t: &str, args: &[&str]| {
        let (code, out, err) = d.cli_as(t, args);
        assert_eq!(code, 0, "{args:?}: {out}{err}");
        out
    };
    // What run.sh does after the daemon is up, with this test's port in
    // place of 8765 (run.sh makes the same substitution for ORDERS_PORT).
    let allowed = format!("http://127.0.0.1:{port}");
    cli(ADMIN, &["tenant", "egress", "set", "default", &allowed]);
    cli(
        &token,
        &[
            "connection",
            "create",
            "lake",
            "--kind",
            "fs",
            "--config",
            "path=lake",
        ],
    );
    let text = std::fs::read_to_string(repo().join("examples/orders/orders.toml")).unwrap();
    assert!(text.contains("127.0.0.1:8765"));
    let wf = data.path().join("orders.toml");
    std::fs::write(
        &wf,
        text.replace("127.0.0.1:8765", &format!("127.0.0.1:{port}")),
    )
    .unwrap();
    cli(&token, &["apply", "-f", wf.to_str().unwrap()]);

    let out = cli(
        &token,
        &[
            "run-window",
            "orders",
            "2024-03-01T10:00:00Z",
            "--output",
            "json",
        ],
    );
    let id = serde_json::from_str::<Value>(&out).unwrap()["id"]
        .as_u64()
        .unwrap();
    let detail = || d.get(&format!("/api/v1/runs/{id}"));
    wait_for("the orders window", Duration::from_secs(120), || {
        !detail()["run"]["ended_ms"].is_null()
    });
    let run = detail();
    assert_eq!(run["run"]["state"], "succeeded", "{run}");
    // The declared check runs after the window and passes.
    wait_for("the output checks", Duration::from_secs(60), || {
        let outputs = detail()["outputs"].as_array().cloned().unwrap_or_default();
        outputs.len() == 2 && outputs.iter().all(|o| o["check"]["state"] == "passed")
    });

    // Exactly what the API served for the window, paid orders only, one
    // JSON object per line, in the API's order.
    let orders = served(&api.url, WINDOW, WINDOW + H);
    assert!(orders.len() > 25, "more than one page: {}", orders.len());
    let expected: Vec<Value> = orders
        .iter()
        .filter(|o| o["status"] == "paid")
        .map(|o| {
            let cents = o["amount_cents"].as_u64().unwrap();
            json!({
                "order_id": o["id"],
                "customer": o["customer"],
                "currency": o["currency"],
                "amount_cents": cents,
                "amount": format!("{}.{:02}", cents / 100, cents % 100),
                "created_ms": o["created_ms"],
                "window_start_ms": WINDOW,
            })
        })
        .collect();
    assert!(expected.len() < orders.len(), "some orders are cancelled");
    let root = data.path().join("objects/default/lake");
    let dir = root.join("orders/transform/window=20240301T100000Z");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("_manifest.json")).unwrap()).unwrap();
    let object = |name: &str| {
        let o = manifest["objects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {manifest}"));
        std::fs::read(root.join(o["key"].as_str().unwrap())).unwrap()
    };
    let jsonl = String::from_utf8(object("orders.jsonl")).unwrap();
    assert!(jsonl.ends_with('\n'));
    let lines: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, expected);
    let summary: Value = serde_json::from_slice(&object("summary.json")).unwrap();
    assert_eq!(summary["paid"], expected.len());
    assert_eq!(summary["cancelled"], orders.len() - expected.len());
    let eur: u64 = expected
        .iter()
        .filter(|l| l["currency"] == "EUR")
        .map(|l| l["amount_cents"].as_u64().unwrap())
        .sum();
    assert_eq!(summary["totals_cents"]["EUR"], eur);
    // The raw pages `extract` kept hold the same orders.
    let pages = root.join("orders/extract/window=20240301T100000Z/_manifest.json");
    let pages: Value = serde_json::from_slice(&std::fs::read(pages).unwrap()).unwrap();
    assert_eq!(
        pages["objects"].as_array().unwrap().len(),
        orders.len().div_ceil(25)
    );
    assert_eq!(d.terminate(), 0);
}
