//! Command-line arguments: every flag has a long name and a doc comment, and `serve`'s each an
//! environment variable too (as a Deployment sets them).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use std::num::NonZeroU32;

use clap::{Args as ClapArgs, Parser, Subcommand, ValueEnum};

use crate::access::{AccessSettings, AuthMode, AuthorizeAs};
use crate::api::{CallerLimits, PageLimits, ServerSettings};
use crate::decode::Limits;
use crate::history::{ArchiveSettings, ArchiveUrl};
use crate::retention::{LeaseSettings, Mode as RetentionMode, Policy, RetentionSettings};
use crate::selector::Selector;
use crate::source::Namespaces;
use crate::source::cluster::WatchSettings;
use crate::source::dir::{DirSource, max_file_bytes};

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
    /// Create or update an execution's ConfigMap, checked first as the service checks it.
    Record(RecordCommand),
    /// List executions, pipelines or rejections from the service, or show one execution.
    Get(crate::commands::get::GetArgs),
    /// Wait until an execution reaches a state.
    #[command(after_help = "Exit codes: 0 the condition held; 1 a state that cannot satisfy it; 2 timeout; \
        3 no such execution, or not readable; 4 usage error, or the service unreachable after --retry-for; \
        130 interrupted.")]
    Wait(crate::commands::wait::WaitArgs),
    /// Print a shell's completion script: `source <(execwatch completions bash)`.
    Completions { shell: clap_complete::Shell },
}

#[derive(Debug, ClapArgs)]
pub struct RecordCommand {
    #[command(flatten)]
    pub record: crate::commands::record::RecordArgs,
    #[command(flatten)]
    pub schema: SchemaArgs,
}

#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// What a retention policy would prune now, from a directory of manifests or from the
    /// cluster (the kubeconfig's, or the pod's); deletes nothing.
    Plan(RetentionPlanArgs),
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
    #[arg(long, env = "EXECWATCH_LABEL_SELECTOR", default_value = "pipelines.gitops.dev/execution=true")]
    pub label_selector: Selector,
}

#[derive(Debug, ClapArgs)]
pub struct ServeArgs {
    /// Address to serve the HTTP API on; `127.0.0.1:0` takes a free port (the log says which).
    #[arg(long, env = "EXECWATCH_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Where `/metrics` (Prometheus) is served: a port of its own. With `--auth kubernetes` a
    /// scraper needs a token allowed `get` on the non-resource URL `/metrics`; with
    /// `--auth tokens=FILE`, a token that reads every namespace. `none` turns it off: use it (or
    /// `127.0.0.1:0`) to run two services side by side, whose fixed ports would collide.
    #[arg(long, env = "EXECWATCH_METRICS_LISTEN", default_value = "0.0.0.0:9090", value_parser = parse_metrics_listen)]
    pub metrics_listen: MetricsListen,
    /// Namespaces to watch (comma-separated); or use --namespace-selector or --from-dir.
    #[arg(
        long,
        env = "EXECWATCH_NAMESPACES",
        value_delimiter = ',',
        required_unless_present_any = ["from_dir", "namespace_selector"],
        conflicts_with_all = ["from_dir", "namespace_selector"]
    )]
    pub namespaces: Vec<String>,
    /// Watch every namespace whose labels match (e.g. `pipelines.gitops.dev/executions=enabled`),
    /// following them as they are labelled, unlabelled, created and deleted. Needs list and
    /// watch on namespaces.
    #[arg(long, env = "EXECWATCH_NAMESPACE_SELECTOR", conflicts_with = "from_dir")]
    pub namespace_selector: Option<Selector>,
    /// Serve ConfigMap manifests from this directory instead of a cluster.
    #[arg(long, env = "EXECWATCH_FROM_DIR")]
    pub from_dir: Option<PathBuf>,
    /// How often the directory is scanned for changes where inotify is unavailable (with
    /// inotify, changes show at once and a full scan runs every minute).
    #[arg(long, env = "EXECWATCH_DIR_POLL_INTERVAL", value_parser = humantime::parse_duration, default_value = "1s")]
    pub dir_poll_interval: Duration,
    /// Server-side timeout of each watch; a silently dead connection is noticed within this plus 5s.
    #[arg(long, env = "EXECWATCH_WATCH_TIMEOUT", value_parser = humantime::parse_duration, default_value = "290s")]
    pub watch_timeout: Duration,
    /// Longest wait between retries of a failing list or watch.
    #[arg(long, env = "EXECWATCH_BACKOFF_MAX", value_parser = humantime::parse_duration, default_value = "30s")]
    pub backoff_max: Duration,
    /// Longest wait for the next page of a list from the API server before starting over.
    #[arg(long, env = "EXECWATCH_LIST_TIMEOUT", value_parser = humantime::parse_duration, default_value = "30s")]
    pub list_timeout: Duration,
    /// A failing source's last good data is marked stale after this long.
    #[arg(long, env = "EXECWATCH_STALENESS", value_parser = humantime::parse_duration, default_value = "60s")]
    pub staleness: Duration,
    /// Default page size of list endpoints.
    #[arg(long, env = "EXECWATCH_DEFAULT_PAGE_SIZE", default_value_t = 50)]
    pub default_page_size: usize,
    /// Largest page size a client may ask for.
    #[arg(long, env = "EXECWATCH_MAX_PAGE_SIZE", default_value_t = 500)]
    pub max_page_size: usize,
    /// A request's headers must arrive within this; a keep-alive connection idle this long is
    /// closed too.
    #[arg(long, env = "EXECWATCH_HEADER_READ_TIMEOUT", value_parser = humantime::parse_duration, default_value = "10s")]
    pub header_read_timeout: Duration,
    /// Most HTTP connections open at once; more wait to be accepted. Default: derived from the
    /// open-files limit, which is raised to its hard limit at start.
    #[arg(long, env = "EXECWATCH_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// On SIGTERM, how long in-flight requests may take before their connections are closed.
    #[arg(long, env = "EXECWATCH_SHUTDOWN_GRACE", value_parser = humantime::parse_duration, default_value = "5s")]
    pub shutdown_grace: Duration,
    /// An origin (`https://ui.example.com`) whose pages may call the API from a browser; repeat
    /// it or separate with commas. None by default; `*` is refused.
    #[arg(long = "cors-origin", env = "EXECWATCH_CORS_ORIGINS", value_delimiter = ',', value_parser = parse_origin)]
    pub cors_origins: Vec<String>,
    /// Serve the dashboard at `/` (`--ui=false` turns it off; the API needs no UI).
    #[arg(long, env = "EXECWATCH_UI", default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub ui: bool,
    /// Who may read what: `none`, `kubernetes` (TokenReview, then SubjectAccessReview per
    /// namespace) or `tokens=FILE`. Default: `kubernetes` with --namespaces, `none` with --from-dir.
    #[arg(long, env = "EXECWATCH_AUTH")]
    pub auth: Option<AuthMode>,
    /// What `kubernetes` auth asks SubjectAccessReview about: `executions` in group
    /// pipelines.gitops.dev, or the `configmaps` that hold them.
    #[arg(long, env = "EXECWATCH_AUTHORIZE_AS", value_enum, default_value_t = AuthorizeAs::Executions)]
    pub authorize_as: AuthorizeAs,
    /// How long an accepted token or an allowed namespace is trusted before it is checked again.
    #[arg(long, env = "EXECWATCH_AUTH_ALLOW_TTL", value_parser = humantime::parse_duration, default_value = "10s")]
    pub auth_allow_ttl: Duration,
    /// How long a rejected token or a denied namespace is remembered.
    #[arg(long, env = "EXECWATCH_AUTH_DENY_TTL", value_parser = humantime::parse_duration, default_value = "10s")]
    pub auth_deny_ttl: Duration,
    /// A review that takes longer denies the request with 503 AuthUnavailable.
    #[arg(long, env = "EXECWATCH_AUTH_TIMEOUT", value_parser = humantime::parse_duration, default_value = "2s")]
    pub auth_timeout: Duration,
    /// Most cached identities and decisions.
    #[arg(long, env = "EXECWATCH_AUTH_CACHE_SIZE", default_value_t = 10_000)]
    pub auth_cache_size: u64,
    /// Most SubjectAccessReviews in flight at once over every caller, and a quarter as many
    /// TokenReviews of tokens not cached; a request that needs one more gets 503 TooManyReviews.
    #[arg(long, env = "EXECWATCH_AUTH_MAX_REVIEWS", default_value_t = 1024)]
    pub auth_max_reviews: usize,
    /// The audience TokenReview checks tokens against (e.g. `execwatch`), so callers send a
    /// bound token made for this service (`kubectl create token SA --audience execwatch`)
    /// instead of their API-server token. Default: the API server's own audience.
    #[arg(long, env = "EXECWATCH_TOKEN_AUDIENCE")]
    pub token_audience: Option<String>,
    /// How often a tokens file is checked for changes.
    #[arg(long, env = "EXECWATCH_TOKENS_RELOAD_INTERVAL", value_parser = humantime::parse_duration, default_value = "2s")]
    pub tokens_reload_interval: Duration,
    /// Most long polls and streams one caller may hold open at once; more get 429.
    #[arg(long, env = "EXECWATCH_MAX_LONG_POLLS_PER_SUBJECT", default_value_t = 32)]
    pub max_long_polls_per_subject: usize,
    /// Most long polls and streams held open at once over every caller; more get 503. Each
    /// holds a connection. Default: seven eighths of --max-connections.
    #[arg(long, env = "EXECWATCH_MAX_HELD_REQUESTS")]
    pub max_held_requests: Option<usize>,
    /// A stream is closed after this long; its client reconnects with `Last-Event-ID` and is
    /// authorised again.
    #[arg(long, env = "EXECWATCH_MAX_STREAM_LIFE", value_parser = humantime::parse_duration, default_value = "1h")]
    pub max_stream_life: Duration,
    /// Requests per second one caller may make (with as large a burst); more get 429. Off by default.
    #[arg(long, env = "EXECWATCH_RATE_LIMIT")]
    pub rate_limit: Option<NonZeroU32>,
    /// Modules to enable (comma-separated) while no BackendModule CRD is installed, and always
    /// with --from-dir.
    #[arg(long, env = "EXECWATCH_MODULES", value_delimiter = ',', default_value = "executions,pipelines,rejections")]
    pub modules: Vec<String>,
    /// Keep every execution served in a database, also after its ConfigMap is deleted:
    /// `sqlite:PATH` (one replica; the file is created) or `postgres://USER@HOST/DB` (replicas
    /// sharing one history). Enables the `history` module. Off by default.
    #[arg(long, env = "EXECWATCH_ARCHIVE", value_name = "URL")]
    pub archive: Option<ArchiveUrl>,
    /// Archived executions deleted from the cluster longer ago than this are pruned.
    #[arg(long, env = "EXECWATCH_ARCHIVE_RETAIN", value_parser = humantime::parse_duration, default_value = "400d")]
    pub archive_retain: Duration,
    /// A file where the notes the archive has not taken by shutdown (its database down) wait
    /// for the next start, which writes them first. Default: beside a SQLite archive's file
    /// (`PATH.spool`); for PostgreSQL, none unless given (a persistent volume).
    #[arg(long, env = "EXECWATCH_ARCHIVE_SPOOL", value_name = "FILE")]
    pub archive_spool: Option<std::path::PathBuf>,
    /// A retention policy (YAML, checked against schemas/retention/retention-v1.json): which
    /// execution ConfigMaps may be deleted once the archive holds them, reloaded when it
    /// changes. Enables the `retention` module. Off by default.
    #[arg(long, env = "EXECWATCH_RETENTION", value_name = "FILE")]
    pub retention: Option<PathBuf>,
    /// `dry-run` only reports what would be pruned (GET /api/v1/retention/plan); `enforce`
    /// deletes it.
    #[arg(long, env = "EXECWATCH_RETENTION_MODE", value_enum, default_value = "dry-run")]
    pub retention_mode: RetentionMode,
    /// Let `enforce` run without --archive: what it deletes is then gone for good.
    #[arg(long)]
    pub retention_without_archive: bool,
    /// ConfigMaps deleted per second at most, across replicas (one prunes at a time).
    #[arg(long, env = "EXECWATCH_PRUNE_RATE", default_value = "5")]
    pub prune_rate: NonZeroU32,
    /// How often the retention plan is made again.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1m")]
    pub retention_interval: Duration,
    /// Namespace of the Lease that lets one replica prune at a time: the service's own.
    #[arg(long, env = "POD_NAMESPACE", default_value = "execwatch")]
    pub lease_namespace: String,
    #[command(flatten)]
    pub schema: SchemaArgs,
}

#[derive(Debug, ClapArgs)]
pub struct ValidateArgs {
    /// ConfigMap manifest files (YAML, multi-document) to check.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// `text`, `json`, `junit` (XML for CI test reports) or `github` (annotations at the line
    /// of each offending field).
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: crate::commands::validate::Format,
    #[command(flatten)]
    pub schema: SchemaArgs,
}

impl SchemaArgs {
    /// The bounds every decoded document is held to.
    pub fn limits(&self) -> Limits {
        Limits { max_document_bytes: self.max_document_bytes, max_depth: self.max_depth }
    }
}

// The settings of each part, built from the flags here so `main` only wires parts together.
impl ServeArgs {
    /// How the cluster source lists and watches.
    pub fn watch_settings(&self) -> WatchSettings {
        WatchSettings {
            label_selector: self.schema.label_selector.to_string(),
            watch_timeout: self.watch_timeout,
            backoff_max: self.backoff_max,
            list_timeout: self.list_timeout,
        }
    }

    /// The namespaces the cluster source watches: a fixed list or those a selector picks.
    pub fn watched_namespaces(&self) -> Namespaces {
        match &self.namespace_selector {
            Some(selector) => Namespaces::Selected(selector.clone()),
            None => Namespaces::Listed(self.namespaces.clone()),
        }
    }

    /// The directory source, when `--from-dir` is given.
    pub fn dir_source(&self) -> Option<DirSource> {
        let path = self.from_dir.clone()?;
        Some(DirSource {
            path,
            selector: self.schema.label_selector.clone(),
            interval: self.dir_poll_interval,
            max_file_bytes: max_file_bytes(self.schema.max_document_bytes),
        })
    }

    /// Page sizes, the default never above the largest.
    pub fn page_limits(&self) -> PageLimits {
        PageLimits { default: self.default_page_size.clamp(1, self.max_page_size), max: self.max_page_size }
    }

    /// The HTTP server, given the connection cap derived at start.
    pub fn server_settings(&self, max_connections: usize) -> ServerSettings {
        ServerSettings {
            header_read_timeout: self.header_read_timeout,
            max_connections,
            shutdown_grace: self.shutdown_grace,
            cors_origins: self.cors_origins.clone(),
            dashboard: self.ui,
        }
    }

    /// What each caller may hold and how fast it may ask, given the held-request cap.
    pub fn caller_limits(&self, held: usize) -> CallerLimits {
        CallerLimits::new(self.max_long_polls_per_subject, held, self.rate_limit)
            .with_max_stream_life(self.max_stream_life)
    }

    /// The archive, when `--archive` is given.
    pub fn archive_settings(&self) -> Option<ArchiveSettings> {
        let url = self.archive.clone()?;
        let settings = ArchiveSettings::new(url, self.archive_retain);
        Some(ArchiveSettings { spool: self.archive_spool.clone().or(settings.spool.clone()), ..settings })
    }

    /// Retention, when `--retention` is given, with its policy checked; `enforce` without an
    /// archive is refused unless `--retention-without-archive` says it is meant.
    pub fn retention_settings(&self) -> Result<Option<(RetentionSettings, Policy)>, String> {
        let Some(file) = self.retention.clone() else { return Ok(None) };
        if self.retention_mode == RetentionMode::Enforce && self.archive.is_none() && !self.retention_without_archive {
            return Err(
                "--retention-mode enforce deletes ConfigMaps, and without --archive their executions would be \
                        gone for good: give --archive URL, or --retention-without-archive if that is meant"
                    .to_owned(),
            );
        }
        let policy = Policy::load(&file).map_err(|e| format!("cannot load --retention: {e}"))?;
        let identity = std::env::var("POD_NAME").unwrap_or_else(|_| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            format!("{}-{}", host.trim(), std::process::id())
        });
        let lease = LeaseSettings {
            namespace: self.lease_namespace.clone(),
            name: "execwatch-retention".to_owned(),
            identity,
            duration: Duration::from_secs(30),
        };
        let settings = RetentionSettings {
            file,
            mode: self.retention_mode,
            rate: self.prune_rate,
            interval: self.retention_interval,
            without_archive: self.retention_without_archive,
            lease,
        };
        Ok(Some((settings, policy)))
    }

    /// How reviews of tokens and namespaces are cached and bounded.
    pub fn access_settings(&self) -> AccessSettings {
        AccessSettings {
            allow_ttl: self.auth_allow_ttl,
            deny_ttl: self.auth_deny_ttl,
            timeout: self.auth_timeout,
            cache_size: self.auth_cache_size,
            authorize_as: self.authorize_as,
            max_reviews_in_flight: self.auth_max_reviews,
            audience: self.token_audience.as_deref().map(Into::into),
        }
    }
}

/// Where metrics are served: an address, or nowhere (`none`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricsListen(pub Option<SocketAddr>);

fn parse_metrics_listen(s: &str) -> Result<MetricsListen, String> {
    if s == "none" {
        return Ok(MetricsListen(None));
    }
    let address = s.parse().map_err(|e| format!("{s:?} is not an address (such as 0.0.0.0:9090) or none: {e}"))?;
    Ok(MetricsListen(Some(address)))
}

/// An origin as browsers send it: `scheme://host[:port]`, nothing after.
fn parse_origin(s: &str) -> Result<String, String> {
    let rest = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(['/', '*', ' ', '?', '#']) => Ok(s.to_owned()),
        _ => {
            Err(format!("{s:?} is not an origin: expected scheme://host[:port] (e.g. https://ui.example.com), never *"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn args_are_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn serve_needs_namespaces_or_a_directory() {
        assert!(Args::try_parse_from(["execwatch", "serve"]).is_err());
        assert!(Args::try_parse_from(["execwatch", "serve", "--from-dir", "x", "--namespaces", "a"]).is_err());
        let args = Args::try_parse_from(["execwatch", "serve", "--namespaces", "a,b"]).unwrap();
        let Command::Serve(serve) = args.command else { panic!("serve expected") };
        assert_eq!(serve.namespaces, ["a", "b"]);
        assert_eq!(serve.metrics_listen, MetricsListen(Some("0.0.0.0:9090".parse().unwrap())));
        let args = Args::try_parse_from(["execwatch", "serve", "--from-dir", "x", "--metrics-listen", "none"]).unwrap();
        let Command::Serve(serve) = args.command else { panic!("serve expected") };
        assert_eq!(serve.metrics_listen, MetricsListen(None));
        assert!(Args::try_parse_from(["execwatch", "serve", "--from-dir", "x", "--metrics-listen", "9090"]).is_err());
    }

    #[test]
    fn cors_origins_are_origins_never_a_wildcard() {
        assert!(super::parse_origin("https://ui.example.com:8443").is_ok());
        for bad in ["*", "https://*.example.com", "ui.example.com", "https://ui.example.com/path", "https://"] {
            assert!(super::parse_origin(bad).is_err(), "{bad}");
        }
    }
}
