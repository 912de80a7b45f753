//! Durations in config files, written as people write them: `15m`, `60s`,
//! `1h30m`.
//!
//! A value that is not a duration does not stop the parse: serde and toml
//! stop at the first error, and a network team should see every mistake
//! in one run of `check-config`. So the value deserialises to a stand-in
//! and the error, with the value's position, is noted for the load that is
//! running on this thread ([`collect`]); the load reports it at its line
//! and throws the parsed config away, so no stand-in ever reaches the gate.

use serde::{Deserialize, Deserializer};
use serde_spanned::Spanned;
use std::cell::RefCell;
use std::ops::Range;
use std::time::Duration;

/// A duration read from a string such as `15m` (humantime's syntax, minus
/// the ambiguous `M`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConfigDuration(pub Duration);

/// Values that were not durations: where in the text, and why.
type Bad = Vec<(Range<usize>, String)>;

thread_local! {
    /// `Some` while [`collect`] runs on this thread.
    static BAD: RefCell<Option<Bad>> = const { RefCell::new(None) };
}

/// Runs `parse`, returning the bad durations it met (position in the text,
/// message) besides its result. Outside `collect` a bad duration is an
/// ordinary deserialisation error.
pub(crate) fn collect<T>(parse: impl FnOnce() -> T) -> (T, Bad) {
    /// Puts the outer list back even if `parse` panics: reloads run on
    /// reused blocking threads, where a list left behind would turn a bad
    /// duration read outside `collect` into the stand-in.
    struct Restore(Option<Option<Bad>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(outer) = self.0.take() {
                BAD.with(|b| b.replace(outer));
            }
        }
    }
    let mut restore = Restore(Some(BAD.with(|b| b.replace(Some(Vec::new())))));
    let result = parse();
    let outer = restore.0.take().unwrap_or_default();
    let bad = BAD.with(|b| b.replace(outer)).unwrap_or_default();
    (result, bad)
}

/// The stand-in for a value that is not a duration: within every range the
/// compile checks, so the one error reported for the value is its own.
const STAND_IN: Duration = Duration::from_secs(1);

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // toml gives any value's span when asked for a Spanned one, even in
        // a field that is not Spanned: that is where the error points.
        let value = Spanned::<String>::deserialize(d)?;
        let (span, s) = (value.span(), value.into_inner());
        match parse(&s) {
            Ok(d) => Ok(ConfigDuration(d)),
            Err(message) => {
                let noted = BAD.with(|b| match b.borrow_mut().as_mut() {
                    Some(bad) => {
                        bad.push((span, message.clone()));
                        true
                    }
                    None => false,
                });
                if noted {
                    Ok(ConfigDuration(STAND_IN))
                } else {
                    Err(serde::de::Error::custom(message))
                }
            }
        }
    }
}

/// The units a message lists, so nobody has to guess what `M` means.
const UNITS: &str = "ms, s (seconds), m (minutes), h (hours), d (days)";

/// Parses a duration, refusing a capital `M`: humantime reads `15M` as
/// fifteen months, which nobody writing a timeout means.
pub fn parse(s: &str) -> Result<Duration, String> {
    if let Some(at) = month_unit(s) {
        let mut minutes = s.to_string();
        minutes.replace_range(at..at + 1, "m");
        return Err(format!(
            "duration {s:?} is in months (capital M is months, m is minutes); \
             write {minutes:?} for minutes, or spell out \"months\" if months are meant"
        ));
    }
    humantime::parse_duration(s).map_err(|e| {
        format!(
            "bad duration {s:?}: {e} (write it like \"90s\", \"15m\" or \"1h\"; units: {UNITS})"
        )
    })
}

/// The byte offset of a unit written as a lone capital `M`.
fn month_unit(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    (0..bytes.len()).find(|&i| {
        bytes[i] == b'M'
            && i > 0
            && (bytes[i - 1].is_ascii_digit() || bytes[i - 1] == b' ')
            && bytes.get(i + 1).is_none_or(|b| !b.is_ascii_alphabetic())
    })
}

/// A duration in words, for messages: `15 minutes`, `1 hour 30 minutes`,
/// `0 seconds`; so `"15h"` meant as minutes is visible as 15 hours.
pub fn spelled(d: Duration) -> String {
    const UNITS: [(u64, &str); 4] = [
        (86_400, "day"),
        (3_600, "hour"),
        (60, "minute"),
        (1, "second"),
    ];
    let mut secs = d.as_secs();
    let mut parts = Vec::new();
    for (size, name) in UNITS {
        let n = secs / size;
        secs %= size;
        if n > 0 {
            parts.push(format!("{n} {name}{}", if n == 1 { "" } else { "s" }));
        }
    }
    let ms = d.subsec_millis();
    if ms > 0 || parts.is_empty() && d.subsec_nanos() > 0 {
        parts.push(format!("{ms} ms"));
    }
    if parts.is_empty() {
        return "0 seconds".to_string();
    }
    parts.join(" ")
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

    #[test]
    fn capital_m_is_refused_as_months_with_the_minutes_spelling() {
        let err = toml::from_str::<T>("d = \"15M\"")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("months") && err.contains("\"15m\""), "{err}");
        assert!(parse("1h30M").is_err());
        assert_eq!(
            parse("2months").unwrap(),
            humantime::parse_duration("2months").unwrap()
        );
        assert_eq!(parse("90ms").unwrap(), Duration::from_millis(90));
    }

    #[test]
    fn inside_collect_every_bad_duration_is_noted_with_its_position() {
        #[derive(Deserialize)]
        struct Two {
            a: ConfigDuration,
            b: ConfigDuration,
        }
        let text = "a = \"15M\"\nb = \"soon\"\n";
        let (parsed, bad) = collect(|| toml::from_str::<Two>(text));
        let parsed = parsed.unwrap();
        assert_eq!((parsed.a.0, parsed.b.0), (STAND_IN, STAND_IN));
        assert_eq!(bad.len(), 2);
        assert_eq!(&text[bad[0].0.clone()], "\"15M\"");
        assert_eq!(&text[bad[1].0.clone()], "\"soon\"");
    }

    #[test]
    fn a_panicking_parse_leaves_no_list_behind() {
        let caught = std::panic::catch_unwind(|| collect(|| panic!("parser bug")));
        assert!(caught.is_err());
        // Outside `collect` again: a bad duration is an error, no stand-in.
        assert!(toml::from_str::<T>("d = \"soon\"").is_err());
    }

    #[test]
    fn spelled_out() {
        assert_eq!(spelled(Duration::from_secs(5400)), "1 hour 30 minutes");
        assert_eq!(spelled(Duration::ZERO), "0 seconds");
        assert_eq!(spelled(Duration::from_millis(250)), "250 ms");
    }
}
