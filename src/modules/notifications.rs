//! The `notifications` module: signed CloudEvents for the transitions teams subscribe to
//! (`notify`). Present when `--notify-allow` is given, with an archive (the outbox lives there)
//! and a cluster (subscriptions are objects in it). It never holds the service's readiness back.

use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use tracing::Instrument;

use super::{Lifecycle, Module, ModuleName, Task};
use crate::model::Resource;
use crate::notify::Notifier;
use crate::source::cluster::WatchSettings;

pub struct NotificationsModule {
    notifier: Arc<Notifier>,
    client: kube::Client,
    watch: WatchSettings,
    task: Task,
    lifecycle: Lifecycle,
}

impl NotificationsModule {
    pub fn new(notifier: Arc<Notifier>, client: kube::Client, watch: WatchSettings) -> Self {
        NotificationsModule { notifier, client, watch, task: Task::default(), lifecycle: Lifecycle::default() }
    }
}

impl Module for NotificationsModule {
    fn name(&self) -> ModuleName {
        ModuleName::Notifications
    }

    fn depends_on(&self) -> &'static [ModuleName] {
        &[ModuleName::Executions, ModuleName::History]
    }

    fn resources(&self) -> &'static [Resource] {
        &[Resource::Deliveries]
    }

    fn enable(&self) -> BoxFuture<'_, ()> {
        async move {
            // From now on; what is served already is looked at again once the subscriptions
            // are listed (`notify::follow`): transitions while the module was off included.
            self.notifier.notes.set_enabled(true);
            self.task.start(|| {
                let (notifier, client, watch) = (self.notifier.clone(), self.client.clone(), self.watch.clone());
                notifier.run(client, watch).instrument(tracing::info_span!("notifications"))
            });
            self.lifecycle.set(true);
        }
        .boxed()
    }

    fn disable(&self) -> BoxFuture<'_, ()> {
        async move {
            self.lifecycle.set(false);
            self.notifier.notes.set_enabled(false);
            // An attempt cut short is tried again once its claim runs out: with the same id.
            self.task.stop().await;
        }
        .boxed()
    }

    fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    fn readiness(&self) -> (bool, Option<String>) {
        self.notifier.readiness()
    }

    fn holds_readiness(&self) -> bool {
        false
    }
}
