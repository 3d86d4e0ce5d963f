//! The `retention` module: the pruner. Present when `--retention` is given; in `dry-run` mode
//! (the default) it only makes plans. Its readiness says why it is idle (no archive, another
//! replica leads, RBAC refuses deletes) or why the policy file's last edit is not in force, but
//! it never holds the service's readiness back.

use futures::FutureExt;
use futures::future::BoxFuture;
use tracing::Instrument;

use super::{Lifecycle, Module, ModuleName, Resource, Task};
use crate::retention::{Policy, Pruner};

pub struct RetentionModule {
    /// What each start of the task runs: clones share the index, status and metrics.
    pruner: Pruner,
    policy: Policy,
    task: Task,
    lifecycle: Lifecycle,
}

impl RetentionModule {
    pub fn new(pruner: Pruner, policy: Policy) -> Self {
        RetentionModule { pruner, policy, task: Task::default(), lifecycle: Lifecycle::default() }
    }
}

impl Module for RetentionModule {
    fn name(&self) -> ModuleName {
        ModuleName::Retention
    }

    fn depends_on(&self) -> &'static [ModuleName] {
        &[ModuleName::Executions]
    }

    fn resources(&self) -> &'static [Resource] {
        &[Resource::Retention]
    }

    fn enable(&self) -> BoxFuture<'_, ()> {
        async move {
            self.task.start(|| {
                let pruner = self.pruner.clone();
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
        let status = self.pruner.status.get();
        (status.plan.is_some(), status.policy_error.or(status.idle))
    }

    fn holds_readiness(&self) -> bool {
        false
    }
}
