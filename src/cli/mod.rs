//! The binary's face: arguments (every flag with a long name and a doc comment), one exit-code
//! enum, the commands, and the client they speak HTTP with. `main` calls `cli::main`. The
//! command line stands above the service: it imports `service` (to run it) and the vocabulary
//! (`model`, `wire`, `query`, `decode`, `source`, `retention`'s plan), never the index, the
//! archive or the HTTP server.

pub mod client;
pub mod commands;
pub mod exit;
pub mod serve;
mod telemetry;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args as ClapArgs, Parser, Subcommand, ValueEnum};

use crate::decode::{Limits, SchemaRegistry};
use crate::selector::Selector;

pub use exit::Exit;
pub use serve::ServeArgs;

#[derive(Debug, Parser)]
#[command(
    name = "execwatch",
    version,
    about = "Lists, discovers and follows pipeline executions recorded as labelled ConfigMaps"
)]
pub struct Args {
    /// Log level or tracing filter directive; `info,execwatch::http=debug` adds a line per
    /// request. Default: `info` for `serve`, `warn` for the other commands (their output is
    /// what they print).
    #[arg(long, env = "EXECWATCH_LOG_LEVEL", global = true)]
    pub log_level: Option<String>,
    /// Log format.
    #[arg(long, env = "EXECWATCH_LOG_FORMAT", value_enum, default_value_t = LogFormat::Plain, global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Plain,
    Json,
}

#[derive(Debug, Subcommand)]
// Parsed once at start: the size of the larger variant costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Watch executions and serve them over HTTP.
    Serve(ServeArgs),
    /// Check ConfigMap manifests offline against the schemas; exits 1 if any is rejected.
    Validate(ValidateArgs),
    /// Retention policies: what one would prune, before anything is deleted.
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// The archive: rebuild what it derives from the stored documents.
    #[command(subcommand)]
    Archive(ArchiveCommand),
    /// Create or update an execution's ConfigMap, checked first as the service checks it.
    Record(RecordCommand),
    /// List executions, pipelines or rejections from the service, or show one execution.
    Get(crate::cli::commands::get::GetArgs),
    /// Wait until an execution reaches a state.
    #[command(after_help = "Exit codes: 0 the condition held; 1 a state that cannot satisfy it; 2 timeout; \
        3 no such execution, or not readable; 4 usage error, or the service unreachable after --retry-for; \
        130 interrupted.")]
    Wait(crate::cli::commands::wait::WaitArgs),
    /// Print a shell's completion script: `source <(execwatch completions bash)`.
    Completions { shell: clap_complete::Shell },
}

#[derive(Debug, ClapArgs)]
pub struct RecordCommand {
    #[command(flatten)]
    pub record: crate::cli::commands::record::RecordArgs,
    #[command(flatten)]
    pub schema: SchemaArgs,
}

#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// What a retention policy would prune now, from a directory of manifests or from the
    /// cluster (the kubeconfig's, or the pod's); deletes nothing.
    Plan(RetentionPlanArgs),
}

#[derive(Debug, Subcommand)]
pub enum ArchiveCommand {
    /// Make every archived run's insights rollup again from its stored document (a service
    /// does this by itself when its rules change; this is for an archive restored from a backup,
    /// or edited by hand). Safe while services write to the archive.
    RebuildInsights {
        /// The archive: sqlite:PATH or postgres://USER@HOST/DATABASE.
        #[arg(long, env = "EXECWATCH_ARCHIVE")]
        archive: crate::service::settings::ArchiveUrl,
    },
}

#[derive(Debug, ClapArgs)]
pub struct RetentionPlanArgs {
    /// The retention policy (YAML).
    #[arg(long, value_name = "FILE")]
    pub retention: PathBuf,
    /// Plan over the manifests in this directory instead of the cluster.
    #[arg(long, value_name = "DIR", conflicts_with = "namespaces")]
    pub from_dir: Option<PathBuf>,
    /// Namespaces to read from the cluster (comma-separated).
    #[arg(long, value_delimiter = ',', required_unless_present = "from_dir")]
    pub namespaces: Vec<String>,
    /// Names listed per rule, oldest first.
    #[arg(long, default_value = "20")]
    pub limit: usize,
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: PlanOutput,
    #[command(flatten)]
    pub schema: SchemaArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PlanOutput {
    Text,
    Json,
}

/// Where schemas are read from by default (relative to the working directory).
pub const DEFAULT_SCHEMAS: &str = "schemas";

/// Options shared by every command that decodes executions.
#[derive(Debug, ClapArgs)]
pub struct SchemaArgs {
    /// Directory of JSON Schemas, one file per kind and version; where the default is absent,
    /// the schemas shipped with this version, built in.
    #[arg(long, env = "EXECWATCH_SCHEMAS", default_value = DEFAULT_SCHEMAS)]
    pub schemas: PathBuf,
    /// Largest execution document accepted, in bytes.
    #[arg(long, env = "EXECWATCH_MAX_DOCUMENT_BYTES", default_value_t = 256 * 1024)]
    pub max_document_bytes: usize,
    /// Deepest nesting accepted in an execution document.
    #[arg(long, env = "EXECWATCH_MAX_DEPTH", default_value_t = 32)]
    pub max_depth: usize,
    /// Label selector that marks a ConfigMap as a pipeline execution.
    #[arg(long, env = "EXECWATCH_LABEL_SELECTOR", default_value = crate::model::DEFAULT_SELECTOR)]
    pub label_selector: Selector,
}

#[derive(Debug, ClapArgs)]
pub struct ValidateArgs {
    /// ConfigMap manifest files (YAML, multi-document) to check.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// `text`, `json`, `junit` (XML for CI test reports) or `github` (annotations at the line
    /// of each offending field).
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: crate::cli::commands::validate::Format,
    #[command(flatten)]
    pub schema: SchemaArgs,
}

impl SchemaArgs {
    /// The bounds every decoded document is held to.
    pub fn limits(&self) -> Limits {
        Limits { max_document_bytes: self.max_document_bytes, max_depth: self.max_depth }
    }
}

/// `execwatch archive rebuild-insights`: says how many runs it made rollups of.
async fn rebuild_insights(archive: &crate::service::settings::ArchiveUrl) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let runs = crate::service::rebuild_insights(archive)
        .await
        .with_context(|| format!("cannot rebuild the insights of {}", archive.redacted()))?;
    println!("insights rebuilt for {runs} runs in {:.1}s", started.elapsed().as_secs_f64());
    Ok(ExitCode::SUCCESS)
}

/// Parses the arguments and runs the command they name.
pub fn main() -> ExitCode {
    // Run as `kubectl-execwatch` (a kubectl plugin), it is `execwatch` all the same.
    let args = match Args::try_parse_from(std::env::args_os()) {
        Ok(args) => args,
        Err(e) => {
            let usage = e.use_stderr();
            let _ = e.print();
            // Not clap's 2: to `wait`, 2 means a timeout.
            return if usage { Exit::Unusable.into() } else { ExitCode::SUCCESS };
        }
    };
    let quiet = if matches!(args.command, Command::Serve(_)) { "info" } else { "warn" };
    if let Err(e) = telemetry::init(args.log_level.as_deref().unwrap_or(quiet), args.log_format) {
        eprintln!("error: {e:#}");
        return Exit::Failed.into();
    }
    let json_logs = args.log_format == LogFormat::Json;
    let result = match args.command {
        Command::Serve(serve) => tokio::runtime::Runtime::new()
            .context("cannot start the runtime")
            .and_then(|rt| rt.block_on(serve::run(serve))),
        Command::Validate(args) => validate(args),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Args::command(), "execwatch", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Archive(ArchiveCommand::RebuildInsights { archive }) => {
            runtime().and_then(|rt| rt.block_on(rebuild_insights(&archive)))
        }
        Command::Retention(RetentionCommand::Plan(args)) => runtime().and_then(|rt| rt.block_on(retention_plan(args))),
        Command::Record(args) => registry(&args.schema).and_then(|registry| {
            let selector = &args.schema.label_selector;
            runtime().map(|rt| rt.block_on(commands::record::run(args.record, &registry, selector)))
        }),
        Command::Get(args) => runtime().map(|rt| rt.block_on(commands::get::run(args))),
        Command::Wait(args) => runtime().map(|rt| rt.block_on(commands::wait::run(args))),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // Once: as a log line where logs are JSON for a collector, else as plain text.
            if json_logs {
                tracing::error!("{e:#}");
            } else {
                eprintln!("error: {e:#}");
            }
            Exit::Failed.into()
        }
    }
}

/// A runtime for a client command: one thread is plenty.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the runtime")
}

/// The schemas of `args`: a directory, or the ones built in.
pub fn registry(args: &SchemaArgs) -> anyhow::Result<Arc<SchemaRegistry>> {
    // `--schemas` left at its default where no `schemas/` is at hand (a writer's CI job): the
    // shipped schemas, built in.
    let registry = if args.schemas == std::path::Path::new(DEFAULT_SCHEMAS) && !args.schemas.exists() {
        tracing::info!("no schemas/ directory here: using the schemas built into the binary");
        SchemaRegistry::shipped(args.limits())?
    } else {
        SchemaRegistry::load(&args.schemas, args.limits())?
    };
    tracing::info!(kinds = ?registry.kinds(), dir = %args.schemas.display(), "schemas loaded");
    Ok(Arc::new(registry))
}

/// `execwatch retention plan`: the plan printed; exit 0 whatever it says.
async fn retention_plan(args: RetentionPlanArgs) -> anyhow::Result<ExitCode> {
    use commands::retention;
    let registry = registry(&args.schema)?;
    let policy = crate::retention::Policy::load(&args.retention)?;
    let selector = &args.schema.label_selector;
    let executions = match &args.from_dir {
        Some(dir) => retention::executions_in_dir(dir, &registry, selector)?,
        None => retention::executions_in_cluster(&args.namespaces, &registry, selector).await?,
    };
    let plan = retention::plan(&policy, &executions, args.limit);
    let mut out = std::io::stdout().lock();
    match args.output {
        PlanOutput::Json => serde_json::to_writer_pretty(&mut out, &plan).map_err(std::io::Error::from)?,
        PlanOutput::Text => retention::write_table(&plan, &mut out)?,
    }
    std::io::Write::flush(&mut out)?;
    Ok(ExitCode::SUCCESS)
}

fn validate(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let registry = registry(&args.schema)?;
    let mut out = std::io::stdout().lock();
    let selector = &args.schema.label_selector;
    let rejected = commands::validate::validate_files(&registry, selector, &args.files, args.output, &mut out)?;
    Ok(if rejected == 0 { Exit::Success } else { Exit::Rejected }.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn args_are_consistent() {
        Args::command().debug_assert();
    }

    use super::serve::{MetricsListen, parse_origin};

    /// A Deployment sets flags as environment variables: every flag of `serve` has one.
    #[test]
    fn every_serve_flag_has_an_environment_variable() {
        let command = Args::command();
        let serve = command.find_subcommand("serve").expect("serve");
        let global = ["help", "log_level", "log_format"];
        let without: Vec<String> = serve
            .get_arguments()
            .filter(|a| !global.contains(&a.get_id().as_str()) && a.get_env().is_none())
            .map(|a| a.get_id().to_string())
            .collect();
        assert!(without.is_empty(), "serve flags without an environment variable: {without:?}");
    }

    #[test]
    fn serve_needs_namespaces_or_a_directory() {
        assert!(Args::try_parse_from(["execwatch", "serve"]).is_err());
        assert!(Args::try_parse_from(["execwatch", "serve", "--from-dir", "x", "--namespaces", "a"]).is_err());
        let args = Args::try_parse_from(["execwatch", "serve", "--namespaces", "a,b"]).unwrap();
        let Command::Serve(serve) = args.command else { panic!("serve expected") };
        assert_eq!(serve.source.namespaces, ["a", "b"]);
        assert_eq!(serve.listen.metrics_listen, MetricsListen(Some("0.0.0.0:9090".parse().unwrap())));
        let args = Args::try_parse_from(["execwatch", "serve", "--from-dir", "x", "--metrics-listen", "none"]).unwrap();
        let Command::Serve(serve) = args.command else { panic!("serve expected") };
        assert_eq!(serve.listen.metrics_listen, MetricsListen(None));
        assert!(Args::try_parse_from(["execwatch", "serve", "--from-dir", "x", "--metrics-listen", "9090"]).is_err());
    }

    #[test]
    fn cors_origins_are_origins_never_a_wildcard() {
        assert!(parse_origin("https://ui.example.com:8443").is_ok());
        for bad in ["*", "https://*.example.com", "ui.example.com", "https://ui.example.com/path", "https://"] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
    }
}
