//! A container: one connection's object store and the root inside it that
//! every key is relative to.

use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::BlobError;
use crate::connection::ConnectionKind;
use crate::store::ConnectionRecord;

/// Most objects one listing gathers before it pages; a prefix holding more
/// is refused with a clear error rather than read without bound.
const MAX_LISTING: usize = 200_000;

/// One object as a container lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Relative to the container's root.
    pub key: String,
    pub size: u64,
    pub modified_ms: Option<i64>,
    pub e_tag: Option<String>,
}

/// A connection's object store with its root. Cheap to clone and share:
/// the underlying client keeps its connection pool.
#[derive(Clone)]
pub struct Container {
    pub connection: String,
    store: Arc<dyn ObjectStore>,
    /// `""` or a relative path without a trailing `/`.
    root: String,
}

impl std::fmt::Debug for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The store's own Debug may show its configuration; never print it.
        f.debug_struct("Container")
            .field("connection", &self.connection)
            .field("root", &self.root)
            .finish()
    }
}

/// Few, quick retries: a refused or unreachable store fails the attempt
/// (which has its own retry policy) in seconds.
fn retry() -> object_store::RetryConfig {
    object_store::RetryConfig {
        backoff: Default::default(),
        max_retries: 2,
        retry_timeout: Duration::from_secs(10),
    }
}

fn client_options(endpoint: &str) -> object_store::ClientOptions {
    object_store::ClientOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(60))
        .with_allow_http(endpoint.starts_with("http://"))
}

/// An object_store builder's error, without anything of the secret: a
/// credential parser may quote what it could not parse.
fn redacted(e: object_store::Error, secret: &str) -> String {
    let mut message = e.to_string();
    let mut parts: Vec<&str> = vec![secret.trim()];
    // The string values of a JSON key (private key, email, key id).
    parts.extend(secret.split('"').filter(|p| p.len() >= 8));
    for p in parts.into_iter().filter(|p| !p.is_empty()) {
        message = message.replace(p, "<redacted>");
        // JSON escapes the key's newlines when an error quotes it.
        message = message.replace(&p.replace('\n', "\\n"), "<redacted>");
    }
    message
}

/// Builds the container of an `s3`, `gcs`, `azure` or `fs` connection.
/// `secret` is the opened signing secret of a cloud connection
/// ([`ConnectionKind::signing_secret`]); `objects_dir` is where `fs`
/// connections live (a directory per tenant below it).
pub fn open_container(
    tenant: &str,
    c: &ConnectionRecord,
    secret: Option<&str>,
    objects_dir: Option<&FsPath>,
) -> Result<Container, BlobError> {
    let setup = |message: String| BlobError::Setup {
        connection: c.name.clone(),
        message,
    };
    let get = |k: &str| c.config.get(k).map(String::as_str).unwrap_or_default();
    let secret = || {
        let field = c.kind.signing_secret().unwrap_or_default();
        secret.ok_or_else(|| setup(format!("has no {field}")))
    };
    if c.kind.signing_secret().is_some() {
        // reqwest's rustls runs on ring (no aws-lc C build), which must be
        // the process default; an error means one is installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    let endpoint = get("endpoint");
    let cloud_root = || get("prefix").trim_end_matches('/').to_owned();
    let (store, root): (Arc<dyn ObjectStore>, String) = match c.kind {
        ConnectionKind::S3 => {
            let key = secret()?;
            let mut b = object_store::aws::AmazonS3Builder::new()
                .with_bucket_name(get("bucket"))
                .with_access_key_id(get("access_key_id"))
                .with_secret_access_key(key)
                .with_region(match get("region") {
                    "" => "us-east-1",
                    r => r,
                })
                .with_retry(retry())
                .with_client_options(client_options(endpoint));
            if !endpoint.is_empty() {
                b = b
                    .with_endpoint(endpoint)
                    .with_virtual_hosted_style_request(false);
            }
            let store = b.build().map_err(|e| setup(redacted(e, key)))?;
            (Arc::new(store), cloud_root())
        }
        ConnectionKind::Gcs => {
            let key = secret()?;
            let mut b = object_store::gcp::GoogleCloudStorageBuilder::new()
                .with_bucket_name(get("bucket"))
                .with_service_account_key(key)
                .with_retry(retry())
                .with_client_options(client_options(endpoint));
            if !endpoint.is_empty() {
                b = b.with_base_url(endpoint.trim_end_matches('/'));
            }
            let store = b.build().map_err(|e| setup(redacted(e, key)))?;
            (Arc::new(store), cloud_root())
        }
        ConnectionKind::Azure => {
            let key = secret()?;
            let mut b = object_store::azure::MicrosoftAzureBuilder::new()
                .with_account(get("account"))
                .with_container_name(get("container"))
                .with_access_key(key.trim())
                .with_retry(retry())
                .with_client_options(client_options(endpoint));
            if !endpoint.is_empty() {
                // Path-style, e.g. Azurite's `http://127.0.0.1:10000/ACCOUNT`.
                b = b.with_endpoint(endpoint.trim_end_matches('/').to_owned());
            }
            let store = b.build().map_err(|e| setup(redacted(e, key)))?;
            (Arc::new(store), cloud_root())
        }
        ConnectionKind::Fs => {
            let base = objects_dir
                .ok_or_else(|| setup("this daemon has no directory for fs connections".into()))?;
            let dir = base.join(tenant).join(get("path"));
            std::fs::create_dir_all(&dir)
                .map_err(|e| setup(format!("creating {}: {e}", dir.display())))?;
            let store = object_store::local::LocalFileSystem::new_with_prefix(&dir)
                .map_err(|e| setup(e.to_string()))?
                .with_automatic_cleanup(true);
            (Arc::new(store), String::new())
        }
        ConnectionKind::Http => {
            return Err(setup(
                "is an http connection; object storage needs kind s3, gcs, azure or fs".into(),
            ))
        }
    };
    Ok(Container {
        connection: c.name.clone(),
        store,
        root,
    })
}

impl Container {
    fn path(&self, key: &str) -> Result<Path, BlobError> {
        let full = if self.root.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.root)
        };
        Path::parse(&full).map_err(|_| BlobError::InvalidName {
            name: key.chars().take(200).collect(),
            reason: "is not a valid object path",
        })
    }

    fn relative(&self, p: &Path) -> String {
        let s = p.as_ref();
        if self.root.is_empty() {
            s.to_owned()
        } else {
            s.strip_prefix(&self.root)
                .map(|r| r.trim_start_matches('/'))
                .unwrap_or(s)
                .to_owned()
        }
    }

    fn err(&self, key: &str, e: object_store::Error) -> BlobError {
        BlobError::from_store(&self.connection, key, e)
    }

    /// Stores `data` under `key`, replacing what was there; returns the
    /// store's entity tag.
    pub async fn put(&self, key: &str, data: Vec<u8>) -> Result<Option<String>, BlobError> {
        let path = self.path(key)?;
        let r = self
            .store
            .put(&path, PutPayload::from(data))
            .await
            .map_err(|e| self.err(key, e))?;
        Ok(r.e_tag)
    }

    /// Bytes `[start, end)` (clamped to the object's size).
    pub async fn get_range(&self, key: &str, start: u64, end: u64) -> Result<Vec<u8>, BlobError> {
        let path = self.path(key)?;
        if end <= start {
            return Ok(Vec::new());
        }
        let meta = self.store.head(&path).await.map_err(|e| self.err(key, e))?;
        let end = end.min(meta.size);
        if start >= end {
            return Ok(Vec::new());
        }
        let bytes = self
            .store
            .get_range(&path, start..end)
            .await
            .map_err(|e| self.err(key, e))?;
        Ok(bytes.to_vec())
    }

    /// The whole object.
    pub async fn get(&self, key: &str) -> Result<Vec<u8>, BlobError> {
        let path = self.path(key)?;
        let r = self.store.get(&path).await.map_err(|e| self.err(key, e))?;
        let bytes = r.bytes().await.map_err(|e| self.err(key, e))?;
        Ok(bytes.to_vec())
    }

    pub async fn head(&self, key: &str) -> Result<ObjectInfo, BlobError> {
        let path = self.path(key)?;
        let m = self.store.head(&path).await.map_err(|e| self.err(key, e))?;
        Ok(ObjectInfo {
            key: self.relative(&m.location),
            size: m.size,
            modified_ms: Some(m.last_modified.timestamp_millis()),
            e_tag: m.e_tag,
        })
    }

    /// Deletes `key`; deleting what is not there succeeds.
    pub async fn delete(&self, key: &str) -> Result<(), BlobError> {
        let path = self.path(key)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(key, e)),
        }
    }

    /// Every object whose key starts with `prefix` (a plain string prefix,
    /// not only whole segments), in key order.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BlobError> {
        // Object stores list by whole segments: list the directory the
        // prefix lies in and filter.
        let dir = match prefix.rfind('/') {
            Some(i) => &prefix[..i],
            None => "",
        };
        let joined = match (self.root.is_empty(), dir.is_empty()) {
            (true, _) => dir.to_owned(),
            (false, true) => self.root.clone(),
            (false, false) => format!("{}/{dir}", self.root),
        };
        let dir_path = if joined.is_empty() {
            None
        } else {
            Some(Path::parse(&joined).map_err(|_| BlobError::InvalidName {
                name: prefix.chars().take(200).collect(),
                reason: "is not a valid object path",
            })?)
        };
        let mut stream = self.store.list(dir_path.as_ref());
        let mut out = Vec::new();
        while let Some(m) = stream.try_next().await.map_err(|e| self.err(prefix, e))? {
            let key = self.relative(&m.location);
            if key.starts_with(prefix) {
                out.push(ObjectInfo {
                    key,
                    size: m.size,
                    modified_ms: Some(m.last_modified.timestamp_millis()),
                    e_tag: m.e_tag,
                });
                if out.len() > MAX_LISTING {
                    return Err(BlobError::Unavailable {
                        container: self.connection.clone(),
                        message: format!(
                            "more than {MAX_LISTING} objects under {prefix:?}: list a narrower prefix"
                        ),
                    });
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}
