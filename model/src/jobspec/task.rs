//! `task` blocks: driver, config, env, resources and devices, logs,
//! lifecycle, restart override and the kill settings.

use std::collections::BTreeMap;

use hcl_edit::Span;
use hcl_edit::structure::{Block, Body, Structure};

use super::group;
use super::placement;
use crate::defaults;
use crate::group::RestartPolicy;
use crate::hcl::{Ctx, Reader, block_span, no_labels, one_label};
use crate::task::{Lifecycle, LogConfig, RequestedDevice, Resources, Task};
use crate::value::Value;

pub(super) fn task(
    ctx: &mut Ctx<'_>,
    b: &Block,
    group_path: &str,
    group_restart: &RestartPolicy,
) -> Option<Task> {
    let name = one_label(ctx, b, "task")?;
    let path = format!("{group_path}.task[{name}]");
    let span = b
        .labels
        .first()
        .and_then(Span::span)
        .unwrap_or_else(|| block_span(b));
    ctx.note(&path, span.clone());
    let mut r = Reader::new(&b.body, path.clone(), format!("task {name:?}"), span);

    let driver = r.string(ctx, "driver").unwrap_or_default();
    let user = r.string(ctx, "user").unwrap_or_default();
    let config = match r.block(ctx, "config") {
        Some(cb) => {
            no_labels(ctx, cb);
            ctx.note(&format!("{path}.config"), block_span(cb));
            config_value(ctx, &cb.body, &format!("{path}.config"))
        }
        None => Value::empty_map(),
    };
    let env = r.string_map(ctx, "env");
    let p = placement::read_all(ctx, &mut r, &path, false);
    let resources = match r.block(ctx, "resources") {
        Some(rb) => resources(ctx, rb, &format!("{path}.resources")),
        None => defaults::resources(),
    };
    let meta = r.string_map(ctx, "meta");
    let kill_timeout = r
        .duration(ctx, "kill_timeout")
        .unwrap_or(defaults::KILL_TIMEOUT);
    let kill_signal = r
        .string(ctx, "kill_signal")
        .map(|s| normalize_signal(&s))
        .unwrap_or_else(|| defaults::KILL_SIGNAL.to_owned());
    let logs = match r.block(ctx, "logs") {
        Some(lb) => logs(ctx, lb, &format!("{path}.logs")),
        None => defaults::logs(),
    };
    let lifecycle = r
        .block(ctx, "lifecycle")
        .and_then(|lb| lifecycle(ctx, lb, &format!("{path}.lifecycle")));
    let restart = r
        .block(ctx, "restart")
        .map(|rb| group::restart(ctx, rb, &format!("{path}.restart"), group_restart.clone()));
    let leader = r.bool(ctx, "leader").unwrap_or(false);
    let shutdown_delay = r.duration(ctx, "shutdown_delay").unwrap_or_default();
    r.finish(ctx);
    Some(Task {
        name,
        driver,
        user,
        config,
        env,
        constraints: p.constraints,
        affinities: p.affinities,
        resources,
        meta,
        kill_timeout,
        kill_signal,
        logs,
        lifecycle,
        restart,
        leader,
        shutdown_delay,
    })
}

/// `SIGTERM`, `sigterm` and `TERM` all mean SIGTERM.
fn normalize_signal(s: &str) -> String {
    let upper = s.trim().to_ascii_uppercase();
    if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    }
}

/// A driver `config` block as a value tree: attributes as values, nested
/// blocks as maps (keyed further by their labels), repeated blocks as lists.
/// Every key's span is recorded under `path` (`...config.image_path`), so a
/// driver's complaint about a key can be pointed at.
fn config_value(ctx: &mut Ctx<'_>, body: &Body, path: &str) -> Value {
    let mut map: BTreeMap<String, Value> = BTreeMap::new();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for s in body.iter() {
        if let Structure::Block(b) = s {
            *counts.entry(b.ident.as_str()).or_default() += 1;
        }
    }
    for s in body.iter() {
        match s {
            Structure::Attribute(a) => {
                let key = a.key.as_str().to_owned();
                ctx.note(&format!("{path}.{key}"), a.key.span().unwrap_or(0..0));
                if map.contains_key(&key) {
                    ctx.error(
                        &a.key.span().unwrap_or(0..0),
                        format!("config attribute {key:?} is set twice"),
                    );
                    continue;
                }
                match ctx.scope.eval(ctx.src, &a.value) {
                    Ok(v) => {
                        map.insert(key, v);
                    }
                    Err(e) => ctx.error(&e.span, format!("config.{key}: {}", e.message)),
                }
            }
            Structure::Block(b) => {
                let inner = format!("{path}.{}", b.ident.as_str());
                ctx.note(&inner, block_span(b));
                let mut value = config_value(ctx, &b.body, &inner);
                for label in b.labels.iter().rev() {
                    let mut m = BTreeMap::new();
                    m.insert(label.as_str().to_owned(), value);
                    value = Value::Map(m);
                }
                let key = b.ident.as_str().to_owned();
                if counts.get(b.ident.as_str()).copied().unwrap_or(0) > 1 {
                    match map.entry(key).or_insert_with(|| Value::List(Vec::new())) {
                        Value::List(items) => items.push(value),
                        _ => ctx.error(
                            &block_span(b),
                            format!(
                                "config {:?} is both an attribute and a block",
                                b.ident.as_str()
                            ),
                        ),
                    }
                } else if map.insert(key, value).is_some() {
                    ctx.error(
                        &block_span(b),
                        format!(
                            "config {:?} is both an attribute and a block",
                            b.ident.as_str()
                        ),
                    );
                }
            }
        }
    }
    Value::Map(map)
}

fn resources(ctx: &mut Ctx<'_>, b: &Block, path: &str) -> Resources {
    no_labels(ctx, b);
    ctx.note(path, block_span(b));
    let mut r = Reader::new(&b.body, path, "resources", block_span(b));
    let max = i64::from(u32::MAX);
    let cpu = r.int(ctx, "cpu", 0, max).map(|c| c as u32);
    let cores = r.int(ctx, "cores", 0, max).map_or(0, |c| c as u32);
    let memory_mb = r
        .int(ctx, "memory", 0, i64::MAX)
        .map_or(defaults::MEMORY_MB, |m| m as u64);
    let memory_max_mb = r
        .int(ctx, "memory_max", 0, i64::MAX)
        .map_or(0, |m| m as u64);
    let mut devices = Vec::new();
    for (i, d) in r.blocks("device").into_iter().enumerate() {
        let Some(name) = one_label(ctx, d, "device") else {
            continue;
        };
        let dpath = format!("{path}.device[{i}]");
        ctx.note(&dpath, block_span(d));
        let mut dr = Reader::new(
            &d.body,
            dpath.clone(),
            format!("device {name:?}"),
            block_span(d),
        );
        let count = dr.int(ctx, "count", 0, max).map_or(1, |c| c as u32);
        let p = placement::read_all(ctx, &mut dr, &dpath, false);
        dr.finish(ctx);
        devices.push(RequestedDevice {
            name,
            count,
            constraints: p.constraints,
            affinities: p.affinities,
        });
    }
    for legacy in ["network", "disk", "iops"] {
        for x in r.blocks(legacy) {
            ctx.error(&block_span(x), format!("resources.{legacy} was removed from Nomad's jobspec; use the group's network / ephemeral_disk"));
        }
        if r.value(ctx, legacy).is_some() {
            let span = ctx.span_for(&format!("{path}.{legacy}"));
            ctx.error(&span, format!("resources.{legacy} was removed from Nomad's jobspec; use the group's network / ephemeral_disk"));
        }
    }
    r.finish(ctx);
    Resources {
        // Nomad: cpu and cores are exclusive; cores alone means no MHz share.
        cpu: cpu.unwrap_or(if cores > 0 { 0 } else { defaults::CPU_MHZ }),
        cores,
        memory_mb,
        memory_max_mb,
        devices,
    }
}

fn logs(ctx: &mut Ctx<'_>, b: &Block, path: &str) -> LogConfig {
    no_labels(ctx, b);
    ctx.note(path, block_span(b));
    let base = defaults::logs();
    let mut r = Reader::new(&b.body, path, "logs", block_span(b));
    let mut l = LogConfig {
        max_files: r
            .int(ctx, "max_files", 0, 1_000)
            .map_or(base.max_files, |m| m as u32),
        max_file_size_mb: r
            .int(ctx, "max_file_size", 0, 1 << 20)
            .map_or(base.max_file_size_mb, |m| m as u32),
        disabled: r.bool(ctx, "disabled").unwrap_or(base.disabled),
    };
    if let Some(enabled) = r.bool(ctx, "enabled") {
        l.disabled = !enabled;
    }
    r.finish(ctx);
    l
}

fn lifecycle(ctx: &mut Ctx<'_>, b: &Block, path: &str) -> Option<Lifecycle> {
    no_labels(ctx, b);
    ctx.note(path, block_span(b));
    let mut r = Reader::new(&b.body, path, "lifecycle", block_span(b));
    let hook = r.parsed(ctx, "hook");
    let sidecar = r.bool(ctx, "sidecar").unwrap_or(false);
    if hook.is_none() && !ctx.spans.contains_key(&format!("{path}.hook")) {
        ctx.error(
            &block_span(b),
            "lifecycle needs a hook (prestart, poststart or poststop)",
        );
    }
    r.finish(ctx);
    Some(Lifecycle {
        hook: hook?,
        sidecar,
    })
}
