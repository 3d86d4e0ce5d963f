//! Retention: which execution ConfigMaps may go, and pruning them once the archive holds them.
//! The policy is first-match rules from a file (`policy`), the plan is what it would prune of
//! the live executions now (`plan`), and the pruner deletes that, one ConfigMap at a time, each
//! with preconditions and only at the exact version the archive holds (`pruner`).

mod events;
mod lease;
pub mod plan;
pub mod policy;
pub mod pruner;

pub use plan::{Plan, PlanBody};
pub use policy::Policy;
pub use pruner::{LeaseSettings, Mode, Pruner, RetentionSettings, RetentionStatus};
