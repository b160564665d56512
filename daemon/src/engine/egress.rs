//! Tenants' egress allowlists in the engine: cached for attempts, replaced
//! by the admin, and the apply-time check that a task's `allowed_hosts`
//! stay within its tenant's.

use std::sync::Arc;

use super::{Engine, EngineError, Inner};
use crate::egress::{Allowlist, HostPattern};
use crate::workflow::{DefinitionError, RawWorkflow};

impl Inner {
    /// `tenant`'s allowlist; empty for a tenant without a record.
    pub(super) fn egress_allowlist(&self, tenant: &str) -> Arc<Allowlist> {
        if let Some(a) = self.lock_egress().get(tenant) {
            return a.clone();
        }
        let list = match self.store.tenant_get(tenant) {
            Ok(Some(rec)) => Allowlist::parse(&rec.egress).unwrap_or_else(|e| {
                // Patterns are validated before they are stored.
                tracing::error!(tenant, "egress allowlist ignored: {e}");
                Allowlist::default()
            }),
            Ok(None) => Allowlist::default(),
            Err(e) => {
                // Not cached: the next call reads the record again. Deny
                // meanwhile.
                tracing::error!(tenant, "reading the egress allowlist: {e}");
                return Arc::new(Allowlist::default());
            }
        };
        let list = Arc::new(list);
        self.lock_egress().insert(tenant.to_owned(), list.clone());
        list
    }

    pub(super) fn forget_egress(&self, tenant: &str) {
        self.lock_egress().remove(tenant);
    }

    fn lock_egress(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Arc<Allowlist>>> {
        self.egress.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Refuses a definition whose task asks for a host its tenant does not
/// allow, naming the field (`tasks[i].allowed_hosts[j]`).
pub(super) fn check_workflow(tenant: &Allowlist, raw: &RawWorkflow) -> Result<(), DefinitionError> {
    for (i, t) in raw.tasks.iter().enumerate() {
        for (j, p) in t.allowed_hosts.iter().enumerate() {
            let field = format!("tasks[{i}].allowed_hosts[{j}]");
            let pattern = HostPattern::parse(p).map_err(|e| DefinitionError::Field {
                field: field.clone(),
                message: e.to_string(),
            })?;
            if !tenant.covers(&pattern) {
                return Err(DefinitionError::Field {
                    field,
                    message: format!(
                        "{p:?} is not within the tenant's egress allowlist ({}); an admin sets it with `tidemark tenant egress set`",
                        if tenant.is_empty() {
                            "empty: no outbound HTTP".to_owned()
                        } else {
                            tenant.patterns().join(", ")
                        }
                    ),
                });
            }
        }
    }
    Ok(())
}

impl Engine {
    /// `tenant`'s egress allowlist, as written.
    pub fn egress(&self, tenant: &str) -> Result<Vec<String>, EngineError> {
        let rec = self
            .inner
            .store
            .tenant_get(tenant)?
            .ok_or_else(|| EngineError::TenantNotFound(tenant.to_owned()))?;
        Ok(rec.egress)
    }

    /// Replaces `tenant`'s egress allowlist (already parsed, so valid);
    /// it applies to the next request of every attempt started after it.
    pub fn set_egress(&self, tenant: &str, list: &Allowlist) -> Result<(), EngineError> {
        let mut rec = self
            .inner
            .store
            .tenant_get(tenant)?
            .ok_or_else(|| EngineError::TenantNotFound(tenant.to_owned()))?;
        rec.egress = list.patterns();
        self.inner.store.tenant_update(&rec)?;
        self.inner
            .lock_egress()
            .insert(tenant.to_owned(), Arc::new(list.clone()));
        tracing::info!(
            tenant,
            patterns = rec.egress.len(),
            "egress allowlist changed"
        );
        Ok(())
    }
}
