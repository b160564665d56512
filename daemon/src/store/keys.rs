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

// Record kinds of the `state` tree: the first byte of every key, so one
// tree (and so one atomic batch) holds everything a state change touches.
pub const DATASET: u8 = b'd';
pub const PLUGIN: u8 = b'p';
pub const WORKFLOW: u8 = b'w';
pub const CURSOR: u8 = b'c';
pub const RUN: u8 = b'r';
pub const WINDOW: u8 = b'i';
pub const RUN_BY_WINDOW: u8 = b'x';
pub const ACTIVE: u8 = b'a';
pub const ATTEMPT: u8 = b't';
/// Per-tenant counters (stored dataset bytes).
pub const USAGE: u8 = b'u';
/// Trigger idempotency key → run id.
pub const IDEMPOTENCY: u8 = b'k';

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

pub fn dataset_key(tenant: &str, dataset: &str, partition: i64, key: &str) -> Vec<u8> {
    let mut k = partition_prefix(tenant, dataset, partition);
    k.extend_from_slice(key.as_bytes());
    k
}

/// Splits the part of a dataset key after its dataset prefix.
pub fn split_dataset_suffix(suffix: &[u8]) -> Option<(i64, String)> {
    if suffix.len() < 8 {
        return None;
    }
    let partition = decode_instant(&suffix[..8])?;
    let key = String::from_utf8(suffix[8..].to_vec()).ok()?;
    Some((partition, key))
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
