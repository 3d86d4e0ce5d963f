//! List pages remembered by request. A page is a function of its request (the resource, the
//! namespace in the path, the parameters, the caller's scope) and of the index alone, so while
//! the index revision is unchanged the same request is answered from the tag it got last time,
//! and the body cached under that tag, without walking the index, encoding a continue token or
//! hashing the page again. UIs poll the same few pages: between changes, each poll costs a
//! lookup. Only complete pages are remembered, because an incomplete page's staleness changes
//! with time alone.

use quick_cache::sync::Cache;
use warp::reply::Response;

use super::conditional::Negotiation;
use super::params::Params;
use super::{ApiError, AppState, ListBody};
use crate::index::Scope;

/// Requests remembered at most; each holds only its key and two numbers.
const REMEMBERED: usize = 4096;

/// What determines a list page besides the index.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) struct PageRequest {
    pub resource: &'static str,
    pub namespace: Option<String>,
    pub params: Params,
    pub scope: Scope,
}

#[derive(Clone, Copy)]
struct Remembered {
    revision: u64,
    tag: u64,
}

pub struct Pages(Cache<PageRequest, Remembered>);

impl Default for Pages {
    fn default() -> Self {
        Pages(Cache::new(REMEMBERED))
    }
}

impl Pages {
    /// Answers `request`: from what it got at this revision if its body is still cached, else
    /// from `page`, remembered if complete.
    pub(super) fn reply(
        &self,
        state: &AppState,
        how: &Negotiation,
        request: PageRequest,
        page: impl FnOnce() -> Result<ListBody, ApiError>,
    ) -> Result<Response, ApiError> {
        // Read before the page is made: a change in between makes the entry unreachable, never
        // older than what it is served for.
        let revision = state.index.revision();
        let remembered = self.0.get(&request).filter(|r| r.revision == revision);
        if let Some(response) = remembered.and_then(|r| state.responses.cached(how, r.tag, state.vary())) {
            return Ok(response);
        }
        let body = page()?;
        if body.complete {
            self.0.insert(request, Remembered { revision, tag: body.tag() });
        }
        Ok(body.reply(state, how))
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::time::Duration;

    use super::*;
    use crate::fixtures::{Cm, Doc};
    use crate::index::{Completeness, Index};
    use crate::validate::{Limits, SchemaRegistry};

    fn body(complete: bool) -> ListBody {
        let freshness = Completeness { complete, stale: false, incomplete_sources: Vec::new() };
        ListBody::new("executions", Vec::new(), None, &freshness)
    }

    #[test]
    fn a_page_is_made_once_per_revision_and_only_when_complete() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
        let registry = SchemaRegistry::load(&dir, Limits::default()).unwrap();
        let index = Index::new(Duration::from_secs(60));
        index.register("ns", Some("ns"));
        let state = crate::api::tests::state(index.clone());
        let how = Negotiation::default();
        let request = |query: &str| PageRequest {
            resource: "executions",
            namespace: None,
            params: Params::parse(query, &["limit"]).unwrap(),
            scope: Scope::all(),
        };
        let made = Cell::new(0);
        let ask = |query: &str, complete: bool| {
            let response = state.pages.reply(&state, &how, request(query), || {
                made.set(made.get() + 1);
                Ok(body(complete))
            });
            assert_eq!(response.unwrap().status(), 200);
            made.get()
        };
        assert_eq!(ask("limit=5", true), 1);
        assert_eq!(ask("limit=5", true), 1, "the same request at the same revision is remembered");
        assert_eq!(ask("limit=6", true), 2, "another request is another page");
        index.apply("ns", registry.decode(&Cm::new("ns", "run").doc(&Doc::new("p")).build()));
        assert_eq!(ask("limit=5", true), 3, "a change to the index makes it again");
        assert_eq!(ask("limit=7", false), 4);
        assert_eq!(ask("limit=7", false), 5, "an incomplete page is never remembered");
    }
}
