//! Parameter schemas: what each plugin accepts, checked before anything runs.

use serde_json::Value;

/// The type of a parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParamType {
    /// An integer.
    Int,
    /// A number (integers are accepted).
    Float,
    /// `true` or `false`.
    Bool,
    /// Any string.
    Str,
    /// One of a fixed set of strings.
    Choice(&'static [&'static str]),
    /// A run's saved weights: `"final"`, `"init"` or a step number as a string (`"2000"`).
    WeightsAt,
    /// A list of integers.
    IntList,
    /// A list of numbers.
    FloatList,
    /// A list of strings.
    StrList,
    /// A mapping with the fields of these specs (`stop: { when: generalised, patience: 2000 }`):
    /// each field checked by its spec, fields not written take their defaults.
    Record(&'static [ParamSpec]),
}

impl ParamType {
    /// The name shown in docs and errors.
    pub fn describe(&self) -> String {
        match self {
            ParamType::Int => "integer".into(),
            ParamType::Float => "number".into(),
            ParamType::Bool => "boolean".into(),
            ParamType::Str => "string".into(),
            ParamType::Choice(c) => format!(
                "one of {}",
                c.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
            ),
            ParamType::WeightsAt => "`final`, `init` or a step number such as `\"2000\"`".into(),
            ParamType::IntList => "list of integers".into(),
            ParamType::FloatList => "list of numbers".into(),
            ParamType::StrList => "list of strings".into(),
            ParamType::Record(fields) => format!(
                "mapping of {}",
                fields.iter().map(|f| format!("`{}`", f.name)).collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

/// A run's saved weights, as a [`ParamType::WeightsAt`] value names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SavedWeights {
    /// After the last step.
    Final,
    /// The initial weights.
    Init,
    /// The checkpoint at this step (0 is the initial weights).
    Step(u64),
}

impl SavedWeights {
    /// `final`, `init` or a step number; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "final" => Some(SavedWeights::Final),
            "init" => Some(SavedWeights::Init),
            step => step.parse().ok().map(SavedWeights::Step),
        }
    }
}

/// Whether a parameter's value belongs in its stage's cache key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InKey {
    /// It can change the stage's result.
    Always,
    /// Bookkeeping that cannot change the result, such as how often a trainer saves a
    /// resumable state.
    Never,
    /// Only when set to something other than its default.
    UnlessDefault,
}

/// One parameter of a plugin.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParamSpec {
    /// Name as written in experiment files.
    pub name: &'static str,
    /// Type.
    pub ty: ParamType,
    /// Default as a JSON literal (`"0.6"`, `"\"global\""`); `None` = required.
    pub default: Option<&'static str>,
    /// Inclusive lower bound for numbers (and list elements).
    pub min: Option<f64>,
    /// Upper bound for numbers (and list elements).
    pub max: Option<f64>,
    /// Whether `max` itself is excluded (e.g. pruning rate in [0, 1)).
    pub max_exclusive: bool,
    /// Another numeric parameter of the same plugin that bounds this one (and each element of
    /// a list) from above, e.g. checkpoint steps are at most `steps`.
    pub at_most: Option<&'static str>,
    /// Whether the value belongs in the stage's cache key.
    pub in_key: InKey,
    /// One-line documentation.
    pub doc: &'static str,
}

impl ParamSpec {
    /// A required parameter with no range; refine with the builder methods.
    pub const fn new(name: &'static str, ty: ParamType, doc: &'static str) -> Self {
        Self {
            name,
            ty,
            default: None,
            min: None,
            max: None,
            max_exclusive: false,
            at_most: None,
            in_key: InKey::Always,
            doc,
        }
    }

    /// Leaves the parameter out of cache keys: it cannot change the result.
    pub const fn not_in_key(mut self) -> Self {
        self.in_key = InKey::Never;
        self
    }

    /// Puts the parameter in cache keys only when its value differs from its default: a
    /// parameter added later keeps every key computed before it existed.
    pub const fn in_key_unless_default(mut self) -> Self {
        self.in_key = InKey::UnlessDefault;
        self
    }

    /// Whether `value` enters the cache key.
    pub fn keys(&self, value: &Value) -> bool {
        match self.in_key {
            InKey::Always => true,
            InKey::Never => false,
            InKey::UnlessDefault => {
                let default = self.default.and_then(|d| serde_json::from_str::<Value>(d).ok());
                default.as_ref() != Some(value)
            }
        }
    }

    /// Sets the default (a JSON literal).
    pub const fn default(mut self, json: &'static str) -> Self {
        self.default = Some(json);
        self
    }

    /// Inclusive range.
    pub const fn range(mut self, min: f64, max: f64) -> Self {
        self.min = Some(min);
        self.max = Some(max);
        self
    }

    /// Half-open range `[min, max)`.
    pub const fn range_exclusive(mut self, min: f64, max: f64) -> Self {
        self.min = Some(min);
        self.max = Some(max);
        self.max_exclusive = true;
        self
    }

    /// Lower bound only.
    pub const fn min(mut self, min: f64) -> Self {
        self.min = Some(min);
        self
    }

    /// At most the value of parameter `other` of the same plugin (checked with every value
    /// known, before anything runs).
    pub const fn at_most(mut self, other: &'static str) -> Self {
        self.at_most = Some(other);
        self
    }

    /// With `params` the plugin's values (defaults filled), an error if this parameter's value
    /// (or an element of it) exceeds its [`ParamSpec::at_most`] bound.
    pub fn check_bound(&self, params: &serde_json::Map<String, Value>) -> Result<(), String> {
        let (Some(other), Some(value)) = (self.at_most, params.get(self.name)) else {
            return Ok(());
        };
        let Some(bound) = params.get(other).and_then(Value::as_f64) else { return Ok(()) };
        let values: Vec<f64> = match value {
            Value::Array(items) => items.iter().filter_map(Value::as_f64).collect(),
            v => v.as_f64().into_iter().collect(),
        };
        match values.into_iter().find(|&v| v > bound) {
            Some(v) => Err(format!(
                "{v} is beyond `{other}` = {bound}; `{}` must be at most `{other}`",
                self.name
            )),
            None => Ok(()),
        }
    }

    /// The default parsed as JSON.
    pub fn default_value(&self) -> Option<Value> {
        self.default.map(|d| serde_json::from_str(d).expect("plugin default must be valid JSON"))
    }

    /// Checks a value against type and range; the error says what would be valid.
    pub fn check(&self, value: &Value) -> Result<(), String> {
        let expect = || format!("expected {}, found {}", self.ty.describe(), describe_value(value));
        match self.ty {
            ParamType::Int => {
                let v = value.as_i64().ok_or_else(expect)?;
                self.check_range(v as f64)
            }
            ParamType::Float => {
                let v = value.as_f64().ok_or_else(expect)?;
                self.check_range(v)
            }
            ParamType::Bool => value.as_bool().map(|_| ()).ok_or_else(expect),
            ParamType::Str => value.as_str().map(|_| ()).ok_or_else(expect),
            ParamType::Choice(choices) => {
                let s = value.as_str().ok_or_else(expect)?;
                if choices.contains(&s) {
                    Ok(())
                } else {
                    Err(format!("`{s}` is not {}", self.ty.describe()))
                }
            }
            ParamType::WeightsAt => {
                let s = value.as_str().ok_or_else(expect)?;
                match SavedWeights::parse(s) {
                    Some(_) => Ok(()),
                    None => Err(format!("`{s}` is not {}", self.ty.describe())),
                }
            }
            ParamType::Record(fields) => self.check_record(fields, value),
            ParamType::IntList | ParamType::FloatList | ParamType::StrList => {
                let items = value.as_array().ok_or_else(expect)?;
                for (i, item) in items.iter().enumerate() {
                    let ok = match self.ty {
                        ParamType::IntList => item.as_i64().map(|v| v as f64),
                        ParamType::FloatList => item.as_f64(),
                        _ => item.as_str().map(|_| 0.0),
                    };
                    let v = ok.ok_or_else(|| format!("element {i}: {}", expect()))?;
                    if self.ty != ParamType::StrList {
                        self.check_range(v).map_err(|e| format!("element {i}: {e}"))?;
                    }
                }
                Ok(())
            }
        }
    }

    /// The value as the IR holds it: a record with every field's default filled (so that
    /// writing a default or leaving it out gives the same cache key); other values as they are.
    pub fn normalised(&self, value: &Value) -> Value {
        match (self.ty, value) {
            (ParamType::Record(fields), Value::Object(map)) => {
                let mut out = map.clone();
                for field in fields {
                    if let Some(given) = map.get(field.name) {
                        out.insert(field.name.to_string(), field.normalised(given));
                    } else if let Some(default) = field.default_value() {
                        out.insert(field.name.to_string(), default);
                    }
                }
                Value::Object(out)
            }
            _ => value.clone(),
        }
    }

    /// Checks a record's fields: each known (with the closest name for a typo), each valid,
    /// each required one present.
    fn check_record(&self, fields: &[ParamSpec], value: &Value) -> Result<(), String> {
        let map = value.as_object().ok_or_else(|| {
            format!("expected {}, found {}", self.ty.describe(), describe_value(value))
        })?;
        let names: Vec<&str> = fields.iter().map(|f| f.name).collect();
        for (key, field_value) in map {
            let Some(field) = fields.iter().find(|f| f.name == key.as_str()) else {
                return Err(format!(
                    "`{key}` is not a field of `{}`: {}",
                    self.name,
                    crate::plugin::registry::suggestion(key, &names, "its fields")
                ));
            };
            field.check(field_value).map_err(|e| format!("`{}.{key}`: {e}", self.name))?;
        }
        match fields.iter().find(|f| f.default.is_none() && !map.contains_key(f.name)) {
            Some(missing) => Err(format!("`{}` needs the field `{}`", self.name, missing.name)),
            None => Ok(()),
        }
    }

    fn check_range(&self, v: f64) -> Result<(), String> {
        let below = self.min.is_some_and(|m| v < m);
        let above = self.max.is_some_and(|m| if self.max_exclusive { v >= m } else { v > m });
        if !v.is_finite() || below || above {
            Err(format!("{v} is out of range: expected {}", self.describe_range()))
        } else {
            Ok(())
        }
    }

    /// The range in interval notation, e.g. `[0, 1)`, or `any`.
    pub fn describe_range(&self) -> String {
        match (self.min, self.max) {
            (None, None) => "any value".into(),
            (Some(a), None) => format!("a value >= {a}"),
            (None, Some(b)) => {
                format!("a value {} {b}", if self.max_exclusive { "<" } else { "<=" })
            }
            (Some(a), Some(b)) => {
                format!("a value in [{a}, {b}{}", if self.max_exclusive { ")" } else { "]" })
            }
        }
    }
}

/// A short description of a JSON value's type, for errors.
pub fn describe_value(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean `{b}`"),
        Value::Number(n) => format!("number `{n}`"),
        Value::String(s) => format!("string `{s}`"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}
