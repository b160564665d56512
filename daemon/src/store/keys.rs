//! Key and value encodings. Keys are built from `0`-terminated name
//! components and big-endian, sign-flipped instants so that byte order is
//! time order and a prefix scan selects exactly one tenant/dataset/partition.

use super::StoreError;

/// Current value format; stored as the first byte of every value.
pub const FORMAT_V1: u8 = 1;

pub fn instant(ms: i64) -> [u8; 8] {
    ((ms as u64) ^ (1 << 63)).to_be_bytes()
}

pub fn decode_instant(bytes: &[u8]) -> Option<i64> {
    let arr: [u8; 8] = bytes.try_into().ok()?;
    Some((u64::from_be_bytes(arr) ^ (1 << 63)) as i64)
}

/// Every key family, by the first byte of its keys. This enum is the one
/// list of them: tenant deletion removes every tenant-scoped kind in
/// [`KeyKind::TENANT_SCOPED`], so a new kind cannot be forgotten there
/// without failing the test that scans a deleted tenant's store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    // The `state` tree: one tree (and so one atomic batch) holds everything
    // a state change touches.
    Tenant,
    Token,
    /// Hash → token: looked up before the tenant is known, so this index is
    /// the one family that does not start with a tenant.
    TokenHash,
    /// `D tenant 0`: a tenant whose deletion has begun; recovery finishes it.
    TenantTombstone,
    Dataset,
    Plugin,
    Workflow,
    Cursor,
    Run,
    Window,
    RunByWindow,
    Active,
    Attempt,
    /// Per-tenant counters (stored dataset bytes).
    Usage,
    /// Trigger idempotency key → run id.
    Idempotency,
    Backfill,
    BackfillWindow,
    /// `S tenant 0 id workflow 0 tile-start`: state counts of one tile.
    BackfillTile,
    /// `Z tenant 0 id workflow 0`: the tile width of one series.
    BackfillTileWidth,
    /// `C tenant 0 name 0`: a connection (settings and sealed secrets).
    Connection,
    /// `O tenant 0 connection 0 workflow 0 task 0 window`: the published
    /// object-storage output of one task in one window.
    Output,
    /// `Q` + the output key's rest: an output committed but not yet
    /// published to its object store (the publisher's work list).
    OutputPending,
    /// `G tenant 0 run task 0 attempt connection 0`: an attempt has staged
    /// objects; whatever is left of them when it is gone is garbage.
    Staging,
    /// `N tenant 0 name 0`: a notification target (URL, connection, event
    /// types).
    NotifyTarget,
    /// `L tenant 0 id`: one notification delivery, its attempts and outcome
    /// (ids grow with time, so a scan is in creation order).
    Delivery,
    /// The `blobs` tree: plugin components by digest.
    PluginBlob,
}

impl KeyKind {
    pub const fn byte(self) -> u8 {
        match self {
            KeyKind::Tenant => b'T',
            KeyKind::Token => b'K',
            KeyKind::TokenHash => b'h',
            KeyKind::TenantTombstone => b'D',
            KeyKind::Dataset => b'd',
            KeyKind::Plugin => b'p',
            KeyKind::Workflow => b'w',
            KeyKind::Cursor => b'c',
            KeyKind::Run => b'r',
            KeyKind::Window => b'i',
            KeyKind::RunByWindow => b'x',
            KeyKind::Active => b'a',
            KeyKind::Attempt => b't',
            KeyKind::Usage => b'u',
            KeyKind::Idempotency => b'k',
            KeyKind::Backfill => b'B',
            KeyKind::BackfillWindow => b'V',
            KeyKind::BackfillTile => b'S',
            KeyKind::BackfillTileWidth => b'Z',
            KeyKind::Connection => b'C',
            KeyKind::Output => b'O',
            KeyKind::OutputPending => b'Q',
            KeyKind::Staging => b'G',
            KeyKind::NotifyTarget => b'N',
            KeyKind::Delivery => b'L',
            KeyKind::PluginBlob => b'b',
        }
    }

    /// Every kind whose keys start with `kind tenant 0` in the `state`
    /// tree, except the tombstone (removed last, when the rest is gone).
    pub const TENANT_SCOPED: [KeyKind; 23] = [
        KeyKind::Tenant,
        KeyKind::Token,
        KeyKind::Dataset,
        KeyKind::Plugin,
        KeyKind::Workflow,
        KeyKind::Cursor,
        KeyKind::Run,
        KeyKind::Window,
        KeyKind::RunByWindow,
        KeyKind::Active,
        KeyKind::Attempt,
        KeyKind::Usage,
        KeyKind::Idempotency,
        KeyKind::Backfill,
        KeyKind::BackfillWindow,
        KeyKind::BackfillTile,
        KeyKind::BackfillTileWidth,
        KeyKind::Connection,
        KeyKind::Output,
        KeyKind::OutputPending,
        KeyKind::Staging,
        KeyKind::NotifyTarget,
        KeyKind::Delivery,
    ];

    /// Every kind, for tests that check each key of a store has one.
    #[cfg(test)]
    pub const ALL: [KeyKind; 26] = [
        KeyKind::Tenant,
        KeyKind::Token,
        KeyKind::TokenHash,
        KeyKind::TenantTombstone,
        KeyKind::Dataset,
        KeyKind::Plugin,
        KeyKind::Workflow,
        KeyKind::Cursor,
        KeyKind::Run,
        KeyKind::Window,
        KeyKind::RunByWindow,
        KeyKind::Active,
        KeyKind::Attempt,
        KeyKind::Usage,
        KeyKind::Idempotency,
        KeyKind::Backfill,
        KeyKind::BackfillWindow,
        KeyKind::BackfillTile,
        KeyKind::BackfillTileWidth,
        KeyKind::Connection,
        KeyKind::Output,
        KeyKind::OutputPending,
        KeyKind::Staging,
        KeyKind::NotifyTarget,
        KeyKind::Delivery,
        KeyKind::PluginBlob,
    ];
}

pub const DATASET: u8 = KeyKind::Dataset.byte();
pub const PLUGIN: u8 = KeyKind::Plugin.byte();
pub const WORKFLOW: u8 = KeyKind::Workflow.byte();
pub const CURSOR: u8 = KeyKind::Cursor.byte();
pub const RUN: u8 = KeyKind::Run.byte();
pub const WINDOW: u8 = KeyKind::Window.byte();
pub const RUN_BY_WINDOW: u8 = KeyKind::RunByWindow.byte();
pub const ACTIVE: u8 = KeyKind::Active.byte();
pub const ATTEMPT: u8 = KeyKind::Attempt.byte();
pub const USAGE: u8 = KeyKind::Usage.byte();
pub const IDEMPOTENCY: u8 = KeyKind::Idempotency.byte();
pub const TENANT: u8 = KeyKind::Tenant.byte();
pub const TOKEN: u8 = KeyKind::Token.byte();
pub const TOKEN_HASH: u8 = KeyKind::TokenHash.byte();
pub const TENANT_TOMBSTONE: u8 = KeyKind::TenantTombstone.byte();
pub const BACKFILL: u8 = KeyKind::Backfill.byte();
pub const BACKFILL_WINDOW: u8 = KeyKind::BackfillWindow.byte();
pub const BACKFILL_TILE: u8 = KeyKind::BackfillTile.byte();
pub const BACKFILL_TILE_WIDTH: u8 = KeyKind::BackfillTileWidth.byte();
pub const PLUGIN_BLOB: u8 = KeyKind::PluginBlob.byte();
pub const CONNECTION: u8 = KeyKind::Connection.byte();
pub const OUTPUT: u8 = KeyKind::Output.byte();
pub const OUTPUT_PENDING: u8 = KeyKind::OutputPending.byte();
pub const STAGING: u8 = KeyKind::Staging.byte();
pub const NOTIFY_TARGET: u8 = KeyKind::NotifyTarget.byte();
pub const DELIVERY: u8 = KeyKind::Delivery.byte();

/// `b tenant 0 digest`: a plugin blob in the `blobs` tree.
pub fn blob_key(tenant: &str, digest: &str) -> Vec<u8> {
    let mut k = tenant_prefix(PLUGIN_BLOB, tenant);
    k.extend_from_slice(digest.as_bytes());
    k
}

/// `kind tenant 0`: the prefix of one tenant's records of one kind.
pub fn tenant_prefix(kind: u8, tenant: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(tenant.len() + 2);
    k.push(kind);
    push_name(&mut k, tenant);
    k
}

/// `kind tenant 0 name 0`.
pub fn named_prefix(kind: u8, tenant: &str, name: &str) -> Vec<u8> {
    let mut k = tenant_prefix(kind, tenant);
    push_name(&mut k, name);
    k
}

pub fn u64_key(mut prefix: Vec<u8>, n: u64) -> Vec<u8> {
    prefix.extend_from_slice(&n.to_be_bytes());
    prefix
}

pub fn instant_key(mut prefix: Vec<u8>, t: i64) -> Vec<u8> {
    prefix.extend_from_slice(&instant(t));
    prefix
}

/// `d tenant 0 dataset 0`: the prefix of every entry of one dataset.
pub fn dataset_prefix(tenant: &str, dataset: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(tenant.len() + dataset.len() + 3);
    k.push(DATASET);
    push_name(&mut k, tenant);
    push_name(&mut k, dataset);
    k
}

/// `tenant 0 dataset 0 partition`: the prefix of one partition.
pub fn partition_prefix(tenant: &str, dataset: &str, partition: i64) -> Vec<u8> {
    let mut k = dataset_prefix(tenant, dataset);
    k.extend_from_slice(&instant(partition));
    k
}

/// A row key of the former one-entry-per-row layout (for the conversion
/// test).
#[cfg(test)]
pub fn dataset_key(tenant: &str, dataset: &str, partition: i64, key: &str) -> Vec<u8> {
    let mut k = partition_prefix(tenant, dataset, partition);
    k.extend_from_slice(key.as_bytes());
    k
}

pub fn checkpoint_key(tenant: &str, workflow: &str, task: &str, window_start: i64) -> Vec<u8> {
    let mut k = Vec::with_capacity(tenant.len() + workflow.len() + task.len() + 11);
    push_name(&mut k, tenant);
    push_name(&mut k, workflow);
    push_name(&mut k, task);
    k.extend_from_slice(&instant(window_start));
    k
}

pub fn push_name(k: &mut Vec<u8>, name: &str) {
    // Names never contain NUL (validated at every entry point), so the
    // terminator keeps "ab"+"c" apart from "a"+"bc".
    k.extend_from_slice(name.as_bytes());
    k.push(0);
}

pub fn encode_value(payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(payload.len() + 1);
    v.push(FORMAT_V1);
    v.extend_from_slice(payload);
    v
}

pub fn decode_value(op: &'static str, raw: &[u8]) -> Result<Vec<u8>, StoreError> {
    match raw.split_first() {
        Some((&FORMAT_V1, rest)) => Ok(rest.to_vec()),
        Some((&version, _)) => Err(StoreError::Format { op, version }),
        None => Err(StoreError::Corrupt {
            op,
            detail: "empty value".into(),
        }),
    }
}

/// A record as stored: JSON behind the format byte.
pub fn encode_json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    // Serializing these plain structs cannot fail.
    encode_value(&serde_json::to_vec(v).unwrap_or_default())
}

pub fn decode_json<T: serde::de::DeserializeOwned>(
    op: &'static str,
    raw: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(&decode_value(op, raw)?).map_err(|e| StoreError::Corrupt {
        op,
        detail: e.to_string(),
    })
}
