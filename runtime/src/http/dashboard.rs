//! `GET /`: the dashboard, a page an operator leaves open: the node's
//! modules (versions, instances, mailbox depths, message rates), the reload
//! history, the live event feed, and reload / dry-run / rollback buttons.
//!
//! Three small static files embedded in the binary (`dashboard/`): no CDN,
//! no external asset, nothing to install. They hold no data, so they are
//! served without the token (like `/healthz`); the data the page reads
//! (`/status`, `/history`, `/events`) and the buttons follow the usual rules:
//! the page sends the token the operator enters once, kept in the tab's
//! `sessionStorage` (gone when the tab closes), as a bearer header. The
//! loopback Host check applies as to every route. A strict
//! Content-Security-Policy keeps the page to its own scripts and origin.

use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/dashboard.js");
const STYLE: &str = include_str!("dashboard/dashboard.css");

/// Only the page's own files and origin; never framed (clickjacking).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

/// `GET /`.
pub(crate) async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}

/// `GET /dashboard.js`.
pub(crate) async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// `GET /dashboard.css`.
pub(crate) async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, content_type),
            (CACHE_CONTROL, "no-cache"),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (CONTENT_SECURITY_POLICY, CSP),
            (REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_only_its_own_files() {
        for text in [INDEX, SCRIPT, STYLE] {
            assert!(!text.contains("http://") && !text.contains("https://"));
        }
        assert!(INDEX.contains("/dashboard.js") && INDEX.contains("/dashboard.css"));
        assert!(SCRIPT.contains("sessionStorage") && !SCRIPT.contains("localStorage"));
    }
}
