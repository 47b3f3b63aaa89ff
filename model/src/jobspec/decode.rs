//! The top level of a job file (`variable`, `locals`, one `job`) and the
//! job block itself.

use hcl_edit::Span;
use hcl_edit::structure::{Block, Structure};

use super::{JobspecErrors, Options, group, placement};
use crate::defaults;
use crate::hcl::Source;
use crate::hcl::{Ctx, Reader, block_span, no_labels, one_label};
use crate::job::{Job, JobStatus, JobType, Parameterized, Periodic};
use crate::validate::validate_job;
use crate::value::Value;

pub(super) fn decode(
    src: &Source<'_>,
    options: &Options,
) -> Result<
    (
        Job,
        std::collections::HashMap<String, std::ops::Range<usize>>,
    ),
    JobspecErrors,
> {
    let body = crate::hcl::parse_body(src)?;
    let mut ctx = Ctx::new(src);
    ctx.unsupported = crate::hcl::NOMAD_UNSUPPORTED;
    let mut jobs = Vec::new();
    let mut variables = Vec::new();
    let mut locals = Vec::new();
    for s in body.iter() {
        match s {
            Structure::Block(b) if b.ident.as_str() == "job" => jobs.push(b),
            Structure::Block(b) if b.ident.as_str() == "variable" => variables.push(b),
            Structure::Block(b) if b.ident.as_str() == "locals" => locals.push(b),
            Structure::Block(b) => ctx.error(
                &block_span(b),
                format!(
                    "unknown top-level block {:?} (expected job, variable or locals)",
                    b.ident.as_str()
                ),
            ),
            Structure::Attribute(a) => ctx.error(
                &a.key.span().unwrap_or(0..0),
                format!("unexpected top-level attribute {:?}", a.key.as_str()),
            ),
        }
    }
    for v in variables {
        variable(&mut ctx, v, options);
    }
    for name in options.vars.keys() {
        if !ctx.scope.vars.contains_key(name)
            && !ctx.errors.iter().any(|e| e.message.contains(name.as_str()))
        {
            ctx.errors.push(src.error_at(
                1,
                1,
                format!("--var {name:?} does not match any variable block"),
            ));
        }
    }
    for l in locals {
        locals_block(&mut ctx, l);
    }
    let job = match jobs.as_slice() {
        [] => {
            ctx.errors.push(src.error_at(1, 1, "no job block found"));
            None
        }
        [one] => job(&mut ctx, one),
        [_, second, ..] => {
            ctx.error(
                &block_span(second),
                "only one job block is allowed per file",
            );
            None
        }
    };
    // Validate even after decode errors, so one run reports as much as it
    // can. Values that failed to decode fell back to defaults, which
    // validate cleanly; but a block that failed to decode is missing from
    // its parent, so whole-block complaints ("job has no groups") are then
    // consequences, not news, and are left out.
    let decode_failed = !ctx.errors.is_empty();
    if let Some(job) = &job {
        for e in validate_job(job) {
            if decode_failed && (e.path == "job" || e.path.ends_with(']')) {
                continue;
            }
            let span = ctx.span_for(&e.path);
            ctx.error(&span, e.message);
        }
    }
    match job {
        Some(job) if ctx.errors.is_empty() => Ok((job, ctx.spans)),
        _ => {
            let mut errors = ctx.errors;
            errors.sort_by_key(|e| (e.line, e.col));
            errors.dedup();
            Err(crate::hcl::Errors(errors))
        }
    }
}

fn variable(ctx: &mut Ctx<'_>, b: &Block, options: &Options) {
    let Some(name) = one_label(ctx, b, "variable") else {
        return;
    };
    let mut r = Reader::new(
        &b.body,
        format!("variable[{name}]"),
        format!("variable {name:?}"),
        block_span(b),
    );
    r.string(ctx, "description");
    // The type is an expression such as `string` or `list(string)`: read its text.
    let ty = type_text(ctx, &mut r);
    let default = r.value(ctx, "default").map(|(v, _)| v);
    r.finish(ctx);
    let value = match options.vars.get(&name) {
        Some(text) => match convert_var(ctx, &ty, text) {
            Ok(v) => v,
            Err(msg) => {
                ctx.error(&block_span(b), format!("--var {name}: {msg}"));
                return;
            }
        },
        None => match default {
            Some(v) => v,
            None => {
                ctx.error(
                    &block_span(b),
                    format!("variable {name:?} has no default; set it with --var {name}=VALUE"),
                );
                return;
            }
        },
    };
    ctx.scope.vars.insert(name, value);
}

fn type_text(ctx: &mut Ctx<'_>, r: &mut Reader<'_>) -> String {
    // `type` names a type (`string`, `list(string)`): read its text, do not
    // evaluate it.
    match r.raw_attr("type") {
        Some(a) => a
            .value
            .span()
            .and_then(|span| ctx.src.slice(&span))
            .map(|t| t.split_whitespace().collect::<String>())
            .unwrap_or_else(|| "any".into()),
        None => "any".into(),
    }
}

fn convert_var(ctx: &Ctx<'_>, ty: &str, text: &str) -> Result<Value, String> {
    match ty {
        "string" | "any" => Ok(Value::String(text.to_owned())),
        "number" => text
            .trim()
            .parse::<i64>()
            .map(Value::Int)
            .or_else(|_| text.trim().parse::<f64>().map(Value::Float))
            .map_err(|_| format!("{text:?} is not a number")),
        "bool" => match text.trim() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(format!("{text:?} is not true or false")),
        },
        _ => {
            let expr = hcl_edit::parser::parse_expr(text)
                .map_err(|e| format!("cannot parse {text:?}: {}", e.message()))?;
            let src = Source::new("--var", text);
            ctx.scope.eval(&src, &expr).map_err(|e| e.message)
        }
    }
}

fn locals_block(ctx: &mut Ctx<'_>, b: &Block) {
    no_labels(ctx, b);
    // Locals may refer to each other in any order: evaluate until no more
    // progress, then report what is left.
    let mut pending: Vec<_> = b
        .body
        .iter()
        .filter_map(|s| match s {
            Structure::Attribute(a) => Some(a),
            Structure::Block(inner) => {
                ctx.error(&block_span(inner), "locals holds only name = value pairs");
                None
            }
        })
        .collect();
    loop {
        let before = pending.len();
        let mut last_errors = Vec::new();
        pending.retain(|a| match ctx.scope.eval(ctx.src, &a.value) {
            Ok(v) => {
                ctx.scope.locals.insert(a.key.as_str().to_owned(), v);
                false
            }
            Err(e) => {
                last_errors.push(e);
                true
            }
        });
        if pending.is_empty() {
            return;
        }
        if pending.len() == before {
            for e in last_errors {
                ctx.error(&e.span, e.message);
            }
            return;
        }
    }
}

fn job(ctx: &mut Ctx<'_>, b: &Block) -> Option<Job> {
    let id = one_label(ctx, b, "job")?;
    let span = b
        .labels
        .first()
        .and_then(|l| l.span())
        .unwrap_or_else(|| block_span(b));
    ctx.note("job", span.clone());
    let mut r = Reader::new(&b.body, "job", format!("job {id:?}"), span);

    let job_type: JobType = r.parsed(ctx, "type").unwrap_or_default();
    let mut job = Job {
        name: r.string(ctx, "name").unwrap_or_else(|| id.clone()),
        id,
        region: r
            .string(ctx, "region")
            .unwrap_or_else(|| defaults::REGION.to_owned()),
        datacenters: r
            .string_list(ctx, "datacenters")
            .unwrap_or_else(|| vec![defaults::DATACENTER_ANY.to_owned()]),
        node_pool: r
            .string(ctx, "node_pool")
            .unwrap_or_else(|| defaults::NODE_POOL.to_owned()),
        job_type,
        priority: r
            .int(
                ctx,
                "priority",
                i64::from(*defaults::PRIORITY_RANGE.start()),
                i64::from(*defaults::PRIORITY_RANGE.end()),
            )
            .map_or(defaults::PRIORITY, |p| p as u8),
        all_at_once: r.bool(ctx, "all_at_once").unwrap_or(false),
        meta: r.string_map(ctx, "meta"),
        status: JobStatus::Pending,
        stable: false,
        ..Job::default()
    };
    if let Some(ns) = r.string(ctx, "namespace")
        && ns != "default"
    {
        let span = ctx.span_for("job.namespace");
        ctx.error(
            &span,
            format!("namespace {ns:?}: wren has no namespaces (only \"default\" is accepted)"),
        );
    }
    let p = placement::read_all(ctx, &mut r, "job", true);
    job.constraints = p.constraints;
    job.affinities = p.affinities;
    job.spreads = p.spreads;

    // Job-level policies are the base every group starts from.
    let inherited = group::Inherited {
        update: r
            .block(ctx, "update")
            .map(|u| group::update(ctx, u, "job.update", defaults::update())),
        reschedule: r.block(ctx, "reschedule").map(|rb| {
            group::reschedule(
                ctx,
                rb,
                "job.reschedule",
                defaults::reschedule(job_type).unwrap_or_default(),
            )
        }),
        migrate: r
            .block(ctx, "migrate")
            .map(|m| group::migrate(ctx, m, "job.migrate", defaults::migrate())),
    };
    job.update = inherited.update.clone();
    if let Some(pb) = r.block(ctx, "periodic") {
        job.periodic = Some(periodic(ctx, pb));
    }
    if let Some(pb) = r.block(ctx, "parameterized") {
        job.parameterized = Some(parameterized(ctx, pb));
    }
    for g in r.blocks("group") {
        if let Some(group) = group::group(ctx, g, job_type, &inherited) {
            job.task_groups.push(group);
        }
    }
    if job.task_groups.is_empty()
        && b.body
            .iter()
            .all(|s| !matches!(s, Structure::Block(g) if g.ident.as_str() == "group"))
    {
        ctx.error(
            &r.span.clone(),
            format!("job {:?} has no group blocks", job.id),
        );
    }
    r.finish(ctx);
    Some(job)
}

fn periodic(ctx: &mut Ctx<'_>, b: &Block) -> Periodic {
    no_labels(ctx, b);
    ctx.note("job.periodic", block_span(b));
    let mut r = Reader::new(&b.body, "job.periodic", "periodic", block_span(b));
    let mut crons = r.string_list(ctx, "crons").unwrap_or_default();
    if let Some(c) = r.string(ctx, "cron") {
        crons.insert(0, c);
    }
    let p = Periodic {
        crons,
        prohibit_overlap: r.bool(ctx, "prohibit_overlap").unwrap_or(false),
        time_zone: r
            .string(ctx, "time_zone")
            .unwrap_or_else(|| "UTC".to_owned()),
        enabled: r.bool(ctx, "enabled").unwrap_or(true),
    };
    if let Some(span) = ctx.spans.get("job.periodic.cron").cloned() {
        ctx.note("job.periodic.crons", span);
    }
    r.finish(ctx);
    p
}

fn parameterized(ctx: &mut Ctx<'_>, b: &Block) -> Parameterized {
    no_labels(ctx, b);
    ctx.note("job.parameterized", block_span(b));
    let mut r = Reader::new(&b.body, "job.parameterized", "parameterized", block_span(b));
    let p = Parameterized {
        payload: r.parsed(ctx, "payload").unwrap_or_default(),
        meta_required: r.string_list(ctx, "meta_required").unwrap_or_default(),
        meta_optional: r.string_list(ctx, "meta_optional").unwrap_or_default(),
    };
    r.finish(ctx);
    p
}
