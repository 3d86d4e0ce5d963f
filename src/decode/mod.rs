//! Schema registry and `decode()`: the pure edge that turns a ConfigMap into an execution or a rejection.
//!
//! Schemas are compiled once at start. Which kind and version a schema describes is read from the
//! schema itself (`properties.apiVersion.const` and `properties.kind.const`), so a new version is a
//! new file in `schemas/` and no code change.

use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use jsonschema::{PatternOptions, Validator};
use k8s_openapi::api::core::v1::ConfigMap;
use serde::Deserialize;
use serde_json::Value;

pub mod strict;

use crate::model::{Execution, ExecutionView, ObjectRef, Reason, ReasonCode, Rejection};
use crate::quote::shorten;
use strict::ParseError;

/// The data keys a ConfigMap may hold its one execution document under.
pub const DOCUMENT_KEYS: [&str; 3] = ["execution.yaml", "execution.yml", "execution.json"];

/// Bounds on hostile payloads.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_document_bytes: usize,
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_document_bytes: 256 * 1024, max_depth: 32 }
    }
}

/// What to do when the schemas are not where `--schemas` says.
const WHERE_SCHEMAS_ARE: &str = "point --schemas (or EXECWATCH_SCHEMAS) at the JSON Schemas that ship with execwatch: \
    schemas/ in its source tree, /schemas in its container image";

/// The largest schema file read.
const MAX_SCHEMA_BYTES: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    // The causes are part of each message, not a chained `source`: `{:#}` would print them twice.
    #[error("cannot read schema directory {}: {cause}; {WHERE_SCHEMAS_ARE}", path.display())]
    ReadDir { path: PathBuf, cause: std::io::Error },
    #[error("cannot read schema {}: {cause}", path.display())]
    Read { path: PathBuf, cause: String },
    #[error("schema {path} is not valid JSON: {cause}")]
    Json { path: PathBuf, cause: serde_json::Error },
    #[error("schema {path} does not name its kind: it needs properties.apiVersion.const and properties.kind.const")]
    Unnamed { path: PathBuf },
    #[error("schema {path} is invalid: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("schemas {first} and {second} both describe {api_version} {kind}")]
    Duplicate { first: PathBuf, second: PathBuf, api_version: String, kind: String },
    #[error("no schema (*.json) found in {}; {WHERE_SCHEMAS_ARE}", path.display())]
    Empty { path: PathBuf },
}

struct Entry {
    path: PathBuf,
    validator: Validator,
}

/// Compiled schemas, keyed by (apiVersion, kind).
pub struct SchemaRegistry {
    schemas: HashMap<(String, String), Entry>,
    limits: Limits,
    /// A digest of every schema's text and the limits: a document validated under another
    /// fingerprint is validated again.
    fingerprint: String,
}

/// Schema violations a rejection lists one by one; the rest are counted.
const MAX_VIOLATIONS: usize = 16;

impl SchemaRegistry {
    /// Loads and compiles every `*.json` schema in `dir`.
    pub fn load(dir: &Path, limits: Limits) -> Result<Self, SchemaError> {
        // Named as the process sees it, so a relative default says where it looked.
        let path = std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned());
        let read_dir = |cause| SchemaError::ReadDir { path: path.clone(), cause };
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(read_dir)? {
            let path = entry.map_err(read_dir)?.path();
            if path.extension().is_some_and(|e| e == "json") {
                paths.push(path);
            }
        }
        paths.sort();
        let mut sources = Vec::new();
        for path in paths {
            let text = crate::files::read_bounded(&path, MAX_SCHEMA_BYTES)
                .map_err(|(_, cause)| SchemaError::Read { path: path.clone(), cause })?;
            sources.push((path, text));
        }
        Self::compile_all(sources, limits, path)
    }

    /// The schemas shipped in `schemas/`, built into the binary: for the commands writers run
    /// where no copy of the directory is at hand (a CI job).
    pub fn shipped(limits: Limits) -> Result<Self, SchemaError> {
        let path = PathBuf::from("schemas/pipelineexecution-v1alpha1.json (built in)");
        let text = include_str!("../../schemas/pipelineexecution-v1alpha1.json").to_owned();
        Self::compile_all(vec![(path.clone(), text)], limits, path)
    }

    fn compile_all(sources: Vec<(PathBuf, String)>, limits: Limits, path: PathBuf) -> Result<Self, SchemaError> {
        let mut schemas: HashMap<(String, String), Entry> = HashMap::new();
        let mut digest = Sha256::new();
        digest.update(format!("{}/{}", limits.max_document_bytes, limits.max_depth));
        for (path, text) in sources {
            let (key, validator) = compile(&path, &text)?;
            digest.update(text.len().to_le_bytes());
            digest.update(&text);
            if let Some(first) = schemas.get(&key) {
                return Err(SchemaError::Duplicate {
                    first: first.path.clone(),
                    second: path,
                    api_version: key.0,
                    kind: key.1,
                });
            }
            schemas.insert(key, Entry { path, validator });
        }
        if schemas.is_empty() {
            return Err(SchemaError::Empty { path });
        }
        let fingerprint = hex::encode(&digest.finalize()[..16]);
        Ok(SchemaRegistry { schemas, limits, fingerprint })
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Names the schemas and limits documents are validated under (32 hex digits).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The (apiVersion, kind) pairs this registry accepts, sorted.
    pub fn kinds(&self) -> Vec<String> {
        let mut kinds: Vec<_> = self.schemas.keys().map(|(v, k)| format!("{v} {k}")).collect();
        kinds.sort();
        kinds
    }

    /// Decodes one ConfigMap. Pure: no I/O, no shared state. A rejection says at most
    /// `MAX_VIOLATIONS` schema violations, each in a bounded message.
    pub fn decode(&self, cm: &ConfigMap) -> Result<Execution, Rejection> {
        let id = ObjectRef::of(cm);
        let resource_version = cm.metadata.resource_version.clone().unwrap_or_default();
        let reject =
            |reasons| Rejection { id: id.clone(), file: None, resource_version: resource_version.clone(), reasons };
        let document = self.document(cm).map_err(|r| reject(vec![r]))?;
        let validator = self.validator_for(&document).map_err(|r| reject(vec![r]))?;
        // Most documents are valid: `is_valid` stops at nothing and builds no error.
        if !validator.is_valid(&document) {
            let mut violations: Vec<Reason> = Vec::new();
            let mut more = 0;
            for e in validator.iter_errors(&document) {
                if violations.len() == MAX_VIOLATIONS {
                    more += 1;
                    continue;
                }
                violations.push(Reason {
                    code: ReasonCode::SchemaViolation,
                    pointer: Some(shorten(e.instance_path().as_str().to_owned())),
                    message: shorten(e.to_string()),
                });
            }
            if more > 0 {
                violations.push(Reason::new(ReasonCode::SchemaViolation, format!("and {more} more violations")));
            }
            return Err(reject(violations));
        }
        let view = ExecutionView::deserialize(&document).map_err(|e| {
            reject(vec![Reason::new(
                ReasonCode::SchemaViolation,
                format!("document lacks a field every schema version must have: {e}"),
            )])
        })?;
        let created = cm.metadata.creation_timestamp.as_ref().map(|t| t.0);
        // Kept to the millisecond, as the archive stores it: a live execution and its archived
        // row then sit at the same place in a list, so a page boundary never moves when it goes.
        let sort_time = view
            .started_at
            .as_deref()
            .and_then(|s| s.parse::<Timestamp>().ok())
            .or(created)
            .and_then(|t| Timestamp::from_millisecond(t.as_millisecond()).ok())
            .unwrap_or(Timestamp::UNIX_EPOCH);
        Ok(Execution {
            id,
            labels: cm.metadata.labels.clone().unwrap_or_default(),
            uid: cm.metadata.uid.clone().unwrap_or_default(),
            resource_version,
            sort_time,
            created,
            view,
            document,
        })
    }

    /// Finds the one document, checks its size, parses it and bounds its depth.
    fn document(&self, cm: &ConfigMap) -> Result<Value, Reason> {
        let (key, text) = the_document(cm)?;
        if text.len() > self.limits.max_document_bytes {
            return Err(Reason::new(
                ReasonCode::TooLarge,
                format!("{key} is {} bytes, over the limit of {} bytes", text.len(), self.limits.max_document_bytes),
            ));
        }
        let too_deep = |depth| {
            Reason::new(
                ReasonCode::TooDeep,
                format!("{key} nests {depth} levels deep, over the limit of {}", self.limits.max_depth),
            )
        };
        let parsed = if key.ends_with(".json") {
            strict::json(text)
        } else {
            // libyaml reads every event before any depth limit applies, which costs quadratic
            // time on deeply nested flow collections: bound them with a linear scan first.
            if let Some(depth) = flow_depth_over(text, self.limits.max_depth) {
                return Err(too_deep(depth));
            }
            strict::yaml(text)
        };
        let value = parsed.map_err(|e| match e {
            ParseError::DuplicateKey { ref pointer, .. } => {
                let (pointer, message) = (shorten(pointer.clone()), shorten(format!("{key} has a {e}")));
                Reason { code: ReasonCode::DuplicateKey, pointer: Some(pointer), message }
            }
            ParseError::Syntax(e) => Reason::new(ReasonCode::Unparsable, format!("{key} does not parse: {e}")),
        })?;
        let depth = depth(&value);
        if depth > self.limits.max_depth {
            return Err(too_deep(depth));
        }
        Ok(value)
    }

    fn validator_for(&self, document: &Value) -> Result<&Validator, Reason> {
        let field = |name| document.get(name).and_then(Value::as_str).unwrap_or_default();
        let key = (field("apiVersion").to_owned(), field("kind").to_owned());
        self.schemas.get(&key).map(|e| &e.validator).ok_or_else(|| {
            Reason::new(
                ReasonCode::UnknownKind,
                format!("no schema for apiVersion {:?} kind {:?}; known: {}", key.0, key.1, self.kinds().join(", ")),
            )
        })
    }
}

/// Compiles one schema file: offline (a `$ref` outside the file fails), linear-time regexes only,
/// formats asserted.
/// The one data key a ConfigMap holds its document under, and the document's text.
fn the_document(cm: &ConfigMap) -> Result<(&str, &str), Reason> {
    static NO_DATA: BTreeMap<String, String> = BTreeMap::new();
    let data = cm.data.as_ref().unwrap_or(&NO_DATA);
    let keys: Vec<&String> = data.keys().collect();
    let binary = cm.binary_data.as_ref().is_some_and(|b| !b.is_empty());
    match (keys.as_slice(), binary) {
        ([key], false) if DOCUMENT_KEYS.contains(&key.as_str()) => Ok((key.as_str(), &data[*key])),
        ([], false) => Err(Reason::new(
            ReasonCode::NoDocument,
            format!("data holds no document: expected one of {}", DOCUMENT_KEYS.join(", ")),
        )),
        _ => {
            let mut all: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
            if binary {
                all.push("binaryData".to_owned());
            }
            let expected = DOCUMENT_KEYS.join(", ");
            let message = format!("data must hold exactly one key, one of {expected}; found {}", all.join(", "));
            Err(Reason::new(ReasonCode::SeveralDocuments, message))
        }
    }
}

fn compile(path: &Path, text: &str) -> Result<((String, String), Validator), SchemaError> {
    let schema: Value =
        serde_json::from_str(text).map_err(|cause| SchemaError::Json { path: path.to_owned(), cause })?;
    let constant =
        |field: &str| schema.pointer(&format!("/properties/{field}/const")).and_then(Value::as_str).map(str::to_owned);
    let (Some(api_version), Some(kind)) = (constant("apiVersion"), constant("kind")) else {
        return Err(SchemaError::Unnamed { path: path.to_owned() });
    };
    let validator = jsonschema::options()
        .offline()
        .should_validate_formats(true)
        .with_pattern_options(PatternOptions::regex())
        .build(&schema)
        .map_err(|e| SchemaError::Invalid { path: path.to_owned(), message: e.to_string() })?;
    Ok(((api_version, kind), validator))
}

/// The depth of `[`/`{` nesting in YAML text (outside quotes and comments) once it passes
/// `limit`, or `None` if it never does.
fn flow_depth_over(text: &str, limit: usize) -> Option<usize> {
    let (mut depth, mut quote, mut escaped, mut comment, mut previous) = (0usize, None, false, false, ' ');
    for c in text.chars() {
        match (quote, c) {
            _ if comment => comment = c != '\n',
            (Some('"'), '\\') if !escaped => escaped = true,
            (Some(q), _) if c == q && !escaped => quote = None,
            (Some(_), _) => escaped = false,
            // A quote opens a quoted scalar only where a scalar can start (not in `don't`).
            (None, '"' | '\'') if previous.is_whitespace() || "[{,:".contains(previous) => quote = Some(c),
            (None, '#') if previous.is_whitespace() => comment = true,
            (None, '[' | '{') => {
                depth += 1;
                if depth > limit {
                    return Some(depth);
                }
            }
            (None, ']' | '}') => depth = depth.saturating_sub(1),
            _ => {}
        }
        previous = c;
    }
    None
}

/// Nesting depth, computed without recursion so a hostile document cannot overflow the stack.
fn depth(value: &Value) -> usize {
    let mut max = 0;
    let mut stack = vec![(value, 1usize)];
    while let Some((v, d)) = stack.pop() {
        max = max.max(d);
        match v {
            Value::Array(items) => stack.extend(items.iter().map(|i| (i, d + 1))),
            Value::Object(map) => stack.extend(map.values().map(|i| (i, d + 1))),
            _ => {}
        }
    }
    max
}

#[cfg(test)]
mod tests;
