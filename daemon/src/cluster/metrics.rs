//! What one node of a cluster reports about itself. Every node answers
//! `/metrics` itself (a standby does not forward it to the leader), so
//! each node is scraped on its own: the leader adds the engine's metrics,
//! a standby has only these. Each carries the node's id as a label, so
//! the series of several nodes never merge.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::metrics::{labels, Labels};

pub struct NodeMetrics {
    registry: Registry,
    node: String,
    leader: Family<Labels, Gauge>,
    epoch: Family<Labels, Gauge>,
    terms: Family<Labels, Counter>,
    renewals: Family<Labels, Counter>,
    forwarded: Family<Labels, Counter>,
}

/// How a renewal of the engine lease went.
#[derive(Debug, Clone, Copy)]
pub enum Renewal {
    Renewed,
    /// Another node holds the lease, or it lapsed.
    Lost,
    /// The database could not be asked.
    Failed,
}

/// What became of an API request this node forwarded to the leader.
#[derive(Debug, Clone, Copy)]
pub enum Forward {
    /// The leader answered (whatever its status).
    Answered,
    /// No answer: no leader, an unreachable one, or the leader changed.
    Unavailable,
}

impl NodeMetrics {
    pub fn new(node: &str) -> Self {
        let mut registry = Registry::with_prefix("tidemark_node");
        let m = NodeMetrics {
            registry: Registry::default(),
            node: node.to_owned(),
            leader: Family::default(),
            epoch: Family::default(),
            terms: Family::default(),
            renewals: Family::default(),
            forwarded: Family::default(),
        };
        registry.register(
            "leader",
            "1 while this node holds the engine lease",
            m.leader.clone(),
        );
        registry.register(
            "epoch",
            "The epoch of the engine lease this node holds (0 while it stands by)",
            m.epoch.clone(),
        );
        registry.register(
            "terms",
            "Times this node took the engine lease",
            m.terms.clone(),
        );
        registry.register(
            "lease_renewals",
            "Renewals of the engine lease, by outcome (renewed, lost, failed)",
            m.renewals.clone(),
        );
        registry.register(
            "forwarded_requests",
            "API requests forwarded to the leader, by outcome (answered, unavailable)",
            m.forwarded.clone(),
        );
        let m = NodeMetrics { registry, ..m };
        m.stand_by();
        m
    }

    fn me(&self) -> Labels {
        labels(&[("node", &self.node)])
    }

    fn with(&self, key: &'static str, value: &str) -> Labels {
        labels(&[("node", &self.node), (key, value)])
    }

    pub fn lead(&self, epoch: i64) {
        self.leader.get_or_create(&self.me()).set(1);
        self.epoch.get_or_create(&self.me()).set(epoch);
        self.terms.get_or_create(&self.me()).inc();
    }

    pub fn stand_by(&self) {
        self.leader.get_or_create(&self.me()).set(0);
        self.epoch.get_or_create(&self.me()).set(0);
        // Present from the start, so a rate over it has a first sample.
        let _ = self.terms.get_or_create(&self.me());
    }

    pub fn renewal(&self, outcome: Renewal) {
        let name = match outcome {
            Renewal::Renewed => "renewed",
            Renewal::Lost => "lost",
            Renewal::Failed => "failed",
        };
        self.renewals
            .get_or_create(&self.with("outcome", name))
            .inc();
    }

    pub fn forwarded(&self, outcome: Forward) {
        let name = match outcome {
            Forward::Answered => "answered",
            Forward::Unavailable => "unavailable",
        };
        self.forwarded
            .get_or_create(&self.with("outcome", name))
            .inc();
    }

    /// The text exposition format (ends with `# EOF`).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// `engine`'s exposition followed by the node's, as one document: the
/// first `# EOF` goes, since the format allows only one, at the end.
pub fn join(engine: &str, node: &str) -> String {
    let body = engine.strip_suffix("# EOF\n").unwrap_or(engine);
    format!("{body}{node}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_says_who_it_is_whether_it_leads_and_what_it_forwarded() {
        let m = NodeMetrics::new("n2");
        let text = m.encode();
        assert!(
            text.contains("tidemark_node_leader{node=\"n2\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("tidemark_node_terms_total{node=\"n2\"} 0"),
            "{text}"
        );
        m.lead(7);
        m.renewal(Renewal::Renewed);
        m.renewal(Renewal::Renewed);
        m.renewal(Renewal::Lost);
        m.forwarded(Forward::Unavailable);
        m.stand_by();
        m.lead(9);
        let text = m.encode();
        for line in [
            "tidemark_node_leader{node=\"n2\"} 1",
            "tidemark_node_epoch{node=\"n2\"} 9",
            "tidemark_node_terms_total{node=\"n2\"} 2",
            "tidemark_node_lease_renewals_total{node=\"n2\",outcome=\"renewed\"} 2",
            "tidemark_node_lease_renewals_total{node=\"n2\",outcome=\"lost\"} 1",
            "tidemark_node_forwarded_requests_total{node=\"n2\",outcome=\"unavailable\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        let joined = join("# HELP a x\na 1\n# EOF\n", &text);
        assert_eq!(joined.matches("# EOF").count(), 1, "{joined}");
        assert!(
            joined.starts_with("# HELP a x\na 1\n# HELP tidemark_node"),
            "{joined}"
        );
        assert!(joined.ends_with("# EOF\n"), "{joined}");
    }
}
