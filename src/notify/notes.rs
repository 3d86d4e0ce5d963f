//! The index's subscriber for notifications: notes the latest served version of each run and
//! each rejection (one per ConfigMap, however often it changes before it is read), and turns
//! them into the outbox's messages for the subscriptions that want them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use tokio::sync::Notify;

use super::message::{self, Happened};
use super::subscription::Subscription;
use crate::history::outbox::NewMessage;
use crate::index::{ExecutionEntry, RejectionEntry, Subscriber};
use crate::model::ObjectRef;

/// What the index told and the outbox does not hold yet.
#[derive(Default)]
pub struct Notes {
    pending: Mutex<Pending>,
    wake: Notify,
    /// Off while the module is: nothing is noted.
    enabled: AtomicBool,
}

#[derive(Default)]
pub struct Pending {
    pub runs: HashMap<ObjectRef, Arc<ExecutionEntry>>,
    pub rejections: HashMap<ObjectRef, Arc<RejectionEntry>>,
}

impl Pending {
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty() && self.rejections.is_empty()
    }
}

impl Subscriber for Notes {
    fn served(&self, entry: &Arc<ExecutionEntry>) {
        if self.enabled.load(Ordering::Relaxed) {
            self.lock().runs.insert((*entry.id).clone(), entry.clone());
            self.wake.notify_one();
        }
    }

    fn ended(&self, _entry: &Arc<ExecutionEntry>, _at: Timestamp) {}

    fn relisted(&self, _namespace: Option<&str>, _listed: &[&Arc<ExecutionEntry>]) {}

    fn rejected(&self, rejection: &Arc<RejectionEntry>) {
        if self.enabled.load(Ordering::Relaxed) {
            self.lock().rejections.insert(rejection.rejection.id.clone(), rejection.clone());
            self.wake.notify_one();
        }
    }
}

impl Notes {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts or stops noting; stopping forgets what was noted.
    pub fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::Relaxed);
        if !enabled {
            *self.lock() = Pending::default();
        }
    }

    /// Notes these runs as if served now: what a new subscription (or a module enabled again)
    /// looks at first.
    pub fn note_all(&self, runs: Vec<Arc<ExecutionEntry>>) {
        let mut pending = self.lock();
        pending.runs.extend(runs.into_iter().map(|e| ((*e.id).clone(), e)));
        drop(pending);
        self.wake.notify_one();
    }

    /// Waits for notes, and takes them all.
    pub async fn take(&self) -> Pending {
        loop {
            let woken = self.wake.notified();
            let pending = std::mem::take(&mut *self.lock());
            if !pending.is_empty() {
                return pending;
            }
            woken.await;
        }
    }

    /// Puts back notes the outbox did not take, unless newer ones came meanwhile.
    pub fn put_back(&self, taken: Pending) {
        let mut pending = self.lock();
        for (id, entry) in taken.runs {
            pending.runs.entry(id).or_insert(entry);
        }
        for (id, entry) in taken.rejections {
            pending.rejections.entry(id).or_insert(entry);
        }
    }
}

/// The messages the notes make for `subscriptions`: each transition a subscription wants,
/// that happened after it was created and after `oldest` (older ones are never sent).
pub fn messages(pending: &Pending, subscriptions: &[Arc<Subscription>], oldest: Timestamp) -> Vec<NewMessage> {
    let mut all = Vec::new();
    let fresh = |s: &Subscription, h: &Happened| h.at >= s.created && h.at >= oldest && s.wants(&h.transition);
    for run in pending.runs.values() {
        let subscribed: Vec<&Arc<Subscription>> = subscriptions.iter().filter(|s| s.covers(run)).collect();
        if subscribed.is_empty() {
            continue;
        }
        let subject = format!("{}/{}", run.id.namespace, run.id.name);
        for happened in message::transitions(run) {
            for s in subscribed.iter().filter(|s| fresh(s, &happened)) {
                let id = message::message_id(&s.uid, &run.uid, &happened.transition);
                let event = message::run_event(&id, run, &happened);
                all.push(new_message(s, id, &subject, &happened, event));
            }
        }
    }
    for rejection in pending.rejections.values() {
        let id_of = &rejection.rejection.id;
        let subject = format!("{}/{}", id_of.namespace, id_of.name);
        let happened = message::rejected(rejection);
        for s in subscriptions.iter().filter(|s| s.namespace == id_of.namespace && fresh(s, &happened)) {
            let id = message::message_id(&s.uid, &subject, &happened.transition);
            let event = message::rejection_event(&id, rejection, &happened);
            all.push(new_message(s, id, &subject, &happened, event));
        }
    }
    all
}

fn new_message(s: &Subscription, id: String, subject: &str, happened: &Happened, event: message::Event) -> NewMessage {
    let transition = happened.transition.key();
    let (body, content_type) = match &s.template {
        Some(template) => (template.render(&event.body, &transition), "application/json"),
        None => (event.body.to_string(), "application/cloudevents+json; charset=utf-8"),
    };
    NewMessage {
        id,
        namespace: s.namespace.clone(),
        subscription: s.name.clone(),
        subscription_uid: s.uid.clone(),
        event_type: event.event_type,
        subject: subject.to_owned(),
        transition,
        body,
        content_type: content_type.to_owned(),
        event_time: happened.at,
    }
}
