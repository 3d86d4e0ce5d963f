//! The embedded default source: ConfigMap manifests (`*.yaml`, `*.yml`, multi-document) in a
//! directory, re-read whenever its contents change.
//!
//! Every change is delivered as a complete relist (`Init`, `InitApply`..., `InitDone`), which the
//! index swaps in atomically, so the directory needs no special case downstream. Polling (rather
//! than inotify) also follows ConfigMap volume mounts, which swap a symlink.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::{Stream, StreamExt, stream};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::watcher::Event;
use serde::Deserialize;

use super::SourceError;
use crate::selector::Selector;

type Item = Result<Event<ConfigMap>, SourceError>;

/// Follows `dir`, checking for changes every `interval`. The stream never ends.
pub fn watch_dir(dir: PathBuf, selector: Selector, interval: Duration) -> impl Stream<Item = Item> + Send {
    let start = (dir, selector, None::<u64>, true);
    stream::unfold(start, move |(dir, selector, last, first)| async move {
        if !first {
            tokio::time::sleep(interval).await;
        }
        let (read_dir, read_selector) = (dir.clone(), selector.clone());
        let read = tokio::task::spawn_blocking(move || read(&read_dir, &read_selector)).await;
        let batch = match read {
            Ok(Ok((hash, _))) if Some(hash) == last => Vec::new(),
            Ok(Ok((hash, items))) => return Some((items, (dir, selector, Some(hash), false))),
            Ok(Err(e)) => vec![Err(e)],
            Err(join) => vec![Err(SourceError::Dir { path: dir.display().to_string(), message: join.to_string() })],
        };
        Some((batch, (dir, selector, last, false)))
    })
    .flat_map(stream::iter)
}

/// Reads every manifest once: a content hash, and the relist events followed by an error for
/// each document that could not be read (so one broken file hides nothing else).
pub fn read(dir: &Path, selector: &Selector) -> Result<(u64, Vec<Item>), SourceError> {
    let io =
        |path: &Path, e: std::io::Error| SourceError::Dir { path: path.display().to_string(), message: e.to_string() };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    let mut hasher = DefaultHasher::new();
    let mut configmaps = Vec::new();
    let mut errors = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
        text.hash(&mut hasher);
        for (i, parsed) in parse_manifests(&text).into_iter().enumerate() {
            let at = format!("{} (document {})", path.display(), i + 1);
            match parsed {
                Ok(Some(cm)) if selector.matches(cm.metadata.labels.as_ref().unwrap_or(&BTreeMap::new())) => {
                    configmaps.push(cm)
                }
                Ok(_) => {}
                Err(message) => errors.push(Err(SourceError::Dir { path: at, message })),
            }
        }
    }
    let mut items = vec![Ok(Event::Init)];
    items.extend(configmaps.into_iter().map(|cm| Ok(Event::InitApply(cm))));
    items.push(Ok(Event::InitDone));
    items.extend(errors);
    Ok((hasher.finish(), items))
}

/// Every document of a manifest file, as a ConfigMap where it is one.
/// A syntax error ends the file: the YAML parser cannot resynchronise after one.
pub fn parse_manifests(text: &str) -> Vec<Result<Option<ConfigMap>, String>> {
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        match serde_json::Value::deserialize(doc) {
            Ok(value) => docs.push(configmap(value)),
            Err(e) => {
                docs.push(Err(e.to_string()));
                break;
            }
        }
    }
    docs
}

/// One document as a ConfigMap: `None` for empty documents and other kinds.
fn configmap(value: serde_json::Value) -> Result<Option<ConfigMap>, String> {
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
mod tests {
    use super::*;
    use crate::fixtures::EXECUTION_LABEL;

    #[test]
    fn reads_multi_document_files_and_reports_broken_documents() {
        let dir = tempfile::tempdir().unwrap();
        let cm = |name: &str| {
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  labels:\n    {EXECUTION_LABEL}: \"true\"\ndata:\n  execution.yaml: x\n"
            )
        };
        let unlabelled = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other\n";
        std::fs::write(dir.path().join("a.yaml"), format!("{}---\n{}---\n{unlabelled}", cm("one"), cm("two"))).unwrap();
        std::fs::write(dir.path().join("b.yaml"), "kind: ConfigMap\nmetadata: [broken\n").unwrap();
        std::fs::write(dir.path().join("notes.txt"), cm("ignored")).unwrap();
        let selector = format!("{EXECUTION_LABEL}=true").parse().unwrap();
        let (_, items) = read(dir.path(), &selector).unwrap();
        let names: Vec<_> = items
            .iter()
            .filter_map(|i| match i {
                Ok(Event::InitApply(cm)) => cm.metadata.name.clone(),
                _ => None,
            })
            .collect();
        assert_eq!(names, ["one", "two"]);
        assert!(matches!(items.last(), Some(Err(SourceError::Dir { path, .. })) if path.contains("b.yaml")));
        assert!(matches!(items[3], Ok(Event::InitDone)));
    }
}
