//! Just enough of the Kubernetes protobuf encoding to read the ConfigMaps, Namespaces and
//! TokenRequests that kubectl's imperative commands (`kubectl create configmap`, `create
//! namespace`, `create token`) send. Replies
//! stay JSON, which kubectl accepts.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

/// `k8s\0` followed by a `runtime.Unknown` envelope.
const MAGIC: &[u8] = b"k8s\0";

/// Decodes a protobuf request body into the JSON object it stands for.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let envelope = body.strip_prefix(MAGIC).ok_or("missing the k8s protobuf magic number")?;
    let mut type_meta = Map::new();
    let mut raw: &[u8] = &[];
    for (field, value) in fields(envelope)? {
        match (field, value) {
            (1, Wire::Bytes(b)) => {
                for (f, v) in fields(b)? {
                    let key = if f == 1 { "apiVersion" } else { "kind" };
                    type_meta.insert(key.into(), string(v)?.into());
                }
            }
            (2, Wire::Bytes(b)) => raw = b,
            _ => {}
        }
    }
    let kind = type_meta.get("kind").and_then(Value::as_str).unwrap_or_default().to_owned();
    let mut object = Map::new();
    for (field, value) in fields(raw)? {
        match (field, value) {
            (1, Wire::Bytes(b)) => {
                object.insert("metadata".into(), metadata(b)?);
            }
            (2, Wire::Bytes(b)) if kind.ends_with("RoleBinding") => {
                let subject = strings(b, &["kind", "apiGroup", "name", "namespace"])?;
                push(&mut object, "subjects", subject);
            }
            (3, Wire::Bytes(b)) if kind.ends_with("RoleBinding") => {
                object.insert("roleRef".into(), strings(b, &["apiGroup", "kind", "name"])?);
            }
            (2, Wire::Bytes(b)) if kind.ends_with("Role") => {
                let rule = string_lists(b, &["verbs", "apiGroups", "resources", "resourceNames", "nonResourceURLs"])?;
                push(&mut object, "rules", rule);
            }
            (2, Wire::Bytes(b)) if type_meta.get("kind") == Some(&json!("ConfigMap")) => {
                let (k, v) = entry(b)?;
                object.entry("data").or_insert_with(|| json!({}))[k] = v.into();
            }
            // binaryData is map<string, bytes>; JSON carries the bytes in base64.
            (3, Wire::Bytes(b)) if type_meta.get("kind") == Some(&json!("ConfigMap")) => {
                let (k, v) = bytes_entry(b)?;
                object.entry("binaryData").or_insert_with(|| json!({}))[k] = STANDARD.encode(v).into();
            }
            (4, Wire::Varint(v)) if type_meta.get("kind") == Some(&json!("ConfigMap")) => {
                object.insert("immutable".into(), (v != 0).into());
            }
            // `kubectl create token --audience A --duration D`: the spec's audiences (1) and
            // expirationSeconds (4).
            (2, Wire::Bytes(b)) if type_meta.get("kind") == Some(&json!("TokenRequest")) => {
                let mut spec = Map::new();
                for (f, v) in fields(b)? {
                    match (f, v) {
                        (1, v) => push(&mut spec, "audiences", string(v)?.into()),
                        (4, Wire::Varint(seconds)) => _ = spec.insert("expirationSeconds".into(), seconds.into()),
                        _ => {}
                    }
                }
                object.insert("spec".into(), Value::Object(spec));
            }
            _ => {}
        }
    }
    object.extend(type_meta);
    Ok(Value::Object(object))
}

fn metadata(bytes: &[u8]) -> Result<Value, String> {
    let mut meta = Map::new();
    for (field, value) in fields(bytes)? {
        let name = match field {
            1 => "name",
            2 => "generateName",
            3 => "namespace",
            6 => "resourceVersion",
            11 | 12 => {
                let (k, v) = entry(value.bytes()?)?;
                let map = if field == 11 { "labels" } else { "annotations" };
                meta.entry(map).or_insert_with(|| json!({}))[k] = v.into();
                continue;
            }
            _ => continue,
        };
        let value = string(value)?;
        // proto2 writes empty optional strings; JSON leaves them out.
        if !value.is_empty() {
            meta.insert(name.into(), value.into());
        }
    }
    Ok(Value::Object(meta))
}

/// Appends `item` to the list `key` of `object`.
fn push(object: &mut Map<String, Value>, key: &str, item: Value) {
    if let Value::Array(items) = object.entry(key).or_insert_with(|| json!([])) {
        items.push(item);
    }
}

/// A message of string fields, numbered from 1 in the order of `names`; empty ones are left
/// out, as JSON leaves them out.
fn strings(bytes: &[u8], names: &[&str]) -> Result<Value, String> {
    let mut object = Map::new();
    for (field, value) in fields(bytes)? {
        if let Some(name) = usize::try_from(field).ok().and_then(|f| names.get(f.wrapping_sub(1))) {
            let value = string(value)?;
            if !value.is_empty() {
                object.insert((*name).into(), value.into());
            }
        }
    }
    Ok(Value::Object(object))
}

/// A message of repeated string fields, numbered from 1 in the order of `names`.
fn string_lists(bytes: &[u8], names: &[&str]) -> Result<Value, String> {
    let mut object = Map::new();
    for (field, value) in fields(bytes)? {
        if let Some(name) = usize::try_from(field).ok().and_then(|f| names.get(f.wrapping_sub(1))) {
            let list = object.entry(*name).or_insert_with(|| json!([]));
            if let Some(list) = list.as_array_mut() {
                list.push(string(value)?.into());
            }
        }
    }
    Ok(Value::Object(object))
}

/// A `map<string,string>` entry: key is field 1, value field 2.
fn entry(bytes: &[u8]) -> Result<(String, String), String> {
    let (key, value) = bytes_entry(bytes)?;
    Ok((key, String::from_utf8(value.to_vec()).map_err(|e| e.to_string())?))
}

/// A `map<string,bytes>` entry.
fn bytes_entry(bytes: &[u8]) -> Result<(String, &[u8]), String> {
    let (mut key, mut value): (String, &[u8]) = (String::new(), &[]);
    for (field, v) in fields(bytes)? {
        match field {
            1 => key = string(v)?,
            2 => value = v.bytes()?,
            _ => {}
        }
    }
    Ok((key, value))
}

enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

impl<'a> Wire<'a> {
    fn bytes(self) -> Result<&'a [u8], String> {
        match self {
            Wire::Bytes(b) => Ok(b),
            _ => Err("expected a length-delimited field".into()),
        }
    }
}

fn string(value: Wire<'_>) -> Result<String, String> {
    String::from_utf8(value.bytes()?.to_vec()).map_err(|e| e.to_string())
}

/// The (field number, value) pairs of one message.
fn fields(mut bytes: &[u8]) -> Result<Vec<(u64, Wire<'_>)>, String> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let key = varint(&mut bytes)?;
        let value = match key & 7 {
            0 => Wire::Varint(varint(&mut bytes)?),
            2 => {
                let len = usize::try_from(varint(&mut bytes)?).map_err(|e| e.to_string())?;
                let (value, rest) = bytes.split_at_checked(len).ok_or("truncated field")?;
                bytes = rest;
                Wire::Bytes(value)
            }
            1 | 5 => {
                let len = if key & 7 == 1 { 8 } else { 4 };
                bytes = bytes.get(len..).ok_or("truncated field")?;
                Wire::Fixed
            }
            other => return Err(format!("unsupported wire type {other}")),
        };
        out.push((key >> 3, value));
    }
    Ok(out)
}

fn varint(bytes: &mut &[u8]) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first().ok_or("truncated varint")?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("varint too long".into())
}
