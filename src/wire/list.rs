//! Pages of lists, as a client decodes them (the service writes them from serialised items).

use utoipa::ToSchema;

use super::{Freshness, Pipeline, RejectionBody, Summary};

/// A page of execution summaries, newest first.
#[derive(ToSchema, serde::Deserialize)]
pub struct ExecutionList {
    pub items: Vec<Summary<'static>>,
    /// Pass as `continue` for the next page; null on the last.
    #[schema(rename = "continue")]
    #[serde(rename = "continue")]
    pub next: Option<String>,
    pub freshness: Freshness,
}

/// A page of pipelines, by namespace and name.
#[derive(ToSchema, serde::Deserialize)]
pub struct PipelineList {
    pub items: Vec<Pipeline<'static>>,
    /// Pass as `continue` for the next page; null on the last.
    #[schema(rename = "continue")]
    #[serde(rename = "continue")]
    pub next: Option<String>,
    pub freshness: Freshness,
}

/// A page of rejected ConfigMaps, by namespace and name.
#[derive(ToSchema, serde::Deserialize)]
pub struct RejectionList {
    pub items: Vec<RejectionBody<'static>>,
    /// Pass as `continue` for the next page; null on the last.
    #[schema(rename = "continue")]
    #[serde(rename = "continue")]
    pub next: Option<String>,
    pub freshness: Freshness,
}
