//! How PATCH changes an object: JSON merge patch (RFC 7386, which strategic merge equals for the
//! kinds served here), JSON patch (RFC 6902, as `kubectl patch --type json` and the Python
//! client's list bodies send it), and server-side apply.

use serde_json::{Value, json};

use crate::store::{ApiError, metadata, now};

/// Applies every operation in order; any failure leaves the object unchanged.
pub fn json_patch(mut object: Value, ops: &Value) -> Result<Value, ApiError> {
    let ops = ops.as_array().ok_or_else(|| invalid("a JSON patch must be a list of operations".into()))?;
    for op in ops {
        let field = |name: &str| op.get(name).and_then(Value::as_str);
        let path = field("path").ok_or_else(|| invalid(format!("operation {op} has no path")))?;
        let value = || op.get("value").cloned().ok_or_else(|| invalid(format!("operation {op} has no value")));
        match field("op").unwrap_or_default() {
            "add" => add(&mut object, path, value()?)?,
            "remove" => {
                remove(&mut object, path)?;
            }
            "replace" => {
                remove(&mut object, path)?;
                add(&mut object, path, value()?)?;
            }
            "move" => {
                let from = field("from").ok_or_else(|| invalid(format!("operation {op} has no from")))?;
                let moved = remove(&mut object, from)?;
                add(&mut object, path, moved)?;
            }
            "copy" => {
                let from = field("from").ok_or_else(|| invalid(format!("operation {op} has no from")))?;
                let copied = object.pointer(from).cloned().ok_or_else(|| missing(from))?;
                add(&mut object, path, copied)?;
            }
            "test" => {
                if object.pointer(path) != Some(&value()?) {
                    return Err(invalid(format!("testing value {path} failed")));
                }
            }
            other => return Err(invalid(format!("unexpected kind of operation {other:?}"))),
        }
    }
    Ok(object)
}

fn invalid(message: String) -> ApiError {
    ApiError::new(422, "Invalid", message)
}

fn missing(path: &str) -> ApiError {
    invalid(format!("the server rejected our request due to an error in our request: doc is missing path: {path:?}"))
}

/// The parent of `path` and its last token, unescaped.
fn split(path: &str) -> Result<(&str, String), ApiError> {
    let (parent, last) = path.rsplit_once('/').ok_or_else(|| invalid(format!("invalid JSON pointer {path:?}")))?;
    Ok((parent, last.replace("~1", "/").replace("~0", "~")))
}

fn add(object: &mut Value, path: &str, value: Value) -> Result<(), ApiError> {
    if path.is_empty() {
        *object = value;
        return Ok(());
    }
    let (parent, token) = split(path)?;
    match object.pointer_mut(parent).ok_or_else(|| missing(path))? {
        Value::Object(map) => {
            map.insert(token, value);
        }
        Value::Array(items) if token == "-" => items.push(value),
        Value::Array(items) => {
            let at = token.parse::<usize>().ok().filter(|i| *i <= items.len()).ok_or_else(|| missing(path))?;
            items.insert(at, value);
        }
        _ => return Err(missing(path)),
    }
    Ok(())
}

fn remove(object: &mut Value, path: &str) -> Result<Value, ApiError> {
    let (parent, token) = split(path)?;
    let removed = match object.pointer_mut(parent).ok_or_else(|| missing(path))? {
        Value::Object(map) => map.remove(&token),
        Value::Array(items) => token.parse::<usize>().ok().filter(|i| *i < items.len()).map(|i| items.remove(i)),
        _ => None,
    };
    removed.ok_or_else(|| missing(path))
}

/// How a PATCH changes an object.
pub enum Patch {
    /// JSON merge patch (RFC 7386); for the kinds served here a strategic merge patch is the same.
    Merge(Value),
    /// JSON patch (RFC 6902): a list of operations.
    Json(Value),
    /// Server-side apply: create or merge, recorded under the field manager. Field ownership
    /// and conflicts are not tracked, and fields left out of the applied object are kept.
    Apply { object: Value, manager: String },
}

pub fn set_managed_fields(object: &mut Value, manager: &str) {
    let entry = json!([{"manager": manager, "operation": "Apply", "apiVersion": object["apiVersion"], "time": now(), "fieldsType": "FieldsV1", "fieldsV1": {}}]);
    metadata(object).insert("managedFields".into(), entry);
}

/// RFC 7386 merge: objects merge, `null` deletes, anything else replaces. An object patched
/// onto a non-object starts from an empty one, so its nulls delete rather than being stored.
pub fn merge(target: &mut Value, patch: &Value) {
    if patch.is_object() && !target.is_object() {
        *target = json!({});
    }
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else if !k.starts_with('$') {
                    // Strategic-merge directives ($patch, $retainKeys) do not apply to these kinds.
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_operation_applies_as_rfc_6902_says() {
        let object = json!({"metadata": {"labels": {"a": "1"}}, "data": {"k": "v"}, "list": [1, 2]});
        let ops = json!([
            {"op": "add", "path": "/metadata/labels/b~1c", "value": "2"},
            {"op": "replace", "path": "/data/k", "value": "w"},
            {"op": "remove", "path": "/metadata/labels/a"},
            {"op": "add", "path": "/list/-", "value": 3},
            {"op": "move", "from": "/list/0", "path": "/first"},
            {"op": "copy", "from": "/data", "path": "/copy"},
            {"op": "test", "path": "/first", "value": 1}
        ]);
        let patched = json_patch(object, &ops).unwrap();
        assert_eq!(
            patched,
            json!({"metadata": {"labels": {"b/c": "2"}}, "data": {"k": "w"}, "list": [2, 3], "first": 1, "copy": {"k": "w"}})
        );
        let failed = json_patch(json!({"a": 1}), &json!([{"op": "test", "path": "/a", "value": 2}]));
        assert_eq!(failed.unwrap_err().code, 422);
        assert_eq!(json_patch(json!({}), &json!([{"op": "remove", "path": "/nope"}])).unwrap_err().code, 422);
    }
}
