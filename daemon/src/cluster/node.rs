//! A node's life on a shared store: it announces itself by heartbeat,
//! stands by until the engine lease is free, leads while it keeps renewing
//! the lease, steps down when it cannot (another node took it, or the
//! database stayed out of reach for a whole lease), and on shutdown drains:
//! it stops, lets its attempts finish within the grace period and releases
//! the lease at once, so a standby takes over without waiting for expiry.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use tokio::sync::watch;

use super::front::Front;
use super::metrics::Renewal;
use super::tenure::Tenure;
use super::NodeConfig;
use crate::engine::Engine;
use crate::store::{PgStore, StoreError, ENGINE_LEASE};

/// Why a start of the engine failed: a store error is worth another try
/// later (the database may be back), anything else is not.
pub enum StartError<E> {
    Transient(E),
    Fatal(E),
}

/// How often a standby asks for the lease: a fifth of it, at most half a
/// second, so failover takes at most a lease and a poll.
fn poll_interval(lease: Duration) -> Duration {
    (lease / 5).min(Duration::from_millis(500))
}

/// Runs the node until `stop` turns true. `start` opens an engine on the
/// fenced store of a new term, held to the term's tenure, and returns it
/// with its API. `ready` is
/// called once the node knows its first role: leading with its engine
/// started, or standing by behind a leader (or an unreachable database).
pub async fn run<S, F, E, R>(
    base: PgStore,
    cfg: NodeConfig,
    front: Arc<Front>,
    mut start: S,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
    ready: R,
) -> Result<(), E>
where
    S: FnMut(PgStore, Arc<Tenure>) -> F,
    F: Future<Output = Result<(Engine, Router), StartError<E>>>,
    E: std::error::Error,
    R: FnOnce(),
{
    let mut ready = Some(ready);
    let mut announce = move || {
        if let Some(r) = ready.take() {
            r()
        }
    };
    let current: Arc<Mutex<Option<Engine>>> = Arc::default();
    // Listed before it says it is ready (a failure is the database's,
    // said by the lease loop below).
    if let Err(e) = base.node_heartbeat(&cfg.id, &cfg.advertise, false, 0).await {
        tracing::warn!(node = cfg.id, "first heartbeat: {e}");
    }
    let heartbeat = tokio::spawn(heartbeat(
        base.clone(),
        cfg.clone(),
        current.clone(),
        stop.clone(),
    ));
    let mut outcome = Ok(());
    let mut last_error: Option<String> = None;
    while !*stop.borrow() {
        let sent = Instant::now();
        let epoch = match base.lease_acquire(ENGINE_LEASE, &cfg.id, cfg.lease).await {
            Ok(Some(epoch)) => epoch,
            Ok(None) => {
                last_error = None;
                announce();
                wait(&mut stop, poll_interval(cfg.lease)).await;
                continue;
            }
            Err(e) => {
                // Said once per outage, not at every poll.
                let text = e.to_string();
                if last_error.as_deref() != Some(text.as_str()) {
                    tracing::warn!(node = cfg.id, "cannot reach the database: {text}");
                    last_error = Some(text);
                }
                announce();
                wait(&mut stop, poll_interval(cfg.lease)).await;
                continue;
            }
        };
        last_error = None;
        // One per term: an engine of an earlier term never runs on a later
        // term's lease.
        let tenure = Arc::new(Tenure::ended());
        tenure.extend(sent, cfg.lease);
        tracing::info!(node = cfg.id, epoch, "took the engine lease: leading");
        let fenced = match base.fenced(&cfg.id, epoch, cfg.lease) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!("opening a fenced store: {e}");
                release(&base, &cfg.id, epoch).await;
                wait(&mut stop, poll_interval(cfg.lease)).await;
                continue;
            }
        };
        // Renewal runs from the first moment of the term: opening the
        // engine and preloading (compiling plugins) may take longer than a
        // lease, and a lease left to lapse meanwhile fences the start's own
        // writes.
        let (lost_tx, mut lost_rx) = watch::channel(None::<String>);
        let renewal = tokio::spawn(renew(
            base.clone(),
            cfg.clone(),
            (epoch, tenure.clone()),
            front.clone(),
            lost_tx,
        ));
        let (engine, router) = match start(fenced, tenure.clone()).await {
            Ok(started) => started,
            Err(StartError::Transient(e)) => {
                renewal.abort();
                tenure.end();
                tracing::warn!(
                    node = cfg.id,
                    "could not start the engine, standing by: {}",
                    crate::store::chain(&e)
                );
                release(&base, &cfg.id, epoch).await;
                wait(&mut stop, cfg.lease).await;
                continue;
            }
            Err(StartError::Fatal(e)) => {
                renewal.abort();
                tenure.end();
                release(&base, &cfg.id, epoch).await;
                outcome = Err(e);
                break;
            }
        };
        // Before the router: a loss the renewal reports from here on
        // clears both.
        front.metrics.lead(epoch);
        front.set_local(Some(router));
        // The renewal clears the local API before it reports a loss: a
        // loss reported by now may have been cleared before the line above.
        if lost_rx.borrow().is_some() {
            front.set_local(None);
        }
        announce();
        *current.lock().unwrap_or_else(|p| p.into_inner()) = Some(engine.clone());
        let shutdown = {
            let mut stop = stop.clone();
            async move {
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => {}
                    _ = lost_rx.wait_for(|l| l.is_some()) => {}
                }
            }
        };
        let ran = engine.run_until(shutdown, grace).await;
        renewal.abort();
        tenure.end();
        front.set_local(None);
        *current.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let lost = renewal.await.ok().flatten();
        match (ran, lost) {
            (_, Some(reason)) => {
                tracing::warn!(node = cfg.id, epoch, "stepped down: {reason}");
            }
            (Err(e), None) => {
                tracing::error!(
                    node = cfg.id,
                    epoch,
                    "the engine stopped, stepping down: {e}"
                );
                release(&base, &cfg.id, epoch).await;
                wait(&mut stop, cfg.lease).await;
            }
            (Ok(()), None) => {
                release(&base, &cfg.id, epoch).await;
                tracing::info!(node = cfg.id, epoch, "released the engine lease");
            }
        }
    }
    heartbeat.abort();
    if let Err(e) = base.node_remove(&cfg.id).await {
        tracing::warn!(node = cfg.id, "leaving the node list: {e}");
    }
    outcome
}

async fn wait(stop: &mut watch::Receiver<bool>, d: Duration) {
    let _ = tokio::time::timeout(d, stop.wait_for(|s| *s)).await;
}

async fn release(store: &PgStore, id: &str, epoch: i64) {
    if let Err(e) = store.lease_release(ENGINE_LEASE, id, epoch).await {
        tracing::warn!(
            node = id,
            "releasing the engine lease (it lapses by itself): {e}"
        );
    }
}

/// Keeps the lease and the term's tenure; returns (and stops serving the
/// local API at once) when it is lost, with the reason. A renewal that
/// fails for a whole lease, by this node's own clock from its last
/// success, counts as lost: by then the database may have given the lease
/// to another node.
async fn renew(
    store: PgStore,
    cfg: NodeConfig,
    (epoch, tenure): (i64, Arc<Tenure>),
    front: Arc<Front>,
    lost: watch::Sender<Option<String>>,
) -> Option<String> {
    let mut last_ok = Instant::now();
    let reason = loop {
        tokio::time::sleep(cfg.lease / 4).await;
        let sent = Instant::now();
        match store
            .lease_renew(ENGINE_LEASE, &cfg.id, epoch, cfg.lease)
            .await
        {
            Ok(true) => {
                front.metrics.renewal(Renewal::Renewed);
                tenure.extend(sent, cfg.lease);
                if sent.elapsed() > cfg.lease / 4 {
                    tracing::warn!(
                        node = cfg.id,
                        "renewing the engine lease took {:?}",
                        sent.elapsed()
                    );
                }
                last_ok = sent;
            }
            Ok(false) => {
                front.metrics.renewal(Renewal::Lost);
                break "another node took the engine lease over".to_owned();
            }
            Err(e) if last_ok.elapsed() >= cfg.lease => {
                front.metrics.renewal(Renewal::Failed);
                break format!("could not renew the engine lease for {:?}: {e}", cfg.lease);
            }
            Err(e) => {
                front.metrics.renewal(Renewal::Failed);
                tracing::warn!(node = cfg.id, "renewing the engine lease: {e}");
            }
        }
    };
    tenure.end();
    front.set_local(None);
    let _ = lost.send(Some(reason.clone()));
    Some(reason)
}

async fn heartbeat(
    store: PgStore,
    cfg: NodeConfig,
    current: Arc<Mutex<Option<Engine>>>,
    stop: watch::Receiver<bool>,
) {
    let every = (cfg.lease / 4).min(Duration::from_secs(1));
    loop {
        let attempts = current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map_or(0, |e| e.in_flight());
        let draining = *stop.borrow();
        let result: Result<(), StoreError> = store
            .node_heartbeat(&cfg.id, &cfg.advertise, draining, attempts as i32)
            .await;
        if let Err(e) = result {
            tracing::debug!(node = cfg.id, "heartbeat: {e}");
        }
        tokio::time::sleep(every).await;
    }
}
