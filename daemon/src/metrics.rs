//! Prometheus metrics. Counters and the latency histogram are updated where
//! things happen; gauges (active runs, queue depth, attempts running, quota
//! usage, backfill progress) are set from a snapshot of the engine when
//! `/metrics` is scraped, so they can never drift from the state.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Label pairs, in order.
pub type Labels = Vec<(&'static str, String)>;

pub type Counters = Family<Labels, Counter>;
type Gauges = Family<Labels, Gauge>;

pub struct Metrics {
    registry: Registry,
    pub runs_ended: Counters,
    pub attempts: Counters,
    pub fuel: Counters,
    pub http_requests: Counters,
    pub http_bytes: Counters,
    pub publish_failures: Counters,
    pub objects_collected: Counters,
    pub output_checks: Counters,
    pub notifications_dropped: Counters,
    pub notification_attempts: Counters,
    pub dispatch_latency: Family<Labels, Histogram, fn() -> Histogram>,
    pub active_runs: Gauges,
    pub queue_depth: Gauges,
    pub attempts_running: Gauges,
    pub quota_limit: Gauges,
    pub quota_usage: Gauges,
    pub backfill_windows: Gauges,
    pub backfill_throttled: Gauges,
}

fn latency_buckets() -> Histogram {
    // 1 ms .. ~65 s.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.001, 2.0, 17,
    ))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tidemark");
        let m = Metrics {
            runs_ended: Family::default(),
            attempts: Family::default(),
            fuel: Family::default(),
            http_requests: Family::default(),
            http_bytes: Family::default(),
            publish_failures: Family::default(),
            objects_collected: Family::default(),
            output_checks: Family::default(),
            notifications_dropped: Family::default(),
            notification_attempts: Family::default(),
            dispatch_latency: Family::new_with_constructor(latency_buckets),
            active_runs: Family::default(),
            queue_depth: Family::default(),
            attempts_running: Family::default(),
            quota_limit: Family::default(),
            quota_usage: Family::default(),
            backfill_windows: Family::default(),
            backfill_throttled: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "runs_ended",
            "Runs that ended, by tenant and final state",
            m.runs_ended.clone(),
        );
        registry.register(
            "attempts",
            "Attempts that ended, by tenant and outcome (succeeded or the error kind)",
            m.attempts.clone(),
        );
        registry.register(
            "fuel_consumed",
            "Fuel burned by attempts, by tenant",
            m.fuel.clone(),
        );
        registry.register(
            "http_requests",
            "Outbound HTTP requests of attempts, by tenant and outcome (ok, denied, address_prohibited, a quota, a timeout, failed)",
            m.http_requests.clone(),
        );
        registry.register(
            "http_bytes",
            "Outbound HTTP body bytes of attempts, by tenant and direction (out: request, in: response)",
            m.http_bytes.clone(),
        );
        registry.register(
            "output_publish_failures",
            "Publishes of committed object-storage outputs that failed (and are retried), by tenant",
            m.publish_failures.clone(),
        );
        registry.register(
            "staged_objects_collected",
            "Objects of failed or abandoned attempts deleted from object storage, by tenant",
            m.objects_collected.clone(),
        );
        registry.register(
            "output_checks",
            "Automatic checks of published object-storage outputs (workflows with [checks] outputs = \"after_window\"), by tenant and result (passed, failed)",
            m.output_checks.clone(),
        );
        registry.register(
            "notifications_dropped",
            "Notification events dropped because the sender's queue was full, by tenant",
            m.notifications_dropped.clone(),
        );
        registry.register(
            "notification_attempts",
            "Webhook delivery attempts, by tenant and outcome (delivered, retrying, failed)",
            m.notification_attempts.clone(),
        );
        registry.register(
            "dispatch_latency_seconds",
            "From a scheduled window's end (when it is due) to its first attempt's start",
            m.dispatch_latency.clone(),
        );
        registry.register(
            "active_runs",
            "Runs not ended, by tenant and state",
            m.active_runs.clone(),
        );
        registry.register(
            "queue_depth",
            "Tasks ready or waiting for a slot (pending tasks of started runs plus queued runs), by tenant",
            m.queue_depth.clone(),
        );
        registry.register(
            "attempts_running",
            "Attempts executing, by tenant and pool (live or backfill)",
            m.attempts_running.clone(),
        );
        registry.register("quota_limit", "A tenant's quota", m.quota_limit.clone());
        registry.register(
            "quota_usage",
            "What a tenant uses of a quota",
            m.quota_usage.clone(),
        );
        registry.register(
            "backfill_windows",
            "Windows of active backfills, by tenant, backfill and state",
            m.backfill_windows.clone(),
        );
        registry.register(
            "backfill_throttled",
            "1 while an active backfill is throttled (overload or overlap)",
            m.backfill_throttled.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// Clears the snapshot gauges before they are set again.
    pub fn clear_snapshot(&self) {
        for g in [
            &self.active_runs,
            &self.queue_depth,
            &self.attempts_running,
            &self.quota_limit,
            &self.quota_usage,
            &self.backfill_windows,
            &self.backfill_throttled,
        ] {
            g.clear();
        }
    }

    pub fn set(g: &Gauges, labels: Labels, v: i64) {
        g.get_or_create(&labels).set(v);
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

pub fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}
