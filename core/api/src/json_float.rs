//! JSON has no NaN or infinity: serde_json writes them as `null`. Every `f64` that can be
//! non-finite (losses, norms, densities, rates, thresholds) is read with [`null_as_nan`], so a
//! file ticketlab wrote is always read back, whether it is an object of the store or a file of a
//! run directory. An infinity comes back as NaN: only a diverged run produces one, and it fails
//! before anything is stored.

use serde::{Deserialize, Deserializer};

/// Deserialises a number, or `null` as NaN (`#[serde(deserialize_with = "...")]`).
pub fn null_as_nan<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

#[cfg(test)]
mod tests {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Loss {
        #[serde(deserialize_with = "super::null_as_nan")]
        value: f64,
    }

    #[test]
    fn nan_written_as_null_reads_back_as_nan() {
        let text = serde_json::to_string(&Loss { value: f64::NAN }).unwrap();
        assert_eq!(text, r#"{"value":null}"#);
        assert!(serde_json::from_str::<Loss>(&text).unwrap().value.is_nan());
        let yaml: Loss = serde_yaml::from_str("value: 1.5").unwrap();
        assert_eq!(yaml.value, 1.5);
    }
}
