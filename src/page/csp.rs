//! The Content-Security-Policy of the page. The page needs nothing from
//! anywhere: no scripts, no fonts, no frames, no forms. Its only style is
//! the inline `<style>` element, allowed by the SHA-256 of its exact bytes
//! rather than by `'unsafe-inline'`, so an injected style attribute or
//! element would not apply either.

/// The inline CSS, inserted verbatim into the `<style>` element.
pub const CSS: &str = include_str!("../../templates/page/page.css");

/// The policy to send with every page. The hash is that of `CSS`; a test
/// recomputes it, so an edited stylesheet with a stale hash fails the build
/// instead of shipping an unstyled page.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'sha256-Co1wGuqm4k1JTkRMZE2N1PnukSecFZwBKduacUSqySI='; img-src data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use sha2::{Digest, Sha256};

    fn css_hash() -> String {
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(CSS.as_bytes()))
    }

    #[test]
    fn the_policy_allows_exactly_the_inline_css() {
        let expected = format!("style-src 'sha256-{}'", css_hash());
        assert!(
            CONTENT_SECURITY_POLICY.contains(&expected),
            "templates/page/page.css changed: put {expected:?} in CONTENT_SECURITY_POLICY"
        );
    }

    /// `--name:#rrggbb` custom properties of the stylesheet's `:root`.
    fn colour(name: &str) -> [f64; 3] {
        let key = format!("--{name}:#");
        let at = CSS.find(&key).map(|i| i + key.len());
        let hex = at
            .and_then(|i| CSS.get(i..i + 6))
            .unwrap_or_else(|| panic!("no colour {name}"));
        let channel = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).map(f64::from);
        [channel(0), channel(2), channel(4)]
            .map(|c| c.unwrap_or_else(|_| panic!("bad colour {name}")))
    }

    /// WCAG 2.x relative luminance and contrast ratio.
    fn contrast(a: &str, b: &str) -> f64 {
        let lum = |rgb: [f64; 3]| {
            let lin = rgb.map(|c| {
                let c = c / 255.0;
                if c <= 0.04045 {
                    c / 12.92
                } else {
                    ((c + 0.055) / 1.055).powf(2.4)
                }
            });
            0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
        };
        let (x, y) = (lum(colour(a)), lum(colour(b)));
        (x.max(y) + 0.05) / (x.min(y) + 0.05)
    }

    #[test]
    fn every_text_colour_pair_meets_wcag_aa() {
        let pairs = [
            ("text", "bg"),
            ("heading", "bg"),
            ("link", "bg"),
            ("muted", "bg"),
            ("on-brand", "brand"),
            ("on-brand", "heading"),
            ("text", "panel"),
            ("muted", "panel"),
            ("text", "code-bg"),
            ("focus-text", "focus"),
        ];
        for (fg, bg) in pairs {
            let ratio = contrast(fg, bg);
            assert!(ratio >= 4.5, "{fg} on {bg}: {ratio:.2}:1 is below 4.5:1");
        }
    }

    #[test]
    fn focus_is_visible_and_never_colour_alone() {
        assert!(CSS.contains("a:focus-visible{outline:3px solid"));
        assert!(CSS.contains("a{color:var(--link);text-decoration:underline"));
    }

    #[test]
    fn the_policy_denies_everything_else() {
        for directive in [
            "default-src 'none'",
            "img-src data:",
            "form-action 'none'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ] {
            assert!(CONTENT_SECURITY_POLICY.contains(directive), "{directive}");
        }
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));
        assert!(!CONTENT_SECURITY_POLICY.contains("script-src"));
    }
}
