//! `execwatch record NS/NAME`: creates or updates an execution's ConfigMap, from a document (a
//! file or stdin) or from flags for the common case. The ConfigMap is checked as the service
//! will check it before anything reaches the cluster; it gets the labels the selector asks for
//! and one data key; and an update is made against the version read (`resourceVersion`), so a
//! concurrent writer's change is read again and built upon, never overwritten blindly.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::entry::{CommitError, Entry};
use kube::api::{ObjectMeta, PostParams};
use serde_json::{Value, json};

use crate::cli::Exit;
use crate::decode::{DOCUMENT_KEYS, SchemaRegistry};
use crate::model::Phase;
use crate::model::names::{is_label_value, split_name};
use crate::quote::quote;
use crate::selector::Selector;

/// Reads of a fresh version after conflicts before giving up: each conflict means another
/// writer got in between, which a handful of writers of one execution never sustain.
const MAX_ATTEMPTS: usize = 10;
use crate::model::EXECUTION_API_VERSION as API_VERSION;
/// The label the examples and dashboards filter runs of one pipeline by.
use crate::model::PIPELINE_LABEL;

#[derive(Debug, clap::Args)]
pub struct RecordArgs {
    /// The execution's ConfigMap: NAMESPACE/NAME, or NAME in --namespace (default: the
    /// kubeconfig context's namespace).
    pub execution: String,
    /// The ConfigMap's namespace, when EXECUTION is a NAME alone.
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// The whole execution document, YAML or JSON (`-` reads stdin); flags below change it.
    #[arg(short = 'f', long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// The pipeline this is a run of.
    #[arg(long)]
    pub pipeline: Option<String>,
    /// The application deployed (default: the pipeline's name).
    #[arg(long)]
    pub application: Option<String>,
    /// The version deployed (a chart or image tag).
    #[arg(long = "app-version", value_name = "VERSION")]
    pub version: Option<String>,
    /// The source revision (e.g. a commit).
    #[arg(long)]
    pub revision: Option<String>,
    /// When the revision was committed (RFC 3339): insights measure lead times from it.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub revision_time: Option<String>,
    /// What triggered the run: GitPush, ImageUpdate, Manual, Schedule, Promotion or API (the
    /// default for a new run).
    #[arg(long)]
    pub trigger: Option<String>,
    /// The run's phase; `startedAt` and `finishedAt` are set as it starts and ends.
    #[arg(long, value_parser = Phase::parse_or_list)]
    pub phase: Option<Phase>,
    /// An environment's phase, `ENV=PHASE`; repeat it, in promotion order. Environments the
    /// document already has keep their place.
    #[arg(long = "environment", value_name = "ENV=PHASE", value_parser = parse_environment)]
    pub environments: Vec<(String, Phase)>,
    /// A human-readable message about the run.
    #[arg(long)]
    pub message: Option<String>,
    /// A label to add to the ConfigMap, `KEY=VALUE` (repeatable), besides those the selector needs.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// `client`: check and print, send nothing; `server`: the API server checks it too, and
    /// stores nothing.
    #[arg(long, value_enum, default_value = "none")]
    pub dry_run: DryRun,
    /// Turn an existing ConfigMap that is not an execution (the selector does not match it, or
    /// it holds other keys) into one, dropping its other keys; without it, record refuses.
    #[arg(long)]
    pub force: bool,
    /// Print the ConfigMap written: `yaml` or `json`.
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<Output>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DryRun {
    None,
    Client,
    Server,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Yaml,
    Json,
}

fn parse_environment(s: &str) -> Result<(String, Phase), String> {
    let (env, phase) = s.split_once('=').ok_or_else(|| format!("{s:?}: expected ENV=PHASE, e.g. staging=Running"))?;
    let phase = Phase::parse_or_list(phase)?;
    Ok((env.to_owned(), phase))
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).ok_or_else(|| format!("{s:?}: expected KEY=VALUE"))
}

/// What `record` did, for its one line of output.
enum Done {
    Created,
    Configured,
    Unchanged,
}

/// Exit codes: 0 recorded, 1 the document is invalid, 2 anything else (the message says what).
pub async fn run(args: RecordArgs, registry: &SchemaRegistry, selector: &Selector) -> ExitCode {
    match record(&args, registry, selector).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            Exit::Failed.into()
        }
    }
}

async fn record(args: &RecordArgs, registry: &SchemaRegistry, selector: &Selector) -> anyhow::Result<ExitCode> {
    let labels = selector.labels_to_match().ok_or_else(|| {
        anyhow::anyhow!(
            "no labels can satisfy the label selector {selector}: record needs `=`, `in` or existence terms"
        )
    })?;
    let mut labels = labels.clone();
    labels.extend(args.labels.iter().cloned());
    let given = match &args.file {
        Some(path) => Some(read_document(path)?),
        None => None,
    };
    let writing = Writing { args, registry, selector, labels: &labels, given: given.as_deref() };
    // A client dry run reaches no cluster: it needs no credentials either.
    if args.dry_run == DryRun::Client {
        let (namespace, name) = target(args, "default")?;
        return match writing.prepared(None, &namespace, &name)? {
            Some(cm) => print(args, &cm, &namespace, &name, Done::Created).map(|()| ExitCode::SUCCESS),
            None => Ok(Exit::Rejected.into()),
        };
    }
    let client = kube::Client::try_default()
        .await
        .map_err(|e| anyhow::anyhow!("cannot configure a Kubernetes client ({e}): set KUBECONFIG, or run in a pod"))?;
    let (namespace, name) = target(args, client.default_namespace())?;
    writing.write(&Api::<ConfigMap>::namespaced(client, &namespace), &namespace, &name).await
}

/// The namespace and name `args` names, in `default_ns` where it names none.
fn target(args: &RecordArgs, default_ns: &str) -> anyhow::Result<(String, String)> {
    split_name(&args.execution, Some(args.namespace.as_deref().unwrap_or(default_ns)))
        .ok_or_else(|| anyhow::anyhow!("{} is not NAMESPACE/NAME or NAME", quote(&args.execution)))
}

/// One `record`: what to write, and the labels and document it is made of.
struct Writing<'a> {
    args: &'a RecordArgs,
    registry: &'a SchemaRegistry,
    selector: &'a Selector,
    labels: &'a BTreeMap<String, String>,
    given: Option<&'a str>,
}

impl Writing<'_> {
    /// Reads, changes and writes the ConfigMap through kube's `Api::entry`, reading it again
    /// where another writer got in between.
    async fn write(&self, api: &Api<ConfigMap>, namespace: &str, name: &str) -> anyhow::Result<ExitCode> {
        let params = PostParams {
            dry_run: self.args.dry_run == DryRun::Server,
            field_manager: Some("execwatch-record".to_owned()),
        };
        for attempt in 1..=MAX_ATTEMPTS {
            let entry = api.entry(name).await.map_err(|e| anyhow::anyhow!("cannot read {namespace}/{name}: {e}"))?;
            let existing = entry.get().cloned();
            let Some(cm) = self.prepared(existing.as_ref(), namespace, name)? else { return Ok(Exit::Rejected.into()) };
            if let Some(old) =
                existing.as_ref().filter(|old| old.data == cm.data && old.metadata.labels == cm.metadata.labels)
            {
                print(self.args, old, namespace, name, Done::Unchanged)?;
                return Ok(ExitCode::SUCCESS);
            }
            let (mut written, done) = match entry {
                Entry::Occupied(mut old) => {
                    *old.get_mut() = cm;
                    (old, Done::Configured)
                }
                Entry::Vacant(vacant) => (vacant.insert(cm), Done::Created),
            };
            match written.commit(&params).await {
                Ok(()) => {
                    print(self.args, written.get(), namespace, name, done)?;
                    return Ok(ExitCode::SUCCESS);
                }
                Err(CommitError::Save(kube::Error::Api(status))) if status.code == 409 => {
                    eprintln!("{namespace}/{name} changed since it was read (attempt {attempt}): reading it again");
                }
                Err(e) => anyhow::bail!("cannot write {namespace}/{name}: {e}"),
            }
        }
        anyhow::bail!("{namespace}/{name} kept changing under {MAX_ATTEMPTS} attempts to write it; try again")
    }

    /// The ConfigMap to write over `existing` (refused where that is not an execution), checked
    /// as the service checks it; `None`, said on stderr, where the service would reject it.
    fn prepared(&self, existing: Option<&ConfigMap>, namespace: &str, name: &str) -> anyhow::Result<Option<ConfigMap>> {
        if let Some(old) = existing {
            not_an_execution(old, self.selector, self.args.force)?;
        }
        let mut cm = configmap(self.args, existing, self.given, namespace, name, self.labels)?;
        let execution = match self.registry.decode(&cm) {
            Ok(execution) => execution,
            Err(rejection) => {
                eprintln!("error: {namespace}/{name} would be rejected; nothing was written:");
                for r in &rejection.reasons {
                    match r.pointer.as_deref() {
                        Some(p) => eprintln!("  - {} at {}: {}", r.code, if p.is_empty() { "/" } else { p }, r.message),
                        None => eprintln!("  - {}: {}", r.code, r.message),
                    }
                }
                return Ok(None);
            }
        };
        // Runs are labelled with their pipeline as the examples label them (for `-l` filters),
        // unless the selector or `--label` set it, or the name cannot be a label value.
        let pipeline = execution.view.pipeline;
        if !self.labels.contains_key(PIPELINE_LABEL) && is_label_value(&pipeline) {
            cm.metadata.labels.get_or_insert_default().insert(PIPELINE_LABEL.to_owned(), pipeline);
        }
        Ok(Some(cm))
    }
}

/// Refuses an existing ConfigMap that is not already an execution: one the service's selector
/// does not match, or that holds keys besides its one document (an application's
/// configuration, a typo'd name). With `--force` it is converted, and what is dropped is named.
fn not_an_execution(cm: &ConfigMap, selector: &Selector, force: bool) -> anyhow::Result<()> {
    let id = format!(
        "{}/{}",
        cm.metadata.namespace.as_deref().unwrap_or_default(),
        cm.metadata.name.as_deref().unwrap_or_default()
    );
    let data = cm.data.iter().flatten().map(|(k, _)| k);
    let binary = cm.binary_data.iter().flatten().map(|(k, _)| k);
    let documents = data.clone().filter(|k| DOCUMENT_KEYS.contains(&k.as_str())).count();
    let others: Vec<String> = data
        .filter(|k| !DOCUMENT_KEYS.contains(&k.as_str()) || documents > 1)
        .chain(binary)
        .map(|k| quote(k))
        .collect();
    let unlabelled = !selector.matches(cm.metadata.labels.as_ref().unwrap_or(&BTreeMap::new()));
    if !unlabelled && others.is_empty() {
        return Ok(());
    }
    let why = match (unlabelled, others.is_empty()) {
        (true, true) => format!("the label selector {selector} does not match it"),
        (true, false) => format!("the label selector {selector} does not match it, and it holds {}", others.join(", ")),
        (false, _) => format!("it holds {} besides one execution document", others.join(", ")),
    };
    if !force {
        anyhow::bail!(
            "{id} exists and is not an execution ({why}); nothing was written. Name another ConfigMap, \
             or give --force to turn this one into an execution, dropping its other keys"
        );
    }
    let dropped = if others.is_empty() { String::new() } else { format!(", dropping {}", others.join(", ")) };
    eprintln!("warning: {id} is not an execution ({why}): --force turns it into one{dropped}");
    Ok(())
}

/// The document given with `--file`, bounded as the service bounds one.
fn read_document(path: &std::path::Path) -> anyhow::Result<String> {
    const MAX: u64 = 1 << 20;
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().take(MAX + 1).read_to_string(&mut text)?;
        anyhow::ensure!(text.len() as u64 <= MAX, "the document on stdin is over {} KiB", MAX >> 10);
        return Ok(text);
    }
    crate::files::read_bounded(path, MAX).map_err(|(_, e)| anyhow::anyhow!("cannot read {}: {e}", path.display()))
}

/// The ConfigMap to write: the existing one (its other metadata kept), with the labels and one
/// document key, the document built from the file or the recorded one, changed by the flags.
fn configmap(
    args: &RecordArgs,
    existing: Option<&ConfigMap>,
    given: Option<&str>,
    namespace: &str,
    name: &str,
    labels: &BTreeMap<String, String>,
) -> anyhow::Result<ConfigMap> {
    let recorded = existing.and_then(|cm| {
        let data = cm.data.as_ref()?;
        DOCUMENT_KEYS.iter().find_map(|k| data.get(*k).map(|text| (*k, text.as_str())))
    });
    let (key, text) = match (given, recorded) {
        (Some(text), _) => (if text.trim_start().starts_with('{') { "execution.json" } else { "execution.yaml" }, text),
        (None, Some((key, text))) => (key, text),
        (None, None) => ("execution.yaml", ""),
    };
    let text = if changes_fields(args) || text.is_empty() {
        let mut document = if text.is_empty() {
            json!({ "apiVersion": API_VERSION, "kind": "PipelineExecution", "phase": "Pending", "environments": [] })
        } else {
            serde_yaml::from_str::<Value>(text).map_err(|e| {
                anyhow::anyhow!("the document does not parse ({e}); give it whole with --file to replace it")
            })?
        };
        apply(args, &mut document, Timestamp::now());
        if key == "execution.json" {
            serde_json::to_string_pretty(&document)?
        } else {
            serde_yaml::to_string(&document)?
        }
    } else {
        text.to_owned()
    };
    let mut cm = existing.cloned().unwrap_or_else(|| ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            ..Default::default()
        },
        ..Default::default()
    });
    cm.metadata.managed_fields = None;
    cm.metadata.labels.get_or_insert_default().extend(labels.clone());
    // One document key: another would make the service reject it.
    cm.data = Some(BTreeMap::from([(key.to_owned(), text)]));
    cm.binary_data = None;
    Ok(cm)
}

/// An RFC 3339 time, as the schema's `date-time` takes it, written back in UTC.
fn parse_time(text: &str) -> Result<String, String> {
    let at: Timestamp = text.parse().map_err(|_| format!("{text:?} is not an RFC 3339 time (2026-11-22T08:15:00Z)"))?;
    Ok(at.to_string())
}

fn changes_fields(args: &RecordArgs) -> bool {
    args.pipeline.is_some()
        || args.application.is_some()
        || args.version.is_some()
        || args.revision.is_some()
        || args.revision_time.is_some()
        || args.trigger.is_some()
        || args.phase.is_some()
        || args.message.is_some()
        || !args.environments.is_empty()
}

/// The flags' changes to a document; `startedAt` and `finishedAt` of the run and of each
/// environment are set as it leaves `Pending` and as it ends, unless already set.
fn apply(args: &RecordArgs, document: &mut Value, now: Timestamp) {
    let Some(doc) = document.as_object_mut() else { return };
    let set = |doc: &mut serde_json::Map<String, Value>, key: &str, value: &Option<String>| {
        if let Some(value) = value {
            doc.insert(key.to_owned(), json!(value));
        }
    };
    set(doc, "pipeline", &args.pipeline);
    set(doc, "message", &args.message);
    let pipeline = doc.get("pipeline").and_then(Value::as_str).map(str::to_owned);
    let application = doc.entry("application").or_insert_with(|| json!({}));
    if let Some(app) = application.as_object_mut() {
        match (&args.application, pipeline) {
            (Some(name), _) => _ = app.insert("name".into(), json!(name)),
            (None, Some(pipeline)) if !app.contains_key("name") => _ = app.insert("name".into(), json!(pipeline)),
            _ => {}
        }
        set(app, "version", &args.version);
        set(app, "revision", &args.revision);
        set(app, "revisionTime", &args.revision_time);
    }
    if let Some(trigger) = &args.trigger {
        doc.insert("trigger".into(), json!({ "type": trigger }));
    } else {
        doc.entry("trigger").or_insert_with(|| json!({ "type": "API" }));
    }
    if let Some(phase) = args.phase {
        doc.insert("phase".into(), json!(phase.as_str()));
    }
    stamp(doc, now);
    let environments = doc.entry("environments").or_insert_with(|| json!([]));
    if let Some(list) = environments.as_array_mut() {
        for (name, phase) in &args.environments {
            let at = list.iter().position(|e| e["name"] == json!(name));
            let env = match at {
                Some(i) => &mut list[i],
                None => {
                    list.push(json!({ "name": name }));
                    list.last_mut().expect("just pushed")
                }
            };
            if let Some(env) = env.as_object_mut() {
                env.insert("phase".into(), json!(phase.as_str()));
                stamp(env, now);
            }
        }
    }
}

/// `startedAt` once a phase is past `Pending`, `finishedAt` once it is terminal.
fn stamp(object: &mut serde_json::Map<String, Value>, now: Timestamp) {
    let phase = object.get("phase").and_then(Value::as_str).and_then(Phase::parse);
    let now = now.round(jiff::Unit::Second).unwrap_or(now).to_string();
    if phase.is_some_and(Phase::is_attempted) {
        object.entry("startedAt").or_insert_with(|| json!(now));
    }
    // A skipped environment neither started nor finished.
    if phase.is_some_and(|p| p.is_terminal() && p.is_attempted()) {
        object.entry("finishedAt").or_insert_with(|| json!(now));
    }
}

fn print(args: &RecordArgs, cm: &ConfigMap, namespace: &str, name: &str, done: Done) -> anyhow::Result<()> {
    match args.output {
        Some(Output::Yaml) => print!("{}", serde_yaml::to_string(cm)?),
        Some(Output::Json) => println!("{}", serde_json::to_string_pretty(cm)?),
        None => {
            let done = match done {
                Done::Created => "created",
                Done::Configured => "configured",
                Done::Unchanged => "unchanged",
            };
            let dry = match args.dry_run {
                DryRun::None => "",
                DryRun::Client => " (dry run)",
                DryRun::Server => " (server dry run)",
            };
            println!("execution {namespace}/{name} {done}{dry}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        args: RecordArgs,
    }

    fn args(line: &[&str]) -> RecordArgs {
        Wrap::parse_from(std::iter::once("record").chain(line.iter().copied())).args
    }

    #[test]
    fn flags_build_a_document_and_change_one_keeping_the_rest() {
        let now: Timestamp = "2026-12-03T10:00:00Z".parse().unwrap();
        let mut doc = json!({ "apiVersion": API_VERSION, "kind": "PipelineExecution", "phase": "Pending" });
        let new = args(&[
            "a/run-1",
            "--pipeline",
            "web",
            "--app-version",
            "1.2",
            "--phase",
            "Running",
            "--environment",
            "dev=Running",
        ]);
        apply(&new, &mut doc, now);
        assert_eq!(doc["application"], json!({ "name": "web", "version": "1.2" }));
        assert_eq!(
            (doc["trigger"]["type"].as_str(), doc["startedAt"].as_str()),
            (Some("API"), Some("2026-12-03T10:00:00Z"))
        );
        assert_eq!(
            doc["environments"],
            json!([{ "name": "dev", "phase": "Running", "startedAt": "2026-12-03T10:00:00Z" }])
        );
        let later: Timestamp = "2026-12-03T10:05:00Z".parse().unwrap();
        apply(
            &args(&["a/run-1", "--environment", "staging=Running", "--environment", "dev=Succeeded"]),
            &mut doc,
            later,
        );
        let envs = &doc["environments"];
        assert_eq!((envs[0]["name"].as_str(), envs[0]["phase"].as_str()), (Some("dev"), Some("Succeeded")));
        assert_eq!(envs[0]["finishedAt"], "2026-12-03T10:05:00Z");
        assert_eq!(envs[0]["startedAt"], "2026-12-03T10:00:00Z", "kept");
        assert_eq!(envs[1]["name"], "staging");
        assert_eq!(doc["application"]["version"], "1.2", "kept");
    }
}
