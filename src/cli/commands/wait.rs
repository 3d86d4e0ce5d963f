//! `execwatch wait NS/NAME --for=...`: blocks until an execution reaches a state, printing each
//! change as it comes, for CI steps gated on a deployment. Built on the execution's event
//! stream, resumed with `Last-Event-ID` across dropped connections and replicas, and on long
//! polls where a proxy strips streams. Exit codes (docs/cli.md) tell the outcomes apart.

use std::io::Write;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cli::Exit;
use crate::cli::client::events::Follow;
use crate::cli::client::{ApiClient, ClientArgs, ClientError};
use crate::model::names::split_name;
use crate::model::{EnvironmentStatus, ExecutionView, Phase};
use crate::wire::Detail;

/// How long a long poll waits on the service before asking again.
const POLL_SECONDS: u64 = 30;

#[derive(Debug, clap::Args)]
pub struct WaitArgs {
    /// The execution: NAMESPACE/NAME (or NAME with --namespace).
    pub execution: String,
    /// The execution's namespace, when EXECUTION is a NAME alone.
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// `terminal` (Succeeded, Failed, Cancelled or Skipped), `phase=PHASE`, or
    /// `environment=ENV:PHASE`.
    #[arg(long = "for", default_value = "terminal", value_name = "CONDITION")]
    pub condition: Condition,
    /// Give up after this long (exit 2), e.g. `90s`, `15m`.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10m")]
    pub timeout: Duration,
    /// `text`: a timestamped line per change; `json`: one JSON object per line.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: LineFormat,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LineFormat {
    Text,
    Json,
}

/// What `wait` waits for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    Terminal,
    Phase(Phase),
    Environment(String, Phase),
}

impl FromStr for Condition {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let phase = |p: &str| {
            Phase::parse(p).ok_or_else(|| {
                let all: Vec<&str> = Phase::ALL.iter().map(|p| p.as_str()).collect();
                format!("{p:?} is not a phase: one of {}", all.join(", "))
            })
        };
        match s.split_once('=') {
            None if s == "terminal" => Ok(Condition::Terminal),
            Some(("phase", p)) => Ok(Condition::Phase(phase(p)?)),
            Some(("environment", rest)) => match rest.split_once(':') {
                Some((env, p)) if !env.is_empty() => Ok(Condition::Environment(env.to_owned(), phase(p)?)),
                _ => Err(format!("{rest:?}: expected environment=ENV:PHASE, e.g. environment=staging:Succeeded")),
            },
            _ => Err(format!("{s:?}: expected terminal, phase=PHASE or environment=ENV:PHASE")),
        }
    }
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Condition::Terminal => write!(f, "a terminal phase"),
            Condition::Phase(p) => write!(f, "phase {}", p.as_str()),
            Condition::Environment(env, p) => write!(f, "environment {env} {}", p.as_str()),
        }
    }
}

/// What a state says about the condition: held, never will be (why), or not yet.
#[derive(Debug, PartialEq, Eq)]
pub enum Judgement {
    Held,
    Never(String),
    NotYet,
}

impl Condition {
    pub fn judge(&self, run: &ExecutionView, archived: bool) -> Judgement {
        let (held, never) = match self {
            Condition::Terminal => (run.phase.is_terminal(), None),
            Condition::Phase(want) => {
                let never = run.phase.is_terminal().then(|| format!("the execution ended {}", run.phase.as_str()));
                (run.phase == *want, never)
            }
            Condition::Environment(name, want) => match run.environments.iter().find(|e| e.name == *name) {
                Some(env) if env.phase == *want => (true, None),
                Some(env) if env.phase.is_terminal() => {
                    (false, Some(format!("environment {name} ended {}", env.phase.as_str())))
                }
                Some(_) => {
                    (false, run.phase.is_terminal().then(|| format!("the execution ended {}", run.phase.as_str())))
                }
                None => {
                    let names: Vec<&str> = run.environments.iter().map(|e| e.name.as_str()).collect();
                    let never = format!("the execution has no environment {name} (it has {})", names.join(", "));
                    (false, run.phase.is_terminal().then_some(never))
                }
            },
        };
        match (held, never) {
            (true, _) => Judgement::Held,
            (false, Some(why)) => Judgement::Never(why),
            (false, None) if archived => Judgement::Never("its ConfigMap is gone and it no longer changes".to_owned()),
            (false, None) => Judgement::NotYet,
        }
    }
}

/// How a wait ended.
enum Outcome {
    Held,
    Never(String),
    Absent(String),
    Failed(ClientError),
}

/// One printed change.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Line<'a> {
    time: String,
    namespace: &'a str,
    name: &'a str,
    phase: Phase,
    environments: &'a [EnvironmentStatus],
    resource_version: &'a str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    archived: bool,
}

struct Waiter {
    /// The service, named in errors.
    server: String,
    condition: Condition,
    output: LineFormat,
    /// The last version printed, so a resync of the same state is not printed twice.
    printed: Option<(String, bool)>,
    last_phase: Option<Phase>,
}

pub async fn run(args: WaitArgs) -> ExitCode {
    let Some((namespace, name)) = split_name(&args.execution, args.namespace.as_deref()) else {
        eprintln!("error: {:?} is not NAMESPACE/NAME (or NAME with --namespace)", args.execution);
        return Exit::Unusable.into();
    };
    let client = match ApiClient::connect(&args.client).await {
        Ok(client) => client,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Unusable.into();
        }
    };
    let path = format!("/api/v1/namespaces/{namespace}/executions/{name}");
    let mut waiter = Waiter {
        server: client.server().to_owned(),
        condition: args.condition.clone(),
        output: args.output,
        printed: None,
        last_phase: None,
    };
    let outcome = tokio::select! {
        outcome = tokio::time::timeout(args.timeout, waiter.follow(&client, &path)) => outcome,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted");
            return Exit::Interrupted.into();
        }
    };
    let id = format!("{namespace}/{name}");
    let (code, message) = match outcome {
        Ok(Outcome::Held) => (Exit::Success, format!("{id}: {} reached", args.condition)),
        Ok(Outcome::Never(why)) => (Exit::Rejected, format!("{id}: {why}, so {} will not be reached", args.condition)),
        Ok(Outcome::Absent(why)) => (Exit::Absent, format!("{id}: {why}")),
        Ok(Outcome::Failed(e)) => (Exit::Unusable, format!("{id}: {e}")),
        Err(_) => {
            let last = waiter.last_phase.map_or("nothing seen yet".to_owned(), |p| format!("last seen {}", p.as_str()));
            let timeout = humantime::format_duration(args.timeout);
            (
                Exit::TIMED_OUT,
                format!("{id}: {} not reached within {timeout} ({last}); --timeout gives it longer", args.condition),
            )
        }
    };
    eprintln!("{}{message}", if code == Exit::Success { "" } else { "error: " });
    ExitCode::from(code)
}

impl Waiter {
    /// Follows the execution's stream; long polls where streams do not come through.
    async fn follow(&mut self, client: &ApiClient, path: &str) -> Outcome {
        let mut stream = Follow::new(client.clone(), path.to_owned());
        loop {
            let event = match stream.next().await {
                Ok(Some(event)) => event,
                Ok(None) => return self.poll(client, path).await,
                Err(e) if e.is_absent() => return Outcome::Absent(e.to_string()),
                Err(e) => return Outcome::Failed(e),
            };
            let verdict = match event.event.as_str() {
                "snapshot" | "resync" | "added" | "modified" => serde_json::from_str(&event.data)
                    .map_err(|e| ClientError::Unreadable {
                        server: client.server().to_owned(),
                        detail: format!("an event that is not an execution: {e}"),
                    })
                    .and_then(|detail| self.seen(detail)),
                "deleted" => return Outcome::Absent("the execution was deleted".to_owned()),
                // Ended by the service (shutdown, the stream's life over): `next` resumes it.
                _ => continue,
            };
            match verdict {
                Ok(Some(outcome)) => return outcome,
                Ok(None) => {}
                Err(e) => return Outcome::Failed(e),
            }
        }
    }

    /// Long polls: each GET is held by the service until the execution changes (or 30 s pass).
    async fn poll(&mut self, client: &ApiClient, path: &str) -> Outcome {
        let mut etag: Option<String> = None;
        let mut retry = client.retry();
        loop {
            let (url, headers) = match &etag {
                Some(tag) => (format!("{path}?timeoutSeconds={POLL_SECONDS}"), vec![("if-none-match", tag.as_str())]),
                None => (path.to_owned(), vec![]),
            };
            let answer = match client.send(&url, &headers).await {
                Ok(answer) => answer,
                Err(e) if e.is_absent() => return Outcome::Absent(e.to_string()),
                Err(e) if e.is_transient() => match retry.pause(e).await {
                    Ok(()) => continue,
                    Err(e) => return Outcome::Failed(e),
                },
                Err(e) => return Outcome::Failed(e),
            };
            retry.reset();
            if answer.status == warp::http::StatusCode::NOT_MODIFIED {
                continue;
            }
            etag = answer.etag.clone();
            match client.decode(answer.body).await.and_then(|detail| self.seen(detail)) {
                Ok(Some(outcome)) => return outcome,
                Ok(None) => {}
                Err(e) => return Outcome::Failed(e),
            }
        }
    }

    /// Prints a state if it is new, and judges it.
    fn seen(&mut self, detail: Detail<'static>) -> Result<Option<Outcome>, ClientError> {
        // The typed view the service itself indexes by.
        let run = ExecutionView::deserialize(&*detail.execution).map_err(|e| ClientError::Unreadable {
            server: self.server.clone(),
            detail: format!("an execution without the fields every schema keeps: {e}"),
        })?;
        let archived = detail.archived.unwrap_or(false);
        let version = (detail.resource_version.to_string(), archived);
        if self.printed.as_ref() != Some(&version) {
            self.print(&detail, &run, archived);
            self.printed = Some(version);
        }
        self.last_phase = Some(run.phase);
        Ok(match self.condition.judge(&run, archived) {
            Judgement::Held => Some(Outcome::Held),
            Judgement::Never(why) => Some(Outcome::Never(why)),
            Judgement::NotYet => None,
        })
    }

    fn print(&self, detail: &Detail<'_>, run: &ExecutionView, archived: bool) {
        let time = jiff::Timestamp::now().round(jiff::Unit::Millisecond).unwrap_or_else(|_| jiff::Timestamp::now());
        let line = Line {
            time: time.to_string(),
            namespace: &detail.namespace,
            name: &detail.name,
            phase: run.phase,
            environments: &run.environments,
            resource_version: &detail.resource_version,
            archived,
        };
        let text = match self.output {
            LineFormat::Json => serde_json::to_string(&line).unwrap_or_default(),
            LineFormat::Text => {
                let envs: Vec<String> =
                    run.environments.iter().map(|e| format!("{}={}", e.name, e.phase.as_str())).collect();
                let archived = if archived { " (archived)" } else { "" };
                format!(
                    "{} {}/{} {} {}{archived}",
                    line.time,
                    line.namespace,
                    line.name,
                    run.phase.as_str(),
                    envs.join(" ")
                )
            }
        };
        // The lines are a courtesy: a reader that went away does not change the outcome.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}").and_then(|()| out.flush());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Application;

    fn run(phase: Phase, envs: &[(&str, Phase)]) -> ExecutionView {
        ExecutionView {
            pipeline: "web".into(),
            application: Application { name: "web".into(), version: "1".into(), revision: None, revision_time: None },
            trigger: None,
            phase,
            started_at: None,
            finished_at: None,
            environments: envs
                .iter()
                .map(|(n, p)| EnvironmentStatus { name: (*n).into(), phase: *p, started_at: None, finished_at: None })
                .collect(),
        }
    }

    #[test]
    fn conditions_parse_or_say_what_is_expected() {
        assert_eq!("terminal".parse(), Ok(Condition::Terminal));
        assert_eq!("phase=Succeeded".parse(), Ok(Condition::Phase(Phase::Succeeded)));
        assert_eq!("environment=staging:Failed".parse(), Ok(Condition::Environment("staging".into(), Phase::Failed)));
        for bad in ["phase=Done", "environment=staging", "environment=:Failed", "Succeeded", ""] {
            assert!(bad.parse::<Condition>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_state_holds_the_condition_never_will_or_may_yet() {
        use Phase::*;
        let succeeded = Condition::Phase(Succeeded);
        assert_eq!(succeeded.judge(&run(Running, &[]), false), Judgement::NotYet);
        assert_eq!(succeeded.judge(&run(Succeeded, &[]), false), Judgement::Held);
        assert!(matches!(succeeded.judge(&run(Failed, &[]), false), Judgement::Never(_)));
        assert!(matches!(succeeded.judge(&run(Running, &[]), true), Judgement::Never(_)), "archived: frozen");
        assert_eq!(Condition::Terminal.judge(&run(Cancelled, &[]), false), Judgement::Held);
        let staging = Condition::Environment("staging".into(), Succeeded);
        assert_eq!(staging.judge(&run(Running, &[("dev", Succeeded), ("staging", Running)]), false), Judgement::NotYet);
        assert_eq!(staging.judge(&run(Running, &[("staging", Succeeded), ("prod", Running)]), false), Judgement::Held);
        assert!(matches!(staging.judge(&run(Running, &[("staging", Failed)]), false), Judgement::Never(_)));
        assert!(matches!(staging.judge(&run(Failed, &[("staging", Pending)]), false), Judgement::Never(_)));
        assert_eq!(staging.judge(&run(Running, &[("dev", Running)]), false), Judgement::NotYet, "may be added");
        assert!(matches!(staging.judge(&run(Succeeded, &[("dev", Succeeded)]), false), Judgement::Never(_)));
    }
}
