//! A `NotificationSubscription` as a team writes it: which runs, which transitions, and the Secret
//! that holds where to send them and the keys to sign them with. Read from the object's JSON,
//! every mistake named at once, so the status can say all of them.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Deserialize;
use serde_json::Value;

use super::message::Transition;
use super::template::Template;
use crate::index::ExecutionEntry;
use crate::model::Phase;
use crate::quote::quote;
use crate::selector::Selector;

pub const KIND: &str = "NotificationSubscription";
pub const PLURAL: &str = "notificationsubscriptions";
pub const VERSION: &str = "v1alpha1";

/// One subscription, as the service holds it.
#[derive(Clone, Debug)]
pub struct Subscription {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// Transitions from before it existed are not sent.
    pub created: Timestamp,
    /// The object's generation, which the status's `observedGeneration` answers.
    pub generation: i64,
    pub runs: Runs,
    pub transitions: Transitions,
    /// The Secret (in the subscription's namespace) with the destination and the signing keys.
    pub secret: String,
    /// The body's own shape, instead of the CloudEvent.
    pub template: Option<Template>,
}

/// Which runs a subscription hears of: all of those its lists and selector allow.
#[derive(Clone, Debug, Default)]
pub struct Runs {
    pub pipelines: Vec<String>,
    pub applications: Vec<String>,
    pub labels: Option<Selector>,
}

/// Which transitions of those runs.
#[derive(Clone, Debug, Default)]
pub struct Transitions {
    pub runs: Vec<Phase>,
    /// By environment name; `*` for every environment without an entry of its own.
    pub environments: BTreeMap<String, Vec<Phase>>,
    pub rejections: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Spec {
    #[serde(default)]
    runs: RunsSpec,
    #[serde(default)]
    transitions: TransitionsSpec,
    destination: DestinationSpec,
    #[serde(default)]
    template: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RunsSpec {
    #[serde(default)]
    pipelines: Vec<String>,
    #[serde(default)]
    applications: Vec<String>,
    #[serde(default)]
    label_selector: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TransitionsSpec {
    #[serde(default)]
    runs: Vec<String>,
    #[serde(default)]
    environments: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    rejections: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DestinationSpec {
    secret_ref: SecretRef,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretRef {
    name: String,
}

/// The object's identity, read before its spec so an invalid spec can still be reported on.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionId {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl SubscriptionId {
    pub fn of(object: &kube::api::DynamicObject) -> Option<Self> {
        let m = &object.metadata;
        Some(SubscriptionId { namespace: m.namespace.clone()?, name: m.name.clone()?, uid: m.uid.clone()? })
    }
}

impl Subscription {
    /// Reads a subscription object, or says everything wrong with its spec.
    pub fn parse(id: &SubscriptionId, object: &kube::api::DynamicObject) -> Result<Self, String> {
        let spec = object.data.get("spec").cloned().unwrap_or(Value::Null);
        let spec: Spec = serde_json::from_value(spec).map_err(|e| format!("spec: {e}"))?;
        let mut problems = Vec::new();
        let labels =
            spec.runs.label_selector.as_deref().filter(|s| !s.is_empty()).and_then(|s| {
                s.parse::<Selector>().map_err(|e| problems.push(format!("runs.labelSelector: {e}"))).ok()
            });
        let mut phases = |field: String, names: &[String]| -> Vec<Phase> {
            names
                .iter()
                .filter_map(|n| Phase::parse_or_list(n).map_err(|e| problems.push(format!("{field}: {e}"))).ok())
                .collect()
        };
        let runs = phases("transitions.runs".to_owned(), &spec.transitions.runs);
        let environments = spec
            .transitions
            .environments
            .iter()
            .map(|(env, names)| (env.clone(), phases(format!("transitions.environments[{}]", quote(env)), names)))
            .collect();
        let transitions = Transitions { runs, environments, rejections: spec.transitions.rejections };
        if transitions.runs.is_empty() && transitions.environments.is_empty() && !transitions.rejections {
            problems.push("transitions: none chosen (runs, environments or rejections)".to_owned());
        }
        let template = spec.template.as_deref().and_then(|t| Template::parse(t).map_err(|e| problems.push(e)).ok());
        if spec.destination.secret_ref.name.is_empty() {
            problems.push("destination.secretRef.name: required".to_owned());
        }
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        let created = object.metadata.creation_timestamp.as_ref().map_or(Timestamp::UNIX_EPOCH, |t| t.0);
        Ok(Subscription {
            namespace: id.namespace.clone(),
            name: id.name.clone(),
            uid: id.uid.clone(),
            created,
            generation: object.metadata.generation.unwrap_or(0),
            runs: Runs { pipelines: spec.runs.pipelines, applications: spec.runs.applications, labels },
            transitions,
            secret: spec.destination.secret_ref.name,
            template,
        })
    }

    pub fn id(&self) -> SubscriptionId {
        SubscriptionId { namespace: self.namespace.clone(), name: self.name.clone(), uid: self.uid.clone() }
    }

    /// Whether this run is one the subscription hears of.
    pub fn covers(&self, run: &ExecutionEntry) -> bool {
        let listed = |list: &[String], value: &str| list.is_empty() || list.iter().any(|v| v == value);
        run.id.namespace == self.namespace
            && listed(&self.runs.pipelines, &run.view.pipeline)
            && listed(&self.runs.applications, &run.view.application.name)
            && self.runs.labels.as_ref().is_none_or(|s| s.matches(&run.labels))
    }

    /// Whether the subscription asks for this transition.
    pub fn wants(&self, transition: &Transition) -> bool {
        match transition {
            Transition::Run(phase) => self.transitions.runs.contains(phase),
            Transition::Environment(env, phase) => {
                let listed = self.transitions.environments.get(env).or_else(|| self.transitions.environments.get("*"));
                listed.is_some_and(|phases| phases.contains(phase))
            }
            Transition::Rejected { .. } => self.transitions.rejections,
        }
    }
}
