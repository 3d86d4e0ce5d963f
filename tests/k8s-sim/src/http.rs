//! Request routing and the non-watch verbs, answering as kube-apiserver does.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use crate::labels::Selector;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use crate::Inner;
use crate::discovery;
use crate::patch::Patch;
use crate::store::{ApiError, Part, Resource};
use crate::watch::{self, FieldSelector, WatchRequest};

pub type Body = BoxBody<Bytes, std::io::Error>;

pub async fn handle(inner: Arc<Inner>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let latency = inner.faults().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let response = route(inner, req).await.unwrap_or_else(|e| json_response(e.code, &e.status()));
    Ok(response)
}

pub fn json_response(code: u16, body: &Value) -> Response<Body> {
    let bytes = Bytes::from(serde_json::to_vec(body).unwrap_or_default());
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json")
        .body(Full::new(bytes).map_err(|never| match never {}).boxed())
        .expect("valid response")
}

/// What a request is about, parsed from its path.
pub(crate) struct Target {
    pub resource: Resource,
    pub namespace: String,
    pub name: Option<String>,
    /// The object's `/status` subresource rather than the object.
    pub part: Part,
}

/// One request of a client, as it reached the resource it names.
struct Call {
    target: Target,
    verb: &'static str,
    content_type: String,
    query: HashMap<String, String>,
    dry_run: bool,
    body: Bytes,
}

async fn route(inner: Arc<Inner>, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let query: HashMap<String, String> =
        form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()).into_owned().collect();
    if path == "/_sim/faults" {
        return faults(&inner, req).await;
    }
    if let Some((ns, name)) = token_request_path(&path) {
        // kubectl sends it as protobuf, kube-rs as JSON: read both, and refuse anything else
        // rather than mint a token for the default audience.
        let protobuf = content_type(&req)? == PROTOBUF;
        let body = req.into_body().collect().await.map_err(|e| ApiError::new(400, "BadRequest", e.to_string()))?;
        let body = body.to_bytes();
        let request = if protobuf {
            crate::protobuf::decode(&body)
                .map_err(|e| ApiError::new(400, "BadRequest", format!("invalid body: {e}")))?
        } else {
            serde_json::from_slice(&body).map_err(|e| ApiError::new(400, "BadRequest", format!("invalid body: {e}")))?
        };
        return Ok(json_response(201, &crate::rbac::token_request(&inner, ns, name, &request)));
    }
    let resources = inner.store().resources();
    if let Some(body) = discovery::document(&path, &resources) {
        return Ok(json_response(200, &body));
    }
    let target = parse_target(&path, &resources)
        .ok_or_else(|| ApiError::new(404, "NotFound", "the server could not find the requested resource"))?;
    let content_type = content_type(&req)?;
    let dry_run = dry_run(&query)?;
    let verb = verb(req.method(), &target, &query, &path)?;
    // Counted whatever the answer, so tests can see how often a refused client retries.
    inner.count(format!("{verb} {} {}", target.resource.id(), target.namespace));
    if let Some(code) = inner.faults().namespace_status.get(&target.namespace).copied() {
        return Err(injected(code, &req, &target));
    }
    if inner.faults().forbidden.contains(&(verb.to_owned(), target.resource.id())) {
        return Err(ApiError::new(
            403,
            "Forbidden",
            format!(
                "{} is forbidden: User \"system:serviceaccount:execwatch:execwatch\" cannot {verb} resource \"{}\" in API group \"{}\" in the namespace \"{}\"",
                target.resource.plural, target.resource.plural, target.resource.group, target.namespace
            ),
        ));
    }
    let body = req.into_body().collect().await.map_err(|e| ApiError::new(400, "BadRequest", e.to_string()))?.to_bytes();
    if crate::rbac::is_review(&target.resource) {
        return review(&inner, &target, verb, &body).await;
    }
    match verb {
        "watch" => watch::serve(inner, watch_request(&target, &query)?),
        "list" if inner.faults().hang_lists => std::future::pending().await,
        "list" => crate::list::list(&inner, &target, &query).map(|v| json_response(200, &v)),
        _ => {
            let call = Call { target, verb, content_type, query, dry_run, body };
            let (code, object) = object_verb(&inner, &call)?;
            if verb != "get" || interleave(&inner, &call) {
                inner.changed();
            }
            Ok(json_response(code, &object))
        }
    }
}

/// Another writer's change right after a GET, where a test asked for one (`write_after_next_get`);
/// whether it wrote.
fn interleave(inner: &Inner, call: &Call) -> bool {
    let name = call.target.name.clone().unwrap_or_default();
    let key = (call.target.resource.plural.clone(), call.target.namespace.clone(), name.clone());
    let Some(patch) = inner.faults().write_after_get.remove(&key) else { return false };
    let (resource, ns) = (&call.target.resource, call.target.namespace.as_str());
    inner.store().patch(resource, ns, &name, &crate::patch::Patch::Merge(patch), (false, Part::Main)).is_ok()
}

/// `/api/v1/namespaces/{ns}/serviceaccounts/{name}/token`, the TokenRequest subresource
/// (`kubectl create token`): the namespace and the service account.
fn token_request_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/api/v1/namespaces/")?.strip_suffix("/token")?;
    let (ns, name) = rest.split_once("/serviceaccounts/")?;
    (!ns.contains('/') && !name.contains('/')).then_some((ns, name))
}

/// `/_sim/faults`: the switches tests turn, read with GET and set with POST.
async fn faults(inner: &Inner, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    match *req.method() {
        Method::GET => Ok(json_response(200, &inner.fault_state())),
        Method::POST => {
            let body = req.into_body().collect().await.map_err(|e| ApiError::new(400, "BadRequest", e.to_string()));
            inner.apply_faults(&body?.to_bytes()).map(|state| json_response(200, &state))
        }
        _ => Err(ApiError::new(405, "MethodNotAllowed", "GET or POST /_sim/faults")),
    }
}

/// The body's media type, without parameters; 415 for one a write does not accept.
fn content_type(req: &Request<Incoming>) -> Result<String, ApiError> {
    let header = req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    let content_type = header.split(';').next().unwrap_or_default().trim().to_owned();
    if body_is_supported(req.method(), &content_type) {
        return Ok(content_type);
    }
    Err(ApiError::new(
        415,
        "UnsupportedMediaType",
        format!(
            "the body of the request was in an unknown format - accepted media types include: application/json, application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml (got {content_type})"
        ),
    ))
}

fn dry_run(query: &HashMap<String, String>) -> Result<bool, ApiError> {
    match query.get("dryRun").map(String::as_str) {
        None | Some("") => Ok(false),
        Some("All") => Ok(true),
        Some(other) => Err(ApiError::new(
            400,
            "BadRequest",
            format!("Invalid dry run value: {other:?}; only \"All\" is supported"),
        )),
    }
}

/// The RBAC verb a request is, from its method, whether it names an object, and `watch`.
fn verb(
    method: &Method,
    target: &Target,
    query: &HashMap<String, String>,
    path: &str,
) -> Result<&'static str, ApiError> {
    let watching = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
    Ok(match (method, &target.name, watching) {
        (&Method::GET, None, true) => "watch",
        (&Method::GET, None, false) => "list",
        (&Method::GET, Some(_), _) => "get",
        (&Method::POST, None, _) => "create",
        (&Method::PUT, Some(_), _) => "update",
        (&Method::PATCH, Some(_), _) => "patch",
        (&Method::DELETE, Some(_), _) => "delete",
        _ => return Err(ApiError::new(405, "MethodNotAllowed", format!("{method} is not supported on {path}"))),
    })
}

/// The object a create, update or patch sends, in the format its content type says; checked
/// field by field when `fieldValidation=Strict`.
fn decoded(call: &Call) -> Result<Value, ApiError> {
    let invalid = |e: String| ApiError::new(400, "BadRequest", format!("invalid body: {e}"));
    let object = match call.content_type.as_str() {
        PROTOBUF => return crate::protobuf::decode(&call.body).map_err(invalid),
        APPLY => {
            let text = std::str::from_utf8(&call.body).map_err(|e| invalid(e.to_string()))?;
            serde_yaml::from_str::<Value>(text).map_err(|e| invalid(e.to_string()))?
        }
        _ => serde_json::from_slice::<Value>(&call.body).map_err(|e| invalid(e.to_string()))?,
    };
    if call.query.get("fieldValidation").is_some_and(|v| v == "Strict") && !call.content_type.contains("patch") {
        strict(&call.target.resource, &object)?;
    }
    Ok(object)
}

/// get, create, update, patch or delete of one object: the status code and the object.
fn object_verb(inner: &Inner, call: &Call) -> Result<(u16, Value), ApiError> {
    let (resource, ns) = (&call.target.resource, call.target.namespace.as_str());
    let name = call.target.name.clone().unwrap_or_default();
    let mut store = inner.store();
    match call.verb {
        "get" => store.get(resource, ns, &name).map(|o| (200, o)),
        "create" => store.create(resource, ns, decoded(call)?, call.dry_run).map(|o| (201, o)),
        "update" => {
            store.update(resource, ns, &name, decoded(call)?, (call.dry_run, call.target.part)).map(|o| (200, o))
        }
        "patch" => {
            let patch = patch(call)?;
            let created = matches!(patch, Patch::Apply { .. }) && store.get(resource, ns, &name).is_err();
            let code = if created { 201 } else { 200 };
            store.patch(resource, ns, &name, &patch, (call.dry_run, call.target.part)).map(|o| (code, o))
        }
        _ => {
            let options: Value = if call.body.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&call.body)
                    .map_err(|e| ApiError::new(400, "BadRequest", format!("invalid body: {e}")))?
            };
            let preconditions = crate::store::Preconditions {
                uid: options.pointer("/preconditions/uid").and_then(Value::as_str),
                resource_version: options.pointer("/preconditions/resourceVersion").and_then(Value::as_str),
            };
            let dry_run = call.dry_run || options["dryRun"].as_array().is_some_and(|d| d.iter().any(|v| v == "All"));
            store.delete(resource, ns, &name, preconditions, dry_run).map(|o| (200, deleted(resource, o)))
        }
    }
}

/// The patch a PATCH sends: JSON patch, server-side apply (which needs a field manager) or merge.
fn patch(call: &Call) -> Result<Patch, ApiError> {
    Ok(match call.content_type.as_str() {
        JSON_PATCH => Patch::Json(decoded(call)?),
        APPLY => {
            let manager = call.query.get("fieldManager").filter(|m| !m.is_empty()).ok_or_else(|| {
                ApiError::new(
                    422,
                    "Invalid",
                    "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                )
            })?;
            Patch::Apply { object: decoded(call)?, manager: manager.clone() }
        }
        _ => Patch::Merge(decoded(call)?),
    })
}

/// TokenReview and SubjectAccessReview: created and answered, never stored.
async fn review(inner: &Inner, target: &Target, verb: &str, body: &[u8]) -> Result<Response<Body>, ApiError> {
    if verb != "create" {
        return Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!("{verb} is not supported on {}", target.resource.plural),
        ));
    }
    let (status, hang) = {
        let faults = inner.faults();
        (faults.review_status, faults.hang_reviews)
    };
    if hang {
        // Never answered: the caller's own deadline must end the wait.
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
    }
    if let Some(code) = status {
        return Err(ApiError::new(
            code,
            "InternalError",
            format!("Internal error occurred: {} injected by k8s-sim", target.resource.plural),
        ));
    }
    let request: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::new(400, "BadRequest", format!("invalid body: {e}")))?;
    let tokens = inner.tokens.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let answer = crate::rbac::review(&inner.store(), &tokens, &target.resource, request)?;
    Ok(json_response(201, &answer))
}

/// Bodies are JSON (objects, merge and JSON patches), YAML for server-side apply, or protobuf for
/// creating and replacing objects (as kubectl's imperative commands send them); anything else
/// (CBOR, protobuf patches) gets 415.
fn body_is_supported(method: &Method, content_type: &str) -> bool {
    !matches!(*method, Method::POST | Method::PUT | Method::PATCH)
        || content_type.is_empty()
        || match *method {
            Method::PATCH => [MERGE_PATCH, STRATEGIC_PATCH, JSON_PATCH, APPLY].contains(&content_type),
            _ => content_type == "application/json" || content_type == PROTOBUF,
        }
}

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";
const MERGE_PATCH: &str = "application/merge-patch+json";
const STRATEGIC_PATCH: &str = "application/strategic-merge-patch+json";
const JSON_PATCH: &str = "application/json-patch+json";
const APPLY: &str = "application/apply-patch+yaml";

/// `fieldValidation=Strict`: unknown top-level fields of the built-in kinds are an error.
fn strict(resource: &Resource, object: &Value) -> Result<(), ApiError> {
    let known: &[&str] = match resource.plural.as_str() {
        "configmaps" => &["apiVersion", "kind", "metadata", "data", "binaryData", "immutable"],
        "secrets" => &["apiVersion", "kind", "metadata", "data", "stringData", "type", "immutable"],
        "namespaces" => &["apiVersion", "kind", "metadata", "spec", "status"],
        _ => return Ok(()),
    };
    let unknown: Vec<String> = object
        .as_object()
        .into_iter()
        .flat_map(|o| o.keys())
        .filter(|k| !known.contains(&k.as_str()))
        .map(|k| format!("unknown field \"{k}\""))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(ApiError::new(400, "BadRequest", format!("strict decoding error: {}", unknown.join(", "))))
}

/// What kube-apiserver says for an injected status.
fn injected(code: u16, req: &Request<Incoming>, target: &Target) -> ApiError {
    let verb = req.method().as_str().to_lowercase();
    match code {
        403 => ApiError::new(
            403,
            "Forbidden",
            format!(
                "{} is forbidden: User \"system:serviceaccount:execwatch:execwatch\" cannot {verb} resource \"{}\" in API group \"\" in the namespace \"{}\"",
                target.resource.plural, target.resource.plural, target.namespace
            ),
        ),
        500 => ApiError::new(500, "InternalError", "Internal error occurred: injected by k8s-sim"),
        other => ApiError::new(other, "Unknown", format!("injected status {other}")),
    }
}

/// Deleting a ConfigMap answers with a Status; a Namespace with the object, now terminating.
fn deleted(resource: &Resource, object: Value) -> Value {
    if *resource == Resource::namespaces() || *resource == Resource::crds() {
        let mut object = object;
        object["status"] = json!({"phase": "Terminating"});
        return object;
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
           "details": {"name": object["metadata"]["name"], "kind": resource.plural, "uid": object["metadata"]["uid"]}})
}

fn parse_target(path: &str, resources: &[Resource]) -> Option<Target> {
    let find = |group: &str, version: &str, plural: &str| {
        resources.iter().find(|r| r.group == group && r.version == version && r.plural == plural).cloned()
    };
    let (group, version, rest) = if let Some(rest) = path.strip_prefix("/api/v1/") {
        ("", "v1", rest)
    } else {
        let rest = path.strip_prefix("/apis/")?;
        let mut parts = rest.splitn(3, '/');
        let (group, version, rest) = (parts.next()?, parts.next()?, parts.next()?);
        (group, version, rest)
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let target = |resource: Resource, namespace: &str, name: Option<&str>| {
        Some(Target { resource, namespace: namespace.to_owned(), name: name.map(str::to_owned), part: Part::Main })
    };
    let status = |resource: Resource, namespace: &str, name: &str| {
        let name = Some(name.to_owned());
        let namespace = namespace.to_owned();
        resource.status_subresource.then_some(Target { resource, namespace, name, part: Part::Status })
    };
    let cluster = |plural: &str| find(group, version, plural).filter(|r| !r.namespaced);
    let namespaced = |plural: &str| find(group, version, plural).filter(|r| r.namespaced);
    match parts.as_slice() {
        // Listing a namespaced kind across all namespaces, or a cluster-scoped kind.
        [plural] => target(find(group, version, plural)?, "", None),
        ["namespaces", ns, plural] => target(namespaced(plural)?, ns, None),
        ["namespaces", ns, plural, name] => target(namespaced(plural)?, ns, Some(name)),
        [plural, name] => target(cluster(plural)?, "", Some(name)),
        ["namespaces", ns, plural, name, "status"] => status(namespaced(plural)?, ns, name),
        [plural, name, "status"] => status(cluster(plural)?, "", name),
        _ => None,
    }
}

fn watch_request(target: &Target, query: &HashMap<String, String>) -> Result<WatchRequest, ApiError> {
    let rv = match query.get("resourceVersion").map(String::as_str) {
        None | Some("") | Some("0") => None,
        Some(rv) => Some(
            rv.parse::<u64>()
                .map_err(|_| ApiError::new(400, "BadRequest", format!("invalid resourceVersion {rv:?}")))?,
        ),
    };
    Ok(WatchRequest {
        resource: target.resource.clone(),
        namespace: target.namespace.clone(),
        labels: labels(query)?,
        fields: fields(query)?,
        rv,
        timeout: query.get("timeoutSeconds").and_then(|t| t.parse().ok()).map(std::time::Duration::from_secs),
        bookmarks: query.get("allowWatchBookmarks").is_some_and(|v| v == "true"),
    })
}

pub(crate) fn labels(query: &HashMap<String, String>) -> Result<Selector, ApiError> {
    query.get("labelSelector").map_or(Ok(Selector::default()), |s| {
        s.parse().map_err(|e: String| ApiError::new(400, "BadRequest", format!("unable to parse requirement: {e}")))
    })
}

pub(crate) fn fields(query: &HashMap<String, String>) -> Result<FieldSelector, ApiError> {
    let mut selector = FieldSelector::default();
    for part in query.get("fieldSelector").map(String::as_str).unwrap_or("").split(',').filter(|p| !p.is_empty()) {
        let (key, value) = part
            .split_once("==")
            .or_else(|| part.split_once('='))
            .ok_or_else(|| ApiError::new(400, "BadRequest", format!("invalid field selector {part:?}")))?;
        match key {
            "metadata.name" => selector.name = Some(value.to_owned()),
            "metadata.namespace" => selector.namespace = Some(value.to_owned()),
            _ => {
                return Err(ApiError::new(
                    400,
                    "BadRequest",
                    format!("\"{key}\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""),
                ));
            }
        }
    }
    Ok(selector)
}
