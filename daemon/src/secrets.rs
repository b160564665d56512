//! Sealing secrets at rest: XChaCha20-Poly1305 with a random nonce per
//! value and the owner (tenant and connection) as associated data, so a
//! sealed value cannot be moved to another tenant or connection and still
//! open. The key comes from configuration or is generated once into
//! `DATA_DIR/secrets-key` (mode 0600), like the admin token.
//!
//! Nothing here ever formats a secret: errors name the field and the
//! owner, and a [`Fingerprint`] (a keyed hash, so it reveals nothing
//! without the key) is all that is shown of a value.

use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

const NONCE_LEN: usize = 24;
/// Format byte of a sealed value, so a later algorithm can be told apart.
const SEALED_V1: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("secrets key file {path}: {source}")]
    KeyFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("secrets key {origin}: must be 64 hexadecimal characters (32 bytes)")]
    BadKey { origin: String },
    #[error("no randomness available: {0}")]
    Random(String),
    #[error("sealing a secret of {owner} failed")]
    Seal { owner: String },
    /// Wrong key, or a value tampered with or moved to another owner.
    #[error("secret {field} of {owner} cannot be opened with this daemon's secrets key")]
    Open { owner: String, field: String },
}

/// The key that seals every secret of a daemon.
#[derive(Clone)]
pub struct SealingKey {
    key: [u8; 32],
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(..)")
    }
}

/// A short, stable name for a secret value that reveals nothing about it:
/// equal values under one key have equal fingerprints.
pub type Fingerprint = String;

impl SealingKey {
    /// Parses a 64-hex-character key; `origin` names where it came from.
    pub fn from_hex(hex_key: &str, origin: &str) -> Result<Self, SecretsError> {
        let bytes = hex::decode(hex_key.trim()).map_err(|_| SecretsError::BadKey {
            origin: origin.to_owned(),
        })?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| SecretsError::BadKey {
            origin: origin.to_owned(),
        })?;
        Ok(SealingKey { key })
    }

    /// The configured key, else the one in `DATA_DIR/secrets-key`, else a new
    /// one written there (mode 0600). Returns the key and whether it is new.
    pub fn load_or_generate(
        data_dir: &Path,
        configured: Option<&str>,
    ) -> Result<(Self, bool), SecretsError> {
        if let Some(k) = configured {
            return Ok((Self::from_hex(k, "in the configuration")?, false));
        }
        let path = data_dir.join("secrets-key");
        let file_err = |source| SecretsError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(k) => return Ok((Self::from_hex(&k, &path.display().to_string())?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(file_err(e)),
        }
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| SecretsError::Random(e.to_string()))?;
        std::fs::create_dir_all(data_dir).map_err(file_err)?;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        use std::io::Write;
        let mut f = opts.open(&path).map_err(file_err)?;
        f.write_all(hex::encode(key).as_bytes()).map_err(file_err)?;
        f.sync_all().map_err(file_err)?;
        Ok((SealingKey { key }, true))
    }

    /// A random key (tests, and `task run` without a data dir).
    pub fn random() -> Result<Self, SecretsError> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| SecretsError::Random(e.to_string()))?;
        Ok(SealingKey { key })
    }

    /// Seals `plain` for `owner` (e.g. `tenant/connection/field`).
    pub fn seal(&self, owner: &str, plain: &[u8]) -> Result<Vec<u8>, SecretsError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| SecretsError::Random(e.to_string()))?;
        let cipher = XChaCha20Poly1305::new((&self.key).into());
        let sealed = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: owner.as_bytes(),
                },
            )
            .map_err(|_| SecretsError::Seal {
                owner: owner.to_owned(),
            })?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(SEALED_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens a value [`SealingKey::seal`] sealed for the same `owner`.
    pub fn open(&self, owner: &str, field: &str, sealed: &[u8]) -> Result<Vec<u8>, SecretsError> {
        let err = || SecretsError::Open {
            owner: owner.to_owned(),
            field: field.to_owned(),
        };
        let rest = match sealed.split_first() {
            Some((&SEALED_V1, rest)) if rest.len() > NONCE_LEN => rest,
            _ => return Err(err()),
        };
        let (nonce, body) = rest.split_at(NONCE_LEN);
        XChaCha20Poly1305::new((&self.key).into())
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: owner.as_bytes(),
                },
            )
            .map_err(|_| err())
    }

    /// A keyed hash of `plain` (12 hex digits): shown instead of the value.
    pub fn fingerprint(&self, plain: &[u8]) -> Fingerprint {
        let mut h = Sha256::new();
        h.update(b"tidemark fingerprint\0");
        h.update(self.key);
        h.update(plain);
        format!("fp:{}", &hex::encode(h.finalize())[..12])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_for_their_owner_and_key() {
        let k = SealingKey::random().unwrap();
        let sealed = k.seal("acme/api/token", b"s3cr3t-value").unwrap();
        assert!(!sealed
            .windows(b"s3cr3t-value".len())
            .any(|w| w == b"s3cr3t-value"));
        assert_eq!(
            k.open("acme/api/token", "token", &sealed).unwrap(),
            b"s3cr3t-value"
        );
        // Moved to another tenant or connection, it does not open.
        let moved = k.open("other/api/token", "token", &sealed).unwrap_err();
        assert!(!moved.to_string().contains("s3cr3t"));
        // Another daemon's key does not open it either.
        assert!(SealingKey::random()
            .unwrap()
            .open("acme/api/token", "token", &sealed)
            .is_err());
        // Tampering is detected.
        let mut bad = sealed.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(k.open("acme/api/token", "token", &bad).is_err());
        // Two seals of one value differ (random nonce); fingerprints agree.
        assert_ne!(sealed, k.seal("acme/api/token", b"s3cr3t-value").unwrap());
        assert_eq!(k.fingerprint(b"a"), k.fingerprint(b"a"));
        assert_ne!(k.fingerprint(b"a"), k.fingerprint(b"b"));
    }

    #[test]
    fn the_generated_key_is_kept_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (a, new_a) = SealingKey::load_or_generate(dir.path(), None).unwrap();
        let (b, new_b) = SealingKey::load_or_generate(dir.path(), None).unwrap();
        assert!(new_a && !new_b);
        assert_eq!(a.key, b.key);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("secrets-key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let bad = SealingKey::from_hex("abc", "in a test").unwrap_err();
        assert!(bad.to_string().contains("64 hexadecimal"));
    }
}
