//! The nodes of a cluster (`GET /nodes`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::cluster::{ClusterStatus, NodeStatus};

/// One daemon sharing the store.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Node {
    pub id: String,
    /// Where other nodes forward API requests.
    pub addr: String,
    pub started_ms: i64,
    /// Milliseconds since its last heartbeat, by the database's clock.
    pub heartbeat_age_ms: i64,
    /// Shutting down: finishing its attempts, then releasing its lease.
    pub draining: bool,
    /// Attempts it was running at its last heartbeat.
    pub attempts: u64,
    /// Holds the engine lease: plans, materializes and runs attempts.
    pub leader: bool,
    /// The leases it holds (`engine` for the leader).
    pub leases: Vec<String>,
}

/// The cluster as the answering node sees it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NodeList {
    /// `embedded` (one node, always the leader) or `postgres`.
    pub store: String,
    /// The node that answered (with a forwarded request, the leader).
    pub this_node: String,
    /// The holder of the engine lease; absent while one is being elected.
    pub leader: Option<String>,
    /// The engine lease's epoch, its fencing token (0 when embedded).
    pub epoch: i64,
    /// Until the leader's lease lapses unless renewed.
    pub lease_expires_in_ms: Option<i64>,
    pub nodes: Vec<Node>,
    /// Always null: every node is listed at once.
    pub next: Option<String>,
}

impl From<NodeStatus> for Node {
    fn from(n: NodeStatus) -> Self {
        Node {
            leases: if n.leader {
                vec!["engine".into()]
            } else {
                Vec::new()
            },
            id: n.id,
            addr: n.addr,
            started_ms: n.started_ms,
            heartbeat_age_ms: n.heartbeat_age_ms,
            draining: n.draining,
            attempts: n.attempts,
            leader: n.leader,
        }
    }
}

impl From<ClusterStatus> for NodeList {
    fn from(c: ClusterStatus) -> Self {
        NodeList {
            store: c.store.into(),
            this_node: c.this_node,
            leader: c.leader,
            epoch: c.epoch,
            lease_expires_in_ms: c.lease_expires_in_ms,
            nodes: c.nodes.into_iter().map(Node::from).collect(),
            next: None,
        }
    }
}
