//! Evaluation of HCL expressions into [`Value`]s: literals, lists, objects,
//! string templates and heredocs, `var.*` and `local.*`, arithmetic,
//! comparison, logic and conditionals. Function calls, `for` expressions
//! and template directives are rejected with a clear message.

use std::collections::BTreeMap;
use std::ops::Range;

use hcl_edit::Span;
use hcl_edit::expr::{BinaryOperator, Expression, ObjectKey, TraversalOperator, UnaryOperator};
use hcl_edit::template::{Element, Template};

use super::source::Source;
use crate::value::Value;

/// A failed evaluation, at a span.
#[derive(Debug)]
pub struct EvalError {
    /// Where.
    pub span: Range<usize>,
    /// What went wrong.
    pub message: String,
}

/// Variable roots the client resolves at run time; inside strings their
/// `${...}` is kept as written.
const RUNTIME_ROOTS: &[&str] = &["attr", "node", "meta", "device", "env", "unique"];

fn is_runtime_root(name: &str) -> bool {
    RUNTIME_ROOTS.contains(&name) || name.starts_with("NOMAD_") || name.starts_with("WREN_")
}

/// What `var.*` and `local.*` resolve to.
#[derive(Debug, Default)]
pub struct Scope {
    /// `var.*`.
    pub vars: BTreeMap<String, Value>,
    /// `local.*`.
    pub locals: BTreeMap<String, Value>,
}

impl Scope {
    /// Evaluates an expression.
    pub fn eval(&self, src: &Source<'_>, expr: &Expression) -> Result<Value, EvalError> {
        let err = |message: String| EvalError {
            span: expr.span().unwrap_or(0..0),
            message,
        };
        Ok(match expr {
            Expression::Null(_) => Value::Null,
            Expression::Bool(b) => Value::Bool(*b.value()),
            Expression::Number(n) => {
                let n = n.value();
                match n.as_i64() {
                    Some(i) => Value::Int(i),
                    None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
                }
            }
            Expression::String(s) => Value::String(s.value().clone()),
            Expression::Array(items) => Value::List(
                items
                    .iter()
                    .map(|e| self.eval(src, e))
                    .collect::<Result<_, _>>()?,
            ),
            Expression::Object(obj) => {
                let mut map = BTreeMap::new();
                for (key, value) in obj.iter() {
                    let k = match key {
                        ObjectKey::Ident(id) => id.as_str().to_owned(),
                        ObjectKey::Expression(e) => match self.eval(src, e)? {
                            Value::String(s) => s,
                            other => {
                                return Err(EvalError {
                                    span: e.span().unwrap_or(0..0),
                                    message: format!(
                                        "object key must be a string, found {}",
                                        other.type_name()
                                    ),
                                });
                            }
                        },
                    };
                    map.insert(k, self.eval(src, value.expr())?);
                }
                Value::Map(map)
            }
            Expression::StringTemplate(t) => Value::String(self.render(src, t)?),
            Expression::HeredocTemplate(h) => {
                let text = self.render(src, &h.template)?;
                Value::String(match h.indent() {
                    Some(n) => dedent(&text, n),
                    None => text,
                })
            }
            Expression::Parenthesis(p) => self.eval(src, p.inner())?,
            Expression::Variable(v) => {
                let name = v.as_str();
                if is_runtime_root(name) {
                    return Err(err(format!(
                        "{name} is resolved on the client: write it inside a string, as \"${{{name}...}}\""
                    )));
                }
                return Err(err(format!(
                    "unknown variable {name:?} (use var.NAME or local.NAME)"
                )));
            }
            Expression::Traversal(t) => self.traverse(src, t, &err)?,
            Expression::UnaryOp(op) => {
                let v = self.eval(src, &op.expr)?;
                match (op.operator.value(), v) {
                    (UnaryOperator::Neg, Value::Int(i)) => Value::Int(
                        i.checked_neg()
                            .ok_or_else(|| err("number overflows".into()))?,
                    ),
                    (UnaryOperator::Neg, Value::Float(f)) => Value::Float(-f),
                    (UnaryOperator::Not, Value::Bool(b)) => Value::Bool(!b),
                    (o, v) => {
                        return Err(err(format!("cannot apply {o:?} to a {}", v.type_name())));
                    }
                }
            }
            Expression::BinaryOp(op) => {
                let l = self.eval(src, &op.lhs_expr)?;
                let r = self.eval(src, &op.rhs_expr)?;
                binary(*op.operator.value(), l, r).map_err(err)?
            }
            Expression::Conditional(c) => match self.eval(src, &c.cond_expr)? {
                Value::Bool(true) => self.eval(src, &c.true_expr)?,
                Value::Bool(false) => self.eval(src, &c.false_expr)?,
                other => {
                    return Err(err(format!(
                        "condition must be a bool, found {}",
                        other.type_name()
                    )));
                }
            },
            Expression::FuncCall(f) => {
                return Err(err(format!(
                    "function calls are not supported in wren job files (found {}())",
                    f.name.name.as_str()
                )));
            }
            Expression::ForExpr(_) => {
                return Err(err(
                    "for expressions are not supported in wren job files".into()
                ));
            }
        })
    }

    fn traverse(
        &self,
        src: &Source<'_>,
        t: &hcl_edit::expr::Traversal,
        err: &dyn Fn(String) -> EvalError,
    ) -> Result<Value, EvalError> {
        let root = match &t.expr {
            Expression::Variable(v) => v.as_str().to_owned(),
            _ => return Err(err("only var.NAME and local.NAME can be referenced".into())),
        };
        let mut ops = t.operators.iter();
        let table = match root.as_str() {
            "var" => &self.vars,
            "local" => &self.locals,
            r if is_runtime_root(r) => {
                return Err(err(format!(
                    "{r} is resolved on the client: write it inside a string, as \"${{{r}...}}\""
                )));
            }
            r => {
                return Err(err(format!(
                    "unknown variable {r:?} (use var.NAME or local.NAME)"
                )));
            }
        };
        let name = match ops.next().map(|o| o.value()) {
            Some(TraversalOperator::GetAttr(id)) => id.as_str().to_owned(),
            _ => return Err(err(format!("expected {root}.NAME"))),
        };
        let mut current = table
            .get(&name)
            .cloned()
            .ok_or_else(|| err(format!("{root}.{name} is not defined")))?;
        for op in ops {
            current = match (op.value(), current) {
                (TraversalOperator::GetAttr(id), Value::Map(m)) => m
                    .get(id.as_str())
                    .cloned()
                    .ok_or_else(|| err(format!("no key {:?}", id.as_str())))?,
                (TraversalOperator::Index(e), v) => {
                    let key = self.eval(src, e)?;
                    index(v, &key).map_err(err)?
                }
                (TraversalOperator::LegacyIndex(i), v) => index(
                    v,
                    &Value::Int(i64::try_from(*i.value()).unwrap_or(i64::MAX)),
                )
                .map_err(err)?,
                _ => {
                    return Err(err(
                        "unsupported traversal (splat or attribute of a non-object)".into(),
                    ));
                }
            };
        }
        Ok(current)
    }

    fn render(&self, src: &Source<'_>, t: &Template) -> Result<String, EvalError> {
        let mut out = String::new();
        for element in t.iter() {
            match element {
                Element::Literal(s) => out.push_str(s.value()),
                Element::Interpolation(i) => {
                    if let Some(root) = root_name(&i.expr)
                        && is_runtime_root(&root)
                    {
                        // Keep `${attr.cpu.arch}` exactly as written.
                        let text = i.span().and_then(|s| src.slice(&s).map(str::to_owned));
                        out.push_str(
                            &text.unwrap_or_else(|| format!("${{{}}}", i.expr.to_string().trim())),
                        );
                        continue;
                    }
                    match self.eval(src, &i.expr)? {
                        Value::String(s) => out.push_str(&s),
                        Value::Int(n) => out.push_str(&n.to_string()),
                        Value::Float(f) => out.push_str(&f.to_string()),
                        Value::Bool(b) => out.push_str(if b { "true" } else { "false" }),
                        other => {
                            return Err(EvalError {
                                span: i.span().unwrap_or(0..0),
                                message: format!(
                                    "cannot interpolate a {} into a string",
                                    other.type_name()
                                ),
                            });
                        }
                    }
                }
                Element::Directive(d) => {
                    return Err(EvalError {
                        span: d.span().unwrap_or(0..0),
                        message: "template directives (%{if}, %{for}) are not supported in wren job files".into(),
                    });
                }
            }
        }
        Ok(out)
    }
}

fn root_name(expr: &Expression) -> Option<String> {
    match expr {
        Expression::Variable(v) => Some(v.as_str().to_owned()),
        Expression::Traversal(t) => root_name(&t.expr),
        _ => None,
    }
}

fn index(v: Value, key: &Value) -> Result<Value, String> {
    match (v, key) {
        (Value::List(items), k) => {
            let i = k.as_i64().ok_or("list index must be a number")?;
            usize::try_from(i)
                .ok()
                .and_then(|i| items.into_iter().nth(i))
                .ok_or_else(|| format!("index {i} out of range"))
        }
        (Value::Map(m), Value::String(k)) => {
            m.get(k).cloned().ok_or_else(|| format!("no key {k:?}"))
        }
        (v, _) => Err(format!("cannot index a {}", v.type_name())),
    }
}

fn binary(op: BinaryOperator, l: Value, r: Value) -> Result<Value, String> {
    use BinaryOperator as B;
    let num = |v: &Value| match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    };
    Ok(match op {
        B::Eq => Value::Bool(l == r),
        B::NotEq => Value::Bool(l != r),
        B::And | B::Or => match (l, r) {
            (Value::Bool(a), Value::Bool(b)) => {
                Value::Bool(if op == B::And { a && b } else { a || b })
            }
            _ => return Err("&& and || need bools".into()),
        },
        B::Less | B::LessEq | B::Greater | B::GreaterEq => {
            let (a, b) = num(&l).zip(num(&r)).ok_or("comparison needs numbers")?;
            Value::Bool(match op {
                B::Less => a < b,
                B::LessEq => a <= b,
                B::Greater => a > b,
                _ => a >= b,
            })
        }
        B::Plus | B::Minus | B::Mul | B::Div | B::Mod => match (l, r) {
            (Value::Int(a), Value::Int(b)) => Value::Int(
                match op {
                    B::Plus => a.checked_add(b),
                    B::Minus => a.checked_sub(b),
                    B::Mul => a.checked_mul(b),
                    B::Div => a.checked_div(b),
                    _ => a.checked_rem(b),
                }
                .ok_or("arithmetic overflow or division by zero")?,
            ),
            (l, r) => {
                let (a, b) = num(&l).zip(num(&r)).ok_or("arithmetic needs numbers")?;
                Value::Float(match op {
                    B::Plus => a + b,
                    B::Minus => a - b,
                    B::Mul => a * b,
                    B::Div => a / b,
                    _ => a % b,
                })
            }
        },
    })
}

/// Removes up to `n` columns of leading whitespace from each line (`<<-`).
fn dedent(text: &str, n: usize) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let strip = line
            .char_indices()
            .take_while(|(i, c)| *i < n && (*c == ' ' || *c == '\t'))
            .count();
        out.push_str(&line[strip..]);
    }
    out
}
