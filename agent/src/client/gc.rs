//! Garbage collection of finished allocations: their directories (logs
//! included) and local records. An allocation is collected once every task
//! is dead and its last status update was acknowledged, and either the
//! servers no longer list it or more than `client.gc_max_allocs` finished
//! allocations are kept (the oldest go first). Job versions no kept
//! allocation runs are dropped with them.

use std::sync::Arc;
use std::time::Duration;

use smol::future::FutureExt as _;

use super::Core;
use super::allocdir::AllocDir;

/// How often the collector looks even when nothing woke it.
const EVERY: Duration = Duration::from_secs(60);

/// Collects what can be collected now; returns the allocations removed.
pub async fn collect(core: &Core) -> Vec<String> {
    let victims = core.collectable();
    let mut removed = Vec::new();
    for id in victims {
        let Some(dir) = core.forget(&id) else {
            continue;
        };
        let gone = smol::unblock(move || AllocDir { root: dir }.destroy()).await;
        if let Err(e) = gone {
            eprintln!("wren client: collecting allocation {id}: {e}");
        }
        if let Err(e) = core.ctx.db.remove_alloc(&id) {
            eprintln!("wren client: collecting allocation {id}: {e}");
        }
        removed.push(id);
    }
    if !removed.is_empty() {
        let db = &core.ctx.db;
        if let Err(e) = db.prune_jobs().and_then(|_| db.durable()) {
            eprintln!("wren client: {e}");
        }
    }
    removed
}

/// Collects whenever woken (an acknowledgement, a reconcile), and every
/// minute.
pub async fn gc_loop(core: Arc<Core>) {
    loop {
        let woken = core.events.gc.listen();
        async {
            woken.await;
        }
        .or(async {
            smol::Timer::after(EVERY).await;
        })
        .await;
        collect(&core).await;
    }
}
