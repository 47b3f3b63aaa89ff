//! Fixtures shared by the scheduler's integration tests.

use wren_model::{DriverInfo, Node, NodeResources, NodeStatus};

/// A ready node in `dc1`'s default pool with `resources` and one healthy
/// `driver`.
pub fn ready_node(id: &str, resources: NodeResources, driver: &str) -> Node {
    let mut n = Node {
        id: id.into(),
        name: id.into(),
        datacenter: "dc1".into(),
        node_pool: "default".into(),
        status: NodeStatus::Ready,
        resources,
        ..Node::default()
    };
    n.drivers.insert(
        driver.into(),
        DriverInfo {
            detected: true,
            healthy: true,
            ..DriverInfo::default()
        },
    );
    n
}
