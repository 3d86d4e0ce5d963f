//! The subscription's status, as the team reads it with kubectl: conditions (`Ready`,
//! `DestinationRefused`, `Failing`), the last delivery, and how many messages wait and were
//! dead-lettered. Written through the status subresource, only when something changed; the outbox
//! is counted at most every `EVERY` unless the reason nothing is sent changed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Value, json};

use crate::history::outbox::Tally;

use super::super::Notifier;
use super::super::subscription::{KIND, PLURAL, SubscriptionId, VERSION};

const EVERY: Duration = Duration::from_secs(2);

/// Why a subscription sends nothing now: the `Ready` condition's reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    InvalidSpec,
    NamespaceNotWatched,
    SecretUnreadable,
    InvalidSecret,
    DestinationRefused,
    ArchiveUnavailable,
}

impl Why {
    fn as_str(self) -> &'static str {
        match self {
            Why::InvalidSpec => "InvalidSpec",
            Why::NamespaceNotWatched => "NamespaceNotWatched",
            Why::SecretUnreadable => "SecretUnreadable",
            Why::InvalidSecret => "InvalidSecret",
            Why::DestinationRefused => "DestinationRefused",
            Why::ArchiveUnavailable => "ArchiveUnavailable",
        }
    }
}

/// Why a subscription sends nothing now, and the details.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub why: Why,
    pub message: String,
}

impl Problem {
    pub fn new(why: Why, message: impl Into<String>) -> Self {
        Problem { why, message: message.into() }
    }
}

/// One condition of the status: its type, whether it holds, its reason and message.
type Condition = (&'static str, bool, &'static str, String);

/// The conditions `problem` and the outbox's tally make.
fn conditions(problem: Option<&Problem>, tally: &Tally) -> [Condition; 3] {
    let ready = match problem {
        Some(p) => ("Ready", false, p.why.as_str(), p.message.clone()),
        None => ("Ready", true, "Delivering", "messages are sent as transitions happen".to_owned()),
    };
    let refused = match problem.filter(|p| p.why == Why::DestinationRefused) {
        Some(p) => ("DestinationRefused", true, "DestinationRefused", p.message.clone()),
        None => ("DestinationRefused", false, "Allowed", String::new()),
    };
    let failing = match &tally.last_error {
        Some(error) => ("Failing", true, "AttemptsFailing", error.clone()),
        None => ("Failing", false, "NoFailures", String::new()),
    };
    [ready, refused, failing]
}

/// Writes one subscription's status.
pub struct StatusWriter {
    api: Api<DynamicObject>,
    name: String,
    uid: String,
    generation: i64,
    /// What was written last (without transition times).
    last: Option<Value>,
    /// Each condition's status and since when.
    since: BTreeMap<&'static str, (bool, Timestamp)>,
    /// The problem last reported, and when the outbox was last counted for it.
    checked: Option<(Option<Problem>, Instant)>,
}

/// The API resource of subscriptions, for kube's dynamic client.
pub fn resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk(crate::model::GROUP, VERSION, KIND);
    ApiResource::from_gvk_with_plural(&gvk, PLURAL)
}

impl StatusWriter {
    pub fn new(client: kube::Client, id: &SubscriptionId, generation: i64) -> Self {
        StatusWriter {
            api: Api::namespaced_with(client, &id.namespace, &resource()),
            name: id.name.clone(),
            uid: id.uid.clone(),
            generation,
            last: None,
            since: BTreeMap::new(),
            checked: None,
        }
    }

    /// Writes the status, if it changed: `problem` is why nothing is sent, if anything.
    pub async fn report(&mut self, notifier: &Notifier, problem: Option<Problem>) {
        // The outbox is counted at most every `EVERY`, unless the problem changed.
        if self.checked.as_ref().is_some_and(|(p, at)| *p == problem && at.elapsed() < EVERY) {
            return;
        }
        self.checked = Some((problem.clone(), Instant::now()));
        let tally = match notifier.archive.outbox() {
            Ok(outbox) => outbox.tally(&self.uid).await.ok(),
            Err(_) => None,
        };
        let tally = tally.unwrap_or_default();
        let conditions = conditions(problem.as_ref(), &tally);
        let status = json!({
            "observedGeneration": self.generation,
            "conditions": conditions.iter().map(|(kind, on, reason, message)| json!({
                "type": kind, "status": if *on { "True" } else { "False" }, "reason": reason, "message": message,
            })).collect::<Vec<_>>(),
            "waiting": tally.waiting,
            "deadLettered": tally.dead,
            "sent": tally.sent,
            "lastDelivery": tally.last_sent.map(|t| t.to_string()),
        });
        if self.last.as_ref() == Some(&status) {
            return;
        }
        let written = self.with_times(&status, &conditions.map(|(kind, on, ..)| (kind, on)));
        let patch = json!({"status": written});
        match self.api.patch_status(&self.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => self.last = Some(status),
            Err(e) => tracing::warn!(subscription = %self.name, error = %e, "cannot write the subscription's status"),
        }
    }

    /// The status with each condition's `lastTransitionTime`: kept while its status stays.
    fn with_times(&mut self, status: &Value, states: &[(&'static str, bool)]) -> Value {
        let mut status = status.clone();
        let now = Timestamp::now();
        for (i, (kind, on)) in states.iter().enumerate() {
            let since = self.since.entry(kind).or_insert((*on, now));
            if since.0 != *on {
                *since = (*on, now);
            }
            status["conditions"][i]["lastTransitionTime"] = json!(since.1.to_string());
        }
        status
    }
}
