//! Pages: one assembly of live and archived runs in the one order of every execution list, and
//! pages of lists ordered by namespace and name.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::{NameCursor, Position, Scope};
use crate::model::Resource;
use crate::wire::Json;

/// A page of a list ordered by namespace and name: up to `limit` after `after` (checked to
/// belong to this `list` and `namespace`), within `namespace` (or any) and `scope`.
pub struct ByName<'a> {
    pub list: Resource,
    pub namespace: Option<&'a str>,
    pub scope: &'a Scope,
    pub after: Option<&'a NameCursor>,
    pub limit: usize,
}

impl ByName<'_> {
    /// The page of `map`, whose keys `key` makes and `id` takes apart, and the next page's cursor.
    ///
    /// A list of some namespaces (one named, or a caller's partial scope) walks only those
    /// namespaces' keys, so its time says nothing of what the others hold.
    pub fn page<'m, K: Ord + Clone, V>(
        &self,
        map: &'m BTreeMap<K, V>,
        key: impl Fn(&str, &str) -> K,
        id: impl Fn(&K) -> (&str, &str),
        listed: impl Fn(&V) -> bool,
    ) -> (Vec<&'m V>, Option<NameCursor>) {
        let after = self.after.map(|c| key(&c.namespace, &c.name));
        let (key, id) = (&key, &id);
        let walk: Box<dyn Iterator<Item = (&'m K, &'m V)> + '_> =
            if let Some(namespaces) = self.scope.confine(self.namespace) {
                Box::new(namespaces.into_iter().flat_map(move |ns| {
                    let first = key(ns, "");
                    let from = match &after {
                        Some(after) if *after >= first => Bound::Excluded(after.clone()),
                        _ => Bound::Included(first),
                    };
                    map.range((from, Bound::Unbounded)).take_while(move |(k, _)| id(k).0 == ns)
                }))
            } else {
                Box::new(map.range((after.map_or(Bound::Unbounded, Bound::Excluded), Bound::Unbounded)))
            };
        // What is walked is within the scope: its namespaces, or every one.
        let mut matching = walk.filter(|(_, v)| listed(v));
        let page: Vec<(&K, &V)> = matching.by_ref().take(self.limit).collect();
        let more = matching.next().is_some();
        let next = page.last().filter(|_| more).map(|(k, _)| {
            let (namespace, name) = id(k);
            NameCursor::new(self.list, self.namespace, namespace, name)
        });
        (page.into_iter().map(|(_, v)| v).collect(), next)
    }
}

/// Items of an execution list in its order, each with its place: a page of live runs, or of
/// archived ones.
#[derive(Default)]
pub struct Listing {
    pub items: Vec<(Position, Json)>,
    /// More items follow the last.
    pub more: bool,
    /// Where reading stopped short of the list's end (the archive reads a bounded number of
    /// rows a page): nothing beyond it was looked at.
    pub stopped: Option<Position>,
}

impl Listing {
    /// The first `limit` of `items`, in order, read up to `stopped`.
    pub fn first(mut items: Vec<(Position, Json)>, stopped: Option<Position>, limit: usize) -> Listing {
        items.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(stop) = &stopped {
            items.retain(|(position, _)| position <= stop);
        }
        let more = items.len() > limit;
        items.truncate(limit);
        Listing { items, more, stopped }
    }
}

/// The one page assembly: the first `limit` of a live and an archived listing (empty where there
/// is no archive), and where the next page starts.
pub fn merge(live: Listing, archived: Listing, limit: usize) -> (Vec<Json>, Option<Position>) {
    let mut all: Vec<(Position, Json)> = live.items;
    all.extend(archived.items);
    all.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(stop) = &archived.stopped {
        // Archived rows beyond where reading stopped were not looked at: stop there too.
        all.retain(|(position, _)| position <= stop);
    }
    let more = all.len() > limit || live.more || archived.more;
    all.truncate(limit);
    let next = match (all.last(), &archived.stopped) {
        (Some((last, _)), _) if all.len() == limit && (more || archived.stopped.is_some()) => Some(last.clone()),
        (_, Some(stop)) => Some(stop.clone()),
        (Some((last, _)), None) if more => Some(last.clone()),
        _ => None,
    };
    (all.into_iter().map(|(_, item)| item).collect(), next)
}
