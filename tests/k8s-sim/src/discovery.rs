//! Discovery documents (`/version`, `/api`, `/apis`, `/api/v1`, `/apis/{group}/{version}`) and as
//! much OpenAPI v3 as kubectl needs to trust the server with field validation, all derived from
//! the resources served now, CRD-defined ones included.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::store::Resource;

/// The document at `path`, if it is a discovery path.
pub fn document(path: &str, resources: &[Resource]) -> Option<Value> {
    let groups = by_group_version(resources);
    Some(match path {
        "/version" => {
            json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-k8s-sim", "gitCommit": "k8s-sim",
                             "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24",
                             "compiler": "gc", "platform": "linux/amd64"})
        }
        "/api" => json!({"kind": "APIVersions", "versions": ["v1"],
                         "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
        "/apis" => {
            let list: Vec<Value> = group_names(&groups).into_iter().map(|g| api_group(g, &groups)).collect();
            json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": list})
        }
        "/openapi/v3" => {
            let paths: BTreeMap<String, Value> = groups
                .keys()
                .map(|(g, v)| {
                    let key = if g.is_empty() { format!("api/{v}") } else { format!("apis/{g}/{v}") };
                    let url = format!("/openapi/v3/{key}?hash=K8SSIM");
                    (key, json!({"serverRelativeURL": url}))
                })
                .collect();
            json!({"paths": paths})
        }
        _ => {
            if let Some(key) = path.strip_prefix("/openapi/v3/") {
                let (g, v) = split_group_version(key)?;
                return Some(openapi(groups.get(&(g, v))?));
            }
            let key = path.strip_prefix("/api/").or_else(|| path.strip_prefix("/apis/"))?;
            if !key.contains('/') && path.starts_with("/apis/") {
                return groups.keys().any(|(g, _)| g == key).then(|| api_group(key, &groups));
            }
            let (g, v) = split_group_version(&path[1..])?;
            resource_list(groups.get(&(g, v))?)?
        }
    })
}

type Groups<'a> = BTreeMap<(String, String), Vec<&'a Resource>>;

fn by_group_version(resources: &[Resource]) -> Groups<'_> {
    let mut groups: Groups<'_> = BTreeMap::new();
    for r in resources {
        groups.entry((r.group.clone(), r.version.clone())).or_default().push(r);
    }
    groups
}

fn group_names<'a>(groups: &'a Groups<'_>) -> Vec<&'a str> {
    let mut names: Vec<&str> = groups.keys().map(|(g, _)| g.as_str()).filter(|g| !g.is_empty()).collect();
    names.dedup();
    names
}

/// `api/v1` → ("", "v1"); `apis/group/version` → (group, version).
fn split_group_version(key: &str) -> Option<(String, String)> {
    let key = key.split('?').next()?;
    if let Some(v) = key.strip_prefix("api/") {
        return Some((String::new(), v.to_owned()));
    }
    let (g, v) = key.strip_prefix("apis/")?.split_once('/')?;
    (!v.contains('/')).then(|| (g.to_owned(), v.to_owned()))
}

fn api_group(group: &str, groups: &Groups<'_>) -> Value {
    let versions: Vec<Value> = groups
        .keys()
        .filter(|(g, _)| g == group)
        .map(|(g, v)| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
        .collect();
    json!({"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": versions, "preferredVersion": versions[0]})
}

fn resource_list(resources: &[&Resource]) -> Option<Value> {
    let first = resources.first()?;
    let entries: Vec<Value> = resources
        .iter()
        .map(|r| {
            json!({"name": r.plural, "singularName": r.kind.to_lowercase(), "namespaced": r.namespaced, "kind": r.kind, "shortNames": r.short_names,
                   "verbs": if crate::rbac::is_review(r) { json!(["create"]) } else { json!(["create", "delete", "get", "list", "patch", "update", "watch"]) }})
        })
        .collect();
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": first.api_version(), "resources": entries}),
    )
}

/// One PATCH operation per kind, carrying the `fieldValidation` parameter kubectl looks for.
fn openapi(resources: &[&Resource]) -> Value {
    let paths: BTreeMap<String, Value> = resources
        .iter()
        .map(|r| {
            let prefix = if r.group.is_empty() { "/api/v1".to_owned() } else { format!("/apis/{}/{}", r.group, r.version) };
            let path = if r.namespaced {
                format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
            } else {
                format!("{prefix}/{}/{{name}}", r.plural)
            };
            let op = json!({"patch": {
                "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind},
                "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}}],
                "responses": {"200": {"description": "OK"}}
            }});
            (path, op)
        })
        .collect();
    json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.33.0-k8s-sim"}, "paths": paths, "components": {"schemas": {}}})
}
