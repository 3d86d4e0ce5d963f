//! The embedded default source: ConfigMap manifests (`*.yaml`, `*.yml`, multi-document) in a
//! directory, re-read whenever its contents change.
//!
//! Every change is delivered as a complete relist (`Init`, `InitApply`..., `InitDone`), which the
//! index swaps in atomically, so the directory needs no special case downstream. Polling (rather
//! than inotify) also follows ConfigMap volume mounts, which swap a symlink.
//!
//! A file that cannot be read (not a regular file, too large, not UTF-8, a symlink loop) or a
//! document that is not a ConfigMap becomes an `Unreadable` object of its own, reported like any
//! rejection: it hides nothing else. Only a directory that cannot be listed fails the source.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use std::time::Duration;

use futures::{Stream, StreamExt, stream};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::watcher::Event;
use serde_json::Value;

use super::{Object, SourceError, SourceEvent, Unreadable};
use crate::files::read_bounded;
use crate::selector::Selector;
use crate::strict::{self, ParseError};

/// What the directory source reads, and how.
#[derive(Clone, Debug)]
pub struct DirSource {
    pub path: PathBuf,
    pub selector: Selector,
    pub interval: Duration,
    /// Larger files are reported as `TooLarge` without being read.
    pub max_file_bytes: u64,
}

/// The largest manifest file read: the largest document plus room for the manifest's own
/// fields (metadata, labels).
pub fn max_file_bytes(max_document_bytes: usize) -> u64 {
    max_document_bytes as u64 + 64 * 1024
}

/// Follows the directory, checking for changes every `interval`. The stream never ends.
pub fn watch_dir(source: DirSource) -> impl Stream<Item = SourceEvent> + Send {
    stream::unfold((source, None::<u64>, true), |(source, last, first)| async move {
        if !first {
            tokio::time::sleep(source.interval).await;
        }
        let reading = source.clone();
        let read = tokio::task::spawn_blocking(move || read(&reading)).await;
        let (batch, last) = match read {
            Ok(Ok((hash, _))) if Some(hash) == last => (Vec::new(), last),
            Ok(Ok((hash, objects))) => (relist(objects), Some(hash)),
            // After a failure the next good read is a relist even if nothing changed, so the
            // source is seen to recover.
            Ok(Err(e)) => (vec![Err(e)], None),
            Err(join) => {
                let path = source.path.display().to_string();
                (vec![Err(SourceError::Dir { path, message: join.to_string() })], None)
            }
        };
        Some((batch, (source, last, false)))
    })
    .flat_map(stream::iter)
}

fn relist(objects: Vec<Object>) -> Vec<SourceEvent> {
    let mut events = Vec::with_capacity(objects.len() + 2);
    events.push(Ok(Event::Init));
    events.extend(objects.into_iter().map(|o| Ok(Event::InitApply(o))));
    events.push(Ok(Event::InitDone));
    events
}

/// Reads every manifest once: a hash of what was read, and every selected ConfigMap and
/// unreadable file or document. Fails only when the directory cannot be listed.
pub fn read(source: &DirSource) -> Result<(u64, Vec<Object>), SourceError> {
    let dir = &source.path;
    let listing_failed =
        |e: std::io::Error| SourceError::Dir { path: dir.display().to_string(), message: e.to_string() };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(listing_failed)? {
        let path = entry.map_err(listing_failed)?.path();
        if path.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            files.push(path);
        }
    }
    files.sort();
    let mut hasher = DefaultHasher::new();
    let mut objects = Vec::new();
    for path in files {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        name.hash(&mut hasher);
        let text = match read_bounded(&path, source.max_file_bytes) {
            Ok(text) => text,
            Err((code, message)) => {
                message.hash(&mut hasher);
                objects.push(Object::Unreadable(Unreadable { file: name, code, message }));
                continue;
            }
        };
        text.hash(&mut hasher);
        let documents = parse_manifests(&text);
        let several = documents.len() > 1;
        for (i, parsed) in documents.into_iter().enumerate() {
            let file = if several { format!("{name} (document {})", i + 1) } else { name.clone() };
            match parsed {
                Ok(Some(cm)) if source.selector.matches(cm.metadata.labels.as_ref().unwrap_or(&BTreeMap::new())) => {
                    objects.push(Object::ConfigMap(cm))
                }
                Ok(_) => {}
                Err((code, message)) => objects.push(Object::Unreadable(Unreadable { file, code, message })),
            }
        }
    }
    Ok((hasher.finish(), objects))
}

/// Every document of a manifest file, as a ConfigMap where it is one (`None` for empty
/// documents and other kinds); an error is a reason code and a message.
pub fn parse_manifests(text: &str) -> Vec<Result<Option<ConfigMap>, (&'static str, String)>> {
    strict::yaml_documents(text)
        .into_iter()
        .map(|doc| match doc {
            Ok(value) => configmap(value).map_err(|message| ("Unparsable", message)),
            Err(e @ ParseError::DuplicateKey { .. }) => Err(("DuplicateKey", e.to_string())),
            Err(e) => Err(("Unparsable", e.to_string())),
        })
        .collect()
}

/// One document as a ConfigMap: `None` for empty documents and other kinds.
fn configmap(value: Value) -> Result<Option<ConfigMap>, String> {
    if value.is_null() || value.get("kind").and_then(|k| k.as_str()) != Some("ConfigMap") {
        return Ok(None);
    }
    let mut cm: ConfigMap = serde_json::from_value(value).map_err(|e| format!("not a valid ConfigMap: {e}"))?;
    cm.metadata.namespace.get_or_insert_with(|| "default".to_owned());
    // Files carry no resourceVersion: a content hash lets a relist skip unchanged objects.
    let mut h = DefaultHasher::new();
    cm.data.hash(&mut h);
    cm.metadata.labels.hash(&mut h);
    cm.metadata.resource_version.get_or_insert_with(|| format!("{:x}", h.finish()));
    Ok(Some(cm))
}

#[cfg(test)]
#[path = "dir_tests.rs"]
mod tests;
