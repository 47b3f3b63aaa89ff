//! `group` blocks and the group-level policies: restart, reschedule,
//! update, migrate, disconnect, network, ephemeral_disk.

use hcl_edit::structure::Block;

use super::{placement, task};
use crate::defaults;
use crate::group::{
    DisconnectStrategy, EphemeralDisk, MigrateStrategy, NetworkResource, Port, ReschedulePolicy,
    RestartPolicy, TaskGroup, UpdateStrategy,
};
use crate::hcl::{Ctx, Reader, block_span, no_labels, one_label};
use crate::job::JobType;

/// Job-level policies a group starts from.
pub(super) struct Inherited {
    pub update: Option<UpdateStrategy>,
    pub reschedule: Option<ReschedulePolicy>,
    pub migrate: Option<MigrateStrategy>,
}

pub(super) fn group(
    ctx: &mut Ctx<'_>,
    b: &Block,
    job_type: JobType,
    inherited: &Inherited,
) -> Option<TaskGroup> {
    let name = one_label(ctx, b, "group")?;
    let path = format!("job.group[{name}]");
    let span = b
        .labels
        .first()
        .and_then(hcl_edit::Span::span)
        .unwrap_or_else(|| block_span(b));
    ctx.note(&path, span.clone());
    let mut r = Reader::new(&b.body, path.clone(), format!("group {name:?}"), span);

    let count = r
        .int(ctx, "count", 0, i64::from(u32::MAX))
        .map_or(1, |c| c as u32);
    let p = placement::read_all(ctx, &mut r, &path, true);

    let restart_base = defaults::restart(job_type);
    let restart = match r.block(ctx, "restart") {
        Some(rb) => restart(ctx, rb, &format!("{path}.restart"), restart_base),
        None => restart_base,
    };

    let reschedule_base = inherited
        .reschedule
        .clone()
        .or_else(|| defaults::reschedule(job_type));
    let reschedule = match r.block(ctx, "reschedule") {
        Some(rb) => Some(reschedule(
            ctx,
            rb,
            &format!("{path}.reschedule"),
            reschedule_base.unwrap_or_default(),
        )),
        None => reschedule_base,
    };

    let update_base = inherited
        .update
        .clone()
        .or_else(|| defaults::has_update(job_type).then(defaults::update));
    let update = match r.block(ctx, "update") {
        Some(ub) => Some(update(
            ctx,
            ub,
            &format!("{path}.update"),
            update_base.unwrap_or_else(defaults::update),
        )),
        None => update_base,
    };

    let migrate_base = inherited
        .migrate
        .clone()
        .or_else(|| (job_type == JobType::Service).then(defaults::migrate));
    let migrate = match r.block(ctx, "migrate") {
        Some(mb) => Some(migrate(
            ctx,
            mb,
            &format!("{path}.migrate"),
            migrate_base.unwrap_or_else(defaults::migrate),
        )),
        None => migrate_base,
    };

    let mut disconnect = r
        .block(ctx, "disconnect")
        .map(|d| disconnect_block(ctx, d, &format!("{path}.disconnect")));
    legacy_disconnect(ctx, &mut r, &path, &mut disconnect);

    let networks = r
        .blocks("network")
        .into_iter()
        .map(|n| network(ctx, n, &format!("{path}.network")))
        .collect();
    let ephemeral_disk = match r.block(ctx, "ephemeral_disk") {
        Some(eb) => ephemeral_disk(ctx, eb, &format!("{path}.ephemeral_disk")),
        None => defaults::ephemeral_disk(),
    };
    let meta = r.string_map(ctx, "meta");
    let shutdown_delay = r.duration(ctx, "shutdown_delay");

    let mut tasks = Vec::new();
    let task_blocks = r.blocks("task");
    if task_blocks.is_empty() {
        ctx.error(
            &r.span.clone(),
            format!("group {name:?} has no task blocks"),
        );
    }
    for t in task_blocks {
        if let Some(task) = task::task(ctx, t, &path, &restart) {
            tasks.push(task);
        }
    }
    r.finish(ctx);
    Some(TaskGroup {
        name,
        count,
        constraints: p.constraints,
        affinities: p.affinities,
        spreads: p.spreads,
        tasks,
        restart,
        reschedule,
        update,
        migrate,
        disconnect,
        networks,
        ephemeral_disk,
        meta,
        shutdown_delay,
    })
}

/// A `restart` block on top of `base` (the job type's defaults, or the
/// group's policy for a task).
pub(super) fn restart(
    ctx: &mut Ctx<'_>,
    b: &Block,
    path: &str,
    base: RestartPolicy,
) -> RestartPolicy {
    no_labels(ctx, b);
    ctx.note(path, block_span(b));
    let mut r = Reader::new(&b.body, path, "restart", block_span(b));
    let p = RestartPolicy {
        attempts: r
            .int(ctx, "attempts", 0, i64::from(u32::MAX))
            .map_or(base.attempts, |a| a as u32),
        interval: r.duration(ctx, "interval").unwrap_or(base.interval),
        delay: r.duration(ctx, "delay").unwrap_or(base.delay),
        mode: r.parsed(ctx, "mode").unwrap_or(base.mode),
    };
    if r.bool(ctx, "render_templates").is_some() {
        let span = ctx.span_for(&format!("{path}.render_templates"));
        ctx.error(&span, "render_templates: templates are not part of wren");
    }
    r.finish(ctx);
    p
}

pub(super) fn reschedule(
    ctx: &mut Ctx<'_>,
    b: &Block,
    path: &str,
    base: ReschedulePolicy,
) -> ReschedulePolicy {
    no_labels(ctx, b);
    ctx.note(path, block_span(b));
    let mut r = Reader::new(&b.body, path, "reschedule", block_span(b));
    let p = ReschedulePolicy {
        attempts: r
            .int(ctx, "attempts", 0, i64::from(u32::MAX))
            .map_or(base.attempts, |a| a as u32),
        interval: r.duration(ctx, "interval").unwrap_or(base.interval),
        delay: r.duration(ctx, "delay").unwrap_or(base.delay),
        delay_function: r
            .parsed(ctx, "delay_function")
            .unwrap_or(base.delay_function),
        max_delay: r.duration(ctx, "max_delay").unwrap_or(base.max_delay),
        unlimited: r.bool(ctx, "unlimited").unwrap_or(base.unlimited),
    };
    r.finish(ctx);
    p
}

pub(super) fn update(
    ctx: &mut Ctx<'_>,
    b: &Block,
    path: &str,
    base: UpdateStrategy,
) -> UpdateStrategy {
    no_labels(ctx, b);
    ctx.note(path, block_span(b));
    let mut r = Reader::new(&b.body, path, "update", block_span(b));
    let u = UpdateStrategy {
        stagger: r.duration(ctx, "stagger").unwrap_or(base.stagger),
        max_parallel: r
            .int(ctx, "max_parallel", 0, i64::from(u32::MAX))
            .map_or(base.max_parallel, |m| m as u32),
        health_check: r.parsed(ctx, "health_check").unwrap_or(base.health_check),
        min_healthy_time: r
            .duration(ctx, "min_healthy_time")
            .unwrap_or(base.min_healthy_time),
        healthy_deadline: r
            .duration(ctx, "healthy_deadline")
            .unwrap_or(base.healthy_deadline),
        progress_deadline: r
            .duration(ctx, "progress_deadline")
            .unwrap_or(base.progress_deadline),
        auto_revert: r.bool(ctx, "auto_revert").unwrap_or(base.auto_revert),
        auto_promote: r.bool(ctx, "auto_promote").unwrap_or(base.auto_promote),
        canary: r
            .int(ctx, "canary", 0, i64::from(u32::MAX))
            .map_or(base.canary, |c| c as u32),
    };
    r.finish(ctx);
    u
}

pub(super) fn migrate(
    ctx: &mut Ctx<'_>,
    b: &Block,
    path: &str,
    base: MigrateStrategy,
) -> MigrateStrategy {
    no_labels(ctx, b);
    ctx.note(path, block_span(b));
    let mut r = Reader::new(&b.body, path, "migrate", block_span(b));
    let m = MigrateStrategy {
        max_parallel: r
            .int(ctx, "max_parallel", 0, i64::from(u32::MAX))
            .map_or(base.max_parallel, |m| m as u32),
        health_check: r.parsed(ctx, "health_check").unwrap_or(base.health_check),
        min_healthy_time: r
            .duration(ctx, "min_healthy_time")
            .unwrap_or(base.min_healthy_time),
        healthy_deadline: r
            .duration(ctx, "healthy_deadline")
            .unwrap_or(base.healthy_deadline),
    };
    r.finish(ctx);
    m
}

fn disconnect_block(ctx: &mut Ctx<'_>, b: &Block, path: &str) -> DisconnectStrategy {
    no_labels(ctx, b);
    ctx.note(path, block_span(b));
    let base = defaults::disconnect();
    let mut r = Reader::new(&b.body, path, "disconnect", block_span(b));
    let d = DisconnectStrategy {
        lost_after: r.duration(ctx, "lost_after").unwrap_or(base.lost_after),
        replace: r.bool(ctx, "replace").unwrap_or(base.replace),
        reconcile: r.parsed(ctx, "reconcile").unwrap_or(base.reconcile),
        stop_on_client_after: r.duration(ctx, "stop_on_client_after"),
    };
    r.finish(ctx);
    d
}

/// Nomad's pre-1.8 group attributes, folded into `disconnect` the way
/// Nomad 1.8 documents the mapping.
fn legacy_disconnect(
    ctx: &mut Ctx<'_>,
    r: &mut Reader<'_>,
    path: &str,
    d: &mut Option<DisconnectStrategy>,
) {
    let lost = r.duration(ctx, "max_client_disconnect");
    let stop = r.duration(ctx, "stop_after_client_disconnect");
    let no_replace = r.bool(ctx, "prevent_reschedule_on_lost");
    if lost.is_none() && stop.is_none() && no_replace.is_none() {
        return;
    }
    if d.is_some() {
        let span = ctx.span_for(&format!("{path}.disconnect"));
        ctx.error(
            &span,
            "use either the disconnect block or max_client_disconnect / stop_after_client_disconnect / prevent_reschedule_on_lost, not both",
        );
        return;
    }
    let mut s = defaults::disconnect();
    if let Some(l) = lost {
        s.lost_after = l;
    }
    s.stop_on_client_after = stop;
    if let Some(true) = no_replace {
        s.replace = false;
    }
    *d = Some(s);
}

fn network(ctx: &mut Ctx<'_>, b: &Block, path: &str) -> NetworkResource {
    no_labels(ctx, b);
    ctx.note(path, block_span(b));
    let mut r = Reader::new(&b.body, path, "network", block_span(b));
    let mut n = NetworkResource {
        mode: r.parsed(ctx, "mode").unwrap_or_default(),
        mbits: r
            .int(ctx, "mbits", 0, i64::from(u32::MAX))
            .map_or(0, |m| m as u32),
        ..NetworkResource::default()
    };
    for p in r.blocks("port") {
        let Some(label) = one_label(ctx, p, "port") else {
            continue;
        };
        let ppath = format!("{path}.port[{label}]");
        ctx.note(&ppath, block_span(p));
        let mut pr = Reader::new(&p.body, ppath, format!("port {label:?}"), block_span(p));
        let value = pr.int(ctx, "static", 1, 65535).map(|v| v as u16);
        let port = Port {
            label,
            value: value.unwrap_or(0),
            to: pr.int(ctx, "to", -1, 65535).map_or(0, |t| t.max(0) as u16),
            host_network: pr
                .string(ctx, "host_network")
                .unwrap_or_else(|| "default".to_owned()),
        };
        pr.finish(ctx);
        if value.is_some() {
            n.reserved_ports.push(port);
        } else {
            n.dynamic_ports.push(port);
        }
    }
    r.finish(ctx);
    n
}

fn ephemeral_disk(ctx: &mut Ctx<'_>, b: &Block, path: &str) -> EphemeralDisk {
    no_labels(ctx, b);
    ctx.note(path, block_span(b));
    let base = defaults::ephemeral_disk();
    let mut r = Reader::new(&b.body, path, "ephemeral_disk", block_span(b));
    let d = EphemeralDisk {
        size_mb: r
            .int(ctx, "size", 0, i64::MAX)
            .map_or(base.size_mb, |s| s as u64),
        sticky: r.bool(ctx, "sticky").unwrap_or(base.sticky),
        migrate: r.bool(ctx, "migrate").unwrap_or(base.migrate),
    };
    r.finish(ctx);
    d
}
