//! The notification sender: a background task apart from scheduling. The
//! engine only puts durable events on its bounded queue ([`Notifier::send`]
//! never waits); the sender turns each into one delivery per subscribed
//! target, written to the delivery log before the first attempt, and POSTs
//! it signed, retrying with exponential backoff on the engine's clock until
//! a 2xx answer or the last attempt. Pending deliveries are read back at
//! start, so a delivery survives a restart (at least once).
//!
//! A delivery goes out under the tenant's egress allowlist, like its tasks'
//! requests: the URL must be allowed, names are resolved here, and only
//! addresses that are public or that the allowlist names by IP or CIDR are
//! connected to. Redirects are not followed.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;

use crate::clock::Clock;
use crate::egress::{Allowlist, Target};
use crate::notify::{self, Event, EventType};
use crate::secrets::SealingKey;
use crate::store::{DeliveryRecord, DeliveryState, StateStore, StoreError};

/// How the sender delivers.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Events waiting for the sender; when full, new events are dropped
    /// (logged and counted), never waited for.
    pub queue: usize,
    /// Attempts per delivery, the first included.
    pub max_attempts: u32,
    /// The wait after the first failed attempt; it doubles each time.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// One attempt, from connecting to the end of the answer.
    pub timeout: Duration,
    /// Attempts in flight at once.
    pub concurrency: usize,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            queue: 1024,
            max_attempts: 8,
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(600),
            timeout: Duration::from_secs(10),
            concurrency: 4,
        }
    }
}

/// The engine's end of the queue.
pub(crate) struct Notifier {
    tx: mpsc::Sender<(String, Event)>,
    dropped: crate::metrics::Counters,
}

impl Notifier {
    /// Starts the sender on the current runtime. It holds the store only
    /// weakly, and stops when the engine (this queue's sender) is gone.
    pub(crate) fn start(
        store: &Arc<dyn StateStore>,
        clock: Arc<dyn Clock>,
        key: SealingKey,
        config: DeliveryConfig,
        metrics: &crate::metrics::Metrics,
    ) -> Notifier {
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let sender = Sender {
            store: Arc::downgrade(store),
            clock,
            key,
            config,
            last_id: 0,
            attempts: metrics.notification_attempts.clone(),
        };
        tokio::spawn(sender.run(rx));
        Notifier {
            tx,
            dropped: metrics.notifications_dropped.clone(),
        }
    }

    /// Queues events that are durable now; never waits.
    pub(crate) fn send(&self, events: Vec<(String, Event)>) {
        for (tenant, event) in events {
            let kind = event.kind();
            if let Err(e) = self.tx.try_send((tenant, event)) {
                let tenant = match &e {
                    mpsc::error::TrySendError::Full((t, _))
                    | mpsc::error::TrySendError::Closed((t, _)) => t.clone(),
                };
                tracing::warn!(
                    tenant,
                    event = kind.as_str(),
                    "notification dropped: the sender's queue is full or closed"
                );
                let labels = crate::metrics::labels(&[("tenant", &tenant)]);
                self.dropped.get_or_create(&labels).inc();
            }
        }
    }
}

struct Sender {
    store: Weak<dyn StateStore>,
    clock: Arc<dyn Clock>,
    key: SealingKey,
    config: DeliveryConfig,
    last_id: u64,
    attempts: crate::metrics::Counters,
}

/// How one attempt ended.
struct Outcome {
    tenant: String,
    id: u64,
    url: String,
    status: Option<u16>,
    error: Option<String>,
}

/// Why a store call of the sender failed (the engine is gone, or the
/// store refused).
#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("the engine has stopped")]
    Gone,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("background task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

impl Sender {
    async fn run(mut self, mut rx: mpsc::Receiver<(String, Event)>) {
        // Pending deliveries by (tenant, id); the in-flight ones are not
        // due again until their attempt is recorded.
        let mut pending: BTreeMap<(String, u64), DeliveryRecord> = BTreeMap::new();
        match self.with_store(|s| s.deliveries_pending()).await {
            Ok(list) => {
                for (tenant, d) in list {
                    self.last_id = self.last_id.max(d.id);
                    pending.insert((tenant, d.id), d);
                }
            }
            Err(e) => tracing::error!("reading pending notification deliveries: {e}"),
        }
        let mut in_flight: HashSet<(String, u64)> = HashSet::new();
        let mut attempts = tokio::task::JoinSet::new();
        loop {
            let now = self.clock.now_ms();
            let due: Vec<(String, u64)> = pending
                .iter()
                .filter(|(k, d)| {
                    !in_flight.contains(*k) && d.next_attempt_ms.is_none_or(|t| t <= now)
                })
                .map(|(k, _)| k.clone())
                .take(
                    self.config
                        .concurrency
                        .max(1)
                        .saturating_sub(in_flight.len()),
                )
                .collect();
            for k in due {
                let Some(d) = pending.get(&k) else { continue };
                in_flight.insert(k.clone());
                let attempt = self.attempt(k.0.clone(), d.clone());
                attempts.spawn(attempt);
            }
            let next = pending
                .iter()
                .filter(|(k, _)| !in_flight.contains(*k))
                .filter_map(|(_, d)| d.next_attempt_ms)
                .min();
            let sleep = async {
                match next {
                    Some(t) => self.clock.sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                msg = rx.recv() => match msg {
                    None => return,
                    Some((tenant, event)) => match self.fan_out(&tenant, &event).await {
                        Ok(list) => {
                            for d in list {
                                pending.insert((tenant.clone(), d.id), d);
                            }
                        }
                        Err(SendError::Gone) => return,
                        Err(e) => tracing::error!(
                            tenant,
                            event = event.kind().as_str(),
                            "notification not recorded: {e}"
                        ),
                    },
                },
                Some(done) = attempts.join_next(), if !attempts.is_empty() => {
                    let Ok(o) = done else { continue };
                    let key = (o.tenant.clone(), o.id);
                    in_flight.remove(&key);
                    let Some(mut d) = pending.remove(&key) else { continue };
                    self.record(&mut d, o);
                    let tenant = key.0.clone();
                    let keep = d.state == DeliveryState::Pending;
                    let d2 = d.clone();
                    match self.with_store(move |s| s.delivery_put(&tenant, &d2)).await {
                        Ok(()) => {}
                        Err(SendError::Gone) => return,
                        // Kept in memory: the next attempt's record writes it.
                        Err(e) => tracing::error!("recording a notification attempt: {e}"),
                    }
                    if keep {
                        pending.insert(key, d);
                    }
                }
                _ = sleep => {}
            }
        }
    }

    /// Runs `f` on the store off the runtime's threads (a PostgreSQL store
    /// blocks its caller).
    async fn with_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn StateStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, SendError> {
        let store = self.store.upgrade().ok_or(SendError::Gone)?;
        Ok(tokio::task::spawn_blocking(move || f(store.as_ref())).await??)
    }

    /// A time-ordered id: microseconds of the engine's clock, made unique.
    fn next_id(&mut self) -> u64 {
        let t = u64::try_from(self.clock.now_ms()).unwrap_or(0) * 1000;
        self.last_id = t.max(self.last_id + 1);
        self.last_id
    }

    /// One delivery per target subscribed to the event, written before
    /// anything is sent.
    async fn fan_out(
        &mut self,
        tenant: &str,
        event: &Event,
    ) -> Result<Vec<DeliveryRecord>, SendError> {
        let kind = event.kind();
        let t = tenant.to_owned();
        let targets = self
            .with_store(move |s| s.notify_target_list(&t))
            .await?
            .into_iter()
            .filter(|t| t.events.contains(&kind))
            .collect::<Vec<_>>();
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        let data = match (notify::event_data(event), event) {
            (Some(d), _) => d,
            (None, Event::BackfillEnded { backfill }) => {
                let (t, id) = (tenant.to_owned(), *backfill);
                let summary = self
                    .with_store(move |s| super::notify::backfill_summary(s, &t, id))
                    .await?;
                serde_json::to_value(summary).unwrap_or(Value::Null)
            }
            (None, _) => Value::Null,
        };
        let now = self.clock.now_ms();
        let mut out = Vec::new();
        for target in targets {
            let id = self.next_id();
            let body = notify::payload(id, tenant, now, kind, data.clone()).to_string();
            let d = DeliveryRecord {
                id,
                target: target.name.clone(),
                url: target.url.clone(),
                event: kind,
                body,
                state: DeliveryState::Pending,
                attempts: 0,
                next_attempt_ms: Some(now),
                last_status: None,
                last_error: None,
                created_ms: now,
                updated_ms: now,
            };
            let (t, d2) = (tenant.to_owned(), d.clone());
            self.with_store(move |s| s.delivery_put(&t, &d2)).await?;
            tracing::info!(
                tenant,
                target = target.name,
                event = kind.as_str(),
                delivery = id,
                "notification queued"
            );
            out.push(d);
        }
        Ok(out)
    }

    /// One attempt, as a future that owns what it needs.
    fn attempt(
        &self,
        tenant: String,
        d: DeliveryRecord,
    ) -> impl std::future::Future<Output = Outcome> + Send + 'static {
        let store = self.store.clone();
        let key = self.key.clone();
        let clock = self.clock.clone();
        let timeout = self.config.timeout;
        async move {
            let prepared = match store.upgrade() {
                Some(s) => {
                    let (t, target) = (tenant.clone(), d.target.clone());
                    tokio::task::spawn_blocking(move || prepare(s.as_ref(), &key, &t, &target))
                        .await
                        .unwrap_or_else(|e| Err(format!("background task failed: {e}")))
                }
                None => Err("the engine has stopped".to_owned()),
            };
            let (url, secret, allowlist) = match prepared {
                Ok(p) => p,
                Err(error) => {
                    return Outcome {
                        tenant,
                        id: d.id,
                        url: d.url,
                        status: None,
                        error: Some(error),
                    }
                }
            };
            let ts = clock.now_ms().div_euclid(1000);
            let signature = notify::signature_header(&secret, ts, d.body.as_bytes());
            let (status, error) =
                match post(&url, &allowlist, &signature, d.id, d.event, d.body, timeout).await {
                    Ok(status) if (200..300).contains(&status) => (Some(status), None),
                    Ok(status) => (
                        Some(status),
                        Some(format!("the receiver answered {status}")),
                    ),
                    Err(e) => (None, Some(e)),
                };
            Outcome {
                tenant,
                id: d.id,
                url,
                status,
                error,
            }
        }
    }

    /// The delivery after an attempt: delivered, failed for good, or due
    /// again after the backoff.
    fn record(&self, d: &mut DeliveryRecord, o: Outcome) {
        let now = self.clock.now_ms();
        let tenant = o.tenant.clone();
        d.attempts += 1;
        d.url = o.url;
        d.last_status = o.status;
        d.updated_ms = now;
        match o.error {
            None => {
                d.state = DeliveryState::Delivered;
                d.last_error = None;
                d.next_attempt_ms = None;
            }
            Some(e) if d.attempts >= self.config.max_attempts => {
                d.state = DeliveryState::Failed;
                d.last_error = Some(e);
                d.next_attempt_ms = None;
            }
            Some(e) => {
                d.last_error = Some(e);
                d.next_attempt_ms = Some(
                    now + notify::backoff(
                        d.attempts,
                        self.config.backoff_base.as_millis() as i64,
                        self.config.backoff_max.as_millis() as i64,
                    ),
                );
            }
        }
        let outcome = match d.state {
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
            DeliveryState::Pending => "retrying",
        };
        let labels = crate::metrics::labels(&[("tenant", &tenant), ("outcome", outcome)]);
        self.attempts.get_or_create(&labels).inc();
        tracing::info!(
            tenant,
            delivery = d.id,
            target = d.target,
            attempts = d.attempts,
            status = d.last_status,
            state = d.state.as_str(),
            error = d.last_error.as_deref().unwrap_or(""),
            "notification attempt"
        );
    }
}

/// The target's URL, its signing secret (opened now, so a rotation applies
/// to the next attempt) and the tenant's allowlist; the error never holds
/// a secret.
fn prepare(
    store: &dyn StateStore,
    key: &SealingKey,
    tenant: &str,
    target: &str,
) -> Result<(String, Vec<u8>, Allowlist), String> {
    let t = store
        .notify_target_get(tenant, target)
        .map_err(|e| format!("reading the target: {e}"))?
        .ok_or_else(|| format!("target {target:?} was deleted"))?;
    let conn = store
        .connection_get(tenant, &t.connection)
        .map_err(|e| format!("reading connection {:?}: {e}", t.connection))?
        .ok_or_else(|| format!("connection {:?} was deleted", t.connection))?;
    let secret = super::connections::open_sealed(key, tenant, &conn, &t.secret_field)
        .map_err(|e| format!("connection {:?}: {e}", t.connection))?
        .ok_or_else(|| {
            format!(
                "connection {:?} has no secret field {:?}",
                t.connection, t.secret_field
            )
        })?;
    let egress = store
        .tenant_get(tenant)
        .map_err(|e| format!("reading the egress allowlist: {e}"))?
        .map(|r| r.egress)
        .unwrap_or_default();
    let allowlist =
        Allowlist::parse(&egress).map_err(|e| format!("the egress allowlist is invalid: {e}"))?;
    Ok((t.url, secret, allowlist))
}

/// POSTs the body; the answer's status, or why there was none.
async fn post(
    url: &str,
    allowlist: &Allowlist,
    signature: &str,
    id: u64,
    event: EventType,
    body: String,
    timeout: Duration,
) -> Result<u16, String> {
    let target = Target::from_url(url).map_err(|e| format!("url {e}"))?;
    if !allowlist.allows(&target) {
        return Err(format!(
            "{} is not in the tenant's egress allowlist",
            target.authority()
        ));
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .map_err(|e| format!("resolving {}: {e}", target.host))?
        .collect();
    let mut refused = None;
    let allowed: Vec<SocketAddr> = addrs
        .into_iter()
        .filter(|a| match crate::egress::special(a.ip()) {
            None => true,
            Some(_) if allowlist.names_address(&target, a.ip()) => true,
            Some(class) => {
                refused = Some(class);
                false
            }
        })
        .collect();
    if allowed.is_empty() {
        return Err(match refused {
            Some(class) => format!(
                "{} resolves only to {class} addresses, which the allowlist does not name",
                target.host
            ),
            None => format!("{} has no address", target.host),
        });
    }
    // rustls needs a process-wide provider even for plain HTTP; an error
    // means one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(timeout)
        // Only the checked addresses: DNS is not asked again.
        .resolve_to_addrs(&target.host, &allowed)
        .build()
        .map_err(|e| format!("building the HTTP client: {e}"))?;
    let resp = client
        .post(url)
        .header("content-type", "application/json")
        .header(notify::SIGNATURE_HEADER, signature)
        .header("Tidemark-Event", event.as_str())
        .header("Tidemark-Delivery", id.to_string())
        .body(body)
        .send()
        .await
        .map_err(|e| format!("sending: {}", without_url(e)))?;
    Ok(resp.status().as_u16())
}

/// A reqwest error's chain, without the URL (the log shows it apart).
fn without_url(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}
