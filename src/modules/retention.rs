//! The `retention` module: the pruner. Present when `--retention` is given; in `dry-run` mode
//! (the default) it only makes plans. Its readiness says why it is idle (no archive, another
//! replica leads, RBAC refuses deletes) or why the policy file's last edit is not in force, but
//! it never holds the service's readiness back.

use futures::FutureExt;
use futures::future::BoxFuture;
use tracing::Instrument;

use super::{Lifecycle, Module, ModuleName, RETENTION, Task};
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
    task: Task,
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
        let (task, lifecycle) = (Task::default(), Lifecycle::default());
        RetentionModule { settings, policy, index, archive, client, status, metrics, task, lifecycle }
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
            self.task.start(|| {
                let pruner = Pruner {
                    settings: self.settings.clone(),
                    index: self.index.clone(),
                    archive: self.archive.clone(),
                    client: self.client.clone(),
                    status: self.status.clone(),
                    metrics: self.metrics.clone(),
                };
                pruner.run(self.policy.clone()).instrument(tracing::info_span!("retention"))
            });
            self.lifecycle.set(true);
        }
        .boxed()
    }

    fn disable(&self) -> BoxFuture<'_, ()> {
        async move {
            self.lifecycle.set(false);
            // A delete cut short either happened or did not: the next plan sees which.
            self.task.stop().await;
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
