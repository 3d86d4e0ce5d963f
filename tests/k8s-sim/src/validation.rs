//! Object validation as kube-apiserver does it before storing: malformed bodies are `400
//! BadRequest`, invalid objects `422 Invalid` naming each field, so nothing stored can break a
//! client that lists it later.

use serde_json::Value;

use crate::store::{ApiError, Resource};

/// The most bytes of `data` plus `binaryData` a ConfigMap may hold.
pub const MAX_CONFIGMAP_BYTES: usize = 1024 * 1024;

/// Checks `object` (the full object about to be stored) and, for an update, its `old` self.
pub fn validate(resource: &Resource, object: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    if *resource == Resource::configmaps() {
        types(object)?;
    }
    let mut errors = Vec::new();
    let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let name_ok = if *resource == Resource::namespaces() {
        is_dns_label(name)
    } else if resource.group == "rbac.authorization.k8s.io" {
        // RBAC names are path segments (`system:auth-delegator`).
        !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '%'])
    } else {
        is_dns_subdomain(name)
    };
    if !name_ok {
        let what = if *resource == Resource::namespaces() { "RFC 1123 label" } else { "RFC 1123 subdomain" };
        errors.push(format!(
            "metadata.name: Invalid value: {name:?}: a lowercase {what} must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
        ));
    }
    for (key, value) in object.pointer("/metadata/labels").and_then(Value::as_object).into_iter().flatten() {
        if !is_qualified_name(key) {
            errors.push(format!("metadata.labels: Invalid value: {key:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"));
        }
        if !value.as_str().is_some_and(is_label_value) {
            errors.push(format!("metadata.labels: Invalid value: {value}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"));
        }
    }
    if *resource == Resource::configmaps() {
        configmap(object, old, &mut errors);
    }
    if errors.is_empty() {
        return Ok(());
    }
    Err(ApiError::new(422, "Invalid", format!("{} {name:?} is invalid: {}", resource.kind, errors.join(", "))))
}

/// Field types a Go client would refuse to decode: the apiserver answers 400 for them.
fn types(object: &Value) -> Result<(), ApiError> {
    let bad = |field: &str, want: &str| {
        ApiError::new(
            400,
            "BadRequest",
            format!(
                "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: json: cannot unmarshal into Go struct field ConfigMap.{field} of type {want}"
            ),
        )
    };
    for field in ["data", "binaryData"] {
        match object.get(field) {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                if map.values().any(|v| !v.is_string()) {
                    return Err(bad(field, if field == "data" { "string" } else { "[]uint8" }));
                }
            }
            Some(_) => return Err(bad(field, "map[string]string")),
        }
    }
    if object.get("immutable").is_some_and(|v| !v.is_boolean() && !v.is_null()) {
        return Err(bad("immutable", "bool"));
    }
    Ok(())
}

fn configmap(object: &Value, old: Option<&Value>, errors: &mut Vec<String>) {
    use base64::Engine;
    let map = |field: &str| object.get(field).and_then(Value::as_object).cloned().unwrap_or_default();
    let (data, binary) = (map("data"), map("binaryData"));
    let mut size = 0;
    for (key, value) in &data {
        size += key.len() + value.as_str().map_or(0, str::len);
    }
    for (key, value) in &binary {
        let decoded = base64::engine::general_purpose::STANDARD.decode(value.as_str().unwrap_or_default());
        match decoded {
            Ok(bytes) => size += key.len() + bytes.len(),
            Err(e) => errors.push(format!("binaryData[{key}]: Invalid value: illegal base64 data: {e}")),
        }
        if data.contains_key(key) {
            errors.push(format!("data[{key}]: Invalid value: {key:?}: duplicate of key present in binaryData"));
        }
    }
    for key in data.keys().chain(binary.keys()) {
        if key.is_empty() || key.len() > 253 || !key.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c)) {
            errors.push(format!("data[{key}]: Invalid value: {key:?}: a valid config key must consist of alphanumeric characters, '-', '_' or '.'"));
        }
    }
    if size > MAX_CONFIGMAP_BYTES {
        errors.push(format!("[]: Too long: must have at most {MAX_CONFIGMAP_BYTES} bytes"));
    }
    if let Some(old) = old.filter(|o| o["immutable"] == true) {
        if object["immutable"] != true {
            errors.push("immutable: Forbidden: field is immutable when `immutable` is set".into());
        }
        for field in ["data", "binaryData"] {
            if object.get(field).unwrap_or(&Value::Null) != old.get(field).unwrap_or(&Value::Null) {
                errors.push(format!("{field}: Forbidden: field is immutable when `immutable` is set"));
            }
        }
    }
}

pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn is_label_value(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= 63
            && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

fn is_qualified_name(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    prefix.is_none_or(is_dns_subdomain) && !name.is_empty() && is_label_value(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cm(body: Value) -> Result<(), ApiError> {
        validate(&Resource::configmaps(), &body, None)
    }

    #[test]
    fn configmaps_are_checked_as_kube_apiserver_does() {
        assert!(cm(json!({"metadata": {"name": "ok-1.a", "labels": {"a.b/c": "d"}}, "data": {"x.yaml": "y"}})).is_ok());
        assert_eq!(cm(json!({"metadata": {"name": "a"}, "data": {"x": 7}})).unwrap_err().code, 400);
        assert_eq!(cm(json!({"metadata": {"name": "Bad_Name"}})).unwrap_err().code, 422);
        assert_eq!(cm(json!({"metadata": {"name": "a", "labels": {"-bad": "x"}}})).unwrap_err().code, 422);
        assert_eq!(cm(json!({"metadata": {"name": "a", "labels": {"k": "v v"}}})).unwrap_err().code, 422);
        let big = "x".repeat(MAX_CONFIGMAP_BYTES);
        let err = cm(json!({"metadata": {"name": "a"}, "data": {"k": big}})).unwrap_err();
        assert!(err.message.contains("Too long"), "{}", err.message);
    }

    #[test]
    fn an_immutable_configmap_keeps_its_data() {
        let old = json!({"metadata": {"name": "a"}, "data": {"k": "v"}, "immutable": true});
        let changed = json!({"metadata": {"name": "a"}, "data": {"k": "w"}, "immutable": true});
        let err = validate(&Resource::configmaps(), &changed, Some(&old)).unwrap_err();
        assert!(err.message.contains("field is immutable"), "{}", err.message);
        let relabelled =
            json!({"metadata": {"name": "a", "labels": {"x": "y"}}, "data": {"k": "v"}, "immutable": true});
        assert!(validate(&Resource::configmaps(), &relabelled, Some(&old)).is_ok());
    }
}
