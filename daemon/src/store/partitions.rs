//! A dataset partition stored as one value: every row of one window of one
//! dataset, sorted by key.
//!
//! Rows used to be one sled entry each, so committing a window of 500 rows
//! was 500 tree inserts plus a range scan to delete the old ones, and sled
//! copies a node per insert; that dominated the cost of data-heavy tasks.
//! A partition is written whole by one commit and read whole by scans, so
//! one value per partition is what both sides want. Partitions stay small:
//! an attempt's staged bytes are capped by its output limit.

use super::keys::{self, FORMAT_V1};
use super::StoreError;

/// First byte of a partition value (a single row's value was `FORMAT_V1`).
pub const FORMAT_PARTITION: u8 = 2;

/// A partition's content version: a digest of its stored value. Both
/// backends store the same encoding, so they name one content alike; a
/// commit that changes the rows changes it, and one that rewrites the same
/// rows does not (no reader could tell them apart).
pub fn version(raw: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    // 16 bytes of the digest: short enough to show, far from colliding.
    format!("sha256:{}", hex::encode(&Sha256::digest(raw)[..16]))
}

/// Bytes one row takes in a partition value.
pub fn row_len(key: &str, value: &[u8]) -> usize {
    8 + key.len() + value.len()
}

/// Bytes of a partition value whose rows take `rows` bytes.
pub fn encoded_len(rows: usize) -> usize {
    1 + rows
}

/// Encodes rows, already sorted by key and unique, as one partition value.
pub fn encode<'a>(rows: impl Iterator<Item = (&'a str, &'a [u8])> + Clone) -> Vec<u8> {
    let size: usize = rows.clone().map(|(k, v)| row_len(k, v)).sum();
    let mut out = Vec::with_capacity(encoded_len(size));
    out.push(FORMAT_PARTITION);
    for (k, v) in rows {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        out.extend_from_slice(v);
    }
    out
}

/// The rows of an encoded partition, in key order, borrowed from it.
pub struct Rows<'a> {
    rest: &'a [u8],
    op: &'static str,
}

/// Checks the format byte and returns an iterator over the rows.
pub fn rows<'a>(op: &'static str, raw: &'a [u8]) -> Result<Rows<'a>, StoreError> {
    match raw.split_first() {
        Some((&FORMAT_PARTITION, rest)) => Ok(Rows { rest, op }),
        Some((&version, _)) => Err(StoreError::Format { op, version }),
        None => Err(StoreError::Corrupt {
            op,
            detail: "empty partition".into(),
        }),
    }
}

impl<'a> Rows<'a> {
    fn take(&mut self) -> Result<&'a [u8], StoreError> {
        let corrupt = |op| StoreError::Corrupt {
            op,
            detail: "truncated partition".into(),
        };
        let (len, rest) = self
            .rest
            .split_first_chunk::<4>()
            .ok_or_else(|| corrupt(self.op))?;
        let len = u32::from_le_bytes(*len) as usize;
        if rest.len() < len {
            return Err(corrupt(self.op));
        }
        let (field, rest) = rest.split_at(len);
        self.rest = rest;
        Ok(field)
    }

    /// The value of `key`, if the partition has it.
    pub fn find(mut self, key: &str) -> Result<Option<&'a [u8]>, StoreError> {
        while let Some((k, v)) = self.next_row()? {
            match k.cmp(key) {
                std::cmp::Ordering::Less => continue,
                std::cmp::Ordering::Equal => return Ok(Some(v)),
                std::cmp::Ordering::Greater => return Ok(None),
            }
        }
        Ok(None)
    }

    /// The next row, or `None` at the end.
    pub fn next_row(&mut self) -> Result<Option<(&'a str, &'a [u8])>, StoreError> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let k = self.take()?;
        let v = self.take()?;
        let k = std::str::from_utf8(k).map_err(|_| StoreError::Corrupt {
            op: self.op,
            detail: "partition key is not UTF-8".into(),
        })?;
        Ok(Some((k, v)))
    }
}

/// A partition key and the rows collected for it.
type Pending = (Vec<u8>, Vec<(String, Vec<u8>)>);

/// Rewrites rows stored in the former layout (one sled entry per row,
/// `partition prefix + key` → `FORMAT_V1 value`) as partition values, in one
/// atomic batch. Returns how many rows it converted.
pub fn migrate_rows(state: &sled::Tree) -> Result<usize, StoreError> {
    const OP: &str = "converting dataset rows to partitions";
    let mut batch = sled::Batch::default();
    let mut converted = 0;
    // (partition key, rows) of the partition being collected.
    let mut current: Option<Pending> = None;
    let flush = |current: Option<Pending>, batch: &mut sled::Batch| {
        if let Some((key, rows)) = current {
            let value = encode(rows.iter().map(|(k, v)| (k.as_str(), v.as_slice())));
            batch.insert(key, value);
        }
    };
    for item in state.scan_prefix([keys::DATASET]) {
        let (k, v) = item.map_err(super::sled_store::backend(OP))?;
        if v.first() != Some(&FORMAT_V1) {
            continue;
        }
        let Some((prefix_len, row_key)) = split_row_key(&k) else {
            return Err(StoreError::Corrupt {
                op: OP,
                detail: "undecodable dataset key".into(),
            });
        };
        let partition_key = k[..prefix_len].to_vec();
        let value = keys::decode_value(OP, &v)?;
        batch.remove(k.to_vec());
        converted += 1;
        match &mut current {
            Some((pk, rows)) if *pk == partition_key => rows.push((row_key, value)),
            _ => {
                flush(current.take(), &mut batch);
                current = Some((partition_key, vec![(row_key, value)]));
            }
        }
    }
    flush(current.take(), &mut batch);
    if converted > 0 {
        state
            .apply_batch(batch)
            .map_err(super::sled_store::backend(OP))?;
    }
    Ok(converted)
}

/// `d tenant 0 dataset 0 partition key` → (length up to the partition,
/// key).
fn split_row_key(k: &[u8]) -> Option<(usize, String)> {
    let tenant_end = 1 + k[1..].iter().position(|b| *b == 0)?;
    let dataset_end = tenant_end + 1 + k[tenant_end + 1..].iter().position(|b| *b == 0)?;
    let partition_end = dataset_end + 1 + 8;
    if k.len() < partition_end {
        return None;
    }
    let key = String::from_utf8(k[partition_end..].to_vec()).ok()?;
    Some((partition_end, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_in_order_and_find_stops_early() {
        let rows = [("a", &b"1"[..]), ("b", b""), ("c", b"333")];
        let raw = encode(rows.iter().copied());
        let mut it = super::rows("t", &raw).unwrap();
        let mut seen = Vec::new();
        while let Some(r) = it.next_row().unwrap() {
            seen.push(r);
        }
        assert_eq!(seen, rows);
        assert_eq!(
            super::rows("t", &raw).unwrap().find("b").unwrap(),
            Some(&b""[..])
        );
        assert_eq!(super::rows("t", &raw).unwrap().find("bb").unwrap(), None);
        assert_eq!(super::rows("t", &raw).unwrap().find("z").unwrap(), None);
    }

    #[test]
    fn truncated_and_foreign_values_are_errors() {
        let raw = encode([("key", &b"value"[..])].into_iter());
        let cut = &raw[..raw.len() - 2];
        assert!(matches!(
            super::rows("t", cut).unwrap().next_row(),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(matches!(
            super::rows("t", &[FORMAT_V1, 1, 2]),
            Err(StoreError::Format { version: 1, .. })
        ));
    }
}
