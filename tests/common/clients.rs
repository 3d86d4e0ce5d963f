//! Real clients playing the pipeline writer against the simulator: kubectl and the official
//! Python `kubernetes` client. Where one is missing the test says it skipped, unless
//! `EXECWATCH_REQUIRE_CLIENTS` is set (as CI sets it), where a missing client fails the test.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Reports a missing client: a skip, or a failure where clients are required.
pub fn missing(what: &str) {
    if std::env::var_os("EXECWATCH_REQUIRE_CLIENTS").is_some() {
        panic!("{what} is required (EXECWATCH_REQUIRE_CLIENTS is set) but not available");
    }
    println!("SKIPPED: {what} is not available here");
}

/// Runs `cmd`, feeding `stdin`; `None` when the program cannot be started.
fn run(mut cmd: Command, stdin: Option<&str>, what: &str) -> Option<(bool, String)> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            missing(&format!("{what} ({e})"));
            return None;
        }
    };
    if let Some(input) = stdin {
        child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
    }
    let out = child.wait_with_output().expect("the client runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Some((out.status.success(), text))
}

/// kubectl pointed at one simulator, with a discovery cache of its own.
#[derive(Clone)]
pub struct Kubectl {
    kubeconfig: PathBuf,
}

impl Kubectl {
    /// Writes `kubeconfig` (the simulator's) into `dir`.
    pub fn new(dir: &Path, kubeconfig: &str) -> Kubectl {
        let path = dir.join("kubeconfig");
        std::fs::write(&path, kubeconfig).expect("write kubeconfig");
        Kubectl { kubeconfig: path }
    }

    /// Runs kubectl on a blocking thread; `None` (after reporting it) where kubectl is absent.
    pub async fn run(&self, args: &[&str], stdin: Option<&str>) -> Option<(bool, String)> {
        let kubeconfig = self.kubeconfig.clone();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let stdin = stdin.map(str::to_owned);
        tokio::task::spawn_blocking(move || {
            let mut cmd = Command::new("kubectl");
            cmd.env("KUBECONFIG", &kubeconfig).env("KUBECACHEDIR", kubeconfig.with_extension("cache")).args(&args);
            run(cmd, stdin.as_deref(), "kubectl")
        })
        .await
        .expect("kubectl thread")
    }

    /// Starts kubectl in the background (a `--watch`, say); the handle yields what `run` would.
    pub fn spawn(&self, args: &[&str]) -> tokio::task::JoinHandle<Option<(bool, String)>> {
        let (kubectl, args): (Kubectl, Vec<String>) = (self.clone(), args.iter().map(|a| a.to_string()).collect());
        tokio::spawn(async move { kubectl.run(&args.iter().map(String::as_str).collect::<Vec<_>>(), None).await })
    }

    /// Runs kubectl and fails the test unless it succeeds; `None` where kubectl is absent.
    pub async fn ok(&self, args: &[&str], stdin: Option<&str>) -> Option<String> {
        let (ok, out) = self.run(args, stdin).await?;
        assert!(ok, "kubectl {}: {out}", args.join(" "));
        Some(out)
    }
}

/// Runs `tests/clients/{script}` with `args` under python3 once the `kubernetes` package
/// imports; `None` (after reporting it) where it does not.
pub async fn python(script: &str, args: &[&str]) -> Option<(bool, String)> {
    python_with("kubernetes", script, args).await
}

/// Runs `tests/clients/{script}` with `args` under python3 once the Python `package` imports
/// (its name on PyPI is the same, `_` for `-`); `None` (after reporting it) where it does not.
pub async fn python_with(package: &'static str, script: &str, args: &[&str]) -> Option<(bool, String)> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients").join(script);
    let mut argv = vec![script.to_string_lossy().into_owned()];
    argv.extend(args.iter().map(|a| a.to_string()));
    python_once(package, argv).await
}

/// Runs `python3 -m {module}` with `args` once the Python `package` imports; `None` (after
/// reporting it) where it does not.
pub async fn python_module(package: &'static str, module: &str, args: &[&str]) -> Option<(bool, String)> {
    let mut argv = vec!["-m".to_owned(), module.to_owned()];
    argv.extend(args.iter().map(|a| a.to_string()));
    python_once(package, argv).await
}

async fn python_once(package: &'static str, argv: Vec<String>) -> Option<(bool, String)> {
    tokio::task::spawn_blocking(move || {
        let mut probe = Command::new("python3");
        probe.args(["-c", &format!("import {package}")]);
        match run(probe, None, "python3") {
            Some((true, _)) => {}
            Some((false, out)) => {
                let pip = package.replace('_', "-");
                missing(&format!("the Python package {package} (pip install {pip}): {}", out.trim()));
                return None;
            }
            None => return None,
        }
        let mut cmd = Command::new("python3");
        cmd.args(&argv);
        run(cmd, None, "python3")
    })
    .await
    .expect("python thread")
}
