//! `execwatch serve`: its flags, grouped as the parts they configure, each with an environment
//! variable too (as a Deployment sets them); the settings of each part built from them; and the
//! assembly of one running service.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args as ClapArgs;

use super::SchemaArgs;
use crate::model::ModuleName;
use crate::selector::Selector;
use crate::service::settings::{
    Access, AccessSettings, Allowed, ArchiveSettings, ArchiveUrl, AuthMode, AuthorizeAs, CallerLimits, LeaseSettings,
    NotifySettings, PageLimits, Policy, RetentionMode, RetentionSettings, ServerSettings, TokenFile, capacity,
};
use crate::source::Namespaces;
use crate::source::cluster::WatchSettings;
use crate::source::dir::{DirSource, max_file_bytes};
use crate::{Service, Sources};

#[derive(Debug, ClapArgs)]
pub struct ServeArgs {
    #[command(flatten)]
    pub listen: ListenArgs,
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub archive: ArchiveArgs,
    #[command(flatten)]
    pub retention: RetentionArgs,
    #[command(flatten)]
    pub notify: NotifyArgs,
    /// Modules to enable (comma-separated) while no BackendModule CRD is installed, and always
    /// with --from-dir.
    #[arg(
        long,
        env = "EXECWATCH_MODULES",
        value_delimiter = ',',
        default_value = "executions,pipelines,rejections,insights"
    )]
    pub modules: Vec<ModuleName>,
    #[command(flatten)]
    pub schema: SchemaArgs,
}

/// Where and how the HTTP API and the metrics are served.
#[derive(Debug, ClapArgs)]
pub struct ListenArgs {
    /// Address to serve the HTTP API on; `127.0.0.1:0` takes a free port (the log says which).
    #[arg(long, env = "EXECWATCH_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Where `/metrics` (Prometheus) is served: a port of its own. With `--auth kubernetes` a
    /// scraper needs a token allowed `get` on the non-resource URL `/metrics`; with
    /// `--auth tokens=FILE`, a token that reads every namespace. `none` turns it off: use it (or
    /// `127.0.0.1:0`) to run two services side by side, whose fixed ports would collide.
    #[arg(long, env = "EXECWATCH_METRICS_LISTEN", default_value = "0.0.0.0:9090", value_parser = parse_metrics_listen)]
    pub metrics_listen: MetricsListen,
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
}

/// Where executions come from: namespaces of a cluster, or a directory.
#[derive(Debug, ClapArgs)]
pub struct SourceArgs {
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
}

/// Who may read what.
#[derive(Debug, ClapArgs)]
pub struct AuthArgs {
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
    /// Most SubjectAccessReviews in flight at once over every caller, and a sixteenth as many
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
}

/// What one caller may ask for, and how much the service holds for all.
#[derive(Debug, ClapArgs)]
pub struct LimitArgs {
    /// Default page size of list endpoints.
    #[arg(long, env = "EXECWATCH_DEFAULT_PAGE_SIZE", default_value_t = 50)]
    pub default_page_size: usize,
    /// Largest page size a client may ask for.
    #[arg(long, env = "EXECWATCH_MAX_PAGE_SIZE", default_value_t = 500)]
    pub max_page_size: usize,
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
}

/// The archive: history beyond the ConfigMaps.
#[derive(Debug, ClapArgs)]
pub struct ArchiveArgs {
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
}

/// Retention: which ConfigMaps may be deleted once archived.
#[derive(Debug, ClapArgs)]
pub struct RetentionArgs {
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
    #[arg(long, env = "EXECWATCH_RETENTION_WITHOUT_ARCHIVE")]
    pub retention_without_archive: bool,
    /// ConfigMaps deleted per second at most, across replicas (one prunes at a time).
    #[arg(long, env = "EXECWATCH_PRUNE_RATE", default_value = "5")]
    pub prune_rate: NonZeroU32,
    /// How often the retention plan is made again.
    #[arg(long, env = "EXECWATCH_RETENTION_INTERVAL", value_parser = humantime::parse_duration, default_value = "1m")]
    pub retention_interval: Duration,
    /// Namespace of the Lease that lets one replica prune at a time: the service's own.
    #[arg(long, env = "POD_NAMESPACE", default_value = "execwatch")]
    pub lease_namespace: String,
}

/// Notifications: signed CloudEvents to teams' NotificationSubscriptions (docs/notifications.md).
#[derive(Debug, ClapArgs)]
pub struct NotifyArgs {
    /// Destinations subscriptions may send to (comma-separated): host names, `*.example.com`
    /// patterns, CIDRs. Enables the `notifications` module (with --archive, in a cluster).
    /// Loopback, link-local, the API server's and the pod's own addresses are refused unless
    /// their host is named here exactly.
    #[arg(long, env = "EXECWATCH_NOTIFY_ALLOW", value_delimiter = ',', value_name = "HOSTS")]
    pub notify_allow: Vec<Allowed>,
    /// How long a message is retried before it is dead-lettered.
    #[arg(long, env = "EXECWATCH_NOTIFY_MAX_AGE", value_parser = humantime::parse_duration, default_value = "24h")]
    pub notify_max_age: Duration,
    /// How long sent and dead-lettered messages are kept (and shown); transitions older than
    /// this are never sent. Longer than --notify-max-age.
    #[arg(long, env = "EXECWATCH_NOTIFY_KEEP", value_parser = humantime::parse_duration, default_value = "7d")]
    pub notify_keep: Duration,
    /// Attempts in flight per subscription.
    #[arg(long, env = "EXECWATCH_NOTIFY_CONCURRENCY", default_value = "8")]
    pub notify_concurrency: usize,
    /// Attempts per second per subscription.
    #[arg(long, env = "EXECWATCH_NOTIFY_RATE", default_value = "100")]
    pub notify_rate: u32,
}

// The settings of each part, built from the flags here, so `run` only wires parts together.
impl ServeArgs {
    /// How the cluster source lists and watches.
    pub fn watch_settings(&self) -> WatchSettings {
        WatchSettings {
            label_selector: self.schema.label_selector.to_string(),
            watch_timeout: self.source.watch_timeout,
            backoff_max: self.source.backoff_max,
            list_timeout: self.source.list_timeout,
        }
    }

    /// The namespaces the cluster source watches: a fixed list or those a selector picks.
    pub fn watched_namespaces(&self) -> Namespaces {
        match &self.source.namespace_selector {
            Some(selector) => Namespaces::Selected(selector.clone()),
            None => Namespaces::Listed(self.source.namespaces.clone()),
        }
    }

    /// The directory source, when `--from-dir` is given.
    pub fn dir_source(&self) -> Option<DirSource> {
        let path = self.source.from_dir.clone()?;
        Some(DirSource {
            path,
            selector: self.schema.label_selector.clone(),
            interval: self.source.dir_poll_interval,
            max_file_bytes: max_file_bytes(self.schema.max_document_bytes),
        })
    }

    /// Page sizes, the default never above the largest.
    pub fn page_limits(&self) -> PageLimits {
        PageLimits {
            default: self.limits.default_page_size.clamp(1, self.limits.max_page_size),
            max: self.limits.max_page_size,
        }
    }

    /// The HTTP server, given the connection cap derived at start.
    pub fn server_settings(&self, max_connections: usize) -> ServerSettings {
        ServerSettings {
            header_read_timeout: self.listen.header_read_timeout,
            max_connections,
            shutdown_grace: self.listen.shutdown_grace,
            cors_origins: self.listen.cors_origins.clone(),
            dashboard: self.listen.ui,
        }
    }

    /// What each caller may hold and how fast it may ask, given the held-request cap.
    pub fn caller_limits(&self, held: usize) -> CallerLimits {
        CallerLimits::new(self.limits.max_long_polls_per_subject, held, self.limits.rate_limit)
            .with_max_stream_life(self.limits.max_stream_life)
    }

    /// The archive, when `--archive` is given.
    pub fn archive_settings(&self) -> Option<ArchiveSettings> {
        let url = self.archive.archive.clone()?;
        let settings = ArchiveSettings::new(url, self.archive.archive_retain);
        Some(ArchiveSettings { spool: self.archive.archive_spool.clone().or(settings.spool.clone()), ..settings })
    }

    /// Notifications, when `--notify-allow` is given: they need an archive (the outbox lives
    /// there) and a cluster (subscriptions are objects in it).
    pub fn notify_settings(&self) -> anyhow::Result<Option<NotifySettings>> {
        let n = &self.notify;
        if n.notify_allow.is_empty() {
            return Ok(None);
        }
        if self.archive.archive.is_none() {
            anyhow::bail!("--notify-allow needs --archive: notifications wait in an outbox there, so none is lost");
        }
        if self.dir_source().is_some() {
            anyhow::bail!("--notify-allow needs a cluster: subscriptions are NotificationSubscription objects");
        }
        let settings = NotifySettings {
            allowed: n.notify_allow.clone(),
            max_age: n.notify_max_age,
            keep: n.notify_keep,
            concurrency: n.notify_concurrency,
            rate: n.notify_rate,
        };
        settings.check().map_err(anyhow::Error::msg)?;
        Ok(Some(settings))
    }

    /// Retention, when `--retention` is given, with its policy checked; `enforce` without an
    /// archive is refused unless `--retention-without-archive` says it is meant.
    pub fn retention_settings(&self) -> anyhow::Result<Option<(RetentionSettings, Policy)>> {
        let Some(file) = self.retention.retention.clone() else { return Ok(None) };
        if self.retention.retention_mode == RetentionMode::Enforce
            && self.archive.archive.is_none()
            && !self.retention.retention_without_archive
        {
            anyhow::bail!(
                "--retention-mode enforce deletes ConfigMaps, and without --archive their executions would be \
                 gone for good: give --archive URL, or --retention-without-archive if that is meant"
            );
        }
        let policy = Policy::load(&file).context("cannot load --retention")?;
        let identity = std::env::var("POD_NAME")
            .unwrap_or_else(|_| format!("{}-{}", crate::files::hostname(), std::process::id()));
        let lease = LeaseSettings {
            namespace: self.retention.lease_namespace.clone(),
            name: "execwatch-retention".to_owned(),
            identity,
            duration: Duration::from_secs(30),
        };
        let settings = RetentionSettings {
            file,
            mode: self.retention.retention_mode,
            rate: self.retention.prune_rate,
            interval: self.retention.retention_interval,
            without_archive: self.retention.retention_without_archive,
            lease,
        };
        Ok(Some((settings, policy)))
    }

    /// How reviews of tokens and namespaces are cached and bounded.
    pub fn access_settings(&self) -> AccessSettings {
        AccessSettings {
            allow_ttl: self.auth.auth_allow_ttl,
            deny_ttl: self.auth.auth_deny_ttl,
            timeout: self.auth.auth_timeout,
            cache_size: self.auth.auth_cache_size,
            authorize_as: self.auth.authorize_as,
            max_reviews_in_flight: self.auth.auth_max_reviews,
            audience: self.auth.token_audience.as_deref().map(Into::into),
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
pub(super) fn parse_origin(s: &str) -> Result<String, String> {
    let rest = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(['/', '*', ' ', '?', '#']) => Ok(s.to_owned()),
        _ => {
            Err(format!("{s:?} is not an origin: expected scheme://host[:port] (e.g. https://ui.example.com), never *"))
        }
    }
}

/// The parts the flags configure or leave out, checked, and the modules to enable: `--modules`
/// and each configured part (`--modules` or a BackendModule may still turn it off).
struct Optional {
    modules: BTreeSet<ModuleName>,
    archive: Option<ArchiveSettings>,
    retention: Option<(RetentionSettings, Policy)>,
    notify: Option<NotifySettings>,
}

impl Optional {
    fn of(args: &ServeArgs) -> anyhow::Result<Optional> {
        let mut modules: BTreeSet<ModuleName> = args.modules.iter().copied().collect();
        let archive = args.archive_settings();
        if let Some(archive) = &archive {
            modules.insert(ModuleName::History);
            tracing::info!(archive = %archive.url.redacted(), "archiving executions");
        }
        let retention = args.retention_settings()?;
        if let Some((settings, policy)) = &retention {
            modules.insert(ModuleName::Retention);
            tracing::info!(file = %settings.file.display(), mode = settings.mode.as_str(), rules = policy.rules.len(), "retention policy loaded");
        }
        let notify = args.notify_settings()?;
        if notify.is_some() {
            modules.insert(ModuleName::Notifications);
        }
        Ok(Optional { modules, archive, retention, notify })
    }
}

/// `execwatch serve`: the service, from its flags, until SIGTERM or Ctrl-C.
pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let registry = super::registry(&args.schema)?;
    let Optional { modules, archive, retention, notify } = Optional::of(&args)?;
    let sources = match args.dir_source() {
        Some(dir) => Sources::Dir(dir),
        None => {
            // Inference reads kubeconfig or the in-cluster environment; it never calls the API
            // server, so an unreachable server does not stop start-up.
            let client = kube::Client::try_default().await.context("cannot configure a Kubernetes client")?;
            Sources::Kube { client, namespaces: args.watched_namespaces(), watch: args.watch_settings() }
        }
    };
    let listener = tokio::net::TcpListener::bind(args.listen.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen.listen))?;
    // The bound address, so `--listen 127.0.0.1:0` says which port it got.
    let bound = listener.local_addr().unwrap_or(args.listen.listen);
    tracing::info!(listen = %bound, "serving");
    let (connections, held) = connection_capacity(&args);
    let server = args.server_settings(connections);
    let access = access(&args, &sources).await?;
    let limits = args.caller_limits(held);
    let metrics = match args.listen.metrics_listen.0 {
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
        staleness: args.source.staleness,
        page,
        server,
        access,
        limits,
        modules,
        metrics,
        archive,
        retention,
        notify,
    };
    service.run(listener, shutdown_signal()).await;
    Ok(ExitCode::SUCCESS)
}

/// Connections and held requests: as configured, or derived from the open-files limit, raised
/// to its hard limit first (as Go programs do), so a thousand followers are not refused at 768.
fn connection_capacity(args: &ServeArgs) -> (usize, usize) {
    let open_files = rlimit::increase_nofile_limit(u64::MAX).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot read or raise the open-files limit; assuming 1024");
        1024
    });
    let (connections, held) = capacity(open_files, args.listen.max_connections);
    let held = args.limits.max_held_requests.unwrap_or(held);
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
    Ok(match args.auth.auth.clone().unwrap_or(default) {
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
            let file = TokenFile::load(&path, args.auth.tokens_reload_interval)
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
