use super::*;

fn raw(kind: &str, config: &[(&str, &str)], secrets: &[(&str, &str)]) -> RawConnection {
    RawConnection {
        name: "c".into(),
        kind: kind.into(),
        config: config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        secrets: secrets
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

const GCS_KEY: &str = r#"{"client_email": "tm@p.iam.gserviceaccount.com", "private_key": "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n"}"#;

#[test]
fn cloud_connections_validate_and_rotate_keeping_their_keys() {
    let gcs = raw(
        "gcs",
        &[
            ("bucket", "lake"),
            ("endpoint", "http://127.0.0.1:4443"),
            ("prefix", "tm"),
        ],
        &[("service_account_key", GCS_KEY)],
    );
    assert_eq!(gcs.validate().unwrap().kind, ConnectionKind::Gcs);
    // An emulator's key needs no credentials.
    let emulator = raw(
        "gcs",
        &[("bucket", "lake")],
        &[("service_account_key", r#"{"disable_oauth": true}"#)],
    );
    assert!(emulator.validate().is_ok());
    let azure = raw(
        "azure",
        &[("account", "devstoreaccount1"), ("container", "lake")],
        &[("access_key", "a2V5")],
    );
    assert_eq!(azure.validate().unwrap().kind, ConnectionKind::Azure);
    // A rotation of settings only: the kept key is known by name.
    let mut kept = azure.clone();
    kept.secrets.insert("access_key".into(), "<kept>".into());
    assert!(kept.validate().is_err());
    assert!(kept.validate_keeping(&["access_key"]).is_ok());
    assert_eq!(
        ConnectionKind::Gcs.signing_secret(),
        Some("service_account_key")
    );
    assert_eq!(ConnectionKind::Azure.signing_secret(), Some("access_key"));
    assert!(!ConnectionKind::Http.is_object_store());
}

#[test]
fn connections_are_validated_per_kind_naming_the_field() {
    let ok = raw(
        "http",
        &[
            ("base_url", "https://api.example.com/v1"),
            ("auth", "bearer"),
        ],
        &[("token", "t0k3n")],
    );
    assert_eq!(ok.validate().unwrap().kind, ConnectionKind::Http);
    let cases: &[(RawConnection, &str)] = &[
        (raw("ftp", &[], &[]), "kind"),
        (raw("http", &[], &[]), "config.base_url"),
        (
            raw("http", &[("base_url", "api.example.com")], &[]),
            "config.base_url",
        ),
        (
            raw("http", &[("base_url", "https://u:p@h")], &[]),
            "config.base_url",
        ),
        (
            raw(
                "http",
                &[("base_url", "https://h"), ("auth", "bearer")],
                &[],
            ),
            "secrets.token",
        ),
        (
            raw("http", &[("base_url", "https://h"), ("token", "x")], &[]),
            "config.token",
        ),
        (
            raw("http", &[("base_url", "https://h")], &[("pin", "1")]),
            "secrets.pin",
        ),
        (
            raw("s3", &[("bucket", "b")], &[("secret_access_key", "k")]),
            "config.access_key_id",
        ),
        (
            raw("s3", &[("bucket", "b"), ("access_key_id", "a")], &[]),
            "secrets.secret_access_key",
        ),
        (
            raw(
                "http",
                &[
                    ("base_url", "https://h"),
                    ("auth", "header"),
                    ("header", "Host"),
                ],
                &[("value", "v")],
            ),
            "config.header",
        ),
        (
            raw(
                "http",
                &[
                    ("base_url", "https://h"),
                    ("auth", "header"),
                    ("header", "a b"),
                ],
                &[("value", "v")],
            ),
            "config.header",
        ),
        (
            raw("gcs", &[], &[("service_account_key", GCS_KEY)]),
            "config.bucket",
        ),
        (
            raw("gcs", &[("bucket", "lake")], &[]),
            "secrets.service_account_key",
        ),
        (
            raw(
                "gcs",
                &[("bucket", "Lake!")],
                &[("service_account_key", GCS_KEY)],
            ),
            "config.bucket",
        ),
        (
            raw(
                "gcs",
                &[("bucket", "lake")],
                &[("service_account_key", r#"{"client_email": "a@b"}"#)],
            ),
            "secrets.service_account_key",
        ),
        (
            raw(
                "gcs",
                &[("bucket", "lake"), ("endpoint", "localhost:4443")],
                &[("service_account_key", GCS_KEY)],
            ),
            "config.endpoint",
        ),
        (
            raw("azure", &[("account", "acct")], &[("access_key", "a2V5")]),
            "config.container",
        ),
        (
            raw("azure", &[("container", "lake")], &[("access_key", "a2V5")]),
            "config.account",
        ),
        (
            raw("azure", &[("account", "acct"), ("container", "lake")], &[]),
            "secrets.access_key",
        ),
        (
            raw(
                "azure",
                &[("account", "Acct_1"), ("container", "lake")],
                &[("access_key", "a2V5")],
            ),
            "config.account",
        ),
        (
            raw(
                "azure",
                &[("account", "acct"), ("container", "la--ke")],
                &[("access_key", "a2V5")],
            ),
            "config.container",
        ),
        (
            raw(
                "azure",
                &[("account", "acct"), ("container", "lake")],
                &[("access_key", "not base64!")],
            ),
            "secrets.access_key",
        ),
        (
            raw(
                "azure",
                &[
                    ("account", "acct"),
                    ("container", "lake"),
                    ("access_key", "a2V5"),
                ],
                &[],
            ),
            "config.access_key",
        ),
        (raw("fs", &[("path", "../up")], &[]), "config.path"),
        (raw("fs", &[("path", "/abs")], &[]), "config.path"),
    ];
    for (c, field) in cases {
        let e = c.validate().unwrap_err();
        assert_eq!(&e.field, field, "{c:?}: {e}");
    }
    // An error never repeats a secret's value.
    for (c, secret) in [
        (
            raw(
                "gcs",
                &[("bucket", "lake")],
                &[("service_account_key", "{hunter2")],
            ),
            "hunter2",
        ),
        (
            raw(
                "azure",
                &[("account", "acct"), ("container", "lake")],
                &[("access_key", "hunter2!!")],
            ),
            "hunter2",
        ),
    ] {
        let e = c.validate().unwrap_err();
        assert!(!e.to_string().contains(secret), "{e}");
    }
    let e = raw("http", &[("base_url", "https://h")], &[("pin", "hunter2")])
        .validate()
        .unwrap_err();
    assert!(!e.to_string().contains("hunter2"));
    let spec = ok.validate().unwrap();
    assert!(!format!("{spec:?}").contains("t0k3n"));
}
