//! Durations in config files, written as people write them: `15m`, `60s`,
//! `1h30m`. A bad value is a deserialisation error, so toml reports its line.

use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// A duration read from a string such as `15m` (humantime's syntax).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConfigDuration(pub Duration);

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s)
            .map(ConfigDuration)
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "bad duration {s:?}: {e} (write it like \"90s\", \"15m\" or \"1h\")"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct T {
        d: ConfigDuration,
    }

    #[test]
    fn parses_human_durations_and_rejects_nonsense() {
        let t: T = toml::from_str("d = \"15m\"").unwrap();
        assert_eq!(t.d.0, Duration::from_secs(900));
        let err = toml::from_str::<T>("d = \"fifteen\"").err().unwrap();
        assert!(err.to_string().contains("bad duration"), "{err}");
        assert!(toml::from_str::<T>("d = 15").is_err());
    }
}
