//! Whether a job change can be applied to a running allocation in place,
//! or needs a new allocation (a destructive update). Anything a task sees
//! at start (driver, config, environment, user, meta, resources, devices,
//! ports, log settings, lifecycle) is destructive; placement preferences,
//! counts and policies are not.

use wren_model::{Job, TaskGroup};

/// Whether moving an allocation of `old_tg` (of `old_job`) to `new_tg` (of
/// `new_job`) requires replacing it.
pub(crate) fn destructive(
    old_job: &Job,
    old_tg: &TaskGroup,
    new_job: &Job,
    new_tg: &TaskGroup,
) -> bool {
    if old_job.meta != new_job.meta
        || old_tg.meta != new_tg.meta
        || old_tg.networks != new_tg.networks
        || old_tg.ephemeral_disk != new_tg.ephemeral_disk
        || old_tg.tasks.len() != new_tg.tasks.len()
    {
        return true;
    }
    for new in &new_tg.tasks {
        let Some(old) = old_tg.task(&new.name) else {
            return true;
        };
        if old.driver != new.driver
            || old.user != new.user
            || old.config != new.config
            || old.env != new.env
            || old.meta != new.meta
            || old.resources != new.resources
            || old.logs != new.logs
            || old.lifecycle != new.lifecycle
            || old.leader != new.leader
            || old.kill_signal != new.kill_signal
        {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use wren_model::{Constraint, Operator, Task};

    fn job() -> (Job, TaskGroup) {
        let tg = TaskGroup {
            name: "g".into(),
            count: 2,
            tasks: vec![Task {
                name: "t".into(),
                driver: "exec".into(),
                ..Task::default()
            }],
            ..TaskGroup::default()
        };
        (Job::default(), tg)
    }

    #[test]
    fn counts_and_constraints_are_in_place() {
        let (j, tg) = job();
        let mut t2 = tg.clone();
        t2.count = 5;
        t2.constraints
            .push(Constraint::new("${attr.cpu.arch}", Operator::Eq, "arm64"));
        t2.tasks[0].kill_timeout = wren_model::Duration::from_secs(30);
        assert!(!destructive(&j, &tg, &j, &t2));
    }

    #[test]
    fn task_changes_are_destructive() {
        let (j, tg) = job();
        let mut t2 = tg.clone();
        t2.tasks[0].resources.memory_mb = 512;
        assert!(destructive(&j, &tg, &j, &t2));
        let mut t3 = tg.clone();
        t3.tasks[0].env.insert("A".into(), "1".into());
        assert!(destructive(&j, &tg, &j, &t3));
        let mut t4 = tg.clone();
        t4.tasks[0].name = "other".into();
        assert!(destructive(&j, &tg, &j, &t4));
        let mut j2 = j.clone();
        j2.meta.insert("k".into(), "v".into());
        assert!(destructive(&j, &tg, &j2, &tg));
    }
}
