//! Tenants, tokens and quotas.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::quota::{Quotas, Usage};
use crate::store::{TenantRecord, TokenRecord};

/// A tenant.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Tenant {
    pub name: String,
    pub created_ms: i64,
    /// Its quota overrides; the other quotas are the configured defaults.
    pub overrides: QuotaOverrides,
}

impl From<TenantRecord> for Tenant {
    fn from(t: TenantRecord) -> Self {
        Tenant {
            overrides: QuotaOverrides::from_stored(&t.quotas),
            name: t.name,
            created_ms: t.created_ms,
        }
    }
}

/// `POST /tenants`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    pub name: String,
}

/// A new tenant and its first token, whose secret is shown only here.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TenantCreated {
    pub tenant: Tenant,
    /// The secret: send it as `Authorization: Bearer TOKEN`.
    pub token: String,
    pub token_id: u64,
}

/// A page of tenants, by name.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TenantList {
    pub tenants: Vec<Tenant>,
    /// The `after` of the next page (a name), `null` on the last.
    #[schema(required = true)]
    pub next: Option<String>,
}

/// `POST /tokens` and `POST /tenants/{name}/tokens` (the body may be empty).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// What the token is for, shown in lists.
    #[serde(default)]
    pub label: String,
}

/// An API token (never its secret or hash).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Token {
    pub id: u64,
    pub tenant: String,
    pub label: String,
    pub created_ms: i64,
    pub revoked: bool,
}

impl From<&TokenRecord> for Token {
    fn from(t: &TokenRecord) -> Self {
        // Never the hash: it is as good as a password for an offline guess.
        Token {
            id: t.id,
            tenant: t.tenant.clone(),
            label: t.label.clone(),
            created_ms: t.created_ms,
            revoked: t.revoked,
        }
    }
}

/// A new token; its secret is shown only here.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenCreated {
    pub id: u64,
    pub tenant: String,
    pub label: String,
    pub created_ms: i64,
    /// The secret: send it as `Authorization: Bearer TOKEN`.
    pub token: String,
}

/// A page of tokens, by id.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenList {
    pub tokens: Vec<Token>,
    /// The `after` of the next page (a token id), `null` on the last.
    #[schema(required = true)]
    pub next: Option<u64>,
}

/// The limits a tenant works under (see the README's quota table).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QuotaValues {
    pub concurrent_attempts: u32,
    pub live_reserved_attempts: u32,
    pub fuel_per_attempt: u64,
    /// Bytes.
    pub memory_per_attempt: u64,
    /// A duration in milliseconds.
    pub timeout_per_attempt_ms: u64,
    pub log_bytes_per_attempt: u64,
    pub plugin_bytes: u64,
    pub plugins: u32,
    pub dataset_bytes: u64,
    pub triggers_per_minute: u32,
    pub backfill_windows: u64,
    pub tasks_per_workflow: u32,
    pub weight: u32,
    /// Outbound HTTP requests an attempt may make.
    pub http_requests_per_attempt: u32,
    /// Outbound HTTP requests of one attempt in flight at once.
    pub http_concurrent_requests: u32,
    /// Bytes of one outbound request body.
    pub http_request_body_bytes: u64,
    /// Bytes of one outbound response body.
    pub http_response_body_bytes: u64,
    /// A duration in milliseconds.
    pub http_connect_timeout_ms: u64,
    /// A duration in milliseconds.
    pub http_first_byte_timeout_ms: u64,
    /// A duration in milliseconds.
    pub http_total_timeout_ms: u64,
}

impl From<&Quotas> for QuotaValues {
    fn from(q: &Quotas) -> Self {
        let Quotas {
            concurrent_attempts,
            live_reserved_attempts,
            fuel_per_attempt,
            memory_per_attempt,
            timeout_per_attempt_ms,
            log_bytes_per_attempt,
            plugin_bytes,
            plugins,
            dataset_bytes,
            triggers_per_minute,
            backfill_windows,
            tasks_per_workflow,
            weight,
            http_requests_per_attempt,
            http_concurrent_requests,
            http_request_body_bytes,
            http_response_body_bytes,
            http_connect_timeout_ms,
            http_first_byte_timeout_ms,
            http_total_timeout_ms,
        } = q.clone();
        QuotaValues {
            concurrent_attempts,
            live_reserved_attempts,
            fuel_per_attempt,
            memory_per_attempt,
            timeout_per_attempt_ms,
            log_bytes_per_attempt,
            plugin_bytes,
            plugins,
            dataset_bytes,
            triggers_per_minute,
            backfill_windows,
            tasks_per_workflow,
            weight,
            http_requests_per_attempt,
            http_concurrent_requests,
            http_request_body_bytes,
            http_response_body_bytes,
            http_connect_timeout_ms,
            http_first_byte_timeout_ms,
            http_total_timeout_ms,
        }
    }
}

/// A tenant's quota overrides: only the quotas named change. `PUT` replaces
/// them all; a quota it leaves out takes the configured default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotaOverrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrent_attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_reserved_attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel_per_attempt: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_per_attempt: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_per_attempt_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_bytes_per_attempt: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugins: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggers_per_minute: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill_windows: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks_per_workflow: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_requests_per_attempt: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_concurrent_requests: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_request_body_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_response_body_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_connect_timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_first_byte_timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_total_timeout_ms: Option<u64>,
}

impl QuotaOverrides {
    /// Stored overrides were validated against [`Quotas`] when set, so
    /// they have its names and types.
    pub fn from_stored(o: &crate::quota::Overrides) -> Self {
        serde_json::to_value(o)
            .and_then(serde_json::from_value)
            .unwrap_or_else(|e| {
                tracing::warn!("stored quota overrides do not fit the API: {e}");
                QuotaOverrides::default()
            })
    }
}

/// What a tenant uses now.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UsageValues {
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

impl From<Usage> for UsageValues {
    fn from(u: Usage) -> Self {
        let Usage {
            running_attempts,
            running_live_attempts,
            running_backfill_attempts,
            plugins,
            plugin_bytes_stored,
            dataset_bytes,
            active_runs,
            fuel_consumed,
            trigger_tokens_left,
        } = u;
        UsageValues {
            running_attempts,
            running_live_attempts,
            running_backfill_attempts,
            plugins,
            plugin_bytes_stored,
            dataset_bytes,
            active_runs,
            fuel_consumed,
            trigger_tokens_left,
        }
    }
}

/// A tenant's effective quotas, its overrides and its usage.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TenantQuotas {
    pub tenant: String,
    pub quotas: QuotaValues,
    pub overrides: QuotaOverrides,
    pub usage: UsageValues,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(v: serde_json::Value) -> Vec<String> {
        v.as_object().unwrap().keys().cloned().collect()
    }

    /// Quota names are one vocabulary: configuration, overrides, API.
    #[test]
    fn quota_names_match_the_domain() {
        let q = Quotas::default();
        let names = keys(serde_json::to_value(&q).unwrap());
        assert_eq!(
            keys(serde_json::to_value(QuotaValues::from(&q)).unwrap()),
            names
        );
        let all: crate::quota::Overrides =
            serde_json::from_value(serde_json::to_value(&q).unwrap()).unwrap();
        let o = QuotaOverrides::from_stored(&all);
        assert_eq!(keys(serde_json::to_value(&o).unwrap()), names);
        assert_eq!(o.weight, Some(q.weight));
    }
}
