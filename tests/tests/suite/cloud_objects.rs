//! `gcs` and `azure` connections as containers. Azure against Azurite
//! (installed by `scripts/azurite.sh`), which checks the shared-key
//! signature like Azure does: window outputs are published and verified as
//! on S3, and a wrong key is refused. An unreachable store fails the
//! attempt naming the connection; no error carries a secret.
//!
//! GCS object I/O is not tested against a server: neither emulator serves
//! object_store's GCS client (fake-gcs-server answers its XML-API writes
//! "400 invalid uploadType", gcp-storage-emulator sends no ETag). What is
//! tested is the setup: validation, a real RSA service-account key
//! building the signer on ring, a malformed one refused without being
//! quoted, and an unreachable endpoint failing the attempt.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tidemark::connection::RawConnection;
use tidemark::executor::{ErrorKind, Trigger};
use tidemark::store::ConnectionStore;

use crate::daemon::wait_for;
use crate::objects::{backfill, fixture, free_port, workflow, DAY0, H};

/// Azurite's well-known development account and key.
const AZ_ACCOUNT: &str = "devstoreaccount1";
const AZ_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// A service-account key for an emulator (no credentials); the marker
/// stands for the secret that must never show.
const GCS_EMULATOR_KEY: &str = r#"{"disable_oauth": true, "client_email": "", "private_key": "", "private_key_id": "gcs-SECRET-5b7e"}"#;

/// An emulator process, killed when dropped.
struct Emulator(Child);

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn azurite() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new("bash")
        .arg(root.join("scripts/azurite.sh"))
        .output()
        .expect("scripts/azurite.sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

fn answers(url: &str) -> bool {
    match ureq::get(url).call() {
        Ok(_) | Err(ureq::Error::Status(..)) => true,
        Err(_) => false,
    }
}

fn connection(
    name: &str,
    kind: &str,
    config: &[(&str, &str)],
    secret: (&str, &str),
) -> RawConnection {
    RawConnection {
        name: name.into(),
        kind: kind.into(),
        config: config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        secrets: [(secret.0.to_string(), secret.1.to_string())].into(),
    }
}

/// Runs `workflow up` over two windows on connection `lake` and checks
/// what was published, then deletes an object behind Tidemark's back and
/// checks that `verify` finds it. The connection must exist.
async fn publish_and_verify(f: &crate::objects::Fixture, secret: &str) {
    let e = &f.engine;
    e.apply_workflow(
        "acme",
        workflow("up", "objects = \"2\", size = \"1000\"", ""),
    )
    .await
    .unwrap();
    let id = backfill(e, "up", DAY0, DAY0 + 2 * H, "missing").await;
    for (_, w) in e
        .store()
        .windows("acme", "up", DAY0, DAY0 + 2 * H, 10)
        .unwrap()
    {
        let a = e.attempts("acme", w.run_id).unwrap();
        assert_eq!(a[0].error_kind, None, "{a:?}");
    }
    let v = e.verify_backfill("acme", id).await.unwrap();
    assert_eq!(v.checks.len(), 2, "{:?}", v.checks);
    assert!(v.checks.iter().all(|c| c.consistent()), "{:?}", v.checks);

    let record = f.store.connection_get("acme", "lake").unwrap().unwrap();
    let c = tidemark::blob::open_container("acme", &record, Some(secret), None).unwrap();
    let m: Value = serde_json::from_slice(
        &c.get("up/write/window=20240301T010000Z/_manifest.json")
            .await
            .unwrap(),
    )
    .unwrap();
    let objects = m["objects"].as_array().unwrap();
    assert_eq!(objects.len(), 2, "{m}");
    let data = c.get(objects[0]["key"].as_str().unwrap()).await.unwrap();
    assert_eq!(data.len(), 1000);
    assert!(data.starts_with(format!("{}:0;", DAY0 + H).as_bytes()));
    // Only manifests and the objects they name are left.
    let mut listed: Vec<String> = c
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    listed.sort();
    assert_eq!(listed.len(), 6, "{listed:?}");
    c.delete(objects[1]["key"].as_str().unwrap()).await.unwrap();
    let v = e.verify_backfill("acme", id).await.unwrap();
    let bad: Vec<_> = v.checks.iter().filter(|c| !c.consistent()).collect();
    assert_eq!(bad.len(), 1, "{:?}", v.checks);
    assert_eq!(bad[0].missing, vec!["part-0001.bin"]);
}

/// Azure's shared-key signature of `PUT /<account>/<container>?restype=container`
/// (Azurite creates no container by itself; object_store cannot either).
fn create_azure_container(endpoint: &str, container: &str) {
    fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
        let mut k = [0u8; 64];
        k[..key.len()].copy_from_slice(key);
        let pad = |b: u8| k.iter().map(|x| x ^ b).collect::<Vec<u8>>();
        let inner = Sha256::new()
            .chain_update(pad(0x36))
            .chain_update(msg)
            .finalize();
        Sha256::new()
            .chain_update(pad(0x5c))
            .chain_update(inner)
            .finalize()
            .to_vec()
    }
    let key = base64::engine::general_purpose::STANDARD
        .decode(AZ_KEY)
        .unwrap();
    let date = chrono::Utc::now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let to_sign = format!(
        "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:2021-08-06\n/{AZ_ACCOUNT}/{AZ_ACCOUNT}/{container}\nrestype:container"
    );
    let sig =
        base64::engine::general_purpose::STANDARD.encode(hmac_sha256(&key, to_sign.as_bytes()));
    let resp = ureq::put(&format!("{endpoint}/{container}?restype=container"))
        .set("x-ms-date", &date)
        .set("x-ms-version", "2021-08-06")
        .set("authorization", &format!("SharedKey {AZ_ACCOUNT}:{sig}"))
        .send_bytes(&[])
        .expect("creating the Azurite container");
    assert_eq!(resp.status(), 201);
}

#[tokio::test(flavor = "multi_thread")]
async fn azure_outputs_on_azurite_are_signed_published_and_verified() {
    let bin = azurite();
    let port = free_port();
    let _server = Emulator(
        Command::new(bin)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .args(["--inMemoryPersistence", "--silent", "--skipApiVersionCheck"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("azurite-blob"),
    );
    let endpoint = format!("http://127.0.0.1:{port}/{AZ_ACCOUNT}");
    wait_for("Azurite", Duration::from_secs(60), || answers(&endpoint));
    create_azure_container(&endpoint, "lake");

    let f = fixture().await;
    let e = &f.engine;
    let allow = tidemark::egress::Allowlist::parse(&[format!("http://127.0.0.1:{port}")]).unwrap();
    e.set_egress("acme", &allow).unwrap();
    // A wrong key: Azurite refuses the signature; the attempt says so,
    // naming the container and never the key.
    let wrong =
        base64::engine::general_purpose::STANDARD.encode(b"azure-WRONG-KEY-000000000000000");
    e.create_connection(
        "acme",
        &connection(
            "lake",
            "azure",
            &[
                ("account", AZ_ACCOUNT),
                ("container", "lake"),
                ("endpoint", &endpoint),
            ],
            ("access_key", &wrong),
        ),
    )
    .unwrap();
    e.apply_workflow("acme", workflow("wrongkey", "", ""))
        .await
        .unwrap();
    let run = e
        .run_window("acme", "wrongkey", DAY0, Trigger::Manual)
        .await
        .unwrap();
    e.settle().await.unwrap();
    let a = e.attempts("acme", run.id).unwrap();
    assert_eq!(a[0].error_kind, Some(ErrorKind::Task), "{a:?}");
    assert!(a[0].message.contains("storage refused"), "{}", a[0].message);
    assert!(a[0].message.contains("lake: "), "{}", a[0].message);
    assert!(!a[0].message.contains(&wrong), "{}", a[0].message);

    // The right key, rotated in: the next attempts publish.
    e.rotate_connection(
        "acme",
        "lake",
        None,
        [("access_key".to_string(), AZ_KEY.to_string())].into(),
    )
    .unwrap();
    publish_and_verify(&f, AZ_KEY).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_cloud_stores_fail_the_attempt_naming_the_connection() {
    let f = fixture().await;
    let e = &f.engine;
    // Nothing listens on this port.
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    // A configured endpoint must be in the tenant's allowlist first.
    e.create_connection(
        "acme",
        &connection(
            "lake",
            "gcs",
            &[("bucket", "lake"), ("endpoint", &endpoint)],
            ("service_account_key", GCS_EMULATOR_KEY),
        ),
    )
    .unwrap();
    e.apply_workflow("acme", workflow("denied", "", ""))
        .await
        .unwrap();
    let run = e
        .run_window("acme", "denied", DAY0, Trigger::Manual)
        .await
        .unwrap();
    e.settle().await.unwrap();
    let a = e.attempts("acme", run.id).unwrap();
    assert!(
        a[0].message
            .contains("is not in the tenant's egress allowlist"),
        "{}",
        a[0].message
    );
    e.delete_workflow("acme", "denied").unwrap();
    e.delete_connection("acme", "lake").unwrap();
    let allow = tidemark::egress::Allowlist::parse(std::slice::from_ref(&endpoint)).unwrap();
    e.set_egress("acme", &allow).unwrap();
    let cases = [
        connection(
            "lake",
            "gcs",
            &[("bucket", "lake"), ("endpoint", &endpoint)],
            ("service_account_key", GCS_EMULATOR_KEY),
        ),
        connection(
            "lake",
            "azure",
            &[
                ("account", AZ_ACCOUNT),
                ("container", "lake"),
                ("endpoint", &format!("{endpoint}/{AZ_ACCOUNT}")),
            ],
            ("access_key", AZ_KEY),
        ),
    ];
    for (i, c) in cases.iter().enumerate() {
        e.create_connection("acme", c).unwrap();
        e.apply_workflow("acme", workflow("up", "", ""))
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let run = e
            .run_window("acme", "up", DAY0 + i as i64 * H, Trigger::Manual)
            .await
            .unwrap();
        e.settle().await.unwrap();
        let a = e.attempts("acme", run.id).unwrap();
        assert_eq!(a[0].error_kind, Some(ErrorKind::Task), "{}: {a:?}", c.kind);
        let m = &a[0].message;
        assert!(m.contains("lake: "), "{}: {m}", c.kind);
        for secret in c.secrets.values() {
            assert!(!m.contains(secret.as_str()), "{}: {m}", c.kind);
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{}: gave up in {:?}",
            c.kind,
            started.elapsed()
        );
        e.delete_workflow("acme", "up").unwrap();
        e.delete_connection("acme", "lake").unwrap();
    }
}

/// A real service-account key (RSA, PEM in JSON) builds a GCS client on
/// ring (no aws-lc); a malformed one is refused at setup, naming the
/// connection and quoting none of the key.
#[test]
fn service_account_keys_build_a_signer_and_bad_ones_stay_secret() {
    let pem = Command::new("openssl")
        .args(["genrsa", "2048"])
        .output()
        .expect("openssl genrsa");
    assert!(pem.status.success());
    let pem = String::from_utf8(pem.stdout).unwrap();
    let key = |private_key: &str| {
        serde_json::json!({
            "type": "service_account", "client_email": "tm@example.iam.gserviceaccount.com",
            "private_key_id": "k1", "private_key": private_key,
        })
        .to_string()
    };
    let record = |secret: &str| {
        let c = connection(
            "gcs-lake",
            "gcs",
            &[("bucket", "lake")],
            ("service_account_key", secret),
        );
        let spec = c.validate().unwrap();
        tidemark::store::ConnectionRecord {
            name: spec.name,
            kind: spec.kind,
            config: spec.config,
            secrets: Default::default(),
            revision: 1,
            created_ms: 0,
            updated_ms: 0,
        }
    };
    let good = key(&pem);
    tidemark::blob::open_container("acme", &record(&good), Some(&good), None)
        .expect("a real key builds a client");
    let body = "gcs-BADKEY-MATERIAL-1f2e3d4c5b6a";
    let bad = key(&format!(
        "-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n"
    ));
    let err = tidemark::blob::open_container("acme", &record(&bad), Some(&bad), None)
        .expect_err("a malformed key is refused")
        .to_string();
    assert!(err.starts_with("connection gcs-lake: "), "{err}");
    assert!(!err.contains(body), "{err}");
}
