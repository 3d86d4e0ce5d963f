//! The exit codes of every command: part of the contract (docs/cli.md), so written once.

use std::process::ExitCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Success; for `wait`, the condition held.
    Success = 0,
    /// A rejected document (`validate`, `record`), or a state that cannot satisfy a `wait`.
    Rejected = 1,
    /// Any other failure (the message says which); for `wait`, its timeout.
    Failed = 2,
    /// The execution does not exist, or these credentials may not read it.
    Absent = 3,
    /// A usage error, or the service unreachable through the retries.
    Unusable = 4,
    /// Interrupted (Ctrl-C), as shells report SIGINT.
    Interrupted = 130,
}

impl Exit {
    /// `wait`'s timeout.
    pub const TIMED_OUT: Exit = Exit::Failed;
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit as u8)
    }
}
