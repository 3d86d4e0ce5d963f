//! Authentication and authorization as a cluster decides them, for callers that delegate to the
//! API server (as execwatch does): `TokenReview` against a static token file in kube-apiserver's
//! `--token-auth-file` format (audience-agnostic, so valid for the API server's own audience
//! only) or bound to audiences as service-account tokens are, and `SubjectAccessReview` of
//! resource or non-resource attributes decided by the RBAC objects stored like any other
//! (`Role`, `ClusterRole`, `RoleBinding`, `ClusterRoleBinding`).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::store::{ApiError, Resource, Store};

/// Who a bearer token stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    /// The audiences a bound token was made for; `None` for a static token, which is valid for
    /// the API server's own audience alone.
    pub audiences: Option<Vec<String>>,
}

/// The API server's own audience (`--api-audiences`, defaulting to the issuer).
pub const API_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";

/// Parses kube-apiserver's static token file: `token,user,uid,"group1,group2"` per line.
pub fn parse_token_file(text: &str) -> Result<BTreeMap<String, User>, String> {
    let mut tokens = BTreeMap::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#')) {
        let fields = csv_fields(line);
        let [token, name, uid, rest @ ..] = fields.as_slice() else {
            return Err(format!("line {}: expected token,user,uid[,\"groups\"]", i + 1));
        };
        let groups = rest.first().map(|g| g.split(',').map(str::to_owned).filter(|g| !g.is_empty()).collect());
        let user = User { name: name.clone(), uid: uid.clone(), groups: groups.unwrap_or_default(), audiences: None };
        tokens.insert(token.clone(), user);
    }
    Ok(tokens)
}

/// Comma-separated fields, where a quoted field may hold commas.
fn csv_fields(line: &str) -> Vec<String> {
    let (mut fields, mut field, mut quoted) = (Vec::new(), String::new(), false);
    for c in line.trim().chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut field)),
            c => field.push(c),
        }
    }
    fields.push(field);
    fields
}

pub fn tokenreviews() -> Resource {
    Resource::new("authentication.k8s.io", "v1", "tokenreviews", "TokenReview", false, &[])
}

pub fn subjectaccessreviews() -> Resource {
    Resource::new("authorization.k8s.io", "v1", "subjectaccessreviews", "SubjectAccessReview", false, &[])
}

/// The RBAC kinds, stored and served like any other.
pub fn rbac_resources() -> Vec<Resource> {
    let rbac = |plural: &str, kind: &str, namespaced: bool| {
        Resource::new("rbac.authorization.k8s.io", "v1", plural, kind, namespaced, &[])
    };
    vec![
        rbac("roles", "Role", true),
        rbac("rolebindings", "RoleBinding", true),
        rbac("clusterroles", "ClusterRole", false),
        rbac("clusterrolebindings", "ClusterRoleBinding", false),
    ]
}

/// Whether `resource` is one of the review kinds, which are created and answered, never stored.
pub fn is_review(resource: &Resource) -> bool {
    *resource == tokenreviews() || *resource == subjectaccessreviews()
}

/// Answers a TokenReview or SubjectAccessReview request.
pub fn review(
    store: &Store,
    tokens: &BTreeMap<String, User>,
    resource: &Resource,
    mut request: Value,
) -> Result<Value, ApiError> {
    let status = if *resource == tokenreviews() {
        let token = request.pointer("/spec/token").and_then(Value::as_str).unwrap_or_default();
        // As kube-apiserver: the audiences asked for default to its own, and a token is valid
        // only for those it shares with them.
        let asked: Vec<String> = match request.pointer("/spec/audiences").and_then(Value::as_array) {
            Some(list) if !list.is_empty() => list.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            _ => vec![API_AUDIENCE.to_owned()],
        };
        match tokens.get(token) {
            Some(user) => {
                let own = user.audiences.clone().unwrap_or_else(|| vec![API_AUDIENCE.to_owned()]);
                let shared: Vec<&String> = asked.iter().filter(|a| own.contains(a)).collect();
                if shared.is_empty() {
                    json!({"authenticated": false, "error": "token audiences are invalid for the target audiences"})
                } else {
                    json!({"authenticated": true, "user": {"username": user.name, "uid": user.uid, "groups": user.groups}, "audiences": shared})
                }
            }
            None => json!({"authenticated": false, "error": "invalid bearer token"}),
        }
    } else {
        let spec = &request["spec"];
        let (attributes, path) = (&spec["resourceAttributes"], &spec["nonResourceAttributes"]);
        if attributes.is_object() == path.is_object() {
            return Err(ApiError::new(
                422,
                "Invalid",
                "SubjectAccessReview is invalid: spec: Invalid value: exactly one of nonResourceAttributes or resourceAttributes must be specified",
            ));
        }
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let user = User {
            name: text(&spec["user"]),
            uid: text(&spec["uid"]),
            groups: spec["groups"].as_array().into_iter().flatten().map(text).collect(),
            audiences: None,
        };
        let ask = if path.is_object() {
            Ask::Path { path: text(&path["path"]), verb: text(&path["verb"]) }
        } else {
            Ask::Resource {
                namespace: text(&attributes["namespace"]),
                verb: text(&attributes["verb"]),
                group: text(&attributes["group"]),
                resource: text(&attributes["resource"]),
                name: text(&attributes["name"]),
            }
        };
        match allowed_by(store, &user, &ask) {
            Some(by) => json!({"allowed": true, "reason": format!("RBAC: allowed by {by}")}),
            None => json!({"allowed": false}),
        }
    };
    request["status"] = status;
    request["metadata"] = json!({"creationTimestamp": null});
    request["kind"] = resource.kind.clone().into();
    request["apiVersion"] = resource.api_version().into();
    Ok(request)
}

/// What a SubjectAccessReview asks about.
enum Ask {
    Resource {
        namespace: String,
        verb: String,
        group: String,
        resource: String,
        name: String,
    },
    /// A URL path that is no resource (`/metrics`, `/healthz`): granted by ClusterRoles alone.
    Path {
        path: String,
        verb: String,
    },
}

/// The binding that allows `ask` to `user`, if any.
fn allowed_by(store: &Store, user: &User, ask: &Ask) -> Option<String> {
    let by_id = |plural: &str| rbac_resources().into_iter().find(|r| r.plural == plural).expect("an RBAC kind");
    let cluster_bindings = store.list(&by_id("clusterrolebindings"), "").map(|(_, b)| b.clone()).collect::<Vec<_>>();
    let namespace_bindings: Vec<Value> = match ask {
        Ask::Resource { namespace, .. } if !namespace.is_empty() => {
            store.list(&by_id("rolebindings"), namespace).map(|(_, b)| b.clone()).collect()
        }
        _ => Vec::new(),
    };
    for binding in cluster_bindings.iter().chain(&namespace_bindings) {
        let binding_ns = binding["metadata"]["namespace"].as_str().unwrap_or_default();
        if !binding["subjects"].as_array().into_iter().flatten().any(|s| subject_matches(s, user, binding_ns)) {
            continue;
        }
        let role_ref = &binding["roleRef"];
        let role_name = role_ref["name"].as_str().unwrap_or_default();
        let role = match role_ref["kind"].as_str() {
            Some("ClusterRole") => store.get(&by_id("clusterroles"), "", role_name).ok(),
            Some("Role") if !binding_ns.is_empty() => store.get(&by_id("roles"), binding_ns, role_name).ok(),
            _ => None,
        };
        if role.is_some_and(|role| role["rules"].as_array().into_iter().flatten().any(|rule| rule_allows(rule, ask))) {
            let kind = binding["kind"].as_str().unwrap_or("binding");
            return Some(format!(
                "{kind} {:?} of {} {role_name:?}",
                binding["metadata"]["name"].as_str().unwrap_or_default(),
                role_ref["kind"].as_str().unwrap_or_default()
            ));
        }
    }
    None
}

fn subject_matches(subject: &Value, user: &User, binding_ns: &str) -> bool {
    let name = subject["name"].as_str().unwrap_or_default();
    match subject["kind"].as_str().unwrap_or_default() {
        "User" => name == user.name,
        "Group" => user.groups.iter().any(|g| g == name),
        "ServiceAccount" => {
            let ns = subject["namespace"].as_str().filter(|n| !n.is_empty()).unwrap_or(binding_ns);
            user.name == format!("system:serviceaccount:{ns}:{name}")
        }
        _ => false,
    }
}

fn rule_allows(rule: &Value, ask: &Ask) -> bool {
    let list =
        |field: &str| -> Vec<&str> { rule[field].as_array().into_iter().flatten().filter_map(Value::as_str).collect() };
    let has = |field: &str, want: &str| list(field).iter().any(|v| *v == "*" || *v == want);
    match ask {
        Ask::Resource { verb, group, resource, name, .. } => {
            let names = list("resourceNames");
            has("verbs", verb)
                && has("apiGroups", group)
                && has("resources", resource)
                && (names.is_empty() || names.contains(&name.as_str()))
        }
        // As RBAC matches them: the path itself, or a prefix ending in `*`.
        Ask::Path { path, verb } => {
            let url = |u: &&str| *u == path || u.strip_suffix('*').is_some_and(|prefix| path.starts_with(prefix));
            has("verbs", verb) && list("nonResourceURLs").iter().any(url)
        }
    }
}

/// A TokenRequest answered as kube-apiserver does: a new token for the service account
/// `namespace/name`, bound to the audiences asked for (the API server's own by default), which
/// TokenReview then accepts. The simulator does not check that the service account exists.
pub fn token_request(inner: &crate::Inner, namespace: &str, name: &str, request: &Value) -> Value {
    let audiences: Vec<String> = request
        .pointer("/spec/audiences")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .filter(|a: &Vec<String>| !a.is_empty())
        .unwrap_or_else(|| vec![API_AUDIENCE.to_owned()]);
    let seconds = request.pointer("/spec/expirationSeconds").and_then(Value::as_i64).unwrap_or(3600);
    let token = format!("sim-{namespace}-{name}-{:016x}", rand_u64());
    let user = service_account(namespace, name, audiences.clone());
    inner.tokens.lock().unwrap_or_else(|p| p.into_inner()).insert(token.clone(), user);
    let expires = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(seconds);
    json!({
        "kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": crate::store::now()},
        "spec": {"audiences": audiences, "expirationSeconds": seconds},
        "status": {"token": token, "expirationTimestamp": expires.to_string()}
    })
}

/// The user a bound token of the service account `namespace/name` authenticates as.
pub fn service_account(namespace: &str, name: &str, audiences: Vec<String>) -> User {
    User {
        name: format!("system:serviceaccount:{namespace}:{name}"),
        uid: format!("uid-{namespace}-{name}"),
        groups: vec!["system:serviceaccounts".into(), format!("system:serviceaccounts:{namespace}")],
        audiences: Some(audiences),
    }
}

/// Enough randomness that two tokens differ: the time and a counter, mixed.
fn rand_u64() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    (nanos ^ n.rotate_left(32)).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_file_reads_as_kube_apiserver_reads_it() {
        let tokens = parse_token_file("# comment\nabc,alice,1,\"team-a,devs\"\nxyz,bob,2\n").unwrap();
        assert_eq!(
            tokens["abc"],
            User {
                name: "alice".into(),
                uid: "1".into(),
                groups: vec!["team-a".into(), "devs".into()],
                audiences: None
            }
        );
        assert!(tokens["xyz"].groups.is_empty());
        assert!(parse_token_file("lonely\n").is_err());
    }

    #[test]
    fn rules_match_verbs_groups_resources_names_and_wildcards() {
        let ask = Ask::Resource {
            namespace: "a".into(),
            verb: "list".into(),
            group: "pipelines.gitops.dev".into(),
            resource: "executions".into(),
            name: String::new(),
        };
        let rule = |v: Value| rule_allows(&v, &ask);
        assert!(rule(
            json!({"verbs": ["get", "list"], "apiGroups": ["pipelines.gitops.dev"], "resources": ["executions"]})
        ));
        assert!(rule(json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})));
        assert!(!rule(json!({"verbs": ["get"], "apiGroups": ["pipelines.gitops.dev"], "resources": ["executions"]})));
        assert!(!rule(json!({"verbs": ["list"], "apiGroups": [""], "resources": ["executions"]})));
        assert!(!rule(
            json!({"verbs": ["list"], "apiGroups": ["*"], "resources": ["executions"], "resourceNames": ["x"]})
        ));
        assert!(!rule(json!({"verbs": ["list"], "nonResourceURLs": ["*"]})), "a URL rule grants no resource");
    }

    #[test]
    fn non_resource_urls_match_the_path_or_a_prefix_ending_in_a_star() {
        let ask = |path: &str, verb: &str| Ask::Path { path: path.into(), verb: verb.into() };
        let rule = json!({"verbs": ["get"], "nonResourceURLs": ["/metrics", "/debug/*"]});
        assert!(rule_allows(&rule, &ask("/metrics", "get")));
        assert!(rule_allows(&rule, &ask("/debug/pprof", "get")));
        assert!(!rule_allows(&rule, &ask("/metrics", "post")));
        assert!(!rule_allows(&rule, &ask("/metricsx", "get")) && !rule_allows(&rule, &ask("/healthz", "get")));
        let resources = json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]});
        assert!(!rule_allows(&resources, &ask("/metrics", "get")), "a resource rule grants no URL");
    }
}
