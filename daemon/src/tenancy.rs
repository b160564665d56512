//! Tenants, API tokens and who is calling.
//!
//! Every request carries `Authorization: Bearer TOKEN`. The admin token (from
//! configuration, or generated on first start and written to
//! `DATA_DIR/admin-token` with mode 0600) manages tenants; tenant tokens
//! reach only their tenant's objects. Only SHA-256 hashes of tenant tokens
//! are stored.

use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::store::{StateStore, StoreError, TenantRecord, TokenRecord};
use crate::workflow::{check_name, DefinitionError};

/// Who a request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Admin,
    /// A tenant's token: the tenant, and the token's id and label (what a
    /// run it creates records as who asked).
    Tenant {
        tenant: String,
        token_id: u64,
        label: String,
    },
}

/// Why a request was not authenticated; each is a 401 with its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing Authorization header: send `Authorization: Bearer TOKEN`")]
    Missing,
    #[error("malformed Authorization header: expected `Bearer TOKEN`")]
    Malformed,
    #[error("invalid or revoked token")]
    Invalid,
    #[error("checking the token failed; try again")]
    Unavailable,
}

#[derive(Debug, thiserror::Error)]
pub enum TenancyError {
    #[error("invalid name: {0}")]
    Name(#[from] DefinitionError),
    #[error("tenant {0:?} already exists")]
    Exists(String),
    #[error("tenant {0:?} not found")]
    TenantNotFound(String),
    #[error("token {0} not found")]
    TokenNotFound(u64),
    #[error("label must be at most 128 characters")]
    Label,
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("no randomness available: {0}")]
    Random(String),
    #[error("admin token file {path}: {source}")]
    AdminFile {
        path: String,
        source: std::io::Error,
    },
    #[error("admin token file {path}: {reason}")]
    WeakAdminToken { path: String, reason: String },
}

/// The fewest characters an admin token may have: it opens every tenant,
/// so it must not be guessable (a generated one has 67).
pub const MIN_ADMIN_TOKEN_CHARS: usize = 16;

/// Why `token` cannot be the admin token, if it cannot. The message never
/// contains the token.
pub fn check_admin_token(token: &str) -> Result<(), String> {
    if token.chars().count() < MIN_ADMIN_TOKEN_CHARS {
        return Err(format!(
            "must be at least {MIN_ADMIN_TOKEN_CHARS} characters long; leave it out to have one generated"
        ));
    }
    // A request's token cannot contain whitespace, so it could never match.
    if token.contains(char::is_whitespace) {
        return Err("must not contain whitespace".into());
    }
    Ok(())
}

/// A fresh secret: `tm_` and 64 hex digits of OS randomness.
pub fn new_secret() -> Result<String, TenancyError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| TenancyError::Random(e.to_string()))?;
    Ok(format!("tm_{}", hex::encode(bytes)))
}

pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The admin token: `configured` if given, else the one in
/// `DATA_DIR/admin-token`, else a new one written there (mode 0600).
/// Returns the token and whether it was just generated (print it once).
pub fn admin_token(
    data_dir: &Path,
    configured: Option<String>,
) -> Result<(String, bool), TenancyError> {
    if let Some(t) = configured.filter(|t| !t.trim().is_empty()) {
        return Ok((t.trim().to_owned(), false));
    }
    let path = data_dir.join("admin-token");
    let file_err = |source| TenancyError::AdminFile {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => {
            let t = t.trim();
            check_admin_token(t).map_err(|reason| TenancyError::WeakAdminToken {
                path: path.display().to_string(),
                reason,
            })?;
            return Ok((t.to_owned(), false));
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(file_err(e)),
    }
    std::fs::create_dir_all(data_dir).map_err(file_err)?;
    let token = new_secret()?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    use std::io::Write;
    let mut f = opts.open(&path).map_err(file_err)?;
    f.write_all(format!("{token}\n").as_bytes())
        .map_err(file_err)?;
    Ok((token, true))
}

/// Authentication and tenant/token management over the store.
#[derive(Clone)]
pub struct Tenancy {
    store: Arc<dyn StateStore>,
    admin_hash: String,
}

impl Tenancy {
    pub fn new(store: Arc<dyn StateStore>, admin_token: &str) -> Self {
        Tenancy {
            store,
            admin_hash: hash(admin_token),
        }
    }

    /// Resolves an `Authorization` header value.
    pub fn authenticate(&self, header: Option<&[u8]>) -> Result<Principal, AuthError> {
        let raw = header.ok_or(AuthError::Missing)?;
        let text = std::str::from_utf8(raw).map_err(|_| AuthError::Malformed)?;
        let (scheme, token) = text.trim().split_once(' ').ok_or(AuthError::Malformed)?;
        let token = token.trim();
        if !scheme.eq_ignore_ascii_case("bearer")
            || token.is_empty()
            || token.contains(char::is_whitespace)
        {
            return Err(AuthError::Malformed);
        }
        let h = hash(token);
        if h == self.admin_hash {
            return Ok(Principal::Admin);
        }
        match self.store.token_by_hash(&h) {
            Ok(Some(t)) if !t.revoked => Ok(Principal::Tenant {
                tenant: t.tenant,
                token_id: t.id,
                label: t.label,
            }),
            Ok(_) => Err(AuthError::Invalid),
            Err(e) => {
                tracing::error!("token lookup failed: {e}");
                Err(AuthError::Unavailable)
            }
        }
    }

    /// Creates a tenant and its first token; returns the token's secret.
    pub fn create_tenant(
        &self,
        name: &str,
        now: i64,
    ) -> Result<(TenantRecord, TokenRecord, String), TenancyError> {
        check_name("tenant name", name)?;
        let tenant = TenantRecord {
            name: name.to_owned(),
            created_ms: now,
            quotas: Default::default(),
            egress: Vec::new(),
        };
        let (token, secret) = self.new_token(name, "first token", now)?;
        if !self.store.tenant_create(&tenant, &token)? {
            return Err(TenancyError::Exists(name.to_owned()));
        }
        Ok((tenant, token, secret))
    }

    fn new_token(
        &self,
        tenant: &str,
        label: &str,
        now: i64,
    ) -> Result<(TokenRecord, String), TenancyError> {
        if label.chars().count() > 128 {
            return Err(TenancyError::Label);
        }
        let secret = new_secret()?;
        let record = TokenRecord {
            id: self.store.next_id()?,
            tenant: tenant.to_owned(),
            label: label.to_owned(),
            hash: hash(&secret),
            created_ms: now,
            revoked: false,
        };
        Ok((record, secret))
    }

    pub fn create_token(
        &self,
        tenant: &str,
        label: &str,
        now: i64,
    ) -> Result<(TokenRecord, String), TenancyError> {
        if self.store.tenant_get(tenant)?.is_none() {
            return Err(TenancyError::TenantNotFound(tenant.to_owned()));
        }
        let (record, secret) = self.new_token(tenant, label, now)?;
        self.store.token_put(&record)?;
        Ok((record, secret))
    }

    pub fn tokens(&self, tenant: &str) -> Result<Vec<TokenRecord>, TenancyError> {
        Ok(self.store.token_list(tenant)?)
    }

    pub fn revoke_token(&self, tenant: &str, id: u64) -> Result<TokenRecord, TenancyError> {
        let mut t = self
            .store
            .token_list(tenant)?
            .into_iter()
            .find(|t| t.id == id)
            .ok_or(TenancyError::TokenNotFound(id))?;
        t.revoked = true;
        self.store.token_put(&t)?;
        Ok(t)
    }

    pub fn tenants(&self) -> Result<Vec<TenantRecord>, TenancyError> {
        Ok(self.store.tenant_list()?)
    }

    pub fn tenant_exists(&self, name: &str) -> Result<bool, TenancyError> {
        Ok(self.store.tenant_get(name)?.is_some())
    }

    pub fn delete_tenant(&self, name: &str) -> Result<(), TenancyError> {
        if !self.store.tenant_delete(name)? {
            return Err(TenancyError::TenantNotFound(name.to_owned()));
        }
        Ok(())
    }
}
