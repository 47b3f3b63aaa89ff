//! The scheduling machinery of a server, around the pure scheduler in
//! `wren_sched`:
//!
//! - on every server, workers ([`worker`]) that take evaluations from the
//!   leader's broker, schedule them on this server's replica and submit
//!   the plans to the leader;
//! - on the leader only, while it leads: the evaluation broker
//!   ([`broker`]) fed from the state, the plan applier ([`plan_apply`]),
//!   heartbeat timers that mark silent nodes down ([`heartbeat`]), and the
//!   housekeeping that writes what the broker decided (cancelled and failed
//!   evaluations) and retries evaluations blocked after refused plans;
//! - the endpoints: the client protocol ([`client_endpoints`]), `job plan`
//!   ([`plan_endpoint`]) and the internal calls workers and followers make
//!   to the leader ([`rpc`], [`internal`]).
//!
//! Leadership is followed through the Raft status: when this server
//! becomes leader it first confirms it with a read barrier (so every entry
//! committed before is applied), then rebuilds the broker and the
//! heartbeat timers from the state; when it stops leading everything
//! leader-only is dropped and waiting workers look for the new leader.
//!
//! Deliberately not here: the scheduling decisions themselves (`wren_sched`),
//! the read/write API for jobs, nodes and evaluations (the region's
//! endpoints create evaluations in the state; the broker picks them up from
//! there), and the client agent.

mod broker;
mod client_endpoints;
mod diff;
mod evals;
mod heartbeat;
mod internal;
pub mod plan_apply;
mod plan_endpoint;
pub mod rpc;
pub mod view;
mod worker;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use smol::Task;
use wren_model::Evaluation;
use wren_sched::SchedConfig;
use wren_sched::broker::{BrokerConfig, BrokerStats};
use wren_sched::heartbeat::HeartbeatConfig;
use wren_state::{Command, Role, UpsertEvals};

pub use broker::Broker;

use self::heartbeat::Liveness;
use self::plan_apply::PlanQueue;
use super::core::Core;
use crate::config::ServerConfig;
use crate::wire::{Method, Roles, Router};

/// How often evaluations blocked after refused plans are retried
/// (Nomad: every minute).
const RETRY_REFUSED: Duration = Duration::from_secs(60);

/// What the machinery is configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Workers on this server.
    pub workers: usize,
    /// Heartbeat TTLs.
    pub heartbeat: HeartbeatConfig,
    /// Broker delivery limits and timeouts.
    pub broker: BrokerConfig,
    /// The scheduler's tunables.
    pub sched: SchedConfig,
}

impl Settings {
    /// From the agent's `server { ... }` block: one worker per core unless
    /// `num_schedulers` says otherwise.
    pub fn from_config(c: &ServerConfig) -> Settings {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Settings {
            workers: c.num_schedulers.unwrap_or(cores),
            heartbeat: HeartbeatConfig {
                max_per_second: f64::from(c.max_heartbeats_per_second.max(1)),
                min_ttl: c.min_heartbeat_ttl,
                grace: c.heartbeat_grace,
                failover_ttl: c.failover_heartbeat_ttl,
            },
            broker: BrokerConfig::default(),
            sched: SchedConfig::default(),
        }
    }
}

/// What the parts share.
#[derive(Debug)]
pub(crate) struct Shared {
    core: Core,
    broker: Arc<Broker>,
    plans: PlanQueue,
    liveness: Liveness,
    sched_config: SchedConfig,
}

/// The running machinery of one server.
#[derive(Debug, Clone)]
pub struct Scheduling {
    shared: Arc<Shared>,
    tasks: Arc<Mutex<Vec<Task<()>>>>,
}

impl Scheduling {
    /// Registers the endpoints on `router` and starts the workers and the
    /// leadership watch on the core's executor.
    pub fn start(core: &Core, settings: Settings, router: &mut Router) -> Scheduling {
        let shared = Arc::new(Shared {
            core: core.clone(),
            broker: Arc::new(Broker::new(settings.broker)),
            plans: PlanQueue::default(),
            liveness: Liveness::new(settings.heartbeat),
            sched_config: settings.sched,
        });
        register(&shared, router);
        let mut tasks = vec![core.ex.spawn(leadership(shared.clone()))];
        for _ in 0..settings.workers {
            tasks.push(core.ex.spawn(worker::run(shared.clone())));
        }
        Scheduling {
            shared,
            tasks: Arc::new(Mutex::new(tasks)),
        }
    }

    /// Stops every worker and leader service (before the Raft node stops).
    pub fn stop(&self) {
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        drop(tasks);
        step_down(&self.shared);
    }

    /// Whether this server runs the region's broker (it leads).
    pub fn is_leading(&self) -> bool {
        self.shared.broker.is_enabled()
    }

    /// The broker's counts (all zero off the leader).
    pub fn broker_stats(&self) -> BrokerStats {
        self.shared.broker.stats()
    }

    /// What this server's plan applier did (while it led).
    pub fn plan_stats(&self) -> plan_apply::PlanStats {
        self.shared.plans.stats()
    }

    /// Evaluations that failed their delivery limit since this server
    /// became leader.
    pub fn failed_evals(&self) -> Vec<Evaluation> {
        self.shared.broker.failed()
    }
}

fn register(shared: &Arc<Shared>, router: &mut Router) {
    macro_rules! route {
        ($method:expr, $path:expr, $roles:expr, $handler:path) => {{
            let s = shared.clone();
            router.route($method, $path, $roles, move |req| $handler(s.clone(), req));
        }};
    }
    route!(
        Method::Post,
        rpc::DEQUEUE_PATH,
        Roles::SERVER,
        internal::dequeue
    );
    route!(Method::Post, rpc::ACK_PATH, Roles::SERVER, internal::ack);
    route!(Method::Post, rpc::PLAN_PATH, Roles::SERVER, internal::plan);
    route!(
        Method::Post,
        rpc::REGISTER_PATH,
        Roles::SERVER,
        client_endpoints::forwarded
    );
    route!(
        Method::Post,
        rpc::HEARTBEAT_PATH,
        Roles::SERVER,
        client_endpoints::forwarded
    );
    let clients = Roles::CLIENT | Roles::SERVER;
    route!(
        Method::Post,
        "/v1/client/register",
        clients,
        client_endpoints::register
    );
    route!(
        Method::Post,
        "/v1/client/heartbeat",
        clients,
        client_endpoints::heartbeat
    );
    route!(
        Method::Post,
        "/v1/client/allocs",
        clients,
        client_endpoints::update_allocs
    );
    let s = shared.clone();
    router.observable("/v1/client/allocs", Roles::ANY, move |req| {
        client_endpoints::allocs(s.clone(), req)
    });
    route!(
        Method::Post,
        "/v1/job/:id/plan",
        Roles::CLI | Roles::SERVER,
        plan_endpoint::plan
    );
}

/// Follows leadership: runs the leader's services while this server leads.
async fn leadership(shared: Arc<Shared>) {
    let node = &shared.core.node;
    loop {
        let Some(status) = node
            .wait_for_status(Duration::from_secs(3600), |s| s.role == Role::Leader)
            .await
        else {
            // An hour without leading, or the node stopped: do not spin.
            smol::Timer::after(Duration::from_millis(500)).await;
            continue;
        };
        // Everything committed before this term is applied before the
        // state is read: nothing pending is missed.
        if node.read_barrier().await.is_err() {
            smol::Timer::after(Duration::from_millis(100)).await;
            continue;
        }
        let term = status.term;
        let lost = async {
            while node
                .wait_for_status(Duration::from_secs(3600), |s| {
                    s.role != Role::Leader || s.term != term
                })
                .await
                .is_none()
            {
                smol::Timer::after(Duration::from_millis(500)).await;
            }
        };
        smol::future::or(lead(shared.clone()), lost).await;
        step_down(&shared);
    }
}

/// The leader's services; they stop when this future is dropped.
async fn lead(shared: Arc<Shared>) {
    let core = &shared.core;
    let state = core.node.snapshot();
    let now = crate::ids::now_nanos();
    shared.broker.enable(&state, now);
    shared.liveness.enable(&state, now);
    let _tasks = [
        core.ex
            .spawn(shared.plans.open(core.clone(), shared.broker.clone())),
        core.ex.spawn(feed(shared.clone(), state.index())),
        core.ex.spawn(housekeeping(shared.clone())),
        core.ex.spawn(heartbeat::watch(shared.clone())),
    ];
    std::future::pending::<()>().await;
}

fn step_down(shared: &Shared) {
    shared.plans.close();
    shared.broker.disable();
    shared.liveness.disable();
}

/// Hands every newly applied state to the broker.
async fn feed(shared: Arc<Shared>, mut seen: u64) {
    loop {
        let next = shared
            .core
            .node
            .wait_for(Duration::from_secs(60), |s| {
                (s.index() > seen).then(|| s.clone())
            })
            .await;
        match next {
            Some(state) => {
                shared.broker.observe(&state, seen);
                seen = state.index();
            }
            // Nothing new (or the node is stopping): do not spin.
            None => {
                smol::Timer::after(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Advances the broker's clock and writes what it decided.
async fn housekeeping(shared: Arc<Shared>) {
    let mut unwritten: Vec<Evaluation> = Vec::new();
    let mut last_retry = Instant::now();
    loop {
        let changes = shared.broker.changes();
        let now = crate::ids::now_nanos();
        shared.broker.tick(now);
        unwritten.extend(shared.broker.take_writes(now));
        if !unwritten.is_empty() {
            let evals = std::mem::take(&mut unwritten);
            if let Err(e) = shared
                .core
                .write(Command::UpsertEvals(UpsertEvals {
                    evals: evals.clone(),
                }))
                .await
            {
                eprintln!(
                    "wren server: writing {} evaluation(s) the broker settled: {e}",
                    evals.len()
                );
                unwritten = evals;
            }
        }
        if last_retry.elapsed() >= RETRY_REFUSED {
            last_retry = Instant::now();
            shared
                .broker
                .retry_refused(shared.core.node.snapshot().index());
        }
        let wait = shared
            .broker
            .next_deadline()
            .map_or(Duration::from_secs(1), |at| {
                Duration::from_nanos(u64::try_from(at.saturating_sub(now)).unwrap_or(0))
            })
            .min(Duration::from_secs(1));
        let wait = if unwritten.is_empty() {
            wait
        } else {
            wait.max(Duration::from_millis(200))
        };
        let timer = async {
            smol::Timer::after(wait).await;
        };
        smol::future::or(changes, timer).await;
    }
}
