//! Connections and their secrets through the real daemon: created, listed,
//! shown, rotated and deleted per tenant; secrets sealed at rest and absent
//! from every response, log line and stored byte.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use tidemark_tests::tidemark_bin;

use crate::daemon::{wait_for, ADMIN};

const SECRET: &str = "s3cr3t-T0KEN-9f8e7d";
const ROTATED: &str = "r0tated-T0KEN-1a2b3c";
const S3_KEY: &str = "aws-S3CRET-KEY-55aa";

struct Serve {
    child: std::process::Child,
    url: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn call(url: &str, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, String) {
    let req = ureq::request(method, &format!("{url}{path}"))
        .set("authorization", &format!("Bearer {token}"));
    let resp = match body {
        Some(b) => req.send_json(b),
        None => req.call(),
    };
    match resp {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => panic!("{method} {path}: {e}"),
    }
}

fn bytes_contain(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut hits = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            hits.extend(files_containing(&p, needle));
        } else if std::fs::read(&p).is_ok_and(|b| bytes_contain(&b, needle)) {
            hits.push(p.display().to_string());
        }
    }
    hits
}

#[test]
fn connection_secrets_are_sealed_and_never_shown() {
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (logs.path().join("stdout"), logs.path().join("stderr"));
    let child = Command::new(tidemark_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .env("TIDEMARK_ADMIN_TOKEN", ADMIN)
        .env("RUST_LOG", "debug")
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .stdin(Stdio::null())
        .spawn()
        .expect("spawning tidemark serve");
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let mut d = Serve {
        child,
        url: String::new(),
    };
    wait_for("the daemon to listen", Duration::from_secs(60), || {
        read(&out_path).contains("tidemark listening on")
    });
    d.url = read(&out_path)
        .lines()
        .find_map(|l| l.strip_prefix("tidemark listening on ").map(str::to_owned))
        .unwrap();
    let url = d.url.clone();
    let mut responses = Vec::new();
    let tenant_token = |name: &str| {
        let (code, body) = call(
            &url,
            ADMIN,
            "POST",
            "/api/v1/tenants",
            Some(json!({"name": name})),
        );
        assert_eq!(code, 201, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        v["token"].as_str().unwrap().to_owned()
    };
    let (a, b) = (tenant_token("conn-a"), tenant_token("conn-b"));
    let mut api = |token: &str, method: &str, path: &str, body: Option<Value>| {
        let r = call(&url, token, method, path, body);
        responses.push(r.1.clone());
        r
    };

    let api_conn = json!({
        "name": "orders_api", "kind": "http",
        "config": {"base_url": "https://api.example.com/v1", "auth": "bearer"},
        "secrets": {"token": SECRET}
    });
    let (code, body) = api(&a, "POST", "/api/v1/connections", Some(api_conn.clone()));
    assert_eq!(code, 201, "{body}");
    let created: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(created["kind"], "http");
    assert_eq!(created["secrets"][0]["field"], "token");
    let fp1 = created["secrets"][0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(fp1.starts_with("fp:"));
    let lake = json!({
        "name": "lake", "kind": "s3",
        "config": {"bucket": "lake", "access_key_id": "AKIAEXAMPLE", "endpoint": "http://127.0.0.1:8333"},
        "secrets": {"secret_access_key": S3_KEY}
    });
    assert_eq!(api(&a, "POST", "/api/v1/connections", Some(lake)).0, 201);
    let gcs = json!({
        "name": "gcs_lake", "kind": "gcs",
        "config": {"bucket": "lake", "endpoint": "http://127.0.0.1:4443", "prefix": "tm"},
        "secrets": {"service_account_key": GCS_KEY}
    });
    assert_eq!(api(&a, "POST", "/api/v1/connections", Some(gcs)).0, 201);
    let azure = json!({
        "name": "blob", "kind": "azure",
        "config": {"account": "devstoreaccount1", "container": "lake"},
        "secrets": {"access_key": AZURE_KEY}
    });
    let (code, body) = api(&a, "POST", "/api/v1/connections", Some(azure));
    assert_eq!(code, 201, "{body}");
    let created: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(created["kind"], "azure");
    assert_eq!(created["secrets"][0]["field"], "access_key");

    // Bad input is refused naming the problem, and stores nothing.
    for (bad, expect) in [
        (json!({"name": "x", "kind": "ftp"}), "ftp"),
        (
            json!({"name": "x", "kind": "http", "config": {"base_url": "https://h", "token": SECRET}}),
            "config.token",
        ),
        (
            json!({"name": "x", "kind": "fs", "config": {"path": "../etc"}}),
            "config.path",
        ),
        (
            json!({"name": "x", "kind": "http", "config": {}}),
            "config.base_url",
        ),
        (
            json!({"name": "../x", "kind": "fs", "config": {"path": "p"}}),
            "name",
        ),
        (
            json!({"name": "x", "kind": "gcs", "secrets": {"service_account_key": GCS_KEY}}),
            "config.bucket",
        ),
        (
            json!({"name": "x", "kind": "gcs", "config": {"bucket": "lake"}}),
            "secrets.service_account_key",
        ),
        (
            // Not JSON: refused without quoting it.
            json!({"name": "x", "kind": "gcs", "config": {"bucket": "lake"},
                   "secrets": {"service_account_key": format!("{{{SECRET}")}}),
            "secrets.service_account_key",
        ),
        (
            json!({"name": "x", "kind": "azure", "config": {"account": "acct"},
                   "secrets": {"access_key": AZURE_KEY}}),
            "config.container",
        ),
        (
            json!({"name": "x", "kind": "azure", "config": {"account": "acct", "container": "lake"}}),
            "secrets.access_key",
        ),
        (
            json!({"name": "x", "kind": "azure", "config": {"account": "acct", "container": "lake"},
                   "secrets": {"access_key": format!("{SECRET}!")}}),
            "secrets.access_key",
        ),
    ] {
        let (code, body) = api(&a, "POST", "/api/v1/connections", Some(bad));
        assert_eq!(code, 400, "{body}");
        assert!(body.contains(expect), "{body} should name {expect}");
        assert!(!body.contains(SECRET));
    }
    let (code, body) = api(&a, "POST", "/api/v1/connections", Some(api_conn));
    assert_eq!(code, 409, "{body}");

    let (code, body) = api(&a, "GET", "/api/v1/connections", None);
    assert_eq!(code, 200);
    let list: Value = serde_json::from_str(&body).unwrap();
    let names: Vec<&str> = list["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["blob", "gcs_lake", "lake", "orders_api"]);

    // Another tenant cannot see or use it, even by name.
    assert_eq!(
        api(&b, "GET", "/api/v1/connections/orders_api", None).0,
        404
    );
    assert_eq!(
        api(&b, "DELETE", "/api/v1/connections/orders_api", None).0,
        404
    );
    let wf = |conn: &str| {
        json!({"name": "pull", "schedule": {"cron": "0 * * * *", "start": "2024-03-01"},
               "tasks": [{"name": "t", "plugin": "none"}], "connections": [conn]})
    };
    let (code, body) = api(&b, "POST", "/api/v1/workflows", Some(wf("orders_api")));
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("connections[0]"), "{body}");

    // Rotation: a new fingerprint and revision, the old value gone.
    let (code, body) = api(
        &a,
        "POST",
        "/api/v1/connections/orders_api/rotate",
        Some(json!({"secrets": {"token": ROTATED}})),
    );
    assert_eq!(code, 200, "{body}");
    let rotated: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(rotated["revision"], 2);
    assert_ne!(rotated["secrets"][0]["fingerprint"].as_str().unwrap(), fp1);
    let (code, _) = api(
        &a,
        "POST",
        "/api/v1/connections/orders_api/rotate",
        Some(json!({"secrets": {"nope": "x"}})),
    );
    assert_eq!(code, 400);
    let (_, shown) = api(&a, "GET", "/api/v1/connections/orders_api", None);
    assert!(shown.contains("\"revision\":2"), "{shown}");

    assert_eq!(api(&a, "DELETE", "/api/v1/connections/lake", None).0, 204);
    assert_eq!(api(&a, "GET", "/api/v1/connections/lake", None).0, 404);

    // The CLI: the secret from a file, shown back only as a fingerprint.
    let secret_file = logs.path().join("token");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let cli = |args: &[&str]| {
        let out = Command::new(tidemark_bin())
            .args(args)
            .env("TIDEMARK_SERVER", &url)
            .env("TIDEMARK_TOKEN", &a)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {text}");
        assert!(!text.contains(SECRET), "{args:?} shows the secret: {text}");
        text
    };
    let file_arg = format!("token={}", secret_file.display());
    let shown = cli(&[
        "connection",
        "create",
        "cli_api",
        "--kind",
        "http",
        "--config",
        "base_url=https://api.example.com",
        "--config",
        "auth=bearer",
        "--secret-file",
        &file_arg,
    ]);
    assert!(shown.contains("secrets.token = <sealed> fp:"), "{shown}");
    // The same value as orders_api's first token: the same fingerprint.
    assert!(shown.contains(&fp1), "{shown}");
    let listed = cli(&["connection", "list"]);
    assert!(
        listed.contains("cli_api") && listed.contains("orders_api"),
        "{listed}"
    );
    cli(&["connection", "delete", "cli_api"]);
    // Stop the daemon so every log line and store page is on disk.
    Command::new("kill")
        .args(["-TERM", &d.child.id().to_string()])
        .status()
        .unwrap();
    assert!(d.child.wait().unwrap().success());
    let logs = read(&out_path) + &read(&err_path);
    assert!(
        logs.contains("connection created"),
        "the log is read: {logs}"
    );
    for secret in [SECRET, ROTATED, S3_KEY, GCS_SECRET, AZURE_KEY] {
        for r in &responses {
            assert!(!r.contains(secret), "a response shows a secret: {r}");
        }
        assert!(!logs.contains(secret), "the log shows a secret");
        let hits = files_containing(data.path(), secret);
        assert!(hits.is_empty(), "stored in the clear in {hits:?}");
    }
    assert!(
        data.path().join("secrets-key").exists(),
        "the sealing key is generated into the data dir"
    );
}

/// A service-account key whose private key holds [`GCS_SECRET`].
const GCS_KEY: &str = "{\"client_email\": \"tm@p.iam.gserviceaccount.com\", \"private_key\": \"-----BEGIN PRIVATE KEY-----\\ngcs-SEALED-9d8c7b6a\\n-----END PRIVATE KEY-----\\n\"}";
const GCS_SECRET: &str = "gcs-SEALED-9d8c7b6a";
/// Base64, as Azure's access keys are.
const AZURE_KEY: &str = "YXp1cmUtU0VBTEVELWtleS0xMjM0NTY3ODkw";
const BEARER: &str = "inj-BEARER-0a1b2c3d";
const PASSWORD: &str = "inj-PASSWORD-4e5f6a7b";
const API_KEY: &str = "inj-APIKEY-8c9d0e1f";

/// Credential injection through the real daemon: the secrets reach the
/// server, and no API response of the run, the connections, the workflow
/// or the metrics, and no line of the daemon's debug log, holds one.
#[test]
fn injected_credentials_appear_in_no_response_and_no_log_line() {
    use base64::Engine as _;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt.block_on(crate::egress::server());
    let here = format!("http://127.0.0.1:{}", s.port);
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("ann:{PASSWORD}"));
    let secrets = [BEARER, PASSWORD, API_KEY, basic.as_str()];

    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (logs.path().join("stdout"), logs.path().join("stderr"));
    let child = Command::new(tidemark_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .env("TIDEMARK_ADMIN_TOKEN", ADMIN)
        .env("RUST_LOG", "debug")
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .stdin(Stdio::null())
        .spawn()
        .expect("spawning tidemark serve");
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let mut d = Serve {
        child,
        url: String::new(),
    };
    wait_for("the daemon to listen", Duration::from_secs(60), || {
        read(&out_path).contains("tidemark listening on")
    });
    d.url = read(&out_path)
        .lines()
        .find_map(|l| l.strip_prefix("tidemark listening on ").map(str::to_owned))
        .unwrap();
    let url = d.url.clone();
    let mut responses: Vec<(String, String)> = Vec::new();
    let mut api = |token: &str, method: &str, path: &str, body: Option<Value>| {
        let r = call(&url, token, method, path, body);
        responses.push((format!("{method} {path}"), r.1.clone()));
        r
    };
    let (code, body) = api(
        ADMIN,
        "POST",
        "/api/v1/tenants",
        Some(json!({"name": "inj"})),
    );
    assert_eq!(code, 201, "{body}");
    let t: Value = serde_json::from_str(&body).unwrap();
    let t = t["token"].as_str().unwrap().to_owned();
    let (code, body) = api(
        ADMIN,
        "PUT",
        "/api/v1/tenants/inj/egress",
        Some(json!({"allowed_hosts": [here]})),
    );
    assert_eq!(code, 200, "{body}");
    let out = Command::new(tidemark_bin())
        .args(["plugin", "push", "fetch", tidemark_tests::plugins::FETCH])
        .env("TIDEMARK_SERVER", &url)
        .env("TIDEMARK_TOKEN", &t)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    for c in [
        json!({"name": "b", "kind": "http", "secrets": {"token": BEARER},
               "config": {"base_url": format!("{here}/bearer"), "auth": "bearer"}}),
        json!({"name": "p", "kind": "http", "secrets": {"password": PASSWORD},
               "config": {"base_url": format!("{here}/basic"), "auth": "basic", "username": "ann"}}),
        json!({"name": "k", "kind": "http", "secrets": {"value": API_KEY},
               "config": {"base_url": format!("{here}/key"), "auth": "header", "header": "X-Api-Key"}}),
    ] {
        let (code, body) = api(&t, "POST", "/api/v1/connections", Some(c));
        assert_eq!(code, 201, "{body}");
    }
    let task = |name: &str, path: &str, header: &str| {
        json!({"name": name, "plugin": "fetch", "allowed_hosts": [here],
               "params": {"url": format!("{here}{path}"), "header": header}})
    };
    let wf = json!({
        "name": "pull", "paused": true, "connections": ["b", "p", "k"],
        "schedule": {"cron": "0 * * * *", "start": "2024-01-01"},
        "tasks": [
            task("bearer", "/bearer/x", ""),
            task("basic", "/basic/x", ""),
            task("key", "/key/x", ""),
            task("guest", "/bearer/y", "Authorization: Bearer from-the-guest"),
            // A 404 under the base URL: still a credential, still recorded.
            task("missing", "/bearer/missing", ""),
        ]
    });
    let (code, body) = api(&t, "POST", "/api/v1/workflows", Some(wf));
    assert!(code == 200 || code == 201, "{code} {body}");
    let (code, body) = api(
        &t,
        "POST",
        "/api/v1/workflows/pull/runs",
        Some(json!({"window": "2024-03-01T12:00:00Z"})),
    );
    assert_eq!(code, 201, "{body}");
    let run: Value = serde_json::from_str(&body).unwrap();
    let id = run["id"].as_u64().unwrap();
    wait_for("the run to end", Duration::from_secs(60), || {
        let (_, body) = call(&url, &t, "GET", &format!("/api/v1/runs/{id}"), None);
        let v: Value = serde_json::from_str(&body).unwrap();
        matches!(v["run"]["state"].as_str(), Some("succeeded" | "failed"))
    });
    for path in [
        format!("/api/v1/runs/{id}"),
        format!("/api/v1/runs/{id}/logs"),
        "/api/v1/workflows/pull/runs".to_owned(),
        "/api/v1/workflows/pull".to_owned(),
        "/api/v1/workflows/pull/versions".to_owned(),
        "/api/v1/workflows".to_owned(),
        "/api/v1/connections".to_owned(),
        "/api/v1/connections/b".to_owned(),
        "/api/v1/connections/p".to_owned(),
        "/api/v1/connections/k".to_owned(),
        "/api/v1/egress".to_owned(),
    ] {
        let (code, body) = api(&t, "GET", &path, None);
        assert_eq!(code, 200, "{path}: {body}");
    }
    let (code, metrics) = api(ADMIN, "GET", "/metrics", None);
    assert_eq!(code, 200);
    assert!(
        metrics.contains("tidemark_http_requests_total"),
        "{metrics}"
    );
    let (_, shown) = call(&url, &t, "GET", &format!("/api/v1/runs/{id}"), None);
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["run"]["state"], "succeeded", "{shown}");
    let attempts = shown["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 5, "{shown}");
    assert!(
        attempts
            .iter()
            .all(|a| a["http"].as_array().unwrap().len() == 1),
        "{shown}"
    );

    // The credentials did reach the server (the greps below mean something).
    let auth = |path: &str| {
        s.heads_for(path)
            .iter()
            .flat_map(|h| crate::egress::header_values(h, "authorization"))
            .collect::<Vec<_>>()
    };
    assert_eq!(auth("/bearer/x"), [format!("Bearer {BEARER}")]);
    assert_eq!(auth("/bearer/y"), [format!("Bearer {BEARER}")]);
    assert_eq!(auth("/basic/x"), [format!("Basic {basic}")]);
    let key: Vec<String> = s
        .heads_for("/key/x")
        .iter()
        .flat_map(|h| crate::egress::header_values(h, "x-api-key"))
        .collect();
    assert_eq!(key, [API_KEY]);

    Command::new("kill")
        .args(["-TERM", &d.child.id().to_string()])
        .status()
        .unwrap();
    assert!(d.child.wait().unwrap().success());
    let log = read(&out_path) + &read(&err_path);
    assert!(
        log.contains("credential added to an outbound request"),
        "the debug log is read"
    );
    for secret in secrets {
        for (what, body) in &responses {
            assert!(!body.contains(secret), "{what} shows a secret: {body}");
        }
        assert!(!log.contains(secret), "the log shows a secret");
        let hits = files_containing(data.path(), secret);
        assert!(hits.is_empty(), "stored in the clear in {hits:?}");
    }
}
