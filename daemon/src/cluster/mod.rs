//! Several daemons over one PostgreSQL store (high availability).
//!
//! Every node serves the API; one node at a time, the holder of the engine
//! lease, runs the engine: it plans, materializes backfills and executes
//! attempts. The others stand by: they forward API requests to the leader
//! ([`front`]) and try to take the lease whenever it lapses ([`node`]).
//! The leader's writes go through a store handle fenced by the lease's
//! epoch, so a leader that stalls past its lease (a pause, a partition)
//! commits nothing once another node has taken over, and steps down when it
//! notices. With the embedded sled store there is one node, always leader.
//!
//! What this does not do yet (see `docs/scale-out.md`): split attempts of
//! one cluster across nodes. Standbys add availability, not capacity.

pub mod front;
pub mod metrics;
pub mod node;
pub mod tenure;

use crate::store::{PgStore, StoreError, ENGINE_LEASE};

/// Where this node is known to the others.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub id: String,
    /// The URL other nodes forward API requests to.
    pub advertise: String,
    /// How long the engine lease lasts without renewal.
    pub lease: std::time::Duration,
}

/// This daemon among the nodes, as the API reports it.
#[derive(Clone)]
pub enum Membership {
    /// The embedded store: this node alone, always the leader.
    Embedded {
        id: String,
        addr: String,
        started_ms: i64,
    },
    /// A PostgreSQL store shared with other nodes.
    Shared { store: PgStore, id: String },
}

/// One node, as `GET /api/v1/nodes` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    pub id: String,
    pub addr: String,
    pub started_ms: i64,
    /// Milliseconds since its last heartbeat (0 for the embedded node).
    pub heartbeat_age_ms: i64,
    pub draining: bool,
    /// Attempts it was running at its last heartbeat.
    pub attempts: u64,
    /// Holds the engine lease.
    pub leader: bool,
}

/// The cluster as one node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterStatus {
    /// `embedded` or `postgres`.
    pub store: &'static str,
    /// The node that answered.
    pub this_node: String,
    pub leader: Option<String>,
    /// The engine lease's epoch (its fencing token); 0 when embedded.
    pub epoch: i64,
    /// Until the leader's lease lapses unless renewed (negative: lapsed).
    pub lease_expires_in_ms: Option<i64>,
    pub nodes: Vec<NodeStatus>,
}

impl Membership {
    pub fn node_id(&self) -> &str {
        match self {
            Membership::Embedded { id, .. } | Membership::Shared { id, .. } => id,
        }
    }

    /// `attempts` is this node's count now (the embedded node has no
    /// heartbeat to carry it).
    pub async fn status(&self, attempts: usize) -> Result<ClusterStatus, StoreError> {
        match self {
            Membership::Embedded {
                id,
                addr,
                started_ms,
            } => Ok(ClusterStatus {
                store: "embedded",
                this_node: id.clone(),
                leader: Some(id.clone()),
                epoch: 0,
                lease_expires_in_ms: None,
                nodes: vec![NodeStatus {
                    id: id.clone(),
                    addr: addr.clone(),
                    started_ms: *started_ms,
                    heartbeat_age_ms: 0,
                    draining: false,
                    attempts: attempts as u64,
                    leader: true,
                }],
            }),
            Membership::Shared { store, id } => {
                let lease = store
                    .lease_get(ENGINE_LEASE)
                    .await?
                    .filter(|l| l.expires_in_ms > 0);
                let nodes = store.nodes().await?;
                let leader = lease.as_ref().map(|l| l.owner.clone());
                Ok(ClusterStatus {
                    store: "postgres",
                    this_node: id.clone(),
                    epoch: lease.as_ref().map_or(0, |l| l.epoch),
                    lease_expires_in_ms: lease.as_ref().map(|l| l.expires_in_ms),
                    nodes: nodes
                        .into_iter()
                        .map(|n| NodeStatus {
                            leader: leader.as_deref() == Some(n.id.as_str()),
                            id: n.id,
                            addr: n.addr,
                            started_ms: n.started_ms,
                            heartbeat_age_ms: n.heartbeat_age_ms,
                            draining: n.draining,
                            attempts: n.attempts.max(0) as u64,
                        })
                        .collect(),
                    leader,
                })
            }
        }
    }
}
