//! `execwatch validate`: checks ConfigMap manifests against the schemas without a cluster, for
//! pipeline writers' CI: as text, JSON, JUnit XML for CI test reports, or GitHub annotations
//! that point at the line of the offending field.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use k8s_openapi::api::core::v1::ConfigMap;
use serde::Serialize;

use crate::decode::{DOCUMENT_KEYS, SchemaRegistry};
use crate::files::read_bounded;
use crate::model::{Reason, ReasonCode};
use crate::selector::Selector;
use crate::source::dir::{max_file_bytes, parse_manifests};

mod lines;

/// `validate -o`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Junit,
    Github,
}

/// What was found of one ConfigMap, or of a file or document that is not one.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    pub file: String,
    /// `namespace/name`; absent for a file or document that could not be read as a ConfigMap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub configmap: Option<String>,
    /// The YAML document of the file (1-based), where the file has several.
    pub document: usize,
    pub accepted: bool,
    pub reasons: Vec<Finding>,
}

#[derive(Debug, Serialize)]
pub struct Finding {
    pub code: ReasonCode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    pub message: String,
    /// The line of the file (1-based) the finding is about, as near as the YAML says.
    pub line: usize,
}

/// Checks every file, writing what it found in `format`. Returns how many ConfigMaps or
/// documents were rejected.
pub fn validate_files(
    registry: &SchemaRegistry,
    selector: &Selector,
    files: &[impl AsRef<Path>],
    format: Format,
    out: &mut impl Write,
) -> std::io::Result<usize> {
    let verdicts: Vec<Verdict> = files.iter().flat_map(|f| check_file(registry, selector, f.as_ref())).collect();
    match format {
        Format::Text => write_text(&verdicts, out)?,
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &verdicts).map_err(std::io::Error::from)?;
            writeln!(out)?;
        }
        Format::Junit => write_junit(&verdicts, out)?,
        Format::Github => write_github(&verdicts, out)?,
    }
    Ok(verdicts.iter().filter(|v| !v.accepted).count())
}

fn check_file(registry: &SchemaRegistry, selector: &Selector, path: &Path) -> Vec<Verdict> {
    let file = path.display().to_string();
    let verdict = |document: usize, configmap: Option<String>, reasons: Vec<Finding>| Verdict {
        file: file.clone(),
        configmap,
        document,
        accepted: reasons.is_empty(),
        reasons,
    };
    let text = match read_bounded(path, max_file_bytes(registry.limits().max_document_bytes)) {
        Ok(text) => text,
        Err((code, message)) => return vec![verdict(0, None, vec![Finding { code, pointer: None, message, line: 1 }])],
    };
    let file_lines: Vec<&str> = text.lines().collect();
    let starts = lines::document_starts(&file_lines);
    let mut verdicts = Vec::new();
    for (i, parsed) in parse_manifests(&text).into_iter().enumerate() {
        let start = starts.get(i).copied().unwrap_or(0);
        match parsed {
            Ok(Some(cm)) => {
                let checked = check_configmap(registry, selector, &cm, (&file_lines, start));
                verdicts.extend(checked.map(|(id, reasons)| verdict(i + 1, Some(id), reasons)));
            }
            Ok(None) => {}
            Err((code, message)) => {
                let finding = Finding { code, pointer: None, message, line: start + 1 };
                verdicts.push(verdict(i + 1, None, vec![finding]));
            }
        }
    }
    verdicts
}

/// One ConfigMap of a file, whose document starts at line `start` of `file_lines`: its
/// `namespace/name` and what the service would find wrong with it (nothing: accepted). `None`
/// for a ConfigMap the selector does not match and that holds no execution document: not ours.
fn check_configmap(
    registry: &SchemaRegistry,
    selector: &Selector,
    cm: &ConfigMap,
    (file_lines, start): (&[&str], usize),
) -> Option<(String, Vec<Finding>)> {
    let id = format!(
        "{}/{}",
        cm.metadata.namespace.as_deref().unwrap_or_default(),
        cm.metadata.name.as_deref().unwrap_or_default()
    );
    let labelled = selector.matches(cm.metadata.labels.as_ref().unwrap_or(&BTreeMap::new()));
    if !labelled {
        let has_document = cm.data.as_ref().is_some_and(|d| DOCUMENT_KEYS.iter().any(|k| d.contains_key(*k)));
        let message = format!(
            "holds an execution document but does not match the label selector {selector}; execwatch will not see it"
        );
        let unlabelled = Finding { code: ReasonCode::Unlabelled, pointer: None, message, line: start + 1 };
        return has_document.then(|| (id, vec![unlabelled]));
    }
    let reasons = registry.decode(cm).err().map(|rejection| rejection.reasons).unwrap_or_default();
    let line = |r: &Reason| lines::line_of(file_lines, start, r.pointer.as_deref()) + 1;
    let findings = reasons
        .iter()
        .map(|r| Finding { code: r.code, pointer: r.pointer.clone(), message: r.message.clone(), line: line(r) })
        .collect();
    Some((id, findings))
}

/// One line per ConfigMap and one per reason.
fn write_text(verdicts: &[Verdict], out: &mut impl Write) -> std::io::Result<()> {
    for v in verdicts {
        let file = &v.file;
        match (&v.configmap, v.accepted) {
            (Some(id), true) => writeln!(out, "ok       {id} ({file})")?,
            (Some(id), false) if v.reasons.iter().any(|r| r.code == ReasonCode::Unlabelled) => {
                writeln!(out, "REJECTED {id} ({file}): {}", v.reasons[0].message)?
            }
            (Some(id), false) => {
                writeln!(out, "REJECTED {id} ({file})")?;
                for r in &v.reasons {
                    match &r.pointer {
                        Some(p) => {
                            writeln!(out, "  - {} at {}: {}", r.code, if p.is_empty() { "/" } else { p }, r.message)?
                        }
                        None => writeln!(out, "  - {}: {}", r.code, r.message)?,
                    }
                }
            }
            (None, _) if v.document == 0 => {
                writeln!(out, "REJECTED {file}: {}: {}", v.reasons[0].code, v.reasons[0].message)?
            }
            (None, _) => writeln!(
                out,
                "REJECTED {file} (document {}): {}: {}",
                v.document, v.reasons[0].code, v.reasons[0].message
            )?,
        }
    }
    Ok(())
}

/// JUnit XML: a test suite per file, a test case per ConfigMap (or unreadable document), a
/// failure per rejection with every reason in it.
fn write_junit(verdicts: &[Verdict], out: &mut impl Write) -> std::io::Result<()> {
    let mut by_file: BTreeMap<&str, Vec<&Verdict>> = BTreeMap::new();
    for v in verdicts {
        by_file.entry(&v.file).or_default().push(v);
    }
    let failures = verdicts.iter().filter(|v| !v.accepted).count();
    writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(out, r#"<testsuites name="execwatch validate" tests="{}" failures="{failures}">"#, verdicts.len())?;
    for (file, cases) in by_file {
        let failed = cases.iter().filter(|v| !v.accepted).count();
        writeln!(out, r#"  <testsuite name="{}" tests="{}" failures="{failed}">"#, xml(file), cases.len())?;
        for v in cases {
            let name = v.configmap.clone().unwrap_or_else(|| format!("document {}", v.document));
            write!(out, r#"    <testcase classname="{}" name="{}""#, xml(file), xml(&name))?;
            if v.accepted {
                writeln!(out, "/>")?;
                continue;
            }
            let first = &v.reasons[0];
            let text: Vec<String> = v.reasons.iter().map(|r| format!("line {}: {}", r.line, described(r))).collect();
            writeln!(out, ">")?;
            writeln!(
                out,
                r#"      <failure type="{}" message="{}">{}</failure>"#,
                xml(first.code.as_str()),
                xml(&described(first)),
                xml(&text.join("\n"))
            )?;
            writeln!(out, "    </testcase>")?;
        }
        writeln!(out, "  </testsuite>")?;
    }
    writeln!(out, "</testsuites>")
}

/// GitHub Actions workflow commands: an `::error` per reason, at its file and line.
fn write_github(verdicts: &[Verdict], out: &mut impl Write) -> std::io::Result<()> {
    for v in verdicts.iter().filter(|v| !v.accepted) {
        let subject = v.configmap.clone().unwrap_or_else(|| format!("document {}", v.document));
        for r in &v.reasons {
            let file = github_property(&v.file);
            let title = github_property(&format!("{subject}: {}", r.code));
            writeln!(out, "::error file={file},line={},title={title}::{}", r.line, github_data(&described(r)))?;
        }
    }
    Ok(())
}

fn described(r: &Finding) -> String {
    match &r.pointer {
        Some(p) => format!("{} at {}: {}", r.code, if p.is_empty() { "/" } else { p }, r.message),
        None => format!("{}: {}", r.code, r.message),
    }
}

fn xml(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            // Not allowed in XML 1.0 at all.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => escaped.push('\u{fffd}'),
            c => escaped.push(c),
        }
    }
    escaped
}

/// Escapes as GitHub's toolkit does for a command's message.
fn github_data(text: &str) -> String {
    text.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// Escapes as GitHub's toolkit does for a command's property.
fn github_property(text: &str) -> String {
    github_data(text).replace(':', "%3A").replace(',', "%2C")
}
