//! Parameter values as plugins receive them: checked and with defaults filled.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Error, Result};

/// A plugin's parameters, sorted by name. The checker has already validated them against the
/// plugin's schema and filled defaults, so getters only fail on a plugin's own misuse.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Params(pub BTreeMap<String, Value>);

impl Params {
    /// Empty parameters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builder-style insert.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.0.insert(key.to_string(), value.into());
        self
    }

    /// Fills the default of every parameter of `specs` that is not set yet (what the checker
    /// does before a plugin sees its parameters); set values are kept.
    pub fn with_defaults(mut self, specs: &[super::ParamSpec]) -> Self {
        for spec in specs {
            if !self.0.contains_key(spec.name)
                && let Some(v) = spec.default_value()
            {
                self.0.insert(spec.name.to_string(), v);
            }
        }
        self
    }

    /// The raw value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    fn need(&self, key: &str) -> Result<&Value> {
        self.0
            .get(key)
            .ok_or_else(|| Error::param(key, "missing (and the plugin declares no default)"))
    }

    /// A number.
    pub fn f64(&self, key: &str) -> Result<f64> {
        self.need(key)?.as_f64().ok_or_else(|| Error::param(key, "expected a number"))
    }

    /// A non-negative integer.
    pub fn usize(&self, key: &str) -> Result<usize> {
        self.need(key)?
            .as_u64()
            .map(|v| v as usize)
            .ok_or_else(|| Error::param(key, "expected a non-negative integer"))
    }

    /// An integer.
    pub fn i64(&self, key: &str) -> Result<i64> {
        self.need(key)?.as_i64().ok_or_else(|| Error::param(key, "expected an integer"))
    }

    /// A boolean.
    pub fn bool(&self, key: &str) -> Result<bool> {
        self.need(key)?.as_bool().ok_or_else(|| Error::param(key, "expected true or false"))
    }

    /// A string.
    pub fn str(&self, key: &str) -> Result<&str> {
        self.need(key)?.as_str().ok_or_else(|| Error::param(key, "expected a string"))
    }

    /// A list of non-negative integers.
    pub fn usize_list(&self, key: &str) -> Result<Vec<usize>> {
        let items =
            self.need(key)?.as_array().ok_or_else(|| Error::param(key, "expected a list"))?;
        items
            .iter()
            .map(|v| {
                v.as_u64().map(|v| v as usize).ok_or_else(|| Error::param(key, "expected integers"))
            })
            .collect()
    }

    /// A list of numbers.
    pub fn f64_list(&self, key: &str) -> Result<Vec<f64>> {
        let items =
            self.need(key)?.as_array().ok_or_else(|| Error::param(key, "expected a list"))?;
        items
            .iter()
            .map(|v| v.as_f64().ok_or_else(|| Error::param(key, "expected numbers")))
            .collect()
    }

    /// A list of strings.
    pub fn str_list(&self, key: &str) -> Result<Vec<String>> {
        let items =
            self.need(key)?.as_array().ok_or_else(|| Error::param(key, "expected a list"))?;
        items
            .iter()
            .map(|v| {
                v.as_str().map(str::to_string).ok_or_else(|| Error::param(key, "expected strings"))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::{ParamSpec, ParamType};

    #[test]
    fn with_defaults_fills_only_what_is_unset() {
        let specs = [
            ParamSpec::new("rate", ParamType::Float, "").default("0.6"),
            ParamSpec::new("scope", ParamType::Str, "").default("\"global\""),
            ParamSpec::new("required", ParamType::Int, ""),
        ];
        let p = Params::new().with("scope", "layerwise").with_defaults(&specs);
        assert_eq!(p, Params::new().with("rate", 0.6).with("scope", "layerwise"));
    }
}
