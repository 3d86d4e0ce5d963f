//! The JSON the API speaks, for the server and its clients alike: what is served is serialised
//! from these types, `execwatch get` and `wait` decode into them, and `/openapi.json` is derived
//! from them. No I/O here, and nothing of how the server finds what it serves.

mod delivery;
mod error;
mod execution;
mod freshness;
mod insights;
mod json;
mod list;
mod pipeline;

pub use delivery::{Delivery, DeliveryList, DeliveryState};
pub use error::{ErrorBody, ErrorCode};
pub use execution::{Detail, EnvironmentPhase, RejectionBody, Summary, summary};
pub use freshness::{Freshness, ShardState, ShardStatus};
pub use insights::{Bucket, Deployments, Durations, InsightsBody, InsightsGroup, Rate, Recovery, Runs, Stats};
pub use json::{Json, Tag, to_bytes};
pub use list::{ExecutionList, PipelineList, RejectionList};
pub use pipeline::{Pipeline, PipelineEnvironment};
