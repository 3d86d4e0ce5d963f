//! The execwatch binary: parse arguments, start tracing, run the chosen command.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use execwatch::access::tokens::TokenFile;
use execwatch::access::{Access, AuthMode};
use execwatch::cli::{
    Args, Command, PlanOutput, RetentionCommand, RetentionPlanArgs, SchemaArgs, ServeArgs, ValidateArgs,
};
use execwatch::decode::SchemaRegistry;
use execwatch::{Service, Sources, telemetry};

fn main() -> ExitCode {
    // Run as `kubectl-execwatch` (a kubectl plugin), it is `execwatch` all the same.
    let args = match Args::try_parse_from(std::env::args_os()) {
        Ok(args) => args,
        Err(e) => {
            let usage = e.use_stderr();
            let _ = e.print();
            // Not clap's 2: to `wait`, 2 means a timeout.
            return if usage { ExitCode::from(execwatch::commands::wait::FAILED) } else { ExitCode::SUCCESS };
        }
    };
    let quiet = if matches!(args.command, Command::Serve(_)) { "info" } else { "warn" };
    if let Err(e) = telemetry::init(args.log_level.as_deref().unwrap_or(quiet), args.log_format) {
        eprintln!("error: {e:#}");
        return ExitCode::from(2);
    }
    let json_logs = args.log_format == execwatch::cli::LogFormat::Json;
    let result = match args.command {
        Command::Serve(serve) => {
            tokio::runtime::Runtime::new().context("cannot start the runtime").and_then(|rt| rt.block_on(run(serve)))
        }
        Command::Validate(args) => validate(args),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Args::command(), "execwatch", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Retention(RetentionCommand::Plan(args)) => tokio::runtime::Runtime::new()
            .context("cannot start the runtime")
            .and_then(|rt| rt.block_on(retention_plan(args))),
        Command::Record(args) => registry(&args.schema).and_then(|registry| {
            let selector = &args.schema.label_selector;
            runtime().map(|rt| rt.block_on(execwatch::commands::record::run(args.record, &registry, selector)))
        }),
        Command::Get(args) => runtime().map(|rt| rt.block_on(execwatch::commands::get::run(args))),
        Command::Wait(args) => runtime().map(|rt| rt.block_on(execwatch::commands::wait::run(args))),
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
            ExitCode::from(2)
        }
    }
}

/// A runtime for a client command: one thread is plenty.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the runtime")
}

fn registry(args: &SchemaArgs) -> anyhow::Result<Arc<SchemaRegistry>> {
    // `--schemas` left at its default where no `schemas/` is at hand (a writer's CI job): the
    // shipped schemas, built in.
    let registry = if args.schemas == std::path::Path::new(execwatch::cli::DEFAULT_SCHEMAS) && !args.schemas.exists() {
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
    use execwatch::commands::retention;
    let registry = registry(&args.schema)?;
    let policy = execwatch::retention::Policy::load(&args.retention).map_err(anyhow::Error::msg)?;
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

async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let registry = registry(&args.schema)?;
    let mut modules =
        execwatch::modules::parse_names(&args.modules).map_err(|e| anyhow::anyhow!("invalid --modules: {e}"))?;
    let archive = args.archive_settings();
    if let Some(archive) = &archive {
        // Configured, so on: `--modules` (or a BackendModule) may still turn it off.
        modules.insert(execwatch::modules::ModuleName::History);
        tracing::info!(archive = %archive.url.redacted(), "archiving executions");
    }
    let retention = args.retention_settings().map_err(anyhow::Error::msg)?;
    if let Some((settings, policy)) = &retention {
        modules.insert(execwatch::modules::ModuleName::Retention);
        tracing::info!(file = %settings.file.display(), mode = settings.mode.as_str(), rules = policy.rules.len(), "retention policy loaded");
    }
    let sources = match args.dir_source() {
        Some(dir) => Sources::Dir(dir),
        None => {
            // Inference reads kubeconfig or the in-cluster environment; it never calls the API
            // server, so an unreachable server does not stop start-up.
            let client = kube::Client::try_default().await.context("cannot configure a Kubernetes client")?;
            Sources::Kube { client, namespaces: args.watched_namespaces(), watch: args.watch_settings() }
        }
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    // The bound address, so `--listen 127.0.0.1:0` says which port it got.
    let bound = listener.local_addr().unwrap_or(args.listen);
    tracing::info!(listen = %bound, "serving");
    let (connections, held) = capacity(&args);
    let server = args.server_settings(connections);
    let access = access(&args, &sources).await?;
    let limits = args.caller_limits(held);
    let metrics = match args.metrics_listen.0 {
        Some(address) => {
            let listener = tokio::net::TcpListener::bind(address).await.with_context(|| {
                format!("cannot listen on {address} for metrics (--metrics-listen none turns them off)")
            })?;
            tracing::info!(listen = %listener.local_addr().unwrap_or(address), "serving metrics");
            Some(listener)
        }
        None => None,
    };
    let page = args.page_limits();
    let service = Service {
        sources,
        registry,
        staleness: args.staleness,
        page,
        server,
        access,
        limits,
        modules,
        metrics,
        archive,
        retention,
    };
    service.run(listener, shutdown_signal()).await;
    Ok(ExitCode::SUCCESS)
}

/// Connections and held requests: as configured, or derived from the open-files limit, raised
/// to its hard limit first (as Go programs do), so a thousand followers are not refused at 768.
fn capacity(args: &ServeArgs) -> (usize, usize) {
    let open_files = rlimit::increase_nofile_limit(u64::MAX).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot read or raise the open-files limit; assuming 1024");
        1024
    });
    let (connections, held) = execwatch::api::capacity(open_files, args.max_connections);
    let held = args.max_held_requests.unwrap_or(held);
    tracing::info!(open_files, connections, held, "connection limits");
    (connections, held)
}

/// The authority on callers: `--auth`, or its default for the source.
async fn access(args: &ServeArgs, sources: &Sources) -> anyhow::Result<Access> {
    let default = match sources {
        Sources::Kube { .. } => AuthMode::Kubernetes,
        Sources::Dir(_) => AuthMode::None,
    };
    let settings = args.access_settings();
    Ok(match args.auth.clone().unwrap_or(default) {
        AuthMode::None => {
            if let Sources::Kube { .. } = sources {
                tracing::warn!("--auth none: anyone who reaches the port reads every watched namespace");
            }
            Access::open()
        }
        AuthMode::Kubernetes => {
            let client = match sources {
                Sources::Kube { client, .. } => client.clone(),
                Sources::Dir(_) => {
                    kube::Client::try_default().await.context("--auth kubernetes needs a Kubernetes client")?
                }
            };
            Access::kubernetes(client, settings)
        }
        AuthMode::Tokens(path) => {
            let file = TokenFile::load(&path, args.tokens_reload_interval)
                .map_err(|e| anyhow::anyhow!("invalid --auth tokens file: {e}"))?;
            tracing::info!(path = %path.display(), tokens = file.status().tokens, "bearer tokens loaded");
            Access::tokens(file)
        }
    })
}

/// Completes on the first SIGINT or SIGTERM; a second one aborts at once.
async fn shutdown_signal() {
    wait_for_signal().await;
    tokio::spawn(async {
        wait_for_signal().await;
        eprintln!("second signal: aborting");
        std::process::exit(130);
    });
}

async fn wait_for_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the service");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn validate(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let registry = registry(&args.schema)?;
    let mut out = std::io::stdout().lock();
    let selector = &args.schema.label_selector;
    let rejected =
        execwatch::commands::validate::validate_files(&registry, selector, &args.files, args.output, &mut out)?;
    Ok(if rejected == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
