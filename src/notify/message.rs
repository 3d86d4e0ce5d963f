//! What a run's state says happened, and the message told of it: a CloudEvent (1.0, structured
//! JSON mode) whose data is a CDEvent where one fits (a pipeline run started or finished, a
//! service deployed to an environment), execwatch's own otherwise.
//!
//! Transitions are read from the run's state, not from the difference between two versions:
//! the same state read again (a restart, a relist, another replica) gives the same
//! transitions, and so the same message ids, and nothing is sent twice. A run that went from
//! Pending to Succeeded while the service was down still tells that it ran.

use jiff::Timestamp;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::index::{ExecutionEntry, RejectionEntry};
use crate::model::Phase;

/// The CDEvents specification version the events follow (their schemas are vendored in
/// `tests/data/cdevents/`).
pub const CDEVENTS_VERSION: &str = "0.4.1";
const PIPELINE_RUN_STARTED: &str = "dev.cdevents.pipelinerun.started.0.2.0";
const PIPELINE_RUN_FINISHED: &str = "dev.cdevents.pipelinerun.finished.0.2.0";
const SERVICE_DEPLOYED: &str = "dev.cdevents.service.deployed.0.2.0";
/// execwatch's own event types, reverse-DNS under its API group, for transitions CDEvents has
/// no event for.
const OWN_PREFIX: &str = "dev.gitops.pipelines";

/// What happened, as a subscription chooses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transition {
    /// The run reached a phase.
    Run(Phase),
    /// An environment of the run reached a phase.
    Environment(String, Phase),
    /// The ConfigMap's version was rejected: it is not an execution the service can serve.
    Rejected { resource_version: String },
}

impl Transition {
    /// The transition in words: part of the message id, and what the deliveries list shows.
    pub fn key(&self) -> String {
        match self {
            Transition::Run(phase) => format!("run/{}", phase.as_str()),
            Transition::Environment(env, phase) => format!("environment/{env}/{}", phase.as_str()),
            Transition::Rejected { resource_version } => format!("rejected/{resource_version}"),
        }
    }
}

/// A transition and when it happened, as the run says: `finishedAt` for a phase a run does not
/// leave, `startedAt` for the others; else when the ConfigMap was created (a time that stays
/// the same however often the run is read again), else when the service saw it.
#[derive(Clone, Debug)]
pub struct Happened {
    pub transition: Transition,
    pub at: Timestamp,
}

/// Every transition a run's state shows: its phase (and that it ran, when it ended after
/// starting), each environment's phase (and that it ran).
pub fn transitions(run: &ExecutionEntry) -> Vec<Happened> {
    let view = &run.view;
    let fallback = run.created.unwrap_or(run.changed_at);
    let time = |text: Option<&str>| text.and_then(|t| t.parse().ok()).unwrap_or(fallback);
    let mut all = Vec::new();
    let mut reached = |transition: Transition, started: Option<&str>, finished: Option<&str>, phase: Phase| {
        if !phase.is_terminal() {
            all.push(Happened { transition, at: time(started) });
            return;
        }
        if phase.is_attempted() && started.is_some() {
            let running = match &transition {
                Transition::Environment(env, _) => Transition::Environment(env.clone(), Phase::Running),
                _ => Transition::Run(Phase::Running),
            };
            all.push(Happened { transition: running, at: time(started) });
        }
        all.push(Happened { transition, at: time(finished) });
    };
    reached(Transition::Run(view.phase), view.started_at.as_deref(), view.finished_at.as_deref(), view.phase);
    for env in &view.environments {
        let transition = Transition::Environment(env.name.clone(), env.phase);
        reached(transition, env.started_at.as_deref(), env.finished_at.as_deref(), env.phase);
    }
    all
}

/// The rejection of a ConfigMap's version, seen now.
pub fn rejected(rejection: &RejectionEntry) -> Happened {
    let resource_version = rejection.rejection.resource_version.clone();
    Happened { transition: Transition::Rejected { resource_version }, at: rejection.changed_at }
}

/// The message id (`webhook-id`, and the CloudEvent's id): the same for the same subscription,
/// ConfigMap and transition, whoever derives it and however often.
pub fn message_id(subscription_uid: &str, subject: &str, transition: &Transition) -> String {
    let mut hash = Sha256::new();
    for part in [subscription_uid, subject, &transition.key()] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    format!("msg_{}", hex::encode(&hash.finalize()[..16]))
}

/// What a message says: its CloudEvent type and body.
pub struct Event {
    pub event_type: String,
    pub body: Value,
}

/// The CloudEvent of a run's transition.
pub fn run_event(id: &str, run: &ExecutionEntry, happened: &Happened) -> Event {
    let (namespace, name) = (&run.id.namespace, &run.id.name);
    let view = &run.view;
    let source = format!("/execwatch/namespaces/{namespace}/pipelines/{}", view.pipeline);
    let url = format!("/api/v1/namespaces/{namespace}/executions/{name}");
    let at = happened.at.to_string();
    let subject = json!({"id": format!("{namespace}/{name}"), "source": source, "type": "pipelineRun"});
    let own = json!({
        "namespace": namespace, "name": name, "uid": run.uid, "resourceVersion": run.resource_version,
        "pipeline": view.pipeline, "application": view.application, "phase": view.phase,
        "startedAt": view.started_at, "finishedAt": view.finished_at,
    });
    let context =
        |kind: &str| json!({"version": CDEVENTS_VERSION, "id": id, "source": source, "type": kind, "timestamp": at});
    let (event_type, data) = match &happened.transition {
        Transition::Run(Phase::Running) => {
            let content = json!({"pipelineName": view.pipeline, "url": url});
            (PIPELINE_RUN_STARTED.to_owned(), cdevent(context(PIPELINE_RUN_STARTED), subject, content, own))
        }
        Transition::Run(phase) if phase.is_terminal() => {
            let mut content = json!({"pipelineName": view.pipeline, "url": url, "outcome": outcome(*phase)});
            if *phase == Phase::Failed {
                content["errors"] = json!(failed_environments(run));
            }
            (PIPELINE_RUN_FINISHED.to_owned(), cdevent(context(PIPELINE_RUN_FINISHED), subject, content, own))
        }
        Transition::Environment(env, Phase::Succeeded) => {
            let service = json!({"id": view.application.name, "source": source, "type": "service"});
            let artifact = format!("pkg:generic/{}@{}", view.application.name, view.application.version);
            let content = json!({"environment": {"id": env, "source": source}, "artifactId": artifact});
            let mut own = own;
            own["environment"] = json!(env);
            (SERVICE_DEPLOYED.to_owned(), cdevent(context(SERVICE_DEPLOYED), service, content, own))
        }
        Transition::Environment(env, phase) => {
            let mut own = own;
            own["environment"] = json!(env);
            own["environmentPhase"] = json!(phase);
            (format!("{OWN_PREFIX}.environment.{}.v1", lower(*phase)), own)
        }
        Transition::Run(phase) => (format!("{OWN_PREFIX}.run.{}.v1", lower(*phase)), own),
        Transition::Rejected { .. } => unreachable!("a run is never a rejection"),
    };
    Event { body: envelope(id, &event_type, &source, &format!("{namespace}/{name}"), &at, data), event_type }
}

/// The CloudEvent of a ConfigMap's rejection: its reasons, as `GET /rejections` says them.
pub fn rejection_event(id: &str, rejection: &RejectionEntry, happened: &Happened) -> Event {
    let r = &rejection.rejection;
    let event_type = format!("{OWN_PREFIX}.configmap.rejected.v1");
    let source = format!("/execwatch/namespaces/{}/configmaps/{}", r.id.namespace, r.id.name);
    let data = serde_json::to_value(r).unwrap_or(Value::Null);
    let subject = format!("{}/{}", r.id.namespace, r.id.name);
    Event { body: envelope(id, &event_type, &source, &subject, &happened.at.to_string(), data), event_type }
}

fn cdevent(context: Value, subject: Value, content: Value, own: Value) -> Value {
    let mut subject = subject;
    subject["content"] = content;
    json!({"context": context, "subject": subject, "customData": {"execwatch": own}, "customDataContentType": "application/json"})
}

fn envelope(id: &str, event_type: &str, source: &str, subject: &str, at: &str, data: Value) -> Value {
    json!({
        "specversion": "1.0", "id": id, "source": source, "type": event_type, "subject": subject,
        "time": at, "datacontenttype": "application/json", "data": data,
    })
}

/// CDEvents' outcome of a finished pipeline run.
fn outcome(phase: Phase) -> &'static str {
    match phase {
        Phase::Succeeded => "success",
        Phase::Failed => "failure",
        Phase::Cancelled => "cancel",
        _ => "skipped",
    }
}

fn lower(phase: Phase) -> String {
    phase.as_str().to_ascii_lowercase()
}

fn failed_environments(run: &ExecutionEntry) -> String {
    let failed: Vec<&str> =
        run.view.environments.iter().filter(|e| e.phase == Phase::Failed).map(|e| e.name.as_str()).collect();
    if failed.is_empty() { "the run failed".to_owned() } else { format!("failed in {}", failed.join(", ")) }
}
