//! `GET /`: the dashboard, one HTML page with its CSS and JavaScript inline, compiled into the
//! binary (no CDN: the machine may be offline). It polls `/api/v1/metrics.json` every second
//! and calls the REST API for the transitions the state allows.

/// The page.
pub const PAGE: &str = include_str!("../assets/dashboard.html");
