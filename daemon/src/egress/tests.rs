use super::*;

fn target(url: &str) -> Target {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') => (h, p.parse().unwrap()),
        _ => (rest, if scheme == "https" { 443 } else { 80 }),
    };
    Target {
        scheme: scheme.into(),
        host: host.trim_matches(['[', ']']).to_ascii_lowercase(),
        port,
    }
}

fn list(p: &[&str]) -> Allowlist {
    Allowlist::parse(p).unwrap()
}

#[test]
fn patterns_match_scheme_host_and_default_port() {
    let l = list(&["https://api.example.com"]);
    assert!(l.allows(&target("https://api.example.com")));
    assert!(l.allows(&target("https://API.example.com:443")));
    assert!(!l.allows(&target("http://api.example.com")));
    assert!(!l.allows(&target("https://api.example.com:8443")));
    assert!(!l.allows(&target("https://evil.com")));
    assert!(!l.allows(&target("https://api.example.com.evil.com")));

    let l = list(&["http://*.example.com:*"]);
    assert!(l.allows(&target("http://a.b.example.com:81")));
    assert!(!l.allows(&target("http://example.com")));
    assert!(!l.allows(&target("http://badexample.com")));

    let l = list(&["*://10.0.0.0/8:8000-8010", "http://[fc00::/7]:*"]);
    assert!(l.allows(&target("https://10.1.2.3:8005")));
    assert!(!l.allows(&target("https://10.1.2.3:8011")));
    assert!(!l.allows(&target("https://11.1.2.3:8005")));
    assert!(l.allows(&target("http://[fd00::1]:1")));
    // A name is not an address, whatever it resolves to.
    assert!(!l.allows(&target("https://ten.example:8005")));
}

#[test]
fn an_empty_list_allows_nothing() {
    assert!(!Allowlist::default().allows(&target("https://example.com")));
    assert!(Egress::default()
        .decide(&target("https://example.com"))
        .is_err());
}

#[test]
fn malformed_patterns_are_named() {
    for (p, reason) in [
        ("example.com", "missing the scheme"),
        ("ftp://example.com", "the scheme must be"),
        ("https://example.com/path", "no path"),
        ("https://ex*ample.com", "wildcard"),
        ("https://*.*.com", "wildcard"),
        ("https://example.com:0", "port"),
        ("https://example.com:99999", "port"),
        ("https://example.com:9-3", "empty"),
        ("*://example.com", "port must be given"),
        ("http://10.0.0.0/33", "prefix length"),
        ("http://user@example.com", "user information"),
        ("https://", "empty"),
        ("http://exa mple.com", "not a host name"),
    ] {
        let e = HostPattern::parse(p).unwrap_err();
        assert_eq!(e.pattern, p);
        assert!(
            e.reason.contains(reason),
            "{p}: {} does not say {reason}",
            e.reason
        );
        assert!(e.to_string().contains(&format!("{p:?}")));
    }
    let e = Allowlist::parse(&["https://ok.example.com", "nope"]).unwrap_err();
    assert_eq!(e.pattern, "nope");
}

#[test]
fn containment_for_task_subsets() {
    let tenant = list(&[
        "https://*.example.com",
        "http://127.0.0.0/8:*",
        "https://api.other.com:8000-9000",
    ]);
    let covered = |p: &str| tenant.covers(&HostPattern::parse(p).unwrap());
    assert!(covered("https://a.example.com"));
    assert!(covered("https://*.b.example.com"));
    assert!(!covered("https://example.com"));
    assert!(!covered("http://a.example.com"));
    assert!(!covered("*://a.example.com:443"));
    assert!(covered("http://127.0.0.1:8080"));
    assert!(covered("http://127.1.0.0/16:1-10"));
    assert!(!covered("http://0.0.0.0/0:80"));
    assert!(covered("https://api.other.com:8500"));
    assert!(covered("https://api.other.com:8000-9000"));
    assert!(!covered("https://api.other.com:7000-8500"));
    assert!(!covered("https://api.other.com:*"));
    assert!(list(&["*://*:*"]).covers(&HostPattern::parse("https://x.y").unwrap()));
}

#[test]
fn special_addresses_need_an_explicit_range_in_both_lists() {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    for (a, class) in [
        ("127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "metadata"),
        ("169.254.1.1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("fd12::1", "private"),
        ("fe80::1", "link-local"),
        ("::ffff:127.0.0.1", "loopback"),
        ("64:ff9b::a9fe:a9fe", "metadata"),
    ] {
        assert_eq!(special(ip(a)), Some(class), "{a}");
    }
    assert_eq!(special(ip("93.184.215.14")), None);
    assert_eq!(special(ip("2606:2800:21f:cb07:6820:80da:af6b:8b2c")), None);

    let t = target("http://localhost:8080");
    let by_name = Egress {
        tenant: list(&["http://localhost:8080"]),
        task: list(&["http://localhost:8080"]),
        ..Egress::default()
    };
    assert!(by_name.decide(&t).is_ok());
    assert_eq!(
        by_name.address_allowed(&t, ip("127.0.0.1")),
        Err("loopback")
    );
    assert_eq!(by_name.address_allowed(&t, ip("93.184.215.14")), Ok(()));

    let by_range = Egress {
        tenant: list(&["http://127.0.0.0/8:*", "http://localhost:8080"]),
        task: list(&["http://127.0.0.1:8080", "http://localhost:8080"]),
        ..Egress::default()
    };
    assert_eq!(by_range.address_allowed(&t, ip("127.0.0.1")), Ok(()));
    assert_eq!(by_range.address_allowed(&t, ip("::1")), Err("loopback"));
    // The tenant alone naming it is not enough.
    let tenant_only = Egress {
        task: list(&["http://localhost:8080"]),
        ..by_range.clone()
    };
    assert_eq!(
        tenant_only.address_allowed(&t, ip("127.0.0.1")),
        Err("loopback")
    );
    // A wildcard host is not an explicit range.
    let wild = Egress {
        tenant: list(&["*://*:*"]),
        task: list(&["*://*:*"]),
        ..Egress::default()
    };
    assert_eq!(
        wild.address_allowed(&t, ip("169.254.169.254")),
        Err("metadata")
    );
}
