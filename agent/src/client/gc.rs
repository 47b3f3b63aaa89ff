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
///
/// The runners are dropped first, all at once, so their memory goes back
/// even while the directories are still being removed; the directories
/// and local records then go in one blocking call, not one per
/// allocation. A crash in between leaves local records, which the next
/// start restores as finished allocations and collects again.
pub async fn collect(core: &Core) -> Vec<String> {
    let victims: Vec<(String, std::path::PathBuf)> = core
        .collectable()
        .into_iter()
        .filter_map(|id| core.forget(&id).map(|dir| (id, dir)))
        .collect();
    if victims.is_empty() {
        return Vec::new();
    }
    let ctx = core.ctx.clone();
    smol::unblock(move || {
        let db = &ctx.db;
        let mut removed = Vec::with_capacity(victims.len());
        for (id, dir) in victims {
            if let Err(e) = (AllocDir { root: dir }).destroy() {
                eprintln!("wren client: collecting allocation {id}: {e}");
            }
            if let Err(e) = db.remove_alloc(&id) {
                eprintln!("wren client: collecting allocation {id}: {e}");
            }
            removed.push(id);
        }
        if let Err(e) = db.prune_jobs().and_then(|_| db.durable()) {
            eprintln!("wren client: {e}");
        }
        removed
    })
    .await
}

/// Collects at once (what a restart restored may be over the limit), then
/// whenever woken (an acknowledgement, a reconcile), and every minute.
pub async fn gc_loop(core: Arc<Core>) {
    loop {
        let woken = core.events.gc.listen();
        collect(&core).await;
        async {
            woken.await;
        }
        .or(async {
            smol::Timer::after(EVERY).await;
        })
        .await;
    }
}
