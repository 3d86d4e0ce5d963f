//! The execwatch binary as users run it: from the repository's root, logging warnings only,
//! with no kubeconfig and no in-cluster environment unless a test gives one (`.env(…)` after).

use std::path::Path;

/// The binary, to run to its end or spawn, blocking.
pub fn blocking(args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_execwatch"));
    cmd.args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("KUBECONFIG", "/nonexistent")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("EXECWATCH_LOG_LEVEL", "warn");
    cmd
}

/// The binary on tokio, its output piped and the process killed when the handle is dropped.
pub fn command(args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::from(blocking(args));
    cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).kill_on_drop(true);
    cmd
}

/// A `PATH` on which kubectl finds the binary as its plugin `kubectl-execwatch` (a link in
/// `dir`), ahead of the rest.
pub fn plugin_path(dir: &Path) -> String {
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_execwatch"), dir.join("kubectl-execwatch")).unwrap();
    format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default())
}
