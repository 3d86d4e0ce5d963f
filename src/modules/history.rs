//! The `history` module: the archive's writer. Present when `--archive` is given; its
//! readiness is the archive's, shown in `/readyz` and `/api/v1/modules`, but a database that is
//! down never holds the service's readiness back: live executions are served regardless.

use futures::FutureExt;
use futures::future::BoxFuture;
use tracing::Instrument;

use super::{Lifecycle, Module, ModuleName, Task};
use crate::history::{Archive, ArchiveSettings};
use crate::index::Index;
use crate::model::Resource;

/// The longest the module waits, when it stops, for the journal to reach the archive.
const FLUSH_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

pub struct HistoryModule {
    settings: ArchiveSettings,
    /// What the archive reconciles relists against.
    index: Index,
    archive: Archive,
    /// Names the schemas the archived documents were validated under.
    schema_set: String,
    task: Task,
    lifecycle: Lifecycle,
}

impl HistoryModule {
    pub fn new(settings: ArchiveSettings, index: Index, archive: Archive, schema_set: String) -> Self {
        let (task, lifecycle) = (Task::default(), Lifecycle::default());
        HistoryModule { settings, index, archive, schema_set, task, lifecycle }
    }
}

impl HistoryModule {
    /// The notes the database did not take: to the spool, or counted in the log as lost.
    fn keep_unwritten(&self) {
        let (served, deleted) = self.archive.journal().unwritten();
        match crate::history::spool_unwritten(&self.settings, self.archive.journal()) {
            Ok(kept) => tracing::warn!(
                notes = kept,
                spool = ?self.settings.spool,
                "the archive did not take these notes within {FLUSH_WITHIN:?}; the spool keeps them for the next start"
            ),
            Err(why) => tracing::error!(
                deletions = deleted,
                versions = served,
                "the archive did not take these notes within {FLUSH_WITHIN:?}, and {why}: they are lost unless a replica writes them (a relist marks a deleted run's last written version)"
            ),
        }
    }
}

impl Module for HistoryModule {
    fn name(&self) -> ModuleName {
        ModuleName::History
    }

    fn depends_on(&self) -> &'static [ModuleName] {
        &[ModuleName::Executions]
    }

    fn resources(&self) -> &'static [Resource] {
        &[]
    }

    fn enable(&self) -> BoxFuture<'_, ()> {
        async move {
            self.task.start(|| {
                let (settings, index, archive) = (self.settings.clone(), self.index.clone(), self.archive.clone());
                let run = crate::history::run(settings, index, archive, self.schema_set.clone());
                run.instrument(tracing::info_span!("archive"))
            });
            self.lifecycle.set(true);
        }
        .boxed()
    }

    fn disable(&self) -> BoxFuture<'_, ()> {
        async move {
            self.lifecycle.set(false);
            // Switched off, or shutting down: what is noted goes to the archive first, while the
            // database answers within `FLUSH_WITHIN`; what it does not take goes to the spool
            // for the next start, or, where there is none, is said, deletions first.
            let flushed = tokio::time::timeout(FLUSH_WITHIN, self.archive.journal().settled()).await.is_ok();
            if self.task.stop().await {
                // A batch cut short is rolled back: its notes wait in the journal again.
                self.archive.journal().requeue();
            }
            if !flushed {
                self.keep_unwritten();
            }
        }
        .boxed()
    }

    fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    fn readiness(&self) -> (bool, Option<String>) {
        let status = self.archive.status();
        (status.connected, status.last_error)
    }

    fn holds_readiness(&self) -> bool {
        false
    }
}
