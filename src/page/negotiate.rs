//! Content negotiation: which format (HTML or problem+json) and which
//! language (Dutch or English) a denial is rendered in.
//!
//! Headers come from the client and may be anything: every parser here is
//! total, ignores what it does not understand, and falls back to HTML in
//! Dutch, the answer that suits a person in a Dutch organisation best;
//! a browser set to languages other than Dutch and English gets English.

use posture_core::lang::Lang;

use super::input::Format;

/// Picks the format from `Accept` and the language from `?lang=` in the
/// query, else from `Accept-Language`.
pub fn negotiate(
    accept: Option<&str>,
    accept_language: Option<&str>,
    query: Option<&str>,
) -> (Format, Lang) {
    let format = accept.map_or(Format::Html, format_from_accept);
    let lang = query
        .and_then(lang_from_query)
        .or_else(|| accept_language.and_then(lang_from_accept_language))
        .unwrap_or(Lang::Nl);
    (format, lang)
}

/// How well a media range matched: its q-value (in thousandths, as RFC 9110
/// allows three decimals) and its specificity, so that `application/json`
/// beats the `*/*` that clients such as axios append.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Match {
    q: u16,
    specificity: u8,
}

fn format_from_accept(accept: &str) -> Format {
    let ranges: Vec<(String, String, u16)> = accept.split(',').filter_map(media_range).collect();
    let best = |candidates: &[(&str, &str)]| {
        candidates
            .iter()
            .filter_map(|(t, s)| best_match(&ranges, t, s))
            .max()
    };
    let json = best(&[("application", "problem+json"), ("application", "json")]);
    let html = best(&[("text", "html"), ("application", "xhtml+xml")]);
    match (json, html) {
        // A browser's text/html wins every tie: people are the default.
        (Some(j), Some(h)) if j > h && j.q > 0 => Format::ProblemJson,
        (Some(j), None) if j.q > 0 => Format::ProblemJson,
        _ => Format::Html,
    }
}

/// The q-value the most specific matching range gives `type/subtype`
/// (RFC 9110 section 12.5.1: the most specific reference has precedence).
fn best_match(ranges: &[(String, String, u16)], ty: &str, sub: &str) -> Option<Match> {
    ranges
        .iter()
        .filter_map(|(rt, rs, q)| {
            let specificity = match (rt.as_str(), rs.as_str()) {
                (t, s) if t == ty && s == sub => 2,
                (t, "*") if t == ty => 1,
                ("*", "*") => 0,
                _ => return None,
            };
            Some((specificity, *q))
        })
        .max_by_key(|(specificity, _)| *specificity)
        .map(|(specificity, q)| Match { q, specificity })
}

/// One element of `Accept`: lowercase type, subtype and q in thousandths.
/// An element that does not parse is ignored rather than guessed at.
fn media_range(element: &str) -> Option<(String, String, u16)> {
    let mut parts = element.split(';');
    let range = parts.next()?.trim().to_ascii_lowercase();
    let (ty, sub) = range.split_once('/')?;
    if ty.is_empty() || sub.is_empty() {
        return None;
    }
    let q = q_param(parts)?;
    Some((ty.trim().to_string(), sub.trim().to_string(), q))
}

/// The `q` parameter among `params`, default 1; `None` if it is malformed.
fn q_param<'a>(params: impl Iterator<Item = &'a str>) -> Option<u16> {
    for p in params {
        if let Some((k, v)) = p.split_once('=') {
            if k.trim().eq_ignore_ascii_case("q") {
                return parse_q(v.trim());
            }
        }
    }
    Some(1000)
}

/// RFC 9110 `qvalue`: `0[.ddd]` or `1[.000]`, as thousandths.
fn parse_q(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_value = format!("{frac:0<3}").parse::<u16>().ok()?;
    match int {
        "0" => Some(frac_value),
        "1" if frac_value == 0 => Some(1000),
        _ => None,
    }
}

/// The best of Dutch and English the client accepts; a client that names
/// only other languages (`de`, `fr`, `pl`) reads English better than
/// Dutch, so it gets English. Only `*`, or nothing usable: `None`.
fn lang_from_accept_language(header: &str) -> Option<Lang> {
    let mut other = false;
    let mut tags: Vec<(u16, Lang)> = header
        .split(',')
        .filter_map(|element| {
            let mut parts = element.split(';');
            let tag = parts.next()?.trim();
            let q = q_param(parts)?;
            if q == 0 {
                return None;
            }
            let lang = lang_of_tag(tag);
            if lang.is_none() && is_language_tag(tag) {
                other = true;
            }
            Some((q, lang?))
        })
        .collect();
    // Stable: among equal q-values the client's own order decides.
    tags.sort_by_key(|(q, _)| std::cmp::Reverse(*q));
    tags.first()
        .map(|(_, lang)| *lang)
        .or(other.then_some(Lang::En))
}

/// A language tag of letters (and `-` subtags), not `*`.
fn is_language_tag(tag: &str) -> bool {
    let primary = tag.split(['-', '_']).next().unwrap_or_default();
    (2..=8).contains(&primary.len()) && primary.bytes().all(|b| b.is_ascii_alphabetic())
}

/// `nl`, `nl-NL`, `nl-BE` → Dutch; `en`, `en-*` → English; others: none.
fn lang_of_tag(tag: &str) -> Option<Lang> {
    let primary = tag.split(['-', '_']).next()?.trim();
    if primary.eq_ignore_ascii_case("nl") {
        Some(Lang::Nl)
    } else if primary.eq_ignore_ascii_case("en") {
        Some(Lang::En)
    } else {
        None
    }
}

/// The first `lang=nl|en` pair of a query string (without the `?`).
fn lang_from_query(query: &str) -> Option<Lang> {
    query
        .trim_start_matches('?')
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(k, _)| *k == "lang")
        .find_map(|(_, v)| lang_of_tag(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_values_parse_as_thousandths_and_reject_nonsense() {
        assert_eq!(parse_q("1"), Some(1000));
        assert_eq!(parse_q("0.8"), Some(800));
        assert_eq!(parse_q("0.125"), Some(125));
        assert_eq!(parse_q("0"), Some(0));
        assert_eq!(parse_q("1.5"), None);
        assert_eq!(parse_q("0.1234"), None);
        assert_eq!(parse_q("high"), None);
        assert_eq!(parse_q("-1"), None);
    }

    #[test]
    fn a_malformed_range_is_ignored_not_guessed() {
        assert_eq!(media_range("application/json;q=abc"), None);
        assert_eq!(media_range("json"), None);
        assert_eq!(
            media_range(" Application/JSON ; charset=utf-8; Q=0.5"),
            Some(("application".into(), "json".into(), 500))
        );
    }

    #[test]
    fn lang_in_the_query_is_found_among_other_parameters() {
        assert_eq!(lang_from_query("a=1&lang=en&b=2"), Some(Lang::En));
        assert_eq!(lang_from_query("slang=en"), None);
        assert_eq!(lang_from_query("lang=fr&lang=nl"), Some(Lang::Nl));
        assert_eq!(lang_from_query("lang"), None);
    }
}
