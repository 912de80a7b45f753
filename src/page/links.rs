//! Links back to the page itself: the retry link and the language switch.
//!
//! The path and query come from the request line, so they are the client's
//! words. A link built from them must stay on this host: `//evil.example/`
//! or `/\evil.example` would be read by a browser as another host, so such a
//! target falls back to `/`.

use posture_core::lang::Lang;

/// The request target as a same-origin link: the path and query, or `/`
/// when it is not a plain absolute path.
pub fn same_origin(path_and_query: &str) -> String {
    let p = path_and_query;
    let plain = p.starts_with('/')
        && !p.starts_with("//")
        && !p.starts_with("/\\")
        && p.bytes().all(|b| b.is_ascii_graphic());
    if plain {
        p.to_string()
    } else {
        "/".to_string()
    }
}

/// The same target with `lang=` set to `lang`, other parameters kept in
/// their order. A fragment is never sent by a browser, so none is expected.
pub fn with_lang(path_and_query: &str, lang: Lang) -> String {
    let target = same_origin(path_and_query);
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut pairs: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && *p != "lang" && !p.starts_with("lang="))
        .collect();
    let lang_pair = format!("lang={}", lang.code());
    pairs.push(&lang_pair);
    format!("{path}?{}", pairs.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lang_is_replaced_and_other_parameters_are_kept_in_order() {
        assert_eq!(with_lang("/a/b", Lang::En), "/a/b?lang=en");
        assert_eq!(
            with_lang("/a?x=1&lang=nl&y=2", Lang::En),
            "/a?x=1&y=2&lang=en"
        );
        assert_eq!(
            with_lang("/a?lang&slang=nl", Lang::Nl),
            "/a?slang=nl&lang=nl"
        );
        assert_eq!(with_lang("/?", Lang::Nl), "/?lang=nl");
    }

    #[test]
    fn targets_that_leave_the_host_fall_back_to_the_root() {
        for evil in [
            "//evil.example/x",
            "/\\evil.example",
            "https://evil.example/",
            "",
            "x",
        ] {
            assert_eq!(same_origin(evil), "/", "{evil:?}");
            assert_eq!(with_lang(evil, Lang::En), "/?lang=en", "{evil:?}");
        }
        assert_eq!(same_origin("/a b"), "/");
        assert_eq!(same_origin("/finance/q?x=%2F"), "/finance/q?x=%2F");
    }
}
