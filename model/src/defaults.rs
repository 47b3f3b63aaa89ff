//! Nomad's defaults, per job type, in one place. The jobspec starts every
//! block from these and overrides what the file sets, which is how Nomad's
//! `Canonicalize` and `Merge` behave.

use crate::duration::Duration;
use crate::group::{
    DelayFunction, DisconnectStrategy, EphemeralDisk, HealthCheck, MigrateStrategy,
    ReconcileStrategy, ReschedulePolicy, RestartMode, RestartPolicy, UpdateStrategy,
};
use crate::job::JobType;
use crate::task::{LogConfig, Resources};

/// Job priority when none is given.
pub const PRIORITY: u8 = 50;
/// Lowest and highest job priority.
pub const PRIORITY_RANGE: std::ops::RangeInclusive<u8> = 1..=100;
/// The region when none is given.
pub const REGION: &str = "global";
/// The node pool when none is given.
pub const NODE_POOL: &str = "default";
/// Datacenters when none are given: all of them.
pub const DATACENTER_ANY: &str = "*";
/// CPU in MHz when a task sets none.
pub const CPU_MHZ: u32 = 100;
/// Memory in MB when a task sets none.
pub const MEMORY_MB: u64 = 300;
/// The smallest memory a task may ask for, in MB (Nomad's minimum).
pub const MIN_MEMORY_MB: u64 = 10;
/// Time between the kill signal and SIGKILL.
pub const KILL_TIMEOUT: Duration = Duration::from_secs(5);
/// The signal that asks a task to stop (Nomad's default).
pub const KILL_SIGNAL: &str = "SIGINT";
/// Affinity weight when none is given.
pub const AFFINITY_WEIGHT: i8 = 50;
/// Spread weight when none is given.
pub const SPREAD_WEIGHT: u8 = 50;
/// Smallest delay between reschedules.
pub const RESCHEDULE_MIN_DELAY: Duration = Duration::from_secs(5);
/// Smallest interval for a limited reschedule policy.
pub const RESCHEDULE_MIN_INTERVAL: Duration = Duration::from_secs(15);

/// Restarts: service and system tasks get 2 attempts in 30 minutes, batch
/// and sysbatch 3 in 24 hours; both wait 15 seconds and then fail.
pub fn restart(job_type: JobType) -> RestartPolicy {
    match job_type {
        JobType::Service | JobType::System => RestartPolicy {
            attempts: 2,
            interval: Duration::from_mins(30),
            delay: Duration::from_secs(15),
            mode: RestartMode::Fail,
        },
        JobType::Batch | JobType::Sysbatch => RestartPolicy {
            attempts: 3,
            interval: Duration::from_hours(24),
            delay: Duration::from_secs(15),
            mode: RestartMode::Fail,
        },
    }
}

/// Reschedules: service jobs forever with exponential backoff from 30s to
/// 1h; batch jobs once a day after 5s; system jobs never.
pub fn reschedule(job_type: JobType) -> Option<ReschedulePolicy> {
    match job_type {
        JobType::Service => Some(ReschedulePolicy {
            attempts: 0,
            interval: Duration::ZERO,
            delay: Duration::from_secs(30),
            delay_function: DelayFunction::Exponential,
            max_delay: Duration::from_hours(1),
            unlimited: true,
        }),
        JobType::Batch => Some(ReschedulePolicy {
            attempts: 1,
            interval: Duration::from_hours(24),
            delay: Duration::from_secs(5),
            delay_function: DelayFunction::Constant,
            max_delay: Duration::ZERO,
            unlimited: false,
        }),
        JobType::System | JobType::Sysbatch => None,
    }
}

/// Rolling updates, for service and system jobs.
pub fn update() -> UpdateStrategy {
    UpdateStrategy {
        stagger: Duration::from_secs(30),
        max_parallel: 1,
        health_check: HealthCheck::Checks,
        min_healthy_time: Duration::from_secs(10),
        healthy_deadline: Duration::from_mins(5),
        progress_deadline: Duration::from_mins(10),
        auto_revert: false,
        auto_promote: false,
        canary: 0,
    }
}

/// Whether a job type gets an update strategy by default.
pub fn has_update(job_type: JobType) -> bool {
    matches!(job_type, JobType::Service | JobType::System)
}

/// Migration off draining nodes, for service jobs.
pub fn migrate() -> MigrateStrategy {
    MigrateStrategy {
        max_parallel: 1,
        health_check: HealthCheck::Checks,
        min_healthy_time: Duration::from_secs(10),
        healthy_deadline: Duration::from_mins(5),
    }
}

/// A `disconnect` block's defaults for the fields it leaves out.
pub fn disconnect() -> DisconnectStrategy {
    DisconnectStrategy {
        lost_after: Duration::ZERO,
        replace: true,
        reconcile: ReconcileStrategy::BestScore,
        stop_on_client_after: None,
    }
}

/// Scratch disk: 300 MB, neither sticky nor migrated.
pub fn ephemeral_disk() -> EphemeralDisk {
    EphemeralDisk {
        size_mb: 300,
        sticky: false,
        migrate: false,
    }
}

/// Log rotation: 10 files of 10 MB per stream.
pub fn logs() -> LogConfig {
    LogConfig {
        max_files: 10,
        max_file_size_mb: 10,
        disabled: false,
    }
}

/// Resources: 100 MHz and 300 MB.
pub fn resources() -> Resources {
    Resources {
        cpu: CPU_MHZ,
        cores: 0,
        memory_mb: MEMORY_MB,
        memory_max_mb: 0,
        devices: Vec::new(),
    }
}
