//! Parameter schemas as plugins declare them, and parameter values as plugins read them.

use serde_json::{Value, json};

/// The type of a parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamTy {
    /// An integer.
    Int,
    /// A number (integers are accepted).
    Float,
    /// `true` or `false`.
    Bool,
    /// Any string.
    Str,
    /// One of a fixed set of strings.
    Choice(Vec<String>),
    /// A list of integers.
    IntList,
    /// A list of numbers.
    FloatList,
    /// A list of strings.
    StrList,
}

impl ParamTy {
    fn to_json(&self) -> Value {
        match self {
            ParamTy::Int => json!("int"),
            ParamTy::Float => json!("float"),
            ParamTy::Bool => json!("bool"),
            ParamTy::Str => json!("string"),
            ParamTy::Choice(c) => json!({ "choice": c }),
            ParamTy::IntList => json!("int_list"),
            ParamTy::FloatList => json!("float_list"),
            ParamTy::StrList => json!("string_list"),
        }
    }
}

/// One declared parameter: ticketlab checks experiment files against these before running and
/// fills defaults, so a plugin only ever sees valid values.
///
/// ```
/// use ticketlab_plugin_sdk::ParamDecl;
/// let noise = ParamDecl::float("noise", "noise scale relative to the layer's mean |w|")
///     .default(0.1)
///     .range(0.0, 10.0);
/// assert_eq!(noise.name, "noise");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ParamDecl {
    /// Name as written in experiment files.
    pub name: String,
    /// Type.
    pub ty: ParamTy,
    /// Default; `None` makes the parameter required.
    pub default: Option<Value>,
    /// Inclusive lower bound for numbers (and list elements).
    pub min: Option<f64>,
    /// Upper bound for numbers (and list elements).
    pub max: Option<f64>,
    /// Whether `max` itself is excluded.
    pub max_exclusive: bool,
    /// One-line documentation.
    pub doc: String,
}

impl ParamDecl {
    /// A required parameter of type `ty`; refine with the builder methods.
    pub fn new(name: &str, ty: ParamTy, doc: &str) -> Self {
        Self {
            name: name.into(),
            ty,
            default: None,
            min: None,
            max: None,
            max_exclusive: false,
            doc: doc.into(),
        }
    }

    /// An integer parameter.
    pub fn int(name: &str, doc: &str) -> Self {
        Self::new(name, ParamTy::Int, doc)
    }

    /// A number parameter.
    pub fn float(name: &str, doc: &str) -> Self {
        Self::new(name, ParamTy::Float, doc)
    }

    /// A boolean parameter.
    pub fn bool(name: &str, doc: &str) -> Self {
        Self::new(name, ParamTy::Bool, doc)
    }

    /// A string parameter.
    pub fn string(name: &str, doc: &str) -> Self {
        Self::new(name, ParamTy::Str, doc)
    }

    /// A parameter taking one of `choices`.
    pub fn choice(name: &str, choices: &[&str], doc: &str) -> Self {
        Self::new(name, ParamTy::Choice(choices.iter().map(|c| c.to_string()).collect()), doc)
    }

    /// Sets the default.
    pub fn default(mut self, value: impl Into<Value>) -> Self {
        self.default = Some(value.into());
        self
    }

    /// Inclusive range `[min, max]`.
    pub fn range(mut self, min: f64, max: f64) -> Self {
        self.min = Some(min);
        self.max = Some(max);
        self
    }

    /// Half-open range `[min, max)`.
    pub fn range_exclusive(mut self, min: f64, max: f64) -> Self {
        self = self.range(min, max);
        self.max_exclusive = true;
        self
    }

    /// Lower bound only.
    pub fn min(mut self, min: f64) -> Self {
        self.min = Some(min);
        self
    }

    /// The JSON form sent to the host (see `abi::PluginDescriptor::params_schema`).
    pub fn to_json(&self) -> Value {
        let mut o = serde_json::Map::new();
        o.insert("name".into(), json!(self.name));
        o.insert("type".into(), self.ty.to_json());
        if let Some(d) = &self.default {
            o.insert("default".into(), d.clone());
        }
        if let Some(m) = self.min {
            o.insert("min".into(), json!(m));
        }
        if let Some(m) = self.max {
            o.insert("max".into(), json!(m));
        }
        if self.max_exclusive {
            o.insert("max_exclusive".into(), json!(true));
        }
        o.insert("doc".into(), json!(self.doc));
        Value::Object(o)
    }
}

/// A schema as the JSON array sent to the host.
pub fn schema_json(params: &[ParamDecl]) -> String {
    Value::Array(params.iter().map(ParamDecl::to_json).collect()).to_string()
}

/// The stage's parameters: a JSON object, already checked against the declared schema with
/// defaults filled. It also holds the core's own parameters of the stage (for a prune stage:
/// `rate`, `scope`, `at`, `schedule`, `on_collapse`), which a plugin may read or ignore.
///
/// Getters return `Err(message)` so they compose with `?` in [`crate::Pruner::score`] and
/// [`crate::Dataset::build`].
#[derive(Debug, Clone, PartialEq)]
pub struct Params(pub Value);

impl Params {
    /// The raw value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    fn need(&self, key: &str) -> Result<&Value, String> {
        self.get(key).ok_or_else(|| format!("parameter `{key}` is missing"))
    }

    /// A number.
    pub fn f64(&self, key: &str) -> Result<f64, String> {
        self.need(key)?.as_f64().ok_or_else(|| format!("parameter `{key}`: expected a number"))
    }

    /// An integer.
    pub fn i64(&self, key: &str) -> Result<i64, String> {
        self.need(key)?.as_i64().ok_or_else(|| format!("parameter `{key}`: expected an integer"))
    }

    /// A non-negative integer.
    pub fn u64(&self, key: &str) -> Result<u64, String> {
        self.need(key)?
            .as_u64()
            .ok_or_else(|| format!("parameter `{key}`: expected a non-negative integer"))
    }

    /// A boolean.
    pub fn bool(&self, key: &str) -> Result<bool, String> {
        self.need(key)?
            .as_bool()
            .ok_or_else(|| format!("parameter `{key}`: expected true or false"))
    }

    /// A string.
    pub fn str(&self, key: &str) -> Result<&str, String> {
        self.need(key)?.as_str().ok_or_else(|| format!("parameter `{key}`: expected a string"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_json_has_every_field() {
        let p = [
            ParamDecl::float("noise", "scale").default(0.1).range_exclusive(0.0, 1.0),
            ParamDecl::choice("mode", &["a", "b"], "which"),
        ];
        let v: Value = serde_json::from_str(&schema_json(&p)).unwrap();
        assert_eq!(
            v,
            json!([
                {"name": "noise", "type": "float", "default": 0.1, "min": 0.0, "max": 1.0, "max_exclusive": true, "doc": "scale"},
                {"name": "mode", "type": {"choice": ["a", "b"]}, "doc": "which"}
            ])
        );
    }

    #[test]
    fn getters_name_the_key() {
        let p = Params(json!({"p": 7, "s": "x"}));
        assert_eq!(p.u64("p"), Ok(7));
        assert_eq!(p.str("s"), Ok("x"));
        assert_eq!(p.f64("s"), Err("parameter `s`: expected a number".to_string()));
        assert_eq!(p.bool("q"), Err("parameter `q` is missing".to_string()));
    }
}
