//! Reading a driver's `config` block: typed getters whose errors name the
//! key, and a check that rejects keys the driver does not know (a typo
//! must fail `job validate`, not be ignored on the client).

use std::collections::BTreeMap;

use wren_model::Value;

use crate::driver::ConfigError;

/// A task's driver config.
#[derive(Debug)]
pub(crate) struct Config<'a> {
    driver: &'static str,
    map: Option<&'a BTreeMap<String, Value>>,
}

impl<'a> Config<'a> {
    /// Wraps `value`, which must be a map (or null for an empty config),
    /// and whose keys must all be in `known`.
    pub(crate) fn new(
        driver: &'static str,
        value: &'a Value,
        known: &[&str],
    ) -> Result<Config<'a>, ConfigError> {
        let map = match value {
            Value::Null => None,
            Value::Map(m) => Some(m),
            other => {
                return Err(ConfigError {
                    driver,
                    key: "config".to_owned(),
                    message: format!("must be a block, not a {}", other.type_name()),
                });
            }
        };
        let config = Config { driver, map };
        for key in map.iter().flat_map(|m| m.keys()) {
            if !known.contains(&key.as_str()) {
                return Err(
                    config.err(key, format!("unknown option (known: {})", known.join(", ")))
                );
            }
        }
        Ok(config)
    }

    pub(crate) fn err(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            driver: self.driver,
            key: key.to_owned(),
            message: message.into(),
        }
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map
            .and_then(|m| m.get(key))
            .filter(|v| **v != Value::Null)
    }

    /// An optional string.
    pub(crate) fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(self.err(key, format!("must be a string, not a {}", v.type_name()))),
        }
    }

    /// A required, non-empty string.
    pub(crate) fn required_string(&self, key: &str) -> Result<String, ConfigError> {
        match self.string(key)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            _ => Err(self.err(key, "is required")),
        }
    }

    /// An optional list of strings (empty when absent).
    pub(crate) fn strings(&self, key: &str) -> Result<Vec<String>, ConfigError> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Value::List(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(self.err(
                        &format!("{key}[{i}]"),
                        format!("must be a string, not a {}", other.type_name()),
                    )),
                })
                .collect(),
            Some(v) => Err(self.err(
                key,
                format!("must be a list of strings, not a {}", v.type_name()),
            )),
        }
    }

    /// An optional whole number in `min..=max`.
    pub(crate) fn int(&self, key: &str, min: i64, max: i64) -> Result<Option<i64>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.as_i64() {
                Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
                Some(n) => Err(self.err(key, format!("{n} is outside {min}..={max}"))),
                None => Err(self.err(
                    key,
                    format!("must be a whole number, not a {}", v.type_name()),
                )),
            },
        }
    }

    /// An optional boolean.
    pub(crate) fn bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.err(
                key,
                format!("must be true or false, not a {}", v.type_name()),
            )),
        }
    }

    /// An optional map of names to whole numbers in `min..=max`; HCL
    /// writes a block as a map or as a list holding one map, and both are
    /// accepted (`port_map { http = 80 }`).
    pub(crate) fn int_map(
        &self,
        key: &str,
        min: i64,
        max: i64,
    ) -> Result<BTreeMap<String, i64>, ConfigError> {
        let maps: Vec<&BTreeMap<String, Value>> = match self.get(key) {
            None => return Ok(BTreeMap::new()),
            Some(Value::Map(m)) => vec![m],
            Some(Value::List(items)) => items
                .iter()
                .map(|v| {
                    v.as_map()
                        .ok_or_else(|| self.err(key, "must be a block of name = number"))
                })
                .collect::<Result<_, _>>()?,
            Some(v) => {
                return Err(self.err(key, format!("must be a block, not a {}", v.type_name())));
            }
        };
        let mut out = BTreeMap::new();
        for (name, v) in maps.into_iter().flatten() {
            match v.as_i64() {
                Some(n) if (min..=max).contains(&n) => {
                    out.insert(name.clone(), n);
                }
                _ => {
                    return Err(self.err(
                        &format!("{key}.{name}"),
                        format!("must be a whole number in {min}..={max}"),
                    ));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, Value)]) -> Value {
        Value::Map(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn typed_getters_name_the_key() {
        let v = map(&[
            ("command", Value::String("/bin/true".into())),
            (
                "args",
                Value::List(vec![Value::String("a".into()), Value::Int(1)]),
            ),
            ("pids_limit", Value::Int(0)),
        ]);
        let c = Config::new("exec", &v, &["command", "args", "pids_limit"]).unwrap();
        assert_eq!(c.required_string("command").unwrap(), "/bin/true");
        assert_eq!(
            c.strings("args").unwrap_err().to_string(),
            "exec config: args[1]: must be a string, not a number"
        );
        assert_eq!(
            c.int("pids_limit", 1, 10).unwrap_err().to_string(),
            "exec config: pids_limit: 0 is outside 1..=10"
        );
        assert_eq!(c.bool("missing").unwrap(), None);
    }

    #[test]
    fn unknown_keys_are_errors() {
        let v = map(&[("comand", Value::String("x".into()))]);
        let e = Config::new("exec", &v, &["command"]).unwrap_err();
        assert_eq!(e.key, "comand");
        assert!(e.message.contains("unknown option"));
        assert!(Config::new("exec", &Value::Int(3), &[]).is_err());
        assert!(Config::new("exec", &Value::Null, &[]).is_ok());
    }

    #[test]
    fn blocks_as_maps_or_lists() {
        let inner = map(&[("http", Value::Int(80)), ("ssh", Value::Int(22))]);
        for v in [
            map(&[("port_map", inner.clone())]),
            map(&[("port_map", Value::List(vec![inner.clone()]))]),
        ] {
            let c = Config::new("qemu", &v, &["port_map"]).unwrap();
            let m = c.int_map("port_map", 1, 65535).unwrap();
            assert_eq!(m.get("http"), Some(&80));
            assert_eq!(m.len(), 2);
        }
        let bad = map(&[("port_map", map(&[("http", Value::Int(0))]))]);
        let c = Config::new("qemu", &bad, &["port_map"]).unwrap();
        assert_eq!(
            c.int_map("port_map", 1, 65535).unwrap_err().key,
            "port_map.http"
        );
    }
}
