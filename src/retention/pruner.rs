//! The pruner: every interval it reloads the policy if the file changed, makes the plan, and in
//! `enforce` mode deletes what the plan says, oldest first, one ConfigMap at a time at the rate
//! set. Each delete must pass three checks: the index still holds that exact version, the
//! archive holds it too (uid and resourceVersion), and the API server's preconditions (the same
//! uid and resourceVersion) hold, so a writer's update in between wins and is looked at again in
//! a later round. One replica prunes at a time: the one that holds the Lease.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{DeleteParams, Preconditions};

use super::lease::Lease;
use super::plan::{Candidate, Plan};
use super::policy::Policy;
use crate::files::fingerprint;
use crate::history::{Archive, ArchiveError};
use crate::index::{ExecutionEntry, Index};
use crate::metrics::{RetentionMetrics, Skipped};
use crate::model::ObjectRef;

/// `--retention-mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Make the plan and report it; delete nothing.
    DryRun,
    /// Delete what the plan says.
    Enforce,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::DryRun => "dryRun",
            Mode::Enforce => "enforce",
        }
    }
}

#[derive(Clone, Debug)]
pub struct RetentionSettings {
    pub file: PathBuf,
    pub mode: Mode,
    /// Deletes per second, across replicas (one prunes at a time).
    pub rate: NonZeroU32,
    /// How often the plan is made again.
    pub interval: Duration,
    /// Prune without an archive: what is deleted is gone for good.
    pub without_archive: bool,
    /// Where the Lease lives and who this replica is.
    pub lease: LeaseSettings,
}

#[derive(Clone, Debug)]
pub struct LeaseSettings {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub duration: Duration,
}

/// What the retention module says of itself: the last plan, why the policy file's last edit
/// is not in force, and why it is idle. Clones share it.
#[derive(Clone, Default)]
pub struct RetentionStatus(Arc<Mutex<RetentionReport>>);

#[derive(Clone, Default)]
/// A snapshot of the retention module's status.
pub struct RetentionReport {
    pub plan: Option<Arc<Plan>>,
    /// Why the last edit of the file is not in force (the previous policy is).
    pub policy_error: Option<String>,
    /// Why nothing is being deleted although the mode is `enforce`.
    pub idle: Option<String>,
}

impl RetentionStatus {
    pub fn get(&self) -> RetentionReport {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn update(&self, f: impl FnOnce(&mut RetentionReport)) {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

/// Candidates checked against the index and the archive at a time.
const CHUNK: usize = 200;

/// What the pruner needs of the rest of the service.
#[derive(Clone)]
pub struct Pruner {
    pub settings: RetentionSettings,
    pub index: Index,
    /// `None` without `--archive`.
    pub archive: Option<Archive>,
    /// `None` for a directory source: nothing to delete from.
    pub client: Option<kube::Client>,
    pub status: RetentionStatus,
    pub metrics: RetentionMetrics,
}

/// How a round of enforcing ended: why nothing (or not everything) was deleted, and whether
/// the lease's window ended it with candidates left.
struct Round {
    idle: Option<String>,
    cut_short: bool,
}

/// How one delete went.
enum Outcome {
    Pruned,
    Skipped(Skipped),
    /// Not allowed in this namespace: the rest of it waits for the next round.
    Forbidden(String),
    /// The archive or the API server failed: no use trying the rest of this round.
    Failed(String),
}

impl Pruner {
    /// Runs until aborted, starting from `policy` (loaded and checked at start).
    pub async fn run(self, mut policy: Policy) {
        // No burst: deletes are spread evenly, so the API server sees a steady trickle.
        let limiter = RateLimiter::direct(Quota::per_second(self.settings.rate).allow_burst(NonZeroU32::MIN));
        let mut seen = fingerprint(&self.settings.file);
        let lease = self.client.clone().map(|client| Lease::new(client, self.settings.lease.clone()));
        loop {
            let now = fingerprint(&self.settings.file);
            if now != seen {
                seen = now;
                policy = self.reload(policy);
            }
            let plan = Arc::new(Plan::make(&policy, &self.index.all_executions(), Timestamp::now()));
            self.status.update(|s| s.plan = Some(plan.clone()));
            let round = match self.settings.mode {
                Mode::DryRun => Round { idle: None, cut_short: false },
                Mode::Enforce => self.enforce(&plan, lease.as_ref(), &limiter).await,
            };
            self.status.update(|s| s.idle = round.idle);
            // A round the lease cut short goes on at once, with the lease renewed and a fresh
            // plan, so the rate is the one set however long the backlog.
            if !round.cut_short {
                tokio::time::sleep(self.settings.interval).await;
            }
        }
    }

    fn reload(&self, previous: Policy) -> Policy {
        match Policy::load(&self.settings.file) {
            Ok(policy) => {
                tracing::info!(path = %self.settings.file.display(), rules = policy.rules.len(), "retention policy reloaded");
                self.status.update(|s| s.policy_error = None);
                policy
            }
            Err(e) => {
                tracing::error!(error = %e, "retention policy does not load; the previous one stays in force");
                self.status.update(|s| s.policy_error = Some(e.to_string()));
                previous
            }
        }
    }

    /// Deletes what the plan says while this replica leads; why it is idle otherwise.
    async fn enforce(&self, plan: &Plan, lease: Option<&Lease>, limiter: &DefaultDirectRateLimiter) -> Round {
        let idle = |why: String| Round { idle: Some(why), cut_short: false };
        let (Some(client), Some(lease)) = (&self.client, lease) else {
            return idle("a directory source has no ConfigMaps to delete".to_owned());
        };
        if self.archive.is_none() && !self.settings.without_archive {
            return idle("no archive (--archive) to hold what would be deleted".to_owned());
        }
        // Leading lasts a lease duration from the last renewal: stop well before.
        let until = match lease.lead().await {
            Ok(Some(until)) => until,
            Ok(None) => return idle(format!("another replica holds the Lease {}", self.settings.lease.name)),
            Err(e) => return idle(format!("cannot take the Lease {}: {e}", self.settings.lease.name)),
        };
        let (mut forbidden, mut forbidden_why) = (std::collections::BTreeSet::new(), None);
        // Every step is bounded by the time left: a slow archive never stretches this replica's
        // turn past the Lease it renewed, and no delete starts after it.
        let cut_short = |why| Round { idle: why, cut_short: true };
        for chunk in plan.candidates.chunks(CHUNK) {
            let deletable = match tokio::time::timeout_at(until, self.deletable(chunk)).await {
                Err(_) => return cut_short(forbidden_why),
                Ok(Ok(deletable)) => deletable,
                Ok(Err(why)) => {
                    self.metrics.error();
                    return idle(format!("cannot ask the archive: {why}"));
                }
            };
            for candidate in deletable {
                if forbidden.contains(&candidate.entry.id.namespace) {
                    continue;
                }
                // No delete starts after the window; one under way is seen through (its
                // preconditions keep it safe, and its outcome is counted).
                if tokio::time::timeout_at(until, limiter.until_ready()).await.is_err() {
                    return cut_short(forbidden_why);
                }
                match self.prune(client, candidate, plan.rule_name(candidate.rule)).await {
                    Outcome::Pruned => self.metrics.pruned(plan.rule_name(candidate.rule)),
                    Outcome::Skipped(reason) => self.metrics.skipped(reason),
                    Outcome::Forbidden(why) => {
                        self.metrics.error();
                        forbidden.insert(candidate.entry.id.namespace.clone());
                        forbidden_why = Some(why);
                    }
                    Outcome::Failed(why) => {
                        self.metrics.error();
                        return idle(why);
                    }
                }
            }
        }
        Round { idle: forbidden_why, cut_short: false }
    }

    /// Of these candidates, those the index still holds at the planned version and the archive
    /// holds too (one query a namespace); the others are counted as skipped.
    async fn deletable<'c>(&self, chunk: &'c [Candidate]) -> Result<Vec<&'c Candidate>, ArchiveError> {
        let unchanged: Vec<&Candidate> = chunk
            .iter()
            .filter(|c| match self.index.get(&c.entry.id) {
                None => {
                    self.metrics.skipped(Skipped::Gone);
                    false
                }
                Some(live) if live.uid != c.entry.uid || live.resource_version != c.entry.resource_version => {
                    self.metrics.skipped(Skipped::Changed);
                    false
                }
                Some(_) => true,
            })
            .collect();
        let Some(archive) = &self.archive else { return Ok(unchanged) };
        let entries: Vec<&ExecutionEntry> = unchanged.iter().map(|c| &*c.entry).collect();
        let held = archive.holding(&entries).await?;
        // A plan names each execution once: its id stands for the candidate.
        let held: std::collections::HashSet<&ObjectRef> = held.into_iter().map(|e| &*e.id).collect();
        let (deletable, unarchived): (Vec<&Candidate>, Vec<&Candidate>) =
            unchanged.into_iter().partition(|c| held.contains(&*c.entry.id));
        for _ in unarchived {
            self.metrics.skipped(Skipped::NotArchived);
        }
        Ok(deletable)
    }

    async fn prune(&self, client: &kube::Client, candidate: &Candidate, rule: &str) -> Outcome {
        let entry = &candidate.entry;
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), &entry.id.namespace);
        let preconditions =
            Preconditions { uid: Some(entry.uid.clone()), resource_version: Some(entry.resource_version.clone()) };
        match api
            .delete(&entry.id.name, &DeleteParams { preconditions: Some(preconditions), ..Default::default() })
            .await
        {
            Ok(_) => {
                tracing::info!(namespace = %entry.id.namespace, name = %entry.id.name, "pruned");
                // Off the pruning path: an Event is a courtesy, never a reason to go slower.
                tokio::spawn(super::events::pruned(client.clone(), entry.clone(), rule.to_owned()));
                Outcome::Pruned
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Outcome::Skipped(Skipped::Changed),
            Err(kube::Error::Api(s)) if s.code == 404 => Outcome::Skipped(Skipped::Gone),
            Err(kube::Error::Api(s)) if s.code == 403 => Outcome::Forbidden(format!(
                "not allowed to delete ConfigMaps in {} ({}); install manifests/retention to grant it",
                entry.id.namespace, s.message
            )),
            Err(e) => Outcome::Failed(format!("cannot delete {}/{}: {e}", entry.id.namespace, entry.id.name)),
        }
    }
}
