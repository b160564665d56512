//! Notification targets and the delivery log as stored. A target names
//! the connection whose sealed secret signs its payloads; the store never
//! holds the secret itself. A delivery keeps the body it sends (so a retry
//! after a restart sends the same bytes), its attempts and its outcome.

use serde::{Deserialize, Serialize};

use super::keys::{self, DELIVERY, NOTIFY_TARGET};
use super::sled_store::{backend, SledStore};
use super::StoreError;
use crate::notify::EventType;

/// A notification target as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyTargetRecord {
    pub name: String,
    pub url: String,
    pub connection: String,
    pub secret_field: String,
    pub events: Vec<EventType>,
    pub created_ms: i64,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Not delivered yet; tried again at `next_attempt_ms`.
    Pending,
    /// A 2xx answer.
    Delivered,
    /// Out of attempts, or its target is gone.
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }
}

/// One event sent to one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    /// Grows with creation time (see `engine/deliver.rs`).
    pub id: u64,
    pub target: String,
    /// The URL of the last attempt (the target's when created).
    pub url: String,
    pub event: EventType,
    /// The JSON payload, exactly as sent.
    pub body: String,
    pub state: DeliveryState,
    pub attempts: u32,
    pub next_attempt_ms: Option<i64>,
    /// The last answer's status; none if it never answered.
    pub last_status: Option<u16>,
    /// Why the last attempt failed (never a secret or a header).
    pub last_error: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// A tenant's notification targets and delivery log.
pub trait NotifyStore: Send + Sync {
    /// Stores a new target; `false` if one of that name exists.
    fn notify_target_create(
        &self,
        tenant: &str,
        t: &NotifyTargetRecord,
    ) -> Result<bool, StoreError>;
    fn notify_target_get(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<NotifyTargetRecord>, StoreError>;
    /// Every target of the tenant, by name.
    fn notify_target_list(&self, tenant: &str) -> Result<Vec<NotifyTargetRecord>, StoreError>;
    /// `false` if there was no such target.
    fn notify_target_delete(&self, tenant: &str, name: &str) -> Result<bool, StoreError>;
    /// Writes a delivery (new, or its next state), durably.
    fn delivery_put(&self, tenant: &str, d: &DeliveryRecord) -> Result<(), StoreError>;
    fn delivery_get(&self, tenant: &str, id: u64) -> Result<Option<DeliveryRecord>, StoreError>;
    /// The tenant's deliveries, newest first, with ids below `before`.
    fn delivery_list(
        &self,
        tenant: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<DeliveryRecord>, StoreError>;
    /// Every pending delivery of every tenant (for the sender's start).
    fn deliveries_pending(&self) -> Result<Vec<(String, DeliveryRecord)>, StoreError>;
}

fn target_key(tenant: &str, name: &str) -> Vec<u8> {
    keys::named_prefix(NOTIFY_TARGET, tenant, name)
}

fn delivery_key(tenant: &str, id: u64) -> Vec<u8> {
    keys::u64_key(keys::tenant_prefix(DELIVERY, tenant), id)
}

impl NotifyStore for SledStore {
    fn notify_target_create(
        &self,
        tenant: &str,
        t: &NotifyTargetRecord,
    ) -> Result<bool, StoreError> {
        const OP: &str = "creating a notification target";
        let swapped = self
            .state
            .compare_and_swap(
                target_key(tenant, &t.name),
                None as Option<&[u8]>,
                Some(keys::encode_json(t)),
            )
            .map_err(backend(OP))?;
        if swapped.is_err() {
            return Ok(false);
        }
        self.flush(OP)?;
        Ok(true)
    }

    fn notify_target_get(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<NotifyTargetRecord>, StoreError> {
        const OP: &str = "reading a notification target";
        match self
            .state
            .get(target_key(tenant, name))
            .map_err(backend(OP))?
        {
            None => Ok(None),
            Some(v) => keys::decode_json(OP, &v).map(Some),
        }
    }

    fn notify_target_list(&self, tenant: &str) -> Result<Vec<NotifyTargetRecord>, StoreError> {
        const OP: &str = "listing notification targets";
        self.state
            .scan_prefix(keys::tenant_prefix(NOTIFY_TARGET, tenant))
            .map(|i| keys::decode_json(OP, &i.map_err(backend(OP))?.1))
            .collect()
    }

    fn notify_target_delete(&self, tenant: &str, name: &str) -> Result<bool, StoreError> {
        const OP: &str = "deleting a notification target";
        let old = self
            .state
            .remove(target_key(tenant, name))
            .map_err(backend(OP))?;
        self.flush(OP)?;
        Ok(old.is_some())
    }

    fn delivery_put(&self, tenant: &str, d: &DeliveryRecord) -> Result<(), StoreError> {
        const OP: &str = "writing a notification delivery";
        self.state
            .insert(delivery_key(tenant, d.id), keys::encode_json(d))
            .map_err(backend(OP))?;
        self.flush(OP)
    }

    fn delivery_get(&self, tenant: &str, id: u64) -> Result<Option<DeliveryRecord>, StoreError> {
        const OP: &str = "reading a notification delivery";
        match self
            .state
            .get(delivery_key(tenant, id))
            .map_err(backend(OP))?
        {
            None => Ok(None),
            Some(v) => keys::decode_json(OP, &v).map(Some),
        }
    }

    fn delivery_list(
        &self,
        tenant: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        const OP: &str = "listing notification deliveries";
        let start = keys::tenant_prefix(DELIVERY, tenant);
        let end = match before {
            Some(id) => delivery_key(tenant, id),
            None => delivery_key(tenant, u64::MAX),
        };
        let mut out = Vec::new();
        for item in self.state.range(start..end).rev() {
            if out.len() >= limit {
                break;
            }
            out.push(keys::decode_json(OP, &item.map_err(backend(OP))?.1)?);
        }
        // `u64::MAX` itself is never an id (ids are times), so the
        // exclusive end loses nothing.
        Ok(out)
    }

    fn deliveries_pending(&self) -> Result<Vec<(String, DeliveryRecord)>, StoreError> {
        const OP: &str = "listing pending notification deliveries";
        let mut out = Vec::new();
        for item in self.state.scan_prefix([DELIVERY]) {
            let (k, v) = item.map_err(backend(OP))?;
            let d: DeliveryRecord = keys::decode_json(OP, &v)?;
            if d.state != DeliveryState::Pending {
                continue;
            }
            let tenant = k[1..]
                .split(|b| *b == 0)
                .next()
                .map(|t| String::from_utf8_lossy(t).into_owned())
                .unwrap_or_default();
            out.push((tenant, d));
        }
        Ok(out)
    }
}
