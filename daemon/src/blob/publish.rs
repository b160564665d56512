//! The object-store side of a window output: publishing the manifest of a
//! committed output, deleting what no manifest will ever name, and
//! checking that the store still holds what was published.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::container::Container;
use super::{manifest_key, window_dir, BlobError, Manifest};
use crate::store::OutputRecord;

/// Publishes a committed output: writes its manifest (one atomic put, so a
/// reader sees the old manifest or the new one), then deletes every staged
/// object of the window that the manifest does not name, except those under
/// `live()` (attempts still running). `live` is asked after the listing:
/// an attempt records its staging before its first write, so whatever the
/// listing saw of a live attempt is covered.
pub async fn publish(
    c: &Container,
    r: &OutputRecord,
    live: impl FnOnce() -> Vec<String>,
) -> Result<(), BlobError> {
    let dir = window_dir(&r.workflow, &r.task, r.window_start);
    let manifest = serde_json::to_vec_pretty(&Manifest::of(r)).unwrap_or_default();
    c.put(&manifest_key(&dir), manifest).await?;
    let staged = c.list(&format!("{dir}/_attempts/")).await?;
    let live = live();
    for o in staged {
        let named = r.objects.iter().any(|p| p.key == o.key);
        let running = live.iter().any(|p| o.key.starts_with(p.as_str()));
        if !named && !running {
            c.delete(&o.key).await?;
        }
    }
    Ok(())
}

/// Deletes every object under `prefix` (an abandoned attempt's staging).
pub async fn delete_prefix(c: &Container, prefix: &str) -> Result<usize, BlobError> {
    let found = c.list(prefix).await?;
    let n = found.len();
    for o in found {
        c.delete(&o.key).await?;
    }
    Ok(n)
}

/// How one window's published output compares with the object store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WindowCheck {
    pub connection: String,
    pub workflow: String,
    pub task: String,
    pub window_start: i64,
    pub manifest: ManifestState,
    /// Published objects that are gone.
    pub missing: Vec<String>,
    /// Published objects whose size or SHA-256 differs from the manifest.
    pub size_mismatch: Vec<String>,
    pub checksum_mismatch: Vec<String>,
    /// Objects in the window's directory that no manifest names (and no
    /// running attempt is staging).
    pub extra: Vec<String>,
}

impl WindowCheck {
    pub fn consistent(&self) -> bool {
        self.manifest == ManifestState::Current
            && self.missing.is_empty()
            && self.size_mismatch.is_empty()
            && self.checksum_mismatch.is_empty()
            && self.extra.is_empty()
    }
}

/// What the window's `_manifest.json` says relative to the store's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ManifestState {
    /// It names exactly the committed output.
    Current,
    /// The commit is not published yet (the publisher is behind).
    Pending,
    Missing,
    /// It names another output than the committed one.
    Stale,
}

/// The result of checking many windows.
pub type OutputCheck = Vec<WindowCheck>;

/// Re-reads one window's published output and compares it with the record.
pub async fn check_output(
    c: &Container,
    r: &OutputRecord,
    live: &[String],
) -> Result<WindowCheck, BlobError> {
    let dir = window_dir(&r.workflow, &r.task, r.window_start);
    let mkey = manifest_key(&dir);
    let manifest = match c.get(&mkey).await {
        Ok(bytes) => match serde_json::from_slice::<Manifest>(&bytes) {
            Ok(m) if m == Manifest::of(r) => ManifestState::Current,
            Ok(_) | Err(_) if !r.published => ManifestState::Pending,
            Ok(_) | Err(_) => ManifestState::Stale,
        },
        Err(BlobError::NotFound { .. }) if !r.published => ManifestState::Pending,
        Err(BlobError::NotFound { .. }) => ManifestState::Missing,
        Err(e) => return Err(e),
    };
    let mut check = WindowCheck {
        connection: r.connection.clone(),
        workflow: r.workflow.clone(),
        task: r.task.clone(),
        window_start: r.window_start,
        manifest,
        missing: Vec::new(),
        size_mismatch: Vec::new(),
        checksum_mismatch: Vec::new(),
        extra: Vec::new(),
    };
    for o in &r.objects {
        let data = match c.get(&o.key).await {
            Ok(d) => d,
            Err(BlobError::NotFound { .. }) => {
                check.missing.push(o.name.clone());
                continue;
            }
            Err(e) => return Err(e),
        };
        if data.len() as u64 != o.size {
            check.size_mismatch.push(o.name.clone());
        } else if hex::encode(Sha256::digest(&data)) != o.sha256 {
            check.checksum_mismatch.push(o.name.clone());
        }
    }
    // While the publisher is behind, superseded objects are still there
    // by design.
    let listed = if manifest == ManifestState::Pending {
        Vec::new()
    } else {
        c.list(&format!("{dir}/")).await?
    };
    for o in listed {
        let known = o.key == mkey || r.objects.iter().any(|p| p.key == o.key);
        let running = live.iter().any(|p| o.key.starts_with(p.as_str()));
        if !known && !running {
            check.extra.push(o.key);
        }
    }
    Ok(check)
}
