//! The Content-Security-Policy of the page. The page needs nothing from
//! anywhere: no scripts, no fonts, no frames, no forms. Its only style is
//! the inline `<style>` element, allowed by the SHA-256 of its exact bytes
//! rather than by `'unsafe-inline'`, so an injected style attribute or
//! element would not apply either.

/// The inline CSS, inserted verbatim into the `<style>` element.
pub const CSS: &str = include_str!("../../templates/page/page.css");

/// The policy to send with every page. The hash is that of [`CSS`]; a test
/// recomputes it, so an edited stylesheet with a stale hash fails the build
/// instead of shipping an unstyled page.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'sha256-CVnW7ISBFdU9qzZvU1Uckd2zIQFHU3s45baAV4F9DXs='; img-src data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

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
