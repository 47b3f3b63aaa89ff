//! Forming the region. A single-server region (`bootstrap_expect = 1`, the
//! dev agent) initializes itself; larger regions find each other through
//! `retry_join` and bootstrap exactly once.

use std::time::Duration;

use wren_state::{Bootstrap, NodeError, Peer};

use super::core::Core;

/// Initializes a one-server region made of this server. Harmless when the
/// region already exists (a restart): nothing changes.
pub async fn single(core: &Core) -> Result<Bootstrap, NodeError> {
    let me = Peer {
        id: core.node.id(),
        addr: core.identity.addr.clone(),
    };
    let done = core.node.initialize([me]).await?;
    core.node.wait_for_leader(Duration::from_secs(30)).await;
    Ok(done)
}
