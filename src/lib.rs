//! execwatch lists, discovers and follows pipeline executions that pipeline writers record as
//! labelled ConfigMaps.
//!
//! ```text
//!                     cli (args, commands: serve · validate · retention plan · record · get · wait)
//!                      │ runs                                   │ speaks HTTP, decodes wire::*
//!                      ▼                                        ▼
//!  source::cluster ┐  service ─ wires ─▶ modules (switched by BackendModule objects)
//!  source::dir     ┴─ watcher::Event<Object> ─▶ index::ingest ──▶ index (apply / delete / reset)
//!                                               │ decode: Execution | Rejection   │ Subscriber: served,
//!                                               ▼                                  │ ended, relisted
//!  api (warp: router, authz, conditional,  ◀── reads ── index ── change log ─▶ streams
//!       poll, stream, openapi)             ◀── reads ── history (journal ─▶ writer ─▶ SQLite/PostgreSQL;
//!                                                       archived pages, warm start, archived totals)
//!                                                retention (plan over PlannedRun ─▶ pruner, Lease)
//! ```
//!
//! Below them all, the vocabulary with no I/O: `model` (executions, phases, reasons, resources,
//! name rules), `wire` (the JSON the API speaks), `query` (the one filter, scopes, cursors, the
//! one page merge), and `insights` (what a run counts for, and the delivery metrics counted from
//! runs' facts, live or archived). Every source yields the same event stream per shard (a namespace, or the
//! directory); the index decodes outside its lock, swaps relists in atomically and serialises
//! responses once; the archive beside it hears every change through its subscriber and never
//! reaches into it. `tests/layers.rs` holds which room may import which.
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
pub mod insights;
pub mod metrics;
pub mod model;
pub mod modules;
pub mod notify;
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
