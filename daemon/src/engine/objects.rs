//! Object-storage outputs on the engine's side: the containers an attempt
//! may use, committing or discarding what it staged, publishing committed
//! outputs (again after a crash, and running their declared checks; see
//! `checks.rs`) and collecting abandoned staging.

use std::collections::HashMap;
use std::sync::Arc;

use super::*;
use crate::blob::{self, BlobError, Container};
use crate::executor::{ObjectAccess, StagedObjects};
use crate::store::{ConnectionRecord, OutputCheckRecord, OutputRecord};

/// How long writes a dead process had in flight may still land in an
/// object store after a restart: staged objects are collected again after it.
const LATE_WRITE_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// Identifies one window output: `(tenant, connection, workflow, task,
/// window start)`.
type OutputKey = (String, String, String, String, i64);

/// Opened containers by `(tenant, connection)`: revision, update time and
/// the container.
type OpenContainers = HashMap<(String, String), (u32, i64, Container)>;

/// Containers opened per `(tenant, connection)`, with the revision and
/// update time they were opened at: a rotated or recreated connection is
/// opened anew; otherwise attempts share one client and its connections.
#[derive(Default)]
pub(super) struct Containers {
    open: Mutex<OpenContainers>,
    /// One publish at a time per window output, so manifests land in
    /// commit order.
    publishing: Mutex<HashMap<OutputKey, Arc<tokio::sync::Mutex<()>>>>,
    sweeping: std::sync::atomic::AtomicBool,
}

impl Inner {
    /// The containers a workflow's attempt may use: every `s3` or `fs`
    /// connection it names (an `http` one, or one that cannot be opened,
    /// is there with the reason, which the task gets on use).
    pub(super) async fn object_access(&self, tenant: &str, names: &[String]) -> ObjectAccess {
        let mut map = HashMap::new();
        for name in names {
            let opened = match self.store.connection_get(tenant, name) {
                Ok(Some(c)) if !c.kind.is_object_store() => Err(
                    "is an http connection; object storage needs kind s3, gcs, azure or fs".into(),
                ),
                Ok(Some(c)) => self.container(tenant, &c).await.map_err(|e| e.to_string()),
                Ok(None) => {
                    Err("no such connection (deleted since the workflow was applied)".into())
                }
                Err(e) => Err(format!("reading the connection: {e}")),
            };
            map.insert(name.clone(), opened);
        }
        ObjectAccess(Arc::new(map))
    }

    /// Opens (or reuses) one connection's container. An s3 endpoint must
    /// pass the tenant's egress allowlist like a task's own request,
    /// including the refusal of private addresses it does not name.
    pub(super) async fn container(
        &self,
        tenant: &str,
        c: &ConnectionRecord,
    ) -> Result<Container, BlobError> {
        let key = (tenant.to_owned(), c.name.clone());
        if let Some((rev, at, opened)) = self.containers_lock().get(&key) {
            if (*rev, *at) == (c.revision, c.updated_ms) {
                return Ok(opened.clone());
            }
        }
        let setup = |message: String| BlobError::Setup {
            connection: c.name.clone(),
            message,
        };
        // A configured endpoint (an S3-compatible server, a GCS or Azure
        // emulator) passes the tenant's allowlist like a task's request.
        if c.kind.signing_secret().is_some() {
            if let Some(endpoint) = c.config.get("endpoint") {
                self.check_endpoint(tenant, endpoint).await.map_err(setup)?;
            }
        }
        let secret = match c.kind.signing_secret() {
            Some(field) => {
                let plain = self
                    .open_secret(tenant, c, field)
                    .map_err(|e| setup(e.to_string()))?
                    .ok_or_else(|| setup(format!("has no {field}")))?;
                Some(String::from_utf8(plain).map_err(|_| setup(format!("{field} is not UTF-8")))?)
            }
            None => None,
        };
        let opened = blob::open_container(
            tenant,
            c,
            secret.as_deref(),
            self.config.objects_dir.as_deref(),
        )?;
        self.containers_lock()
            .insert(key, (c.revision, c.updated_ms, opened.clone()));
        Ok(opened)
    }

    fn containers_lock(&self) -> std::sync::MutexGuard<'_, OpenContainers> {
        self.containers
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    async fn check_endpoint(&self, tenant: &str, endpoint: &str) -> Result<(), String> {
        let target = crate::egress::Target::from_url(endpoint)
            .map_err(|e| format!("endpoint {endpoint:?}: {e}"))?;
        let allow = self.egress_allowlist(tenant);
        if !allow.allows(&target) {
            return Err(format!(
                "endpoint {} is not in the tenant's egress allowlist",
                target.authority()
            ));
        }
        let addrs: Vec<std::net::IpAddr> = match target.host.parse() {
            Ok(ip) => vec![ip],
            Err(_) => tokio::net::lookup_host((target.host.as_str(), target.port))
                .await
                .map_err(|e| format!("resolving {}: {e}", target.host))?
                .map(|a| a.ip())
                .collect(),
        };
        for ip in addrs {
            if let Some(class) = crate::egress::special(ip) {
                if !allow.names_address(&target, ip) {
                    return Err(format!(
                        "endpoint {} resolves to a {class} address ({ip}) the allowlist does not name",
                        target.authority()
                    ));
                }
            }
        }
        Ok(())
    }

    /// The output records a successful attempt's staged objects become,
    /// committed with its success.
    /// With `check`, each carries a pending check (the workflow declares
    /// `[checks] outputs = "after_window"`).
    pub(super) fn object_outputs(
        &self,
        tenant: &str,
        staged: StagedObjects,
        now: i64,
        check: bool,
    ) -> Vec<(String, OutputRecord)> {
        staged
            .containers
            .into_values()
            .map(|s| {
                let m = s.marker;
                (
                    tenant.to_owned(),
                    OutputRecord {
                        connection: m.connection,
                        workflow: m.workflow,
                        task: m.task,
                        window_start: m.window_start,
                        run_id: m.run_id,
                        attempt: m.attempt,
                        committed_ms: now,
                        objects: s.objects.into_values().collect(),
                        published: false,
                        check: check.then(OutputCheckRecord::pending),
                    },
                )
            })
            .collect()
    }

    /// Deletes a failed attempt's objects, then its markers. A marker whose
    /// objects could not be deleted stays for the next collection.
    pub(super) async fn discard(&self, tenant: &str, staged: StagedObjects) {
        for s in staged.containers.into_values() {
            match blob::delete_prefix(&s.container, &s.marker.prefix).await {
                Ok(_) => {
                    if let Err(e) = self.store.staging_clear(tenant, &s.marker) {
                        tracing::warn!("clearing a staging marker: {e}");
                    }
                }
                Err(e) => tracing::warn!("deleting a failed attempt's objects: {e}"),
            }
        }
    }

    /// Publishes committed outputs: the given ones, or every pending one
    /// in the store, and runs their declared checks once their runs have
    /// ended. Failures are logged and left pending for the next sweep.
    pub(super) async fn publish_outputs(self: &Arc<Self>, outputs: Vec<(String, OutputRecord)>) {
        for (tenant, r) in outputs {
            if let Err(e) = self.publish_one(&tenant, &r).await {
                tracing::warn!(
                    workflow = r.workflow,
                    task = r.task,
                    window = r.window_start,
                    "publishing or checking an output failed; will retry: {e}"
                );
                let labels = crate::metrics::labels(&[("tenant", &tenant)]);
                self.metrics.publish_failures.get_or_create(&labels).inc();
            }
        }
    }

    async fn publish_one(&self, tenant: &str, r: &OutputRecord) -> Result<(), BlobError> {
        let key: OutputKey = (
            tenant.to_owned(),
            r.connection.clone(),
            r.workflow.clone(),
            r.task.clone(),
            r.window_start,
        );
        let lock = {
            let mut map = self
                .containers
                .publishing
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            map.entry(key.clone()).or_default().clone()
        };
        let _one = lock.lock().await;
        let store_err = |e: crate::store::StoreError| BlobError::Unavailable {
            container: r.connection.clone(),
            message: e.to_string(),
        };
        // Publish (and check) what is committed now: a newer commit of the
        // window supersedes the one this call was asked for.
        loop {
            let Some(current) = self
                .store
                .output_get(tenant, &r.connection, &r.workflow, &r.task, r.window_start)
                .map_err(store_err)?
            else {
                return Ok(());
            };
            // Checked only once the run has ended: "after the window", so
            // its other tasks' outputs are published too, and nothing of
            // the run may still change the window's directory.
            let check_now = current.check_pending() && !self.run_active(current.run_id);
            if current.published && !check_now {
                return Ok(());
            }
            let conn = self
                .store
                .connection_get(tenant, &r.connection)
                .map_err(store_err)?
                .ok_or_else(|| BlobError::Setup {
                    connection: r.connection.clone(),
                    message: "the connection was deleted; its outputs cannot be published".into(),
                })?;
            let c = self.container(tenant, &conn).await?;
            if !current.published {
                let live = || self.live_staging(tenant, &current);
                blob::publish(&c, &current, live).await?;
                if !self
                    .store
                    .output_published(tenant, &current)
                    .map_err(store_err)?
                {
                    continue;
                }
                if !check_now {
                    return Ok(());
                }
            }
            let mut published = current.clone();
            published.published = true;
            let found =
                blob::check_output(&c, &published, &self.live_staging(tenant, &published)).await?;
            let result = self.check_record(tenant, &found);
            if self
                .store
                .output_checked(tenant, &published, result)
                .map_err(store_err)?
            {
                return Ok(());
            }
        }
    }

    /// Starts publishing every output still pending (a publish that failed,
    /// or a commit whose persist was retried), unless a sweep still runs.
    pub(super) fn sweep_outputs(self: &Arc<Self>) {
        use std::sync::atomic::Ordering;
        if self.containers.sweeping.swap(true, Ordering::SeqCst) {
            return;
        }
        let inner = self.clone();
        tokio::spawn(async move {
            match inner.store.outputs_pending() {
                Ok(pending) => inner.publish_outputs(pending).await,
                Err(e) => tracing::warn!("listing outputs to publish: {e}"),
            }
            inner.containers.sweeping.store(false, Ordering::SeqCst);
        });
    }

    /// Staging prefixes of attempts of the same window still running.
    fn live_staging(&self, tenant: &str, r: &OutputRecord) -> Vec<String> {
        match self.store.staging_all() {
            Ok(all) => all
                .into_iter()
                .filter(|(t, s)| {
                    t == tenant
                        && s.connection == r.connection
                        && s.workflow == r.workflow
                        && s.task == r.task
                        && s.window_start == r.window_start
                        && (s.run_id, s.attempt) != (r.run_id, r.attempt)
                })
                .map(|(_, s)| s.prefix)
                .collect(),
            // Unknown: keep every other attempt's objects this time.
            Err(_) => vec![blob::window_dir(&r.workflow, &r.task, r.window_start) + "/_attempts/"],
        }
    }

    /// Startup: publish every committed output the last process did not,
    /// and delete what attempts it left staged. The markers are read before
    /// any attempt starts, so each belongs to a dead attempt (a resumed task
    /// gets a new attempt number, hence a new prefix).
    pub(super) async fn recover_objects(
        self: &Arc<Self>,
        pending: Vec<(String, OutputRecord)>,
        markers: Vec<(String, crate::store::StagingRecord)>,
    ) {
        if !pending.is_empty() {
            tracing::info!(n = pending.len(), "publishing outputs left pending");
            self.publish_outputs(pending).await;
        }
        // A write the dead process had sent may still land after it died
        // (an object store can finish a request whose client is gone, even
        // seconds later): delete now, again after a while, and clear a
        // marker only once a pass after the grace period finds nothing.
        self.collect_staging(&markers, false).await;
        tokio::time::sleep(LATE_WRITE_GRACE / 3).await;
        self.collect_staging(&markers, false).await;
        tokio::time::sleep(LATE_WRITE_GRACE * 2 / 3).await;
        let mut left = markers;
        for _ in 0..10 {
            left = self.collect_staging(&left, true).await;
            if left.is_empty() {
                break;
            }
            tokio::time::sleep(LATE_WRITE_GRACE).await;
        }
    }

    /// Deletes the objects of abandoned attempts; with `clear`, removes the
    /// markers of those that had nothing left. Returns the markers kept.
    async fn collect_staging(
        &self,
        markers: &[(String, crate::store::StagingRecord)],
        clear: bool,
    ) -> Vec<(String, crate::store::StagingRecord)> {
        let mut kept = Vec::new();
        for (tenant, m) in markers {
            let (tenant, m) = (tenant.clone(), m.clone());
            let conn = match self.store.connection_get(&tenant, &m.connection) {
                Ok(Some(c)) => c,
                Ok(None) => {
                    // Nothing can reach those objects any more.
                    if clear {
                        let _ = self.store.staging_clear(&tenant, &m);
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!("collecting staged objects: {e}");
                    kept.push((tenant, m));
                    continue;
                }
            };
            let result = match self.container(&tenant, &conn).await {
                Ok(c) => blob::delete_prefix(&c, &m.prefix).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(n) => {
                    if n > 0 {
                        tracing::info!(
                            workflow = m.workflow,
                            run = m.run_id,
                            attempt = m.attempt,
                            objects = n,
                            "deleted objects of an abandoned attempt"
                        );
                        let labels = crate::metrics::labels(&[("tenant", &tenant)]);
                        self.metrics
                            .objects_collected
                            .get_or_create(&labels)
                            .inc_by(n as u64);
                    }
                    if clear && n == 0 {
                        let _ = self.store.staging_clear(&tenant, &m);
                    } else {
                        kept.push((tenant, m));
                    }
                }
                Err(e) => {
                    tracing::warn!("collecting staged objects: {e}");
                    kept.push((tenant, m));
                }
            }
        }
        kept
    }
}
