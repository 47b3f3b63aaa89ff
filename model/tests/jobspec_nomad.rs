//! Nomad job files (see `nomad/README.md`) parse, with Nomad's meaning and
//! defaults.

use std::path::Path;

use wren_model::jobspec;
use wren_model::*;

fn load(name: &str) -> Job {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/nomad")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    jobspec::parse(name, &text).unwrap_or_else(|e| panic!("{name} should parse:\n{e}"))
}

#[test]
fn every_file_in_the_corpus_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/nomad");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "hcl") {
            load(path.file_name().unwrap().to_str().unwrap());
            n += 1;
        }
    }
    assert!(
        n >= 12,
        "the corpus should hold at least a dozen job files, found {n}"
    );
}

#[test]
fn service_defaults_match_nomad() {
    let job = load("exec-redis.hcl");
    assert_eq!(job.id, "example");
    assert_eq!(job.name, "example");
    assert_eq!(job.job_type, JobType::Service);
    assert_eq!(job.priority, 50);
    assert_eq!(job.region, "global");
    assert_eq!(job.node_pool, "default");
    let g = &job.task_groups[0];
    assert_eq!(g.count, 1);
    assert_eq!(g.restart.attempts, 2);
    assert_eq!(g.restart.interval, Duration::from_mins(30));
    assert_eq!(g.restart.delay, Duration::from_secs(15));
    assert_eq!(g.restart.mode, RestartMode::Fail);
    let r = g.reschedule.as_ref().unwrap();
    assert!(r.unlimited);
    assert_eq!(r.delay, Duration::from_secs(30));
    assert_eq!(r.delay_function, DelayFunction::Exponential);
    assert_eq!(r.max_delay, Duration::from_hours(1));
    let u = g.update.as_ref().unwrap();
    assert_eq!(u.max_parallel, 1);
    assert_eq!(u.min_healthy_time, Duration::from_secs(10));
    assert_eq!(u.healthy_deadline, Duration::from_mins(5));
    assert_eq!(u.progress_deadline, Duration::from_mins(10));
    assert_eq!(u.stagger, Duration::from_secs(30));
    assert!(g.migrate.is_some());
    assert_eq!(g.ephemeral_disk.size_mb, 300);
    assert_eq!(g.networks[0].dynamic_ports[0].label, "db");
    assert_eq!(g.networks[0].dynamic_ports[0].to, 6379);
    let t = &g.tasks[0];
    assert_eq!(t.resources.cpu, 500);
    assert_eq!(t.resources.memory_mb, 256);
    assert_eq!(t.kill_timeout, Duration::from_secs(5));
    assert_eq!(t.kill_signal, "SIGINT");
    assert_eq!(t.logs.max_files, 10);
    assert_eq!(t.logs.max_file_size_mb, 10);
    assert_eq!(
        t.config.get("args").unwrap().as_list().unwrap()[1],
        Value::String("${NOMAD_PORT_db}".into())
    );
}

#[test]
fn batch_defaults_match_nomad() {
    let job = load("raw-exec.hcl");
    let g = &job.task_groups[0];
    assert_eq!(g.restart.attempts, 3);
    assert_eq!(g.restart.interval, Duration::from_hours(24));
    let r = g.reschedule.as_ref().unwrap();
    assert_eq!(
        (r.attempts, r.interval, r.delay),
        (1, Duration::from_hours(24), Duration::from_secs(5))
    );
    assert_eq!(r.delay_function, DelayFunction::Constant);
    assert!(g.update.is_none(), "batch jobs take no update strategy");
    assert!(g.migrate.is_none());
    let t = &g.tasks[0];
    assert_eq!(t.resources.cpu, 100);
    assert_eq!(t.resources.memory_mb, 300);
}

#[test]
fn system_jobs_are_never_rescheduled() {
    let job = load("system.hcl");
    assert_eq!(job.job_type, JobType::System);
    let g = &job.task_groups[0];
    assert!(g.reschedule.is_none());
    assert_eq!(g.restart.mode, RestartMode::Delay);
    assert_eq!(g.restart.attempts, 10);
    let u = g.update.as_ref().unwrap();
    assert_eq!(u.stagger, Duration::from_secs(10));
    assert_eq!(u.max_parallel, 1);
    // Fields the job's update block did not set keep Nomad's defaults.
    assert_eq!(u.healthy_deadline, Duration::from_mins(5));
}

#[test]
fn constraint_forms() {
    let job = load("constraints.hcl");
    let ops: Vec<(&str, Operator, &str)> = job
        .constraints
        .iter()
        .chain(&job.task_groups[0].constraints)
        .map(|c| (c.attribute.as_str(), c.operator, c.value.as_str()))
        .collect();
    assert_eq!(
        ops,
        vec![
            ("${attr.kernel.name}", Operator::Eq, "linux"),
            ("${attr.kernel.version}", Operator::Version, "> 3.19"),
            ("", Operator::DistinctHosts, "true"),
            ("${meta.rack}", Operator::DistinctProperty, "2"),
            ("${attr.os.name}", Operator::Regexp, "[Dd]ebian|[Uu]buntu"),
            (
                "${meta.cached_binaries}",
                Operator::SetContains,
                "redis,cypress,nginx"
            ),
            (
                "${attr.unique.network.ip-address}",
                Operator::Ne,
                "10.0.0.5"
            ),
            ("${meta.ssd}", Operator::IsSet, ""),
        ]
    );
    let task = &job.task_groups[0].tasks[0];
    assert_eq!(
        task.constraints[0],
        Constraint::new("${attr.cpu.arch}", Operator::Eq, "arm64")
    );
}

#[test]
fn spread_and_affinity() {
    let job = load("spread-affinity.hcl");
    assert_eq!(job.spreads[0].weight, 100);
    assert!(job.spreads[0].targets.is_empty());
    assert_eq!(job.affinities[0].weight, 100);
    let g = &job.task_groups[0];
    assert_eq!(g.spreads[0].weight, 50, "Nomad's default spread weight");
    assert_eq!(g.spreads[0].targets.len(), 2);
    assert_eq!(g.spreads[0].targets[0].value, "r1");
    assert_eq!(g.spreads[0].targets[0].percent, 60);
    assert_eq!(g.affinities[0].operator, Operator::SetContainsAny);
    assert_eq!(g.affinities[0].weight, -50);
}

#[test]
fn devices() {
    let job = load("gpu.hcl");
    let d = &job.task_groups[0].tasks[0].resources.devices[0];
    assert_eq!(d.name, "nvidia/gpu");
    assert_eq!(d.count, 2);
    assert_eq!(d.constraints[0].operator, Operator::Ge);
    assert_eq!(d.constraints[0].value, "2 GiB");
    assert_eq!(d.affinities[0].weight, 75);
}

#[test]
fn periodic_and_parameterized() {
    let job = load("periodic.hcl");
    let p = job.periodic.as_ref().unwrap();
    assert_eq!(p.crons, vec!["*/15 * * * * *"]);
    assert!(p.prohibit_overlap && p.enabled);
    assert_eq!(p.time_zone, "America/New_York");
    let job = load("parameterized.hcl");
    let p = job.parameterized.as_ref().unwrap();
    assert_eq!(p.payload, PayloadPolicy::Required);
    assert_eq!(p.meta_required, vec!["dispatcher_email"]);
    assert!(job.is_template());
}

#[test]
fn lifecycle_hooks() {
    let job = load("lifecycle.hcl");
    let tasks = &job.task_groups[0].tasks;
    let hooks: Vec<Option<(LifecycleHook, bool)>> = tasks
        .iter()
        .map(|t| t.lifecycle.as_ref().map(|l| (l.hook, l.sidecar)))
        .collect();
    assert_eq!(
        hooks,
        vec![
            Some((LifecycleHook::Prestart, false)),
            Some((LifecycleHook::Poststart, true)),
            None,
            Some((LifecycleHook::Poststop, false)),
        ]
    );
    assert!(tasks[2].leader);
}

#[test]
fn group_update_merges_over_job_update() {
    let job = load("update-canary.hcl");
    let u = job.task_groups[0].update.as_ref().unwrap();
    assert_eq!(u.max_parallel, 1, "group overrides");
    assert_eq!(u.canary, 3, "group overrides");
    assert_eq!(
        u.health_check,
        HealthCheck::TaskStates,
        "inherited from the job"
    );
    assert_eq!(
        u.min_healthy_time,
        Duration::from_secs(15),
        "inherited from the job"
    );
    assert!(u.auto_revert && u.auto_promote);
}

#[test]
fn reschedule_and_disconnect() {
    let job = load("reschedule-disconnect.hcl");
    let r = job.task_groups[0].reschedule.as_ref().unwrap();
    assert_eq!(r.attempts, 15);
    assert_eq!(r.delay_function, DelayFunction::Constant);
    assert!(!r.unlimited);
    assert_eq!(
        r.max_delay,
        Duration::from_secs(120),
        "inherited from the job's reschedule block"
    );
    let d = job.task_groups[0].disconnect.as_ref().unwrap();
    assert_eq!(d.lost_after, Duration::from_hours(6));
    assert!(!d.replace);
    assert_eq!(d.reconcile, ReconcileStrategy::KeepOriginal);
    let r2 = job.task_groups[1].reschedule.as_ref().unwrap();
    assert!(r2.unlimited, "the second group inherits the job's policy");
    let d2 = job.task_groups[1].disconnect.as_ref().unwrap();
    assert_eq!(d2.stop_on_client_after, Some(Duration::from_hours(12)));
}

#[test]
fn variables_locals_and_task_settings() {
    let job = load("variables.hcl");
    assert_eq!(job.datacenters, vec!["dc1"]);
    let g = &job.task_groups[0];
    let t = &g.tasks[0];
    assert_eq!(
        t.config.get("command").unwrap().as_str(),
        Some("/opt/app/1.2.3/bin/app")
    );
    assert_eq!(t.env["VERSION"], "1.2.3");
    assert_eq!(t.kill_signal, "SIGTERM");
    assert_eq!(t.kill_timeout, Duration::from_secs(20));
    assert_eq!((t.logs.max_files, t.logs.max_file_size_mb), (3, 5));
    assert_eq!(g.networks[0].reserved_ports[0].value, 8080);
    assert_eq!(g.ephemeral_disk.size_mb, 500);
    assert!(g.ephemeral_disk.sticky);

    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/nomad/variables.hcl"),
    )
    .unwrap();
    let mut options = jobspec::Options::default();
    options.vars.insert("image_version".into(), "2.0.0".into());
    options
        .vars
        .insert("datacenters".into(), r#"["edge-1", "edge-2"]"#.into());
    let job = jobspec::parse_with("variables.hcl", &text, &options).unwrap();
    assert_eq!(job.datacenters, vec!["edge-1", "edge-2"]);
    assert_eq!(job.task_groups[0].tasks[0].env["VERSION"], "2.0.0");
}

#[test]
fn qemu_config_is_kept_as_written() {
    let job = load("qemu.hcl");
    let c = &job.task_groups[0].tasks[0].config;
    assert_eq!(
        c.get("image_path").unwrap().as_str(),
        Some("local/linux.img")
    );
    assert_eq!(c.get("graceful_shutdown").unwrap().as_bool(), Some(true));
    assert_eq!(
        c.get("port_map").unwrap().get("ssh").unwrap().as_i64(),
        Some(22)
    );
}

#[test]
fn the_example_jobs_validate() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "hcl") {
            continue;
        }
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let mut options = jobspec::Options::default();
        if name == "qemu.hcl" {
            options.vars.insert("kernel".into(), "/boot/vmlinuz".into());
            options
                .vars
                .insert("initrd".into(), "/boot/initrd.img".into());
        }
        jobspec::parse_with(&name, &text, &options).unwrap_or_else(|e| panic!("{e}"));
        n += 1;
    }
    assert!(n >= 7, "expected the seven example jobs, found {n}");
}
