//! The upstream index: the HTTP client (`client`: PEP 691 JSON with PEP 503
//! HTML fallback, conditional requests, retries, credentials, proxies), the
//! wire forms of the simple API (`wire`), and the trust boundary that turns
//! a wire page into a domain listing (`listing`), and PyPI's serials
//! (`serial`: what changed since the last run, in one request).

mod client;
pub mod listing;
pub mod range;
pub mod serial;
pub mod wire;

pub use client::{
    Client, ClientConfig, Download, Failure, GaveUp, Page, Ranged, Retry, Traffic, UpstreamError, Validators,
    is_timeout,
};
