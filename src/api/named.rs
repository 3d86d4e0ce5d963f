//! What the lists ordered by namespace and name (pipelines, rejections) read from a request
//! before they page: whom it may show, the namespace it keeps to, the page size and where it
//! starts.

use super::authz::readable;
use super::params::Params;
use super::{ApiError, AppState};
use crate::access::{Caller, Verb};
use crate::model::Resource;
use crate::query::{NameCursor, Scope};

/// A by-name list request, authorised for its verb.
pub(super) struct NamedList<'a> {
    pub scope: Scope,
    /// The namespace of the path, or of the `namespace` filter.
    pub namespace: Option<&'a str>,
    pub limit: usize,
    pub after: Option<NameCursor>,
}

impl<'a> NamedList<'a> {
    pub async fn read(
        state: &AppState,
        caller: &Caller,
        resource: Resource,
        namespaced: Option<&'a str>,
        params: &'a Params,
        verb: Verb,
    ) -> Result<Self, ApiError> {
        let filtered = params.get("namespace");
        let scope = readable(state, caller, resource, namespaced, filtered, verb).await?;
        let namespace = namespaced.or(filtered);
        let limit = params.limit(state.page)?;
        let after = params.get("continue").map(|token| NameCursor::decode(token, resource, namespace)).transpose();
        Ok(NamedList { scope, namespace, limit, after: after.map_err(ApiError::from)? })
    }
}
