//! execwatch lists, discovers and follows pipeline executions that pipeline writers record as
//! labelled ConfigMaps.
//!
//! ```text
//!  source::cluster (a watcher per namespace) ┐
//!  source::dir (manifests in a directory)    ┴─ watcher::Event<Object> ─▶ index::ingest
//!                                                                          │ validate::decode
//!                                                                          ▼ (pure: Execution | Rejection)
//!                                   api (warp, JSON) ◀── read ── index (apply / delete / reset)
//! ```
//!
//! Every source yields the same event stream per shard (a namespace, or the directory); the
//! index decodes outside its lock, swaps relists in atomically and serialises responses once.
#![forbid(unsafe_code)]

pub mod access;
pub mod api;
pub mod cli;
pub mod decode;
pub mod files;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod history;
pub mod index;
pub mod metrics;
pub mod model;
pub mod modules;
pub mod parallel;
pub mod query;
pub mod quote;
pub mod retention;
pub mod routes;
pub mod selector;
mod service;
pub mod source;

pub mod wire;

pub use service::Service;
pub use source::Sources;
