//! `constraint`, `affinity` and `spread` blocks, with Nomad's shorthands
//! (`version = ">= 1.2"`, `distinct_hosts = true`, `regexp = "..."`, ...).

use hcl_edit::structure::Block;

use crate::constraint::{Affinity, Constraint, Operator, Spread, SpreadTarget};
use crate::defaults;
use crate::hcl::{Ctx, Reader, block_span, no_labels, one_label};

/// What a job, group or task says about where it runs.
#[derive(Default)]
pub(super) struct Placement {
    pub constraints: Vec<Constraint>,
    pub affinities: Vec<Affinity>,
    pub spreads: Vec<Spread>,
}

/// Reads every constraint, affinity and (when `spreads`) spread block.
pub(super) fn read_all(
    ctx: &mut Ctx<'_>,
    r: &mut Reader<'_>,
    path: &str,
    spreads: bool,
) -> Placement {
    let mut p = Placement::default();
    for (i, b) in r.blocks("constraint").into_iter().enumerate() {
        if let Some(c) = constraint(ctx, b, &format!("{path}.constraint[{i}]")) {
            p.constraints.push(c);
        }
    }
    for (i, b) in r.blocks("affinity").into_iter().enumerate() {
        if let Some(a) = affinity(ctx, b, &format!("{path}.affinity[{i}]")) {
            p.affinities.push(a);
        }
    }
    if spreads {
        for (i, b) in r.blocks("spread").into_iter().enumerate() {
            if let Some(s) = spread(ctx, b, &format!("{path}.spread[{i}]")) {
                p.spreads.push(s);
            }
        }
    }
    p
}

/// Shorthand attributes that set both the operator and the value.
const SHORTHANDS: &[(&str, Operator)] = &[
    ("version", Operator::Version),
    ("semver", Operator::Semver),
    ("regexp", Operator::Regexp),
    ("set_contains", Operator::SetContains),
    ("set_contains_all", Operator::SetContains),
    ("set_contains_any", Operator::SetContainsAny),
];

/// Operator, value and attribute from the long form or a shorthand; an
/// error when two forms conflict.
fn operands(
    ctx: &mut Ctx<'_>,
    r: &mut Reader<'_>,
    allow_distinct: bool,
) -> Option<(String, Operator, String)> {
    let mut attribute = r.string(ctx, "attribute").unwrap_or_default();
    let mut value = r.string(ctx, "value");
    let mut chosen: Vec<(Operator, &str)> = Vec::new();
    if let Some(op) = r.parsed::<Operator>(ctx, "operator") {
        chosen.push((op, "operator"));
    }
    let path = r.path.clone();
    // A shorthand stands in for `value` (or `attribute`): errors about the
    // value should point at it.
    let alias = |ctx: &mut Ctx<'_>, key: &str, part: &str| {
        if let Some(span) = ctx.spans.get(&format!("{path}.{key}")).cloned() {
            ctx.note(&format!("{path}.{part}"), span);
        }
    };
    for (key, op) in SHORTHANDS {
        if let Some(v) = r.string(ctx, key) {
            chosen.push((*op, key));
            value = Some(v);
            alias(ctx, key, "value");
        }
    }
    if allow_distinct {
        if let Some(on) = r.bool(ctx, "distinct_hosts") {
            chosen.push((Operator::DistinctHosts, "distinct_hosts"));
            value = Some(on.to_string());
            alias(ctx, "distinct_hosts", "value");
        }
        if let Some(attr) = r.string(ctx, "distinct_property") {
            chosen.push((Operator::DistinctProperty, "distinct_property"));
            attribute = attr;
            alias(ctx, "distinct_property", "attribute");
        }
    }
    if chosen.len() > 1 {
        let names: Vec<&str> = chosen.iter().map(|(_, n)| *n).collect();
        ctx.error(
            &r.span.clone(),
            format!(
                "{} sets conflicting operators: {}",
                r.what,
                names.join(", ")
            ),
        );
        return None;
    }
    let op = chosen.first().map_or(Operator::Eq, |(op, _)| *op);
    Some((attribute, op, value.unwrap_or_default()))
}

fn constraint(ctx: &mut Ctx<'_>, b: &Block, path: &str) -> Option<Constraint> {
    no_labels(ctx, b);
    let span = block_span(b);
    ctx.note(path, span.clone());
    let mut r = Reader::new(&b.body, path, "constraint", span);
    let ops = operands(ctx, &mut r, true);
    r.finish(ctx);
    let (attribute, operator, value) = ops?;
    Some(Constraint {
        attribute,
        operator,
        value,
    })
}

fn affinity(ctx: &mut Ctx<'_>, b: &Block, path: &str) -> Option<Affinity> {
    no_labels(ctx, b);
    let span = block_span(b);
    ctx.note(path, span.clone());
    let mut r = Reader::new(&b.body, path, "affinity", span);
    let ops = operands(ctx, &mut r, false);
    let weight = r
        .int(ctx, "weight", -100, 100)
        .map_or(defaults::AFFINITY_WEIGHT, |w| w as i8);
    r.finish(ctx);
    let (attribute, operator, value) = ops?;
    Some(Affinity {
        attribute,
        operator,
        value,
        weight,
    })
}

fn spread(ctx: &mut Ctx<'_>, b: &Block, path: &str) -> Option<Spread> {
    no_labels(ctx, b);
    let span = block_span(b);
    ctx.note(path, span.clone());
    let mut r = Reader::new(&b.body, path, "spread", span);
    let attribute = r.string(ctx, "attribute").unwrap_or_default();
    let weight = r
        .int(ctx, "weight", 0, 100)
        .map_or(defaults::SPREAD_WEIGHT, |w| w as u8);
    let mut targets = Vec::new();
    for t in r.blocks("target") {
        let Some(value) = one_label(ctx, t, "target") else {
            continue;
        };
        let tspan = block_span(t);
        let mut tr = Reader::new(
            &t.body,
            format!("{path}.target[{value}]"),
            format!("target {value:?}"),
            tspan,
        );
        let percent = tr.int(ctx, "percent", 0, 100).unwrap_or(0) as u8;
        tr.finish(ctx);
        targets.push(SpreadTarget { value, percent });
    }
    r.finish(ctx);
    Some(Spread {
        attribute,
        weight,
        targets,
    })
}
