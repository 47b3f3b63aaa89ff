//! Reading a block body: typed attribute getters that record errors with
//! spans, and tracking of what was read so that anything left over is
//! reported as unknown (or as a Nomad feature wren does not have).

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use hcl_edit::Span;
use hcl_edit::structure::{Block, Body, Structure};

use super::Error;
use super::eval::Scope;
use super::source::Source;
use crate::duration::Duration;
use crate::value::Value;

/// Nomad blocks and attributes wren deliberately does not implement, and
/// why; naming them beats calling them unknown.
pub const NOMAD_UNSUPPORTED: &[(&str, &str)] = &[
    ("service", "service discovery is not part of wren"),
    ("check", "service checks are not part of wren"),
    (
        "template",
        "templates (consul-template) are not part of wren",
    ),
    ("artifact", "artifact downloads are not part of wren"),
    ("vault", "Vault integration is not part of wren"),
    ("consul", "Consul integration is not part of wren"),
    ("volume", "volumes are not part of wren yet"),
    ("volume_mount", "volumes are not part of wren yet"),
    ("csi_plugin", "CSI plugins are not part of wren"),
    ("scaling", "autoscaling policies are not part of wren"),
    ("identity", "workload identities are not part of wren"),
    ("secret", "secrets are not part of wren"),
    (
        "dispatch_payload",
        "dispatch payload files are not part of wren yet",
    ),
    (
        "multiregion",
        "multi-region deployments are not part of wren",
    ),
    ("ui", "the web UI block is not part of wren"),
    ("action", "task actions are not part of wren"),
    ("schedule", "task schedules are not part of wren"),
    ("kind", "task kinds (connect) are not part of wren"),
    ("dns", "custom DNS is not part of wren yet"),
    ("consul_namespace", "Consul integration is not part of wren"),
    ("vault_token", "Vault integration is not part of wren"),
];

/// Shared decoding state: the source, variables, errors, and the span of
/// every path decoded (for mapping validation errors back to the file).
#[derive(Debug)]
pub struct Ctx<'s> {
    /// The file.
    pub src: &'s Source<'s>,
    /// Variables and locals.
    pub scope: Scope,
    /// Errors so far.
    pub errors: Vec<Error>,
    /// Where each decoded path is in the file.
    pub spans: HashMap<String, Range<usize>>,
    /// Names (block or attribute) known to be unsupported, with the reason,
    /// reported as such instead of as unknown.
    pub unsupported: &'static [(&'static str, &'static str)],
}

impl<'s> Ctx<'s> {
    /// Starts decoding `src`.
    pub fn new(src: &'s Source<'s>) -> Self {
        Ctx {
            src,
            scope: Scope::default(),
            errors: Vec::new(),
            spans: HashMap::new(),
            unsupported: &[],
        }
    }

    /// Records an error at a span.
    pub fn error(&mut self, span: &Range<usize>, message: impl Into<String>) {
        self.errors.push(self.src.error(span, message));
    }

    /// Records where `path` is in the file (the first record wins).
    pub fn note(&mut self, path: &str, span: Range<usize>) {
        self.spans.entry(path.to_owned()).or_insert(span);
    }

    /// The span recorded for `path` or its nearest recorded ancestor.
    pub fn span_for(&self, path: &str) -> Range<usize> {
        let mut p = path;
        loop {
            if let Some(s) = self.spans.get(p) {
                return s.clone();
            }
            let cut = match (p.rfind('.'), p.rfind('[')) {
                (Some(d), Some(b)) => d.max(b),
                (Some(d), None) => d,
                (None, Some(b)) => b,
                (None, None) => return 0..0,
            };
            p = &p[..cut];
        }
    }
}

/// The span of a block's identifier (where errors about the block point).
pub fn block_span(b: &Block) -> Range<usize> {
    b.ident.span().or_else(|| b.span()).unwrap_or(0..0)
}

/// A block body being decoded.
#[derive(Debug)]
pub struct Reader<'a> {
    body: &'a Body,
    /// The validation path of this block, e.g. `job.group[web]`.
    pub path: String,
    /// How the block is named in messages, e.g. `group "web"`.
    pub what: String,
    /// Where the block starts.
    pub span: Range<usize>,
    used: Vec<bool>,
}

impl<'a> Reader<'a> {
    /// Starts reading `body`.
    pub fn new(
        body: &'a Body,
        path: impl Into<String>,
        what: impl Into<String>,
        span: Range<usize>,
    ) -> Self {
        Reader {
            body,
            path: path.into(),
            what: what.into(),
            span,
            used: vec![false; body.len()],
        }
    }

    /// The evaluated value of attribute `name`, with the span of its value.
    pub fn value(&mut self, ctx: &mut Ctx<'_>, name: &str) -> Option<(Value, Range<usize>)> {
        // The HCL parser already rejects an attribute set twice in a body.
        let a = self.raw_attr(name)?;
        let span = a.value.span().or_else(|| a.span()).unwrap_or(0..0);
        ctx.note(&format!("{}.{name}", self.path), span.clone());
        match ctx.scope.eval(ctx.src, &a.value) {
            Ok(v) => Some((v, span)),
            Err(e) => {
                ctx.error(&e.span, format!("{name}: {}", e.message));
                None
            }
        }
    }

    /// The attribute `name` unevaluated, marked as read.
    pub fn raw_attr(&mut self, name: &str) -> Option<&'a hcl_edit::structure::Attribute> {
        for (i, s) in self.body.iter().enumerate() {
            if let Structure::Attribute(a) = s
                && a.key.as_str() == name
            {
                self.used[i] = true;
                return Some(a);
            }
        }
        None
    }

    /// A string attribute; numbers and bools are converted like HCL does.
    pub fn string(&mut self, ctx: &mut Ctx<'_>, name: &str) -> Option<String> {
        let (v, span) = self.value(ctx, name)?;
        match v {
            Value::String(s) => Some(s),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            other => {
                ctx.error(
                    &span,
                    format!("{name} must be a string, found {}", other.type_name()),
                );
                None
            }
        }
    }

    /// A bool attribute (also `"true"` / `"false"`).
    pub fn bool(&mut self, ctx: &mut Ctx<'_>, name: &str) -> Option<bool> {
        let (v, span) = self.value(ctx, name)?;
        match v {
            Value::Bool(b) => Some(b),
            Value::String(s) if s == "true" => Some(true),
            Value::String(s) if s == "false" => Some(false),
            other => {
                ctx.error(
                    &span,
                    format!("{name} must be true or false, found {}", describe(&other)),
                );
                None
            }
        }
    }

    /// A whole number attribute within `min..=max` (also a numeric string).
    pub fn int(&mut self, ctx: &mut Ctx<'_>, name: &str, min: i64, max: i64) -> Option<i64> {
        let (v, span) = self.value(ctx, name)?;
        let n = match &v {
            Value::String(s) => s.trim().parse::<i64>().ok(),
            v => v.as_i64(),
        };
        match n {
            Some(n) if (min..=max).contains(&n) => Some(n),
            Some(n) => {
                ctx.error(
                    &span,
                    format!("{name} = {n} is out of range ({min} to {max})"),
                );
                None
            }
            None => {
                ctx.error(
                    &span,
                    format!("{name} must be a whole number, found {}", describe(&v)),
                );
                None
            }
        }
    }

    /// A duration attribute such as `"30s"`.
    pub fn duration(&mut self, ctx: &mut Ctx<'_>, name: &str) -> Option<Duration> {
        let (v, span) = self.value(ctx, name)?;
        match v {
            Value::String(s) => match Duration::parse(&s) {
                Ok(d) => Some(d),
                Err(e) => {
                    ctx.error(&span, format!("{name}: {e}"));
                    None
                }
            },
            other => {
                ctx.error(
                    &span,
                    format!(
                        "{name} must be a duration string like \"30s\", found {}",
                        describe(&other)
                    ),
                );
                None
            }
        }
    }

    /// A list of strings.
    pub fn string_list(&mut self, ctx: &mut Ctx<'_>, name: &str) -> Option<Vec<String>> {
        let (v, span) = self.value(ctx, name)?;
        match v {
            Value::List(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Value::String(s) => out.push(s),
                        Value::Int(i) => out.push(i.to_string()),
                        other => {
                            ctx.error(
                                &span,
                                format!(
                                    "{name} must be a list of strings, found a {}",
                                    other.type_name()
                                ),
                            );
                            return None;
                        }
                    }
                }
                Some(out)
            }
            other => {
                ctx.error(
                    &span,
                    format!(
                        "{name} must be a list of strings, found {}",
                        describe(&other)
                    ),
                );
                None
            }
        }
    }

    /// A string map given either as a block (`meta { k = "v" }`) or as an
    /// attribute (`meta = { k = "v" }`).
    pub fn string_map(&mut self, ctx: &mut Ctx<'_>, name: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        match self.value(ctx, name) {
            Some((Value::Map(m), span)) => {
                for (k, v) in m {
                    match scalar_string(v) {
                        Some(s) => {
                            out.insert(k, s);
                        }
                        None => ctx.error(&span, format!("{name}.{k} must be a string")),
                    }
                }
            }
            Some((other, span)) => {
                ctx.error(
                    &span,
                    format!(
                        "{name} must be a map of strings, found {}",
                        describe(&other)
                    ),
                );
            }
            None => {}
        }
        for block in self.blocks(name) {
            let span = block_span(block);
            ctx.note(&format!("{}.{name}", self.path), span.clone());
            if !block.labels.is_empty() {
                ctx.error(&span, format!("{name} block takes no labels"));
            }
            for s in block.body.iter() {
                match s {
                    Structure::Attribute(a) => {
                        let key = a.key.as_str().to_owned();
                        match ctx.scope.eval(ctx.src, &a.value) {
                            Ok(v) => match scalar_string(v) {
                                Some(s) => {
                                    out.insert(key, s);
                                }
                                None => ctx.error(
                                    &a.value.span().unwrap_or(0..0),
                                    format!("{name}.{key} must be a string"),
                                ),
                            },
                            Err(e) => ctx.error(&e.span, format!("{name}.{key}: {}", e.message)),
                        }
                    }
                    Structure::Block(b) => {
                        ctx.error(
                            &block_span(b),
                            format!(
                                "{name} holds only key = value pairs, found block {:?}",
                                b.ident.as_str()
                            ),
                        );
                    }
                }
            }
        }
        out
    }

    /// Every block named `name`, marked as read.
    pub fn blocks(&mut self, name: &str) -> Vec<&'a Block> {
        let mut out = Vec::new();
        for (i, s) in self.body.iter().enumerate() {
            if let Structure::Block(b) = s
                && b.ident.as_str() == name
            {
                self.used[i] = true;
                out.push(b);
            }
        }
        out
    }

    /// The single block named `name`; a repeat is an error.
    pub fn block(&mut self, ctx: &mut Ctx<'_>, name: &str) -> Option<&'a Block> {
        let mut blocks = self.blocks(name).into_iter();
        let first = blocks.next()?;
        for extra in blocks {
            ctx.error(
                &block_span(extra),
                format!("only one {name} block is allowed in {}", self.what),
            );
        }
        Some(first)
    }

    /// Reports everything not read as unknown (or as unsupported, by name).
    pub fn finish(self, ctx: &mut Ctx<'_>) {
        for (i, s) in self.body.iter().enumerate() {
            if self.used[i] {
                continue;
            }
            let (kind, name, span) = match s {
                Structure::Attribute(a) => {
                    ("attribute", a.key.as_str(), a.key.span().unwrap_or(0..0))
                }
                Structure::Block(b) => ("block", b.ident.as_str(), block_span(b)),
            };
            match ctx.unsupported.iter().find(|(n, _)| *n == name) {
                Some((_, why)) => ctx.error(
                    &span,
                    format!("{kind} {name:?} in {} is not supported: {why}", self.what),
                ),
                None => ctx.error(&span, format!("unknown {kind} {name:?} in {}", self.what)),
            }
        }
    }
}

/// The one label of a block such as `group "web"`.
pub fn one_label(ctx: &mut Ctx<'_>, b: &Block, kind: &str) -> Option<String> {
    match b.labels.as_slice() {
        [l] => Some(l.as_str().to_owned()),
        [] => {
            ctx.error(
                &block_span(b),
                format!("{kind} block needs a name, as in {kind} \"name\" {{ ... }}"),
            );
            None
        }
        [_, extra, ..] => {
            let span = extra.span().unwrap_or_else(|| block_span(b));
            ctx.error(
                &span,
                format!(
                    "{kind} block takes exactly one label, found {}",
                    b.labels.len()
                ),
            );
            None
        }
    }
}

/// Checks that a block has no labels.
pub fn no_labels(ctx: &mut Ctx<'_>, b: &Block) {
    if let Some(l) = b.labels.first() {
        let span = l.span().unwrap_or_else(|| block_span(b));
        ctx.error(
            &span,
            format!(
                "{} block takes no labels, found {:?}",
                b.ident.as_str(),
                l.as_str()
            ),
        );
    }
}

fn scalar_string(v: Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s),
        Value::Int(i) => Some(i.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Null => "null".to_owned(),
        other => format!("a {}", other.type_name()),
    }
}

impl Reader<'_> {
    /// A string attribute parsed with `FromStr` (enums such as `type`).
    pub fn parsed<T>(&mut self, ctx: &mut Ctx<'_>, name: &str) -> Option<T>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        let (v, span) = self.value(ctx, name)?;
        let Value::String(s) = v else {
            ctx.error(
                &span,
                format!("{name} must be a string, found {}", describe(&v)),
            );
            return None;
        };
        match s.parse() {
            Ok(t) => Some(t),
            Err(e) => {
                ctx.error(&span, format!("{name}: {e}"));
                None
            }
        }
    }
}
