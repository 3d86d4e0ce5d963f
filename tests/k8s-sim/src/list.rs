//! Lists, paginated with `limit`/`continue` as kube-apiserver pages them: every page is served
//! from the snapshot the first one was read at, with `remainingItemCount`.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::Inner;
use crate::http::{Target, fields, labels};
use crate::store::ApiError;
use crate::watch;

/// A list, paginated with `limit`/`continue`. Tokens carry the resourceVersion they were issued
/// at; one older than the compacted history is `410 Expired`, as etcd compaction makes it.
pub fn list(inner: &Inner, target: &Target, query: &HashMap<String, String>) -> Result<Value, ApiError> {
    let (labels, fields) = (labels(query)?, fields(query)?);
    let limit = query.get("limit").and_then(|l| l.parse::<usize>().ok()).filter(|l| *l > 0);
    let store = inner.store();
    let (issued, after) = match query.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let bad = || ApiError::new(400, "BadRequest", "continue key is not valid");
            let decoded: Value =
                STANDARD.decode(token).ok().and_then(|b| serde_json::from_slice(&b).ok()).ok_or_else(bad)?;
            let rv = decoded["rv"].as_u64().ok_or_else(bad)?;
            if rv < store.compacted {
                return Err(expired());
            }
            (
                rv,
                Some((
                    decoded["ns"].as_str().unwrap_or("").to_owned(),
                    decoded["name"].as_str().unwrap_or("").to_owned(),
                )),
            )
        }
        None => (store.rv, None),
    };
    // Every page of one list is served from the snapshot the first page was read at.
    let snapshot = store.snapshot(&target.resource, &target.namespace, issued).ok_or_else(expired)?;
    let mut matching = snapshot
        .iter()
        .filter(|((_, ns, name), _)| after.as_ref().is_none_or(|(a_ns, a_name)| (ns, name) > (a_ns, a_name)))
        .filter(|(_, object)| watch::matches(object, &labels, &fields));
    let items: Vec<Value> = matching
        .by_ref()
        .take(limit.unwrap_or(usize::MAX))
        .map(|(_, object)| {
            let mut item = object.clone();
            if let Some(map) = item.as_object_mut() {
                map.remove("kind");
                map.remove("apiVersion");
            }
            item
        })
        .collect();
    let remaining = matching.count();
    let mut metadata = json!({"resourceVersion": issued.to_string()});
    if remaining > 0 {
        let last = json!({"rv": issued, "ns": items_last(&items, "namespace"), "name": items_last(&items, "name")});
        metadata["continue"] = STANDARD.encode(last.to_string()).into();
        // As kube-apiserver does, the count is given only when no selector narrows the list.
        if labels.is_empty() && fields.name.is_none() && fields.namespace.is_none() {
            metadata["remainingItemCount"] = remaining.into();
        }
    }
    Ok(
        json!({"kind": format!("{}List", target.resource.kind), "apiVersion": target.resource.api_version(), "metadata": metadata, "items": items}),
    )
}

fn expired() -> ApiError {
    ApiError::new(
        410,
        "Expired",
        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
    )
}

fn items_last(items: &[Value], field: &str) -> String {
    items.last().and_then(|i| i["metadata"][field].as_str()).unwrap_or("").to_owned()
}
