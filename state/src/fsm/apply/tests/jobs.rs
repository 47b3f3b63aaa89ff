//! Registering, stopping and purging jobs.

use super::*;

#[test]
fn register_creates_version_zero_with_its_eval() {
    let mut s = State::new();
    let out = s
        .apply(7, at(0, register(job("web"), Some(eval("e1", "web")))))
        .unwrap();
    assert_eq!(
        out,
        Outcome::Job {
            job_id: "web".into(),
            version: 0,
            job_modify_index: 7,
            new_version: true
        }
    );
    let j = s.job("web").unwrap();
    assert_eq!(
        (
            j.version,
            j.create_index,
            j.modify_index,
            j.job_modify_index
        ),
        (0, 7, 7, 7)
    );
    assert_eq!(j.submit_time, T0);
    assert_eq!(
        j.status,
        JobStatus::Pending,
        "a pending eval makes it pending"
    );
    let e = s.eval("e1").unwrap();
    assert_eq!(
        (e.create_index, e.modify_index, e.job_modify_index),
        (7, 7, 7)
    );
    assert_eq!(e.create_time, T0);
    assert_eq!(s.table_index(Table::Jobs), 7);
    assert_eq!(s.table_index(Table::Evals), 7);
    assert_eq!(s.table_index(Table::Nodes), 0);
    assert_eq!(s.evals_by_job("web").count(), 1);
}

#[test]
fn register_identical_spec_keeps_the_version() {
    let mut s = base();
    let out = s.apply(3, at(3, register(job("web"), None))).unwrap();
    assert!(matches!(
        out,
        Outcome::Job {
            version: 0,
            new_version: false,
            job_modify_index: 2,
            ..
        }
    ));
    assert_eq!(s.job_versions("web").len(), 1);
    assert_eq!(s.job("web").unwrap().modify_index, 3);
}

#[test]
fn register_changed_spec_adds_a_version() {
    let mut s = base();
    let mut changed = job("web");
    changed.priority = 70;
    let out = s.apply(3, at(3, register(changed, None))).unwrap();
    assert!(matches!(
        out,
        Outcome::Job {
            version: 1,
            new_version: true,
            job_modify_index: 3,
            ..
        }
    ));
    let versions = s.job_versions("web");
    assert_eq!(
        versions.iter().map(|j| j.version).collect::<Vec<_>>(),
        vec![1, 0]
    );
    assert_eq!(s.job("web").unwrap().create_index, 2);
    assert_eq!(s.job_version("web", 0).unwrap().priority, 50);
}

#[test]
fn register_with_check_index() {
    let mut s = base();
    let mut changed = job("web");
    changed.priority = 70;
    let stale = Command::RegisterJob(RegisterJob {
        job: changed.clone(),
        eval: None,
        enforce_index: Some(1),
    });
    let err = s.apply(3, at(3, stale)).unwrap_err();
    assert_eq!(
        err,
        ApplyError::IndexMismatch {
            job: "web".into(),
            expected: 1,
            actual: 2
        }
    );
    let fresh = Command::RegisterJob(RegisterJob {
        job: changed,
        eval: None,
        enforce_index: Some(2),
    });
    s.apply(4, at(4, fresh)).unwrap();
    assert_eq!(s.job("web").unwrap().version, 1);
}

#[test]
fn register_rejects_an_eval_for_another_job() {
    let mut s = State::new();
    let err = s
        .apply(1, at(0, register(job("web"), Some(eval("e1", "db")))))
        .unwrap_err();
    assert!(matches!(err, ApplyError::Invalid(_)));
    assert!(
        s.job("web").is_none(),
        "a failed command leaves nothing behind"
    );
    assert_eq!(s.index(), 1);
    assert_eq!(s.table_index(Table::Jobs), 0);
}

#[test]
fn stop_makes_a_new_stopped_version_and_purge_removes_all() {
    let mut s = base();
    let stop = Command::DeregisterJob(DeregisterJob {
        job_id: "web".into(),
        purge: false,
        eval: Some(eval("e2", "web")),
    });
    let out = s.apply(3, at(3, stop)).unwrap();
    assert!(matches!(
        out,
        Outcome::Job {
            version: 1,
            new_version: true,
            ..
        }
    ));
    assert!(s.job("web").unwrap().stop);
    assert_eq!(s.eval("e2").unwrap().job_modify_index, 3);
    let purge = Command::DeregisterJob(DeregisterJob {
        job_id: "web".into(),
        purge: true,
        eval: None,
    });
    s.apply(4, at(4, purge)).unwrap();
    assert!(s.job("web").is_none());
    assert!(s.job_versions("web").is_empty());
    let again = Command::DeregisterJob(DeregisterJob {
        job_id: "web".into(),
        purge: true,
        eval: None,
    });
    assert_eq!(
        s.apply(5, at(5, again)).unwrap_err(),
        ApplyError::UnknownJob("web".into())
    );
}
