//! Object storage for tasks: containers (a connection of kind `s3` or `fs`
//! with a root the task cannot leave), the layout of window outputs, and the
//! object-store side of publishing them exactly once.
//!
//! The layout, relative to a container's root:
//!
//! ```text
//! <workflow>/<task>/window=<YYYYMMDDTHHMMSSZ>/_manifest.json      the current pointer
//! <workflow>/<task>/window=<...>/_attempts/<run>-<attempt>/<name>  objects of one attempt
//! ```
//!
//! An attempt writes only under its own `_attempts/` directory, so nothing
//! it does is visible until a manifest names it. The store commits which
//! objects are a window's output with the task's success; the manifest is
//! then written from that record (again after a crash), and superseded or
//! abandoned attempt directories are deleted.

mod container;
mod publish;

use serde::{Deserialize, Serialize};

pub use container::{open_container, Container};
pub use publish::{check_output, delete_prefix, publish, ManifestState, OutputCheck, WindowCheck};

use crate::store::OutputRecord;

/// Longest object name a task may use.
const MAX_NAME: usize = 1024;

/// Why an object-storage operation failed. Messages name the container and
/// object, never a credential.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("object name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("{container}: no object {name:?}")]
    NotFound { container: String, name: String },
    #[error("{container}: the storage refused the request: {message}")]
    Denied { container: String, message: String },
    #[error("{container}: {message}")]
    Unavailable { container: String, message: String },
    #[error("connection {connection}: {message}")]
    Setup { connection: String, message: String },
}

impl BlobError {
    /// Classifies an object_store error of one container.
    pub fn from_store(container: &str, name: &str, e: object_store::Error) -> Self {
        use object_store::Error as E;
        match e {
            E::NotFound { .. } => BlobError::NotFound {
                container: container.to_owned(),
                name: name.to_owned(),
            },
            E::PermissionDenied { .. } | E::Unauthenticated { .. } => BlobError::Denied {
                container: container.to_owned(),
                message: e.to_string(),
            },
            other => {
                let message = other.to_string();
                // S3 reports refused credentials as a generic error with
                // the service's code in the text.
                let denied = [
                    "InvalidAccessKeyId",
                    "SignatureDoesNotMatch",
                    "AccessDenied",
                ]
                .iter()
                .any(|c| message.contains(c))
                    || message.contains("403");
                if denied {
                    BlobError::Denied {
                        container: container.to_owned(),
                        message,
                    }
                } else {
                    BlobError::Unavailable {
                        container: container.to_owned(),
                        message,
                    }
                }
            }
        }
    }
}

/// Checks a name the task uses for an object: relative to the container,
/// `/`-separated, no empty, `.` or `..` segments, nothing object stores
/// treat specially.
pub fn check_object_name(name: &str) -> Result<(), BlobError> {
    let bad = |reason| {
        Err(BlobError::InvalidName {
            name: name.chars().take(200).collect(),
            reason,
        })
    };
    if name.is_empty() || name.len() > MAX_NAME {
        return bad("must be 1 to 1024 bytes long");
    }
    if name.starts_with('/') {
        return bad("must be relative to the container (no leading `/`)");
    }
    if name.chars().any(|c| c.is_control() || c == '\\') {
        return bad("must not contain control characters or `\\`");
    }
    for part in name.split('/') {
        match part {
            "" => return bad("must not contain empty segments (`//` or a trailing `/`)"),
            "." | ".." => return bad("must not contain `.` or `..` segments"),
            _ => {}
        }
    }
    Ok(())
}

/// Checks a listing prefix: like a name, but may be empty or end in `/`.
pub fn check_prefix(prefix: &str) -> Result<(), BlobError> {
    if prefix.is_empty() {
        return Ok(());
    }
    check_object_name(prefix.strip_suffix('/').unwrap_or(prefix))
}

/// `<workflow>/<task>/window=<start>`: the directory of one window's output.
pub fn window_dir(workflow: &str, task: &str, window_start: i64) -> String {
    let at = chrono::DateTime::from_timestamp_millis(window_start).unwrap_or_default();
    let ms = window_start.rem_euclid(1000);
    let stamp = if ms == 0 {
        at.format("%Y%m%dT%H%M%SZ").to_string()
    } else {
        format!("{}{ms:03}Z", at.format("%Y%m%dT%H%M%S."))
    };
    format!("{workflow}/{task}/window={stamp}")
}

/// Where one attempt stages its objects (ends in `/`).
pub fn attempt_prefix(dir: &str, run_id: u64, attempt: u32) -> String {
    format!("{dir}/_attempts/{run_id}-{attempt}/")
}

pub fn manifest_key(dir: &str) -> String {
    format!("{dir}/_manifest.json")
}

/// `_manifest.json`: what an external reader goes by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub workflow: String,
    pub task: String,
    /// The window, UTC milliseconds and RFC 3339.
    pub window_start_ms: i64,
    pub window_start: String,
    pub run_id: u64,
    pub attempt: u32,
    pub committed_ms: i64,
    pub objects: Vec<ManifestObject>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestObject {
    pub name: String,
    /// Relative to the container's root.
    pub key: String,
    pub size: u64,
    pub sha256: String,
}

impl Manifest {
    pub fn of(r: &OutputRecord) -> Self {
        Manifest {
            format: 1,
            workflow: r.workflow.clone(),
            task: r.task.clone(),
            window_start_ms: r.window_start,
            window_start: chrono::DateTime::from_timestamp_millis(r.window_start)
                .unwrap_or_default()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            run_id: r.run_id,
            attempt: r.attempt,
            committed_ms: r.committed_ms,
            objects: r
                .objects
                .iter()
                .map(|o| ManifestObject {
                    name: o.name.clone(),
                    key: o.key.clone(),
                    size: o.size,
                    sha256: o.sha256.clone(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_cannot_leave_the_container() {
        for ok in ["a", "out/part-0.jsonl", "x.y/z", "日付/2026"] {
            check_object_name(ok).unwrap();
        }
        for bad in [
            "", "/abs", "../up", "a/../b", "a//b", "a/", "./a", "a\\b", "a\nb",
        ] {
            assert!(check_object_name(bad).is_err(), "{bad:?} accepted");
        }
        check_prefix("").unwrap();
        check_prefix("out/").unwrap();
        assert!(check_prefix("../").is_err());
    }

    #[test]
    fn window_directories_sort_by_time_and_name_the_instant() {
        assert_eq!(
            window_dir("wf", "t", 1_767_225_600_000),
            "wf/t/window=20260101T000000Z"
        );
        assert_eq!(
            window_dir("wf", "t", 1_767_225_600_250),
            "wf/t/window=20260101T000000.250Z"
        );
        assert!(window_dir("wf", "t", 3_600_000) < window_dir("wf", "t", 7_200_000));
    }
}
