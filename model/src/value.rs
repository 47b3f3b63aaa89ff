//! A free-form value tree: the driver's `config` block, kept as written so
//! that each runtime reads (and validates) its own options.

use std::collections::BTreeMap;
use std::fmt;

use minicbor::data::Type;
use minicbor::{Decode, Decoder, Encode, Encoder};
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How deeply a [`Value`] may nest when it is decoded. A jobspec's driver
/// config is a few levels deep; the bound keeps hostile input from
/// exhausting the stack.
pub const MAX_VALUE_DEPTH: usize = 32;

/// A dynamically typed value, like an HCL expression after evaluation.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    /// `null`, or an attribute that is absent.
    #[default]
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A whole number.
    Int(i64),
    /// A number with a fractional part.
    Float(f64),
    /// A string.
    String(String),
    /// An ordered list.
    List(Vec<Value>),
    /// A map with string keys (HCL objects and nested blocks).
    Map(BTreeMap<String, Value>),
}

impl Value {
    /// An empty map, the config of a task that sets none.
    pub fn empty_map() -> Value {
        Value::Map(BTreeMap::new())
    }

    /// Looks a key up when this is a map.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(map) => map.get(key),
            _ => None,
        }
    }

    /// The string, when this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number as an integer, when this is an integer (or a float with no
    /// fractional part).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(*f as i64),
            _ => None,
        }
    }

    /// The boolean, when this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The items, when this is a list.
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(items) => Some(items),
            _ => None,
        }
    }

    /// The entries, when this is a map.
    pub fn as_map(&self) -> Option<&BTreeMap<String, Value>> {
        match self {
            Value::Map(map) => Some(map),
            _ => None,
        }
    }

    /// A short name of the value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "number",
            Value::Float(_) => "number",
            Value::String(_) => "string",
            Value::List(_) => "list",
            Value::Map(_) => "map",
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match serde_json::to_string(self) {
            Ok(s) => f.write_str(&s),
            Err(_) => f.write_str("<unprintable>"),
        }
    }
}

impl<C> Encode<C> for Value {
    fn encode<W: minicbor::encode::Write>(
        &self,
        e: &mut Encoder<W>,
        ctx: &mut C,
    ) -> Result<(), minicbor::encode::Error<W::Error>> {
        match self {
            Value::Null => {
                e.null()?;
            }
            Value::Bool(b) => {
                e.bool(*b)?;
            }
            Value::Int(i) => {
                e.i64(*i)?;
            }
            Value::Float(x) => {
                e.f64(*x)?;
            }
            Value::String(s) => {
                e.str(s)?;
            }
            Value::List(items) => {
                e.array(items.len() as u64)?;
                for item in items {
                    item.encode(e, ctx)?;
                }
            }
            Value::Map(map) => {
                e.map(map.len() as u64)?;
                for (k, v) in map {
                    e.str(k)?;
                    v.encode(e, ctx)?;
                }
            }
        }
        Ok(())
    }
}

impl<'b, C> Decode<'b, C> for Value {
    fn decode(d: &mut Decoder<'b>, _ctx: &mut C) -> Result<Self, minicbor::decode::Error> {
        decode_value(d, 0)
    }
}

fn decode_value(d: &mut Decoder<'_>, depth: usize) -> Result<Value, minicbor::decode::Error> {
    if depth > MAX_VALUE_DEPTH {
        return Err(minicbor::decode::Error::message("value nested too deeply"));
    }
    Ok(match d.datatype()? {
        Type::Null | Type::Undefined => {
            d.skip()?;
            Value::Null
        }
        Type::Bool => Value::Bool(d.bool()?),
        Type::U8 | Type::U16 | Type::U32 | Type::I8 | Type::I16 | Type::I32 | Type::I64 => {
            Value::Int(d.i64()?)
        }
        Type::U64 => {
            let n = d.u64()?;
            i64::try_from(n)
                .map(Value::Int)
                .unwrap_or(Value::Float(n as f64))
        }
        Type::F16 | Type::F32 | Type::F64 => Value::Float(d.f64()?),
        Type::String => Value::String(d.str()?.to_owned()),
        Type::StringIndef => {
            let mut s = String::new();
            for part in d.str_iter()? {
                s.push_str(part?);
            }
            Value::String(s)
        }
        Type::Array | Type::ArrayIndef => {
            let len = d.array()?;
            let mut items = Vec::new();
            let mut i = 0u64;
            loop {
                match len {
                    Some(n) if i >= n => break,
                    None if d.datatype()? == Type::Break => {
                        d.skip()?;
                        break;
                    }
                    _ => {}
                }
                items.push(decode_value(d, depth + 1)?);
                i += 1;
            }
            Value::List(items)
        }
        Type::Map | Type::MapIndef => {
            let len = d.map()?;
            let mut map = BTreeMap::new();
            let mut i = 0u64;
            loop {
                match len {
                    Some(n) if i >= n => break,
                    None if d.datatype()? == Type::Break => {
                        d.skip()?;
                        break;
                    }
                    _ => {}
                }
                let key = d.str()?.to_owned();
                map.insert(key, decode_value(d, depth + 1)?);
                i += 1;
            }
            Value::Map(map)
        }
        other => {
            return Err(minicbor::decode::Error::type_mismatch(other)
                .with_message("unsupported type in value"));
        }
    })
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Float(f) => s.serialize_f64(*f),
            Value::String(v) => s.serialize_str(v),
            Value::List(items) => items.serialize(s),
            Value::Map(map) => map.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor { depth: 0 })
    }
}

struct ValueVisitor {
    depth: usize,
}

struct Nested(usize);

impl<'de> de::DeserializeSeed<'de> for Nested {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        if self.0 > MAX_VALUE_DEPTH {
            return Err(de::Error::custom("value nested too deeply"));
        }
        d.deserialize_any(ValueVisitor { depth: self.0 })
    }
}

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v)
            .map(Value::Int)
            .unwrap_or(Value::Float(v as f64)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Nested(self.depth + 1))? {
            items.push(item);
        }
        Ok(Value::List(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = BTreeMap::new();
        while let Some(key) = access.next_key::<String>()? {
            let value = access.next_value_seed(Nested(self.depth + 1))?;
            map.insert(key, value);
        }
        Ok(Value::Map(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_cbor_is_rejected_not_overflowed() {
        let mut bytes = vec![0x81u8; 10_000];
        bytes.push(0xf6);
        let err = minicbor::decode::<Value>(&bytes).unwrap_err();
        assert!(err.to_string().contains("nested too deeply"), "{err}");
    }

    #[test]
    fn deep_json_is_rejected_not_overflowed() {
        let text = "[".repeat(100) + &"]".repeat(100);
        let err = serde_json::from_str::<Value>(&text).unwrap_err();
        assert!(err.to_string().contains("nested too deeply"), "{err}");
    }

    #[test]
    fn indefinite_collections_decode() {
        // [_ 1, {_ "a": true}]
        let bytes = [0x9f, 0x01, 0xbf, 0x61, b'a', 0xf5, 0xff, 0xff];
        let v: Value = minicbor::decode(&bytes).unwrap();
        let mut m = BTreeMap::new();
        m.insert("a".to_owned(), Value::Bool(true));
        assert_eq!(v, Value::List(vec![Value::Int(1), Value::Map(m)]));
    }
}
