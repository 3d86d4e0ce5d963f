//! The `retention` module: the pruner. Present when `--retention` is given; in `dry-run` mode
//! (the default) it only makes plans. Its readiness says why it is idle (no archive, another
//! replica leads, RBAC refuses deletes) or why the policy file's last edit is not in force, but
//! it never holds the service's readiness back.

use std::sync::Mutex;

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::{Lifecycle, Module, ModuleName, RETENTION};
use crate::history::ArchiveStatus;
use crate::index::Index;
use crate::metrics::RetentionMetrics;
use crate::retention::{Policy, Pruner, RetentionSettings, RetentionStatus};

pub struct RetentionModule {
    settings: RetentionSettings,
    policy: Policy,
    index: Index,
    archive: Option<ArchiveStatus>,
    client: Option<kube::Client>,
    status: RetentionStatus,
    metrics: RetentionMetrics,
    task: Mutex<Option<JoinHandle<()>>>,
    lifecycle: Lifecycle,
}

/// What the pruner reads and reports to.
pub struct RetentionParts {
    pub index: Index,
    pub archive: Option<ArchiveStatus>,
    pub client: Option<kube::Client>,
    pub status: RetentionStatus,
    pub metrics: RetentionMetrics,
}

impl RetentionModule {
    pub fn new(settings: RetentionSettings, policy: Policy, parts: RetentionParts) -> Self {
        let RetentionParts { index, archive, client, status, metrics } = parts;
        let (task, lifecycle) = (Mutex::default(), Lifecycle::default());
        RetentionModule { settings, policy, index, archive, client, status, metrics, task, lifecycle }
    }

    fn task(&self) -> std::sync::MutexGuard<'_, Option<JoinHandle<()>>> {
        self.task.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Module for RetentionModule {
    fn name(&self) -> ModuleName {
        ModuleName::Retention
    }

    fn depends_on(&self) -> &'static [ModuleName] {
        &[ModuleName::Executions]
    }

    fn resources(&self) -> &'static [&'static str] {
        &[RETENTION]
    }

    fn enable(&self) -> BoxFuture<'_, ()> {
        async move {
            let mut task = self.task();
            if task.is_none() {
                let pruner = Pruner {
                    settings: self.settings.clone(),
                    index: self.index.clone(),
                    archive: self.archive.clone(),
                    client: self.client.clone(),
                    status: self.status.clone(),
                    metrics: self.metrics.clone(),
                };
                let run = pruner.run(self.policy.clone()).instrument(tracing::info_span!("retention"));
                *task = Some(tokio::spawn(run));
            }
            self.lifecycle.set(true);
        }
        .boxed()
    }

    fn disable(&self) -> BoxFuture<'_, ()> {
        async move {
            self.lifecycle.set(false);
            let task = self.task().take();
            if let Some(task) = task {
                // A delete cut short either happened or did not: the next plan sees which.
                task.abort();
                let _ = task.await;
            }
        }
        .boxed()
    }

    fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    fn readiness(&self) -> (bool, Option<String>) {
        let status = self.status.get();
        (status.plan.is_some(), status.policy_error.or(status.idle))
    }

    fn holds_readiness(&self) -> bool {
        false
    }
}
