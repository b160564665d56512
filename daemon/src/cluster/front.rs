//! The HTTP front of a node on a shared store: the API of the local engine
//! while this node leads, else each request forwarded to the leader as it
//! came, and the leader's answer passed back.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower::ServiceExt;

use super::metrics::Forward;
use crate::store::{PgStore, ENGINE_LEASE};

/// How long a looked-up leader address is reused before it is read again.
const LEADER_TTL: Duration = Duration::from_millis(250);
/// Set on forwarded requests and on answers that went through a forward.
pub const FORWARDED_BY: &str = "x-tidemark-forwarded-by";

pub struct Front {
    /// The local API while this node leads.
    local: RwLock<Option<Router>>,
    store: PgStore,
    node_id: String,
    client: reqwest::Client,
    /// The leader last looked up: when, and its id and address.
    leader: Mutex<Option<(Instant, Option<Leader>)>>,
    outages: Outages,
    pub metrics: super::metrics::NodeMetrics,
    /// The admin token's hash: this node answers `/metrics` itself.
    admin_hash: String,
}

/// Leader addresses that failed a forward and have not answered since.
/// During a failover every request fails the same way; one warning per
/// outage says it, the rest would only flood the log.
#[derive(Default)]
struct Outages(Mutex<HashSet<String>>);

impl Outages {
    /// Records a failed forward to `addr`; true if it starts an outage.
    fn failed(&self, addr: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(addr.to_owned())
    }

    /// Records an answer from `addr`; true if it ends an outage.
    fn answered(&self, addr: &str) -> bool {
        let mut set = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // Most forwards find no outage: skip the removal's hashing work.
        !set.is_empty() && set.remove(addr)
    }
}

/// A leader's node id and advertised address.
type Leader = (String, String);

impl Front {
    pub fn new(store: PgStore, node_id: String, admin_token: &str) -> Arc<Front> {
        // reqwest's rustls needs a process-wide provider even for plain
        // HTTP between nodes; an error means one is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Arc::new(Front {
            local: RwLock::new(None),
            store,
            client: reqwest::Client::builder()
                // Redirects and proxies are the client's business, not ours.
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .connect_timeout(Duration::from_secs(2))
                .build()
                .unwrap_or_default(),
            leader: Mutex::new(None),
            outages: Outages::default(),
            metrics: super::metrics::NodeMetrics::new(&node_id),
            admin_hash: crate::tenancy::hash(admin_token),
            node_id,
        })
    }

    /// Serves `router` from now on (this node leads), or forwards (`None`).
    pub fn set_local(&self, router: Option<Router>) {
        if router.is_none() {
            self.metrics.stand_by();
        }
        *self.local.write().unwrap_or_else(|p| p.into_inner()) = router;
        *self.leader.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    pub fn router(self: &Arc<Self>) -> Router {
        Router::new().fallback(handle).with_state(self.clone())
    }

    /// The leader's id and address, unless this node is (or no one is)
    /// the leader.
    async fn leader_addr(&self) -> Result<Option<Leader>, crate::store::StoreError> {
        if let Some((at, addr)) = self
            .leader
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            if at.elapsed() < LEADER_TTL {
                return Ok(addr);
            }
        }
        let lease = self
            .store
            .lease_get(ENGINE_LEASE)
            .await?
            .filter(|l| l.expires_in_ms > 0 && l.owner != self.node_id);
        let addr = match lease {
            Some(l) => self
                .store
                .nodes()
                .await?
                .into_iter()
                .find(|n| n.id == l.owner)
                .map(|n| (n.id, n.addr)),
            None => None,
        };
        *self.leader.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((Instant::now(), addr.clone()));
        Ok(addr)
    }

    /// Returns once `leader` no longer holds a live engine lease.
    async fn lease_moves_from(&self, leader: &str) {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            match self.store.lease_get(ENGINE_LEASE).await {
                Ok(Some(l)) if l.owner == leader && l.expires_in_ms > 0 => {}
                // Unknown is not moved: the database may be what stalls.
                Err(_) => {}
                Ok(_) => return,
            }
        }
    }

    async fn forward(&self, addr: &str, req: Request) -> Response {
        let (parts, body) = req.into_parts();
        let body = match axum::body::to_bytes(body, crate::api::MAX_PLUGIN_BYTES).await {
            Ok(b) => b,
            Err(e) => return unavailable(StatusCode::PAYLOAD_TOO_LARGE, &e.to_string()),
        };
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let mut out = self
            .client
            .request(parts.method, format!("{addr}{path}"))
            .body(body);
        for (name, value) in &parts.headers {
            if !hop_by_hop(name) && name != axum::http::header::HOST {
                out = out.header(name, value);
            }
        }
        out = out.header(FORWARDED_BY, self.node_id.as_str());
        let answer = match out.send().await {
            Ok(a) => {
                if self.outages.answered(addr) {
                    tracing::info!(leader = addr, "the leader answers forwarded requests again");
                }
                a
            }
            Err(e) => {
                if self.outages.failed(addr) {
                    tracing::warn!(
                        leader = addr,
                        "forwarding a request: {e} (further failures to this leader are logged at debug until it answers)"
                    );
                } else {
                    tracing::debug!(leader = addr, "forwarding a request: {e}");
                }
                // The leader may just have gone: look it up afresh next time.
                *self.leader.lock().unwrap_or_else(|p| p.into_inner()) = None;
                return unavailable(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the leader node did not answer; retry shortly",
                );
            }
        };
        let status = answer.status();
        let headers = answer.headers().clone();
        let bytes = match answer.bytes().await {
            Ok(b) => b,
            Err(_) => {
                return unavailable(
                    StatusCode::BAD_GATEWAY,
                    "the leader node's answer broke off; retry",
                )
            }
        };
        let mut resp = Response::new(Body::from(bytes));
        *resp.status_mut() = status;
        for (name, value) in &headers {
            if !hop_by_hop(name) && name != axum::http::header::CONTENT_LENGTH {
                resp.headers_mut().append(name, value.clone());
            }
        }
        if let Ok(v) = HeaderValue::from_str(&self.node_id) {
            resp.headers_mut()
                .insert(HeaderName::from_static(FORWARDED_BY), v);
        }
        resp
    }
}

fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
    )
}

/// The API's error shape, so clients read a forward's failure as any other.
fn unavailable(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({"error": {"code": "unavailable", "message": message}});
    let mut resp = (status, axum::Json(body)).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut()
            .insert("retry-after", HeaderValue::from_static("1"));
    }
    resp
}

async fn handle(State(front): State<Arc<Front>>, req: Request) -> Response {
    let local = front
        .local
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    if req.uri().path() == "/metrics" {
        return metrics(&front, local, req).await;
    }
    if let Some(router) = local {
        return match router.oneshot(req).await {
            Ok(resp) => resp,
            Err(never) => match never {},
        };
    }
    // A request another node already forwarded is not sent on again: two
    // nodes that each think the other leads must not bounce it forever.
    if req.headers().contains_key(FORWARDED_BY) {
        return unavailable(
            StatusCode::SERVICE_UNAVAILABLE,
            "this node is not the leader (a new one is being elected); retry shortly",
        );
    }
    match front.leader_addr().await {
        Ok(Some((leader, addr))) => {
            // A leader that stalls (paused, cut off) would hold the request
            // forever: once its lease has passed to another node or lapsed,
            // the client is told to retry, and reaches the new leader.
            let resp = tokio::select! {
                resp = front.forward(&addr, req) => resp,
                _ = front.lease_moves_from(&leader) => {
                    *front.leader.lock().unwrap_or_else(|p| p.into_inner()) = None;
                    unavailable(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the leader changed while it had the request (its outcome is unknown); retry",
                    )
                }
            };
            // A failed forward is answered here, without the leader's mark.
            front
                .metrics
                .forwarded(if resp.headers().contains_key(FORWARDED_BY) {
                    Forward::Answered
                } else {
                    Forward::Unavailable
                });
            resp
        }
        Ok(None) => {
            front.metrics.forwarded(Forward::Unavailable);
            unavailable(
                StatusCode::SERVICE_UNAVAILABLE,
                "no node leads the cluster right now (one is being elected); retry shortly",
            )
        }
        Err(e) => {
            front.metrics.forwarded(Forward::Unavailable);
            tracing::warn!("finding the leader: {e}");
            unavailable(
                StatusCode::SERVICE_UNAVAILABLE,
                "the database is unreachable from this node; retry shortly",
            )
        }
    }
}

/// `/metrics`, answered by every node itself (admin token): the node's
/// own series, after the engine's while it leads.
async fn metrics(front: &Front, local: Option<Router>, req: Request) -> Response {
    let token = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    if token.map(crate::tenancy::hash).as_deref() != Some(front.admin_hash.as_str()) {
        let body = serde_json::json!({"error": {"code": "unauthorized",
            "message": "/metrics needs the admin token (authorization: Bearer ...)"}});
        return (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    }
    let node = front.metrics.encode();
    let text = match local {
        Some(router) => {
            let resp = match router.oneshot(req).await {
                Ok(resp) => resp,
                Err(never) => match never {},
            };
            if !resp.status().is_success() {
                return resp;
            }
            match axum::body::to_bytes(resp.into_body(), usize::MAX).await {
                Ok(b) => super::metrics::join(&String::from_utf8_lossy(&b), &node),
                Err(_) => node,
            }
        }
        None => node,
    };
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::Outages;

    #[test]
    fn an_outage_is_reported_once_per_leader_until_it_answers() {
        let o = Outages::default();
        assert!(o.failed("http://a:1"));
        assert!(!o.failed("http://a:1"), "the same outage");
        assert!(o.failed("http://b:1"), "another leader's outage");
        assert!(!o.answered("http://c:1"), "no outage there");
        assert!(o.answered("http://a:1"));
        assert!(!o.answered("http://a:1"));
        assert!(o.failed("http://a:1"), "a new outage after it answered");
    }
}
