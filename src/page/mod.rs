//! The denial page: what a person (or an API client) sees when the gate
//! refuses a request, in Dutch or English, as HTML or RFC 9457
//! problem+json.
//!
//! This module renders; it never decides. The gate hands it a [`Problem`]
//! that the decision already produced, plus the snapshot for catalogue texts
//! and the service desk. Everything that came from the device (product
//! names, versions, OS names) is escaped by askama, and nothing about
//! upstreams or files is ever read from the snapshot.
//!
//! The modules import each other in one direction only (a tree, no module
//! imports one that imports it back):
//!
//! ```text
//! mod ── view ──┬── steps ──┬── model     the structs a page is made of
//!   │           ├── certificate ── model  a certificate that failed
//!   │           │           └── labels    words for the core's codes
//!   │           ├── links, input (leaves)
//!   ├── html, problem_json ── model
//!   └── negotiate ── input                Format, Problem, PageInput
//! ```

mod certificate;
mod csp;
mod html;
mod input;
mod labels;
mod links;
mod model;
mod negotiate;
mod problem_json;
mod steps;
mod view;

pub use csp::CONTENT_SECURITY_POLICY;
pub use input::{Format, NoticeInput, PageInput, Problem};
pub use negotiate::negotiate;
pub use posture_core::lang::Lang;
pub use posture_core::reasons;
pub use steps::service_trigger;

#[derive(Debug, Clone)]
pub struct Rendered {
    pub status: http::StatusCode,
    pub content_type: &'static str,
    pub body: bytes::Bytes,
}

pub const CONTENT_TYPE_HTML: &str = "text/html; charset=utf-8";
pub const CONTENT_TYPE_PROBLEM_JSON: &str = "application/problem+json";

/// Renders the warning notice (HTML only: it is shown to browsers'
/// top-level navigations, never to API clients).
pub fn render_notice(input: &NoticeInput<'_>) -> Rendered {
    let view = view::notice(input);
    Rendered {
        status: view.status,
        content_type: CONTENT_TYPE_HTML,
        body: html::render(&view),
    }
}

/// Renders a problem in the negotiated format and language.
pub fn render(input: &PageInput<'_>) -> Rendered {
    let view = view::build(input);
    match input.format {
        Format::Html => Rendered {
            status: view.status,
            content_type: CONTENT_TYPE_HTML,
            body: html::render(&view),
        },
        Format::ProblemJson => Rendered {
            status: view.status,
            content_type: CONTENT_TYPE_PROBLEM_JSON,
            body: problem_json::render(&view),
        },
    }
}
