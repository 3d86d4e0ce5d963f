//! List pages remembered by request. A page is a function of its request (the resource, the
//! namespace in the path, the parameters, the caller's scope) and of the index alone, so while
//! the index revision is unchanged the same request is answered from the tag it got last time,
//! and the body cached under that tag, without walking the index, encoding a continue token or
//! hashing the page again. UIs poll the same few pages: between changes, each poll costs a
//! lookup. Only complete pages are remembered, because an incomplete page's staleness changes
//! with time alone.

use quick_cache::Weighter;
use quick_cache::sync::Cache;
use warp::reply::Response;

use super::conditional::Negotiation;
use super::params::Params;
use super::{Answer, ApiError, AppState};
use crate::model::Resource;
use crate::query::Scope;
use crate::wire::Tag;

/// Bytes of requests remembered at most: a request is its key (the parameters can be long, a
/// `continue` token or a hostile `pipeline=`) and two numbers.
const BUDGET: u64 = 4 << 20;

/// What determines a list page besides the index.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) struct PageRequest {
    pub resource: Resource,
    pub namespace: Option<String>,
    pub params: Params,
    pub scope: Scope,
    /// Where a body depends on the time too (insights' relative ranges), the time it was made
    /// for; 0 for lists.
    pub as_of: i64,
}

#[derive(Clone, Copy)]
struct Remembered {
    revision: Revision,
    tag: Tag,
}

/// What a page is made of: the index at a revision, and the archive at a generation.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Revision(u64, u64);

impl Revision {
    fn now(state: &AppState) -> Self {
        Revision(state.index.revision(), state.archive.as_ref().map_or(0, |a| a.generation()))
    }
}

pub struct Pages(Cache<PageRequest, Remembered, BySize>);

#[derive(Clone)]
struct BySize;

impl Weighter<PageRequest, Remembered> for BySize {
    fn weight(&self, request: &PageRequest, _: &Remembered) -> u64 {
        let scope = request.scope.namespaces().map_or(0, |all| all.iter().map(|ns| ns.len() + 32).sum());
        (128 + request.namespace.as_ref().map_or(0, String::len) + request.params.size() + scope) as u64
    }
}

impl Default for Pages {
    fn default() -> Self {
        // quick_cache sizes its tables from an item estimate: assume requests of about 256 bytes.
        Pages(Cache::with_weighter((BUDGET / 256) as usize, BUDGET, BySize))
    }
}

impl Pages {
    /// Answers `request`: from what it got at this revision if its body is still cached, else
    /// from `page`, remembered if complete.
    pub(super) async fn reply(
        &self,
        state: &AppState,
        how: &Negotiation,
        request: PageRequest,
        page: impl Future<Output = Result<impl Answer, ApiError>>,
    ) -> Result<Response, ApiError> {
        // Read before the page is made: a change in between makes the entry unreachable, never
        // older than what it is served for.
        let revision = Revision::now(state);
        let remembered = self.0.get(&request).filter(|r| r.revision == revision);
        if let Some(response) = remembered.and_then(|r| state.responses.cached(how, r.tag, state.vary())) {
            return Ok(response);
        }
        let body = page.await?;
        let tag = body.tag();
        if body.complete() {
            self.0.insert(request, Remembered { revision, tag });
        }
        Ok(body.reply(state, how))
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::time::Duration;

    use super::*;
    use crate::api::ListBody;
    use crate::decode::{Limits, SchemaRegistry};
    use crate::fixtures::{Cm, Doc};
    use crate::index::Index;
    use crate::wire::Freshness;

    fn body(complete: bool) -> ListBody {
        let freshness = Freshness { complete, stale: false, incomplete_sources: Vec::new() };
        ListBody::new(Resource::Executions, Vec::new(), None, &freshness)
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
            resource: Resource::Executions,
            namespace: None,
            params: Params::parse(query, &["limit"]).unwrap(),
            scope: Scope::all(),
            as_of: 0,
        };
        let made = Cell::new(0);
        let ask = |query: &str, complete: bool| {
            let page = async {
                made.set(made.get() + 1);
                Ok(body(complete))
            };
            let response = futures::executor::block_on(state.pages.reply(&state, &how, request(query), page));
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

    #[test]
    fn long_requests_are_remembered_within_the_budget() {
        let state = crate::api::tests::state(Index::new(Duration::from_secs(60)));
        let long = "p".repeat(60_000);
        for i in 0..200 {
            let params = Params::parse(&format!("pipeline={long}{i}"), &["pipeline"]).unwrap();
            let request =
                PageRequest { resource: Resource::Executions, namespace: None, params, scope: Scope::all(), as_of: 0 };
            let page = async { Ok(body(true)) };
            futures::executor::block_on(state.pages.reply(&state, &Negotiation::default(), request, page)).unwrap();
        }
        assert!(state.pages.0.weight() <= BUDGET, "{} bytes remembered", state.pages.0.weight());
        assert!(state.pages.0.weight() > BUDGET / 2, "and the budget is used");
    }
}
