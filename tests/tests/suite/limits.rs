//! Every limit ends the attempt with its own error kind, and the engine keeps
//! working afterwards.

use std::time::{Duration, Instant};

use tidemark::executor::{AttemptError, ErrorKind, Limits};
use tidemark_tests::plugins::*;

use crate::*;

async fn hostile(plugin: &str, params: &[(&str, &str)], limits: Limits) -> AttemptError {
    let r = run(
        plugin,
        &invocation("hostile", DAY, params),
        &limits,
        store(),
    )
    .await;
    assert!(
        r.outputs.is_empty(),
        "a failed attempt must not leave outputs"
    );
    let err = r.result.expect_err("hostile plugin must fail");
    assert_engine_healthy().await;
    err
}

#[tokio::test(flavor = "multi_thread")]
async fn spin_hits_the_deadline() {
    let started = Instant::now();
    let err = hostile(
        SPIN,
        &[],
        Limits {
            timeout: Duration::from_millis(300),
            fuel: u64::MAX / 2,
            ..limits()
        },
    )
    .await;
    assert_eq!(err, AttemptError::DeadlineExceeded { timeout_ms: 300 });
    // Generous upper bound: the point is that the deadline, not fuel, ended it.
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread")]
async fn spin_exhausts_fuel() {
    let err = hostile(
        SPIN,
        &[],
        Limits {
            fuel: 2_000_000,
            ..limits()
        },
    )
    .await;
    assert_eq!(err, AttemptError::FuelExhausted { limit: 2_000_000 });
}

#[tokio::test(flavor = "multi_thread")]
async fn hog_hits_the_memory_limit() {
    let err = hostile(
        HOG,
        &[],
        Limits {
            memory_bytes: 32 << 20,
            ..limits()
        },
    )
    .await;
    assert_eq!(err, AttemptError::MemoryLimit { limit: 32 << 20 });
    assert_eq!(err.kind().as_str(), "memory limit exceeded");
}

#[tokio::test(flavor = "multi_thread")]
async fn deep_recursion_traps() {
    let err = hostile(DEEP, &[], limits()).await;
    assert_eq!(err.kind(), ErrorKind::Trap, "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn panic_traps_with_its_message() {
    let err = hostile(PANIC, &[("message", "disk on fire")], limits()).await;
    match err {
        AttemptError::Trap { message } => {
            assert!(message.contains("panic plugin: disk on fire"), "{message}");
            assert!(message.contains("panicked at"), "{message}");
        }
        other => panic!("expected a trap, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn chatty_log_hits_the_log_limit() {
    let lim = Limits {
        log_bytes: 64 << 10,
        ..limits()
    };
    let err = hostile(CHATTY, &[("mode", "log")], lim.clone()).await;
    assert_eq!(err, AttemptError::LogLimit { limit: 64 << 10 });
    let err = hostile(CHATTY, &[("mode", "stdout")], lim).await;
    assert_eq!(err, AttemptError::LogLimit { limit: 64 << 10 });
}

#[tokio::test(flavor = "multi_thread")]
async fn chatty_output_hits_the_output_limit() {
    let err = hostile(
        CHATTY,
        &[("mode", "output")],
        Limits {
            output_bytes: 1 << 20,
            ..limits()
        },
    )
    .await;
    assert_eq!(err, AttemptError::OutputLimit { limit: 1 << 20 });
}

#[tokio::test(flavor = "multi_thread")]
async fn log_is_bounded_in_the_report() {
    let r = run(
        CHATTY,
        &invocation("chatty", DAY, &[("mode", "log")]),
        &Limits {
            log_bytes: 16 << 10,
            ..limits()
        },
        store(),
    )
    .await;
    let bytes: usize = r.log.iter().map(|l| l.message.len()).sum();
    assert!(bytes <= 16 << 10, "{bytes} bytes of log kept");
    assert!(!r.log.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn escape_finds_nothing_to_escape_to() {
    let r = run(ESCAPE, &invocation("escape", DAY, &[]), &limits(), store()).await;
    let log: Vec<&str> = r.log.iter().map(|l| l.message.as_str()).collect();
    let summary = r.result.unwrap_or_else(|e| panic!("{e}; log: {log:#?}"));
    assert!(summary.starts_with("contained"), "{summary}");
    assert!(log.iter().any(|l| l.contains("/etc/passwd")), "{log:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_hostile_attempts_do_not_disturb_a_good_one() {
    let spin = tokio::spawn(async {
        run(
            SPIN,
            &invocation("spin", DAY, &[]),
            &Limits {
                timeout: Duration::from_millis(500),
                fuel: u64::MAX / 2,
                ..limits()
            },
            store(),
        )
        .await
    });
    // While the spinner runs, a good attempt completes normally.
    assert_engine_healthy().await;
    let r = spin.await.unwrap();
    assert_eq!(r.result.unwrap_err().kind(), ErrorKind::DeadlineExceeded);
}
