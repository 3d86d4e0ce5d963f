//! `execwatch validate`: checks ConfigMap manifests against the schemas without a cluster, for
//! pipeline writers' CI.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use crate::files::read_bounded;
use crate::selector::Selector;
use crate::source::dir::{max_file_bytes, parse_manifests};
use crate::validate::{DOCUMENT_KEYS, SchemaRegistry};

/// Checks every file, writing one line per ConfigMap and one per reason. Returns how many
/// ConfigMaps or documents were rejected.
pub fn validate_files(
    registry: &SchemaRegistry,
    selector: &Selector,
    files: &[impl AsRef<Path>],
    out: &mut impl Write,
) -> std::io::Result<usize> {
    let mut rejected = 0;
    let max = max_file_bytes(registry.limits().max_document_bytes);
    for path in files {
        let file = path.as_ref().display();
        let text = match read_bounded(path.as_ref(), max) {
            Ok(text) => text,
            Err((code, message)) => {
                writeln!(out, "REJECTED {file}: {code}: {message}")?;
                rejected += 1;
                continue;
            }
        };
        for (i, parsed) in parse_manifests(&text).into_iter().enumerate() {
            let cm = match parsed {
                Ok(Some(cm)) => cm,
                Ok(None) => continue,
                Err((code, message)) => {
                    writeln!(out, "REJECTED {file} (document {}): {code}: {message}", i + 1)?;
                    rejected += 1;
                    continue;
                }
            };
            let id = format!(
                "{}/{}",
                cm.metadata.namespace.as_deref().unwrap_or_default(),
                cm.metadata.name.as_deref().unwrap_or_default()
            );
            let labelled = selector.matches(cm.metadata.labels.as_ref().unwrap_or(&BTreeMap::new()));
            let has_document = cm.data.as_ref().is_some_and(|d| DOCUMENT_KEYS.iter().any(|k| d.contains_key(*k)));
            if !labelled {
                if has_document {
                    writeln!(
                        out,
                        "REJECTED {id} ({file}): holds an execution document but does not match the label selector {selector}; execwatch will not see it"
                    )?;
                    rejected += 1;
                }
                continue;
            }
            match registry.decode(&cm) {
                Ok(_) => writeln!(out, "ok       {id} ({file})")?,
                Err(rejection) => {
                    rejected += 1;
                    writeln!(out, "REJECTED {id} ({file})")?;
                    for r in &rejection.reasons {
                        match &r.pointer {
                            Some(p) => writeln!(
                                out,
                                "  - {} at {}: {}",
                                r.code,
                                if p.is_empty() { "/" } else { p },
                                r.message
                            )?,
                            None => writeln!(out, "  - {}: {}", r.code, r.message)?,
                        }
                    }
                }
            }
        }
    }
    Ok(rejected)
}
