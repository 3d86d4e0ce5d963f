//! What a request wants and how its pages go on, with no I/O: the one execution filter (its
//! predicate written once, over anything that shows a run), the namespaces a caller may read,
//! continue tokens, and the one assembly of a page from live and archived runs.
//!
//! A new filter is a field of `ExecutionFilter` and a line of `matches`; the index walks its
//! postings and the archive pushes what SQL can down, and both leave the rest to `matches`.

mod cursor;
mod page;

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

pub use cursor::{Cursor, CursorError, NameCursor, Position};
pub use page::{ByName, Listing, merge};

use crate::model::Phase;
use crate::quote::quote;
use crate::selector::Selector;

/// The namespaces a caller may read: every one, or these.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Scope(Option<Arc<BTreeSet<String>>>);

impl Scope {
    pub fn all() -> Self {
        Scope(None)
    }

    pub fn only(namespaces: BTreeSet<String>) -> Self {
        Scope(Some(Arc::new(namespaces)))
    }

    pub fn allows(&self, namespace: &str) -> bool {
        self.0.as_ref().is_none_or(|readable| readable.contains(namespace))
    }

    /// True when it holds every namespace.
    pub fn is_all(&self) -> bool {
        self.0.is_none()
    }

    /// The namespaces it holds, unless it holds every one.
    pub fn namespaces(&self) -> Option<&BTreeSet<String>> {
        self.0.as_deref()
    }

    /// The namespaces a read of `named` (or of every namespace) covers within this scope:
    /// `None` for every one. A read of some namespaces walks only theirs, so its time says
    /// nothing of what the others hold.
    pub fn confine<'a>(&'a self, named: Option<&'a str>) -> Option<Vec<&'a str>> {
        let named: Vec<&str> = match (named, self.namespaces()) {
            (Some(ns), _) => vec![ns],
            (None, Some(readable)) => readable.iter().map(String::as_str).collect(),
            (None, None) => return None,
        };
        Some(named.into_iter().filter(|ns| self.allows(ns)).collect())
    }
}

/// What a filter looks at: a run's namespace, labels, pipeline, phase and environments, live or
/// archived. `pipeline` and `phase` are asked first and most often, so a holder that keeps them
/// apart (an archived row's columns) answers them without reading its document.
pub trait Filterable {
    fn namespace(&self) -> &str;
    fn labels(&self) -> &BTreeMap<String, String>;
    fn pipeline(&self) -> &str;
    fn phase(&self) -> Phase;
    /// The names of its environments.
    fn environments(&self) -> impl Iterator<Item = &str>;
}

/// Which executions a list wants, within the namespaces its caller may read.
#[derive(Clone, Debug, Default)]
pub struct ExecutionFilter {
    pub namespace: Option<String>,
    pub pipeline: Option<String>,
    pub phase: Option<Phase>,
    pub environment: Option<String>,
    pub labels: Option<Selector>,
    /// Not part of a continue token's fingerprint: a page goes on serving what the caller may
    /// read now, if their access changed between pages.
    pub scope: Scope,
}

impl Hash for ExecutionFilter {
    fn hash<H: Hasher>(&self, h: &mut H) {
        (&self.namespace, &self.pipeline, &self.phase, &self.environment, &self.labels).hash(h);
    }
}

/// A parameter of a filter that does not parse: its name, what it held, and what it must be.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("query parameter {name}={} is invalid: {reason}", quote(value))]
pub struct FilterError {
    pub name: &'static str,
    pub value: String,
    pub reason: String,
}

impl ExecutionFilter {
    /// The query parameters that filter executions, besides `namespace`.
    pub const PARAMETERS: [&'static str; 4] = ["pipeline", "phase", "environment", "labelSelector"];

    /// The filter a list's parameters ask for, within `scope`: `parameter` reads one's raw value,
    /// and an empty one is no filter. `namespace` comes from the path where it names one.
    pub fn from_parameters<'p>(
        namespace: Option<String>,
        parameter: impl Fn(&str) -> Option<&'p str>,
        scope: Scope,
    ) -> Result<Self, FilterError> {
        let text = |name: &str| parameter(name).filter(|v| !v.is_empty());
        let phase = text("phase").map(|raw| {
            let reason = || format!("expected one of {}", Phase::LIST);
            Phase::parse(raw).ok_or_else(|| FilterError { name: "phase", value: raw.to_owned(), reason: reason() })
        });
        let labels = text("labelSelector").map(|raw| {
            raw.parse::<Selector>().map_err(|e| FilterError { name: "labelSelector", value: e.input, reason: e.reason })
        });
        Ok(ExecutionFilter {
            namespace: namespace.or_else(|| text("namespace").map(str::to_owned)),
            pipeline: text("pipeline").map(str::to_owned),
            phase: phase.transpose()?,
            environment: text("environment").map(str::to_owned),
            labels: labels.transpose()?,
            scope,
        })
    }

    /// The one predicate: whether `run` is in this list.
    pub fn matches(&self, run: &impl Filterable) -> bool {
        self.scope.allows(run.namespace())
            && self.namespace.as_ref().is_none_or(|ns| ns == run.namespace())
            && self.pipeline.as_ref().is_none_or(|p| p == run.pipeline())
            && self.phase.is_none_or(|p| p == run.phase())
            && self.environment.as_ref().is_none_or(|env| run.environments().any(|e| e == env))
            && self.labels.as_ref().is_none_or(|s| s.matches(run.labels()))
    }

    /// The namespaces this list reads: `Some` of the one it names or of its caller's partial
    /// scope (only those the scope allows), `None` for every one.
    pub fn namespaces(&self) -> Option<Vec<&str>> {
        self.scope.confine(self.namespace.as_deref())
    }

    /// Whether it asks more than namespace, pipeline and phase: what stores keep apart and can
    /// look up. Where it does, a store reads more runs than it answers, and checks each.
    pub fn asks_beyond_columns(&self) -> bool {
        self.environment.is_some() || self.labels.is_some()
    }

    fn fingerprint(&self) -> u64 {
        let mut h = DefaultHasher::new();
        self.hash(&mut h);
        h.finish()
    }
}
