//! Per-tenant quotas: defaults from configuration, overrides per tenant
//! (kept in the tenant's record), and the trigger rate limiter.
//!
//! Quotas are checked where the resource is spent: attempt limits inside the
//! sandbox (the executor's fuel, memory, deadline and log limits are the
//! tenant's ceilings), concurrency in dispatch, stored dataset bytes when an
//! attempt's writes would commit, sizes and counts when a request arrives.
//! A request over a quota gets a [`QuotaError`] naming the quota.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The limits one tenant works under. Field names are the quota names used
/// in errors, the API and configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quotas {
    /// Attempts of the tenant running at once.
    pub concurrent_attempts: u32,
    /// Of those, how many only live (scheduled, manual, event) runs may use:
    /// the tenant's backfills never take them.
    pub live_reserved_attempts: u32,
    /// Ceilings of one attempt; a task may ask for less, never more.
    pub fuel_per_attempt: u64,
    pub memory_per_attempt: u64,
    pub timeout_per_attempt_ms: u64,
    pub log_bytes_per_attempt: u64,
    /// Largest plugin upload, bytes.
    pub plugin_bytes: u64,
    /// Plugin versions stored.
    pub plugins: u32,
    /// Dataset bytes stored (keys and values).
    pub dataset_bytes: u64,
    /// Trigger and run-window requests per minute (a token bucket holding a
    /// minute's worth).
    pub triggers_per_minute: u32,
    /// Windows one backfill may select.
    pub backfill_windows: u64,
    pub tasks_per_workflow: u32,
    /// Fair-share weight: under contention, attempt slots go to tenants in
    /// proportion to their weights.
    pub weight: u32,
    /// Outbound HTTP of one attempt (only to hosts the tenant's egress
    /// allowlist and the task's `allowed_hosts` allow): requests sent, in
    /// flight at once, body sizes, and timeouts (a guest may ask for
    /// shorter ones, never longer).
    #[serde(default = "d::http_requests_per_attempt")]
    pub http_requests_per_attempt: u32,
    #[serde(default = "d::http_concurrent_requests")]
    pub http_concurrent_requests: u32,
    #[serde(default = "d::http_request_body_bytes")]
    pub http_request_body_bytes: u64,
    #[serde(default = "d::http_response_body_bytes")]
    pub http_response_body_bytes: u64,
    #[serde(default = "d::http_connect_timeout_ms")]
    pub http_connect_timeout_ms: u64,
    #[serde(default = "d::http_first_byte_timeout_ms")]
    pub http_first_byte_timeout_ms: u64,
    #[serde(default = "d::http_total_timeout_ms")]
    pub http_total_timeout_ms: u64,
}

/// Defaults of the outbound HTTP quotas, from [`HttpLimits::default`].
mod d {
    use crate::egress::HttpLimits;

    pub fn http_requests_per_attempt() -> u32 {
        HttpLimits::default().requests
    }
    pub fn http_concurrent_requests() -> u32 {
        HttpLimits::default().concurrent
    }
    pub fn http_request_body_bytes() -> u64 {
        HttpLimits::default().request_body_bytes
    }
    pub fn http_response_body_bytes() -> u64 {
        HttpLimits::default().response_body_bytes
    }
    pub fn http_connect_timeout_ms() -> u64 {
        HttpLimits::default().connect_timeout.as_millis() as u64
    }
    pub fn http_first_byte_timeout_ms() -> u64 {
        HttpLimits::default().first_byte_timeout.as_millis() as u64
    }
    pub fn http_total_timeout_ms() -> u64 {
        HttpLimits::default().total_timeout.as_millis() as u64
    }
}

impl Default for Quotas {
    fn default() -> Self {
        // Per-attempt ceilings sit well above the executor's defaults
        // (which tasks get unless they ask): they bound what a task may ask.
        Quotas {
            concurrent_attempts: 32,
            live_reserved_attempts: 2,
            fuel_per_attempt: 10_000_000_000_000,
            memory_per_attempt: 4 << 30,
            timeout_per_attempt_ms: 3_600_000,
            log_bytes_per_attempt: 16 << 20,
            plugin_bytes: 64 << 20,
            plugins: 500,
            dataset_bytes: 10 << 30,
            triggers_per_minute: 600,
            backfill_windows: 10_000_000,
            tasks_per_workflow: 200,
            weight: 1,
            http_requests_per_attempt: d::http_requests_per_attempt(),
            http_concurrent_requests: d::http_concurrent_requests(),
            http_request_body_bytes: d::http_request_body_bytes(),
            http_response_body_bytes: d::http_response_body_bytes(),
            http_connect_timeout_ms: d::http_connect_timeout_ms(),
            http_first_byte_timeout_ms: d::http_first_byte_timeout_ms(),
            http_total_timeout_ms: d::http_total_timeout_ms(),
        }
    }
}

/// A tenant's overrides: quota name → value. Only named quotas change.
pub type Overrides = BTreeMap<String, Value>;

/// A quota refused a request, or a quota setting is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    #[error("quota {quota} exceeded: {detail} (limit {limit})")]
    Exceeded {
        quota: &'static str,
        limit: u64,
        detail: String,
    },
    #[error("rate limited by quota triggers_per_minute ({limit}/min): retry in {retry_after_s} s")]
    RateLimited { limit: u32, retry_after_s: u64 },
    #[error("invalid quota {quota}: {reason}")]
    Invalid { quota: String, reason: String },
}

impl QuotaError {
    pub fn exceeded(quota: &'static str, limit: u64, detail: impl Into<String>) -> Self {
        QuotaError::Exceeded {
            quota,
            limit,
            detail: detail.into(),
        }
    }
}

impl Quotas {
    /// These defaults with `overrides` applied; an unknown name or a value
    /// of the wrong type or range is refused with the quota it concerns.
    pub fn with(&self, overrides: &Overrides) -> Result<Quotas, QuotaError> {
        let Value::Object(mut fields) = serde_json::to_value(self).unwrap_or_default() else {
            unreachable!("Quotas serializes to an object")
        };
        for (name, value) in overrides {
            if !fields.contains_key(name) {
                let known: Vec<&String> = fields.keys().collect();
                return Err(QuotaError::Invalid {
                    quota: name.clone(),
                    reason: format!(
                        "no such quota; known: {}",
                        known
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
            if !value.is_u64() {
                return Err(QuotaError::Invalid {
                    quota: name.clone(),
                    reason: format!("{value} is not a non-negative integer"),
                });
            }
            fields.insert(name.clone(), value.clone());
        }
        let q: Quotas =
            serde_json::from_value(Value::Object(fields)).map_err(|e| QuotaError::Invalid {
                quota: overrides.keys().cloned().collect::<Vec<_>>().join(", "),
                reason: e.to_string(),
            })?;
        q.validate()?;
        Ok(q)
    }

    pub fn validate(&self) -> Result<(), QuotaError> {
        let invalid = |quota: &str, reason: &str| QuotaError::Invalid {
            quota: quota.into(),
            reason: reason.into(),
        };
        if self.concurrent_attempts == 0 {
            return Err(invalid("concurrent_attempts", "must be at least 1"));
        }
        if self.live_reserved_attempts >= self.concurrent_attempts {
            return Err(invalid(
                "live_reserved_attempts",
                "must be below concurrent_attempts (backfills need at least one slot)",
            ));
        }
        if self.weight == 0 {
            return Err(invalid("weight", "must be at least 1"));
        }
        for (name, v) in [
            ("fuel_per_attempt", self.fuel_per_attempt),
            ("memory_per_attempt", self.memory_per_attempt),
            ("timeout_per_attempt_ms", self.timeout_per_attempt_ms),
            ("triggers_per_minute", self.triggers_per_minute as u64),
            ("backfill_windows", self.backfill_windows),
            ("tasks_per_workflow", self.tasks_per_workflow as u64),
            (
                "http_concurrent_requests",
                self.http_concurrent_requests as u64,
            ),
            ("http_connect_timeout_ms", self.http_connect_timeout_ms),
            (
                "http_first_byte_timeout_ms",
                self.http_first_byte_timeout_ms,
            ),
            ("http_total_timeout_ms", self.http_total_timeout_ms),
        ] {
            if v == 0 {
                return Err(invalid(name, "must be at least 1"));
            }
        }
        Ok(())
    }

    /// Attempts the tenant's backfills may hold at once.
    pub fn backfill_attempts(&self) -> u32 {
        self.concurrent_attempts - self.live_reserved_attempts
    }

    /// `limits` with every per-attempt quota applied as a ceiling.
    pub fn cap(&self, limits: &mut crate::executor::Limits) {
        limits.fuel = limits.fuel.min(self.fuel_per_attempt);
        limits.memory_bytes = limits
            .memory_bytes
            .min(usize::try_from(self.memory_per_attempt).unwrap_or(usize::MAX));
        limits.timeout = limits.timeout.min(std::time::Duration::from_millis(
            self.timeout_per_attempt_ms,
        ));
        limits.log_bytes = limits
            .log_bytes
            .min(usize::try_from(self.log_bytes_per_attempt).unwrap_or(usize::MAX));
        limits.egress.limits = self.http_limits();
    }

    /// The outbound HTTP limits of one attempt.
    pub fn http_limits(&self) -> crate::egress::HttpLimits {
        let ms = std::time::Duration::from_millis;
        crate::egress::HttpLimits {
            requests: self.http_requests_per_attempt,
            concurrent: self.http_concurrent_requests,
            request_body_bytes: self.http_request_body_bytes,
            response_body_bytes: self.http_response_body_bytes,
            connect_timeout: ms(self.http_connect_timeout_ms),
            first_byte_timeout: ms(self.http_first_byte_timeout_ms),
            total_timeout: ms(self.http_total_timeout_ms),
        }
    }
}

/// Token buckets per tenant, on an injected clock (ms). Integer units (one
/// token = 60,000 units, refilled at `per_minute` units per ms) keep the
/// arithmetic exact.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, (u64, i64)>>,
}

const TOKEN: u64 = 60_000;

impl RateLimiter {
    fn refill(bucket: &mut (u64, i64), per_minute: u32, now_ms: i64) {
        let capacity = per_minute as u64 * TOKEN;
        let elapsed = (now_ms - bucket.1).max(0) as u64;
        bucket.0 = bucket
            .0
            .saturating_add(elapsed.saturating_mul(per_minute as u64))
            .min(capacity);
        bucket.1 = bucket.1.max(now_ms);
    }

    /// Takes one token from `tenant`'s bucket (capacity: one minute's worth)
    /// or says when the next one is due.
    pub fn take(&self, tenant: &str, per_minute: u32, now_ms: i64) -> Result<(), QuotaError> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = buckets
            .entry(tenant.to_owned())
            .or_insert((per_minute as u64 * TOKEN, now_ms));
        Self::refill(bucket, per_minute, now_ms);
        if bucket.0 >= TOKEN {
            bucket.0 -= TOKEN;
            return Ok(());
        }
        let wait_ms = (TOKEN - bucket.0).div_ceil(per_minute.max(1) as u64);
        Err(QuotaError::RateLimited {
            limit: per_minute,
            retry_after_s: wait_ms.div_ceil(1000).max(1),
        })
    }

    /// Whole tokens left in `tenant`'s bucket at `now_ms`.
    pub fn available(&self, tenant: &str, per_minute: u32, now_ms: i64) -> u32 {
        let buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        match buckets.get(tenant) {
            None => per_minute,
            Some(b) => {
                let mut b = *b;
                Self::refill(&mut b, per_minute, now_ms);
                (b.0 / TOKEN) as u32
            }
        }
    }

    pub fn forget(&self, tenant: &str) {
        self.buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(tenant);
    }
}

/// What a tenant uses now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub running_attempts: u32,
    pub running_live_attempts: u32,
    pub running_backfill_attempts: u32,
    pub plugins: u32,
    pub plugin_bytes_stored: u64,
    pub dataset_bytes: u64,
    pub active_runs: u32,
    /// Fuel burned by the tenant's attempts since the daemon started.
    pub fuel_consumed: u64,
    pub trigger_tokens_left: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn overrides(v: Value) -> Overrides {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn overrides_change_only_what_they_name() {
        let d = Quotas::default();
        let q = d
            .with(&overrides(json!({"concurrent_attempts": 3, "weight": 5})))
            .unwrap();
        assert_eq!((q.concurrent_attempts, q.weight), (3, 5));
        assert_eq!(q.fuel_per_attempt, d.fuel_per_attempt);
    }

    #[test]
    fn bad_overrides_name_the_quota() {
        let d = Quotas::default();
        let err = |v| d.with(&overrides(v)).unwrap_err().to_string();
        assert!(err(json!({"cpu": 1})).starts_with("invalid quota cpu: no such quota; known: "));
        assert_eq!(
            err(json!({"weight": -1})),
            "invalid quota weight: -1 is not a non-negative integer"
        );
        assert_eq!(
            err(json!({"weight": "x"})),
            "invalid quota weight: \"x\" is not a non-negative integer"
        );
        assert_eq!(
            err(json!({"concurrent_attempts": 2, "live_reserved_attempts": 2})),
            "invalid quota live_reserved_attempts: must be below concurrent_attempts (backfills need at least one slot)"
        );
        assert_eq!(
            err(json!({"plugins": 5_000_000_000u64})),
            "invalid quota plugins: invalid value: integer `5000000000`, expected u32"
        );
    }

    #[test]
    fn per_attempt_quotas_cap_limits() {
        let q = Quotas {
            fuel_per_attempt: 10,
            memory_per_attempt: 1 << 20,
            timeout_per_attempt_ms: 500,
            log_bytes_per_attempt: 100,
            ..Quotas::default()
        };
        let mut l = crate::executor::Limits::default();
        q.cap(&mut l);
        assert_eq!(
            (l.fuel, l.memory_bytes, l.timeout.as_millis(), l.log_bytes),
            (10, 1 << 20, 500, 100)
        );
    }

    #[test]
    fn the_bucket_holds_a_minute_and_refills_at_the_rate() {
        let r = RateLimiter::default();
        for _ in 0..3 {
            r.take("a", 3, 0).unwrap();
        }
        assert_eq!(
            r.take("a", 3, 0),
            Err(QuotaError::RateLimited {
                limit: 3,
                retry_after_s: 20
            })
        );
        // Another tenant has its own bucket.
        r.take("b", 3, 0).unwrap();
        // One token every 20 s.
        assert!(r.take("a", 3, 19_999).is_err());
        r.take("a", 3, 20_000).unwrap();
        assert_eq!(r.available("a", 3, 20_000), 0);
        assert_eq!(r.available("a", 3, 10 * 60_000), 3);
    }
}
