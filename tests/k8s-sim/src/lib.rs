//! A Kubernetes API simulator for execwatch's tests: real HTTP and the real wire protocol of the
//! core v1 API for ConfigMaps and Namespaces (discovery, get/list/create/update/patch/delete,
//! label and field selectors, `limit`/`continue`, resourceVersion semantics, watches with
//! timeouts and bookmarks, `410 Gone`), plus fault switches the tests flip.
//!
//! It is not a fake of execwatch's own traits: kube-rs and kubectl talk to it as to a cluster.

mod discovery;
mod faults;
mod http;
mod labels;
mod list;
mod patch;
mod protobuf;
mod rbac;
mod resource;
mod store;
mod validation;
mod watch;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch as notify;
use tokio::task::JoinSet;

pub use store::{ApiError, Store};

/// Fault switches. Each applies to requests (and watches) from the moment it is set.
#[derive(Default)]
struct Faults {
    /// Every request in these namespaces is answered with this status (403, 500, ...).
    namespace_status: HashMap<String, u16>,
    latency: Duration,
    /// Watches with an id below this send nothing more, but stay open.
    silence_below: u64,
    /// TokenReviews and SubjectAccessReviews are answered with this status.
    review_status: Option<u16>,
    /// TokenReviews and SubjectAccessReviews are never answered.
    hang_reviews: bool,
    /// Lists are accepted and never answered.
    hang_lists: bool,
    /// (verb, resource) pairs refused with 403, as RBAC refuses what no role grants.
    forbidden: std::collections::HashSet<(String, String)>,
    /// Merge patches another writer applies right after the next GET of an object (by
    /// resource plural, namespace and name): a read-modify-write that follows conflicts.
    write_after_get: HashMap<(String, String, String), serde_json::Value>,
}

struct Inner {
    store: Mutex<Store>,
    /// Bearer tokens TokenReview accepts, from a `--token-auth-file`.
    tokens: Mutex<BTreeMap<String, rbac::User>>,
    faults: Mutex<Faults>,
    /// The store's resourceVersion, for watches to wake on.
    changes: notify::Sender<u64>,
    /// Bumped to drop every open watch.
    drops: notify::Sender<u64>,
    /// Bumped to end every open watch cleanly, as a server-side timeout does.
    ends: notify::Sender<u64>,
    requests: Mutex<BTreeMap<String, u64>>,
    next_watch_id: AtomicU64,
    open_watches: AtomicUsize,
    bookmark_interval: Duration,
}

impl Inner {
    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn count(&self, what: String) {
        *self.requests.lock().unwrap_or_else(|p| p.into_inner()).entry(what).or_default() += 1;
    }
    /// Wakes watches after a write.
    fn changed(&self) {
        let rv = self.store().rv;
        self.changes.send_replace(rv);
    }
}

/// The command line of the `k8s-sim` binary.
#[derive(clap::Parser)]
#[command(about = "A Kubernetes API simulator (core v1 ConfigMaps and Namespaces) for execwatch")]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: std::net::SocketAddr,
    /// Where to write a kubeconfig that points at the simulator.
    #[arg(long, default_value = "k8s-sim.kubeconfig")]
    pub kubeconfig: std::path::PathBuf,
    /// Namespaces to create at start (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Bearer tokens that TokenReview accepts, in kube-apiserver's format:
    /// `token,user,uid,"group1,group2"` per line.
    #[arg(long)]
    pub token_auth_file: Option<std::path::PathBuf>,
}

/// Options of a simulator instance.
#[derive(Clone, Debug)]
pub struct Options {
    /// How many events are kept for watches to resume from.
    pub history_limit: usize,
    /// How often watches that asked for bookmarks get one.
    pub bookmark_interval: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options { history_limit: 10_000, bookmark_interval: Duration::from_secs(1) }
    }
}

/// A running simulator. Dropping it stops the server.
pub struct Sim {
    inner: Arc<Inner>,
    addr: SocketAddr,
    server: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Sim {
    /// Starts on an ephemeral loopback port.
    pub async fn start() -> std::io::Result<Sim> {
        Self::start_with("127.0.0.1:0".parse().expect("valid address"), Options::default()).await
    }

    pub async fn start_with(addr: SocketAddr, options: Options) -> std::io::Result<Sim> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            store: Mutex::new(Store::new(options.history_limit)),
            tokens: Mutex::default(),
            faults: Mutex::default(),
            changes: notify::Sender::new(0),
            drops: notify::Sender::new(0),
            ends: notify::Sender::new(0),
            requests: Mutex::default(),
            next_watch_id: AtomicU64::new(0),
            open_watches: AtomicUsize::new(0),
            bookmark_interval: options.bookmark_interval,
        });
        let server = tokio::spawn(serve(listener, inner.clone()));
        Ok(Sim { inner, addr, server: Mutex::new(Some(server)) })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API server URL, e.g. `http://127.0.0.1:43121`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig that points kubectl or any client at this simulator.
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: k8s-sim\n  cluster:\n    server: {}\nusers:\n- name: k8s-sim\n  user: {{}}\ncontexts:\n- name: k8s-sim\n  context:\n    cluster: k8s-sim\n    user: k8s-sim\n    namespace: default\ncurrent-context: k8s-sim\n",
            self.url()
        )
    }

    /// Creates a namespace directly (test set-up).
    pub fn create_namespace(&self, name: &str) {
        let _ = self.inner.store().create(
            &store::Resource::namespaces(),
            "",
            serde_json::json!({"metadata": {"name": name}}),
            false,
        );
        self.inner.changed();
    }

    /// How many requests of `verb` (`list`, `watch`, `get`, `create`, `update`, `patch`, `delete`,
    /// or `gone` for watches answered 410)
    /// reached `resource` in `namespace` ("" for cluster-wide).
    pub fn requests(&self, verb: &str, resource: &str, namespace: &str) -> u64 {
        let key = format!("{verb} {resource} {namespace}");
        self.inner.requests.lock().unwrap_or_else(|p| p.into_inner()).get(&key).copied().unwrap_or(0)
    }

    /// Watches currently open.
    pub fn open_watches(&self) -> usize {
        self.inner.open_watches.load(Ordering::SeqCst)
    }

    /// Replaces the tokens TokenReview accepts with those of a static token file in
    /// kube-apiserver's `--token-auth-file` format (`token,user,uid,"group1,group2"`).
    pub fn set_token_file(&self, text: &str) -> Result<(), String> {
        let tokens = rbac::parse_token_file(text)?;
        *self.inner.tokens.lock().unwrap_or_else(|p| p.into_inner()) = tokens;
        Ok(())
    }

    /// Adds a token bound to `audiences`, as `kubectl create token SA --audience A` makes one,
    /// for the service account `namespace/name`.
    pub fn add_bound_token(&self, token: &str, namespace: &str, name: &str, audiences: &[&str]) {
        let user = rbac::service_account(namespace, name, audiences.iter().map(|a| a.to_string()).collect());
        self.inner.tokens.lock().unwrap_or_else(|p| p.into_inner()).insert(token.to_owned(), user);
    }

    // ----- fault switches (also reachable over HTTP: `POST /_sim/faults`, see `faults.rs`) -----

    /// Answers every TokenReview and SubjectAccessReview with `status` (e.g. 500); `None` heals.
    pub fn fail_reviews(&self, status: Option<u16>) {
        self.inner.faults().review_status = status;
    }

    /// TokenReviews and SubjectAccessReviews hang (never answered) while `hang` is true.
    pub fn hang_reviews(&self, hang: bool) {
        self.inner.faults().hang_reviews = hang;
    }

    /// Lists are accepted and never answered while `hang` is true; watches still work.
    pub fn hang_lists(&self, hang: bool) {
        self.inner.faults().hang_lists = hang;
    }

    /// Ends every open watch abruptly, as a dropped connection would.
    pub fn drop_watches(&self) {
        self.inner.drop_watches();
    }

    /// Ends every open watch cleanly, as a server-side timeout does: clients resume from their
    /// last resourceVersion.
    pub fn end_watches(&self) {
        self.inner.end_watches();
    }

    /// Forgets all history: any watch from an older resourceVersion, and any continue token,
    /// gets `410 Gone`.
    pub fn compact(&self) {
        self.inner.store().compact();
    }

    /// Answers every request in `namespace` with `status` (e.g. 403, 500); `None` heals it.
    pub fn fail_namespace(&self, namespace: &str, status: Option<u16>) {
        self.inner.fail_namespace(namespace, status);
    }

    /// Open watches go silent: no events, no bookmarks, connection kept open. New watches work.
    pub fn silence_watches(&self) {
        self.inner.silence_watches();
    }

    /// Refuses `verb` on `resource` (`configmaps`, `leases.coordination.k8s.io`) with 403 while
    /// `forbid` is true, as RBAC does when no role grants it.
    pub fn forbid(&self, verb: &str, resource: &str, forbid: bool) {
        let key = (verb.to_owned(), resource.to_owned());
        let forbidden = &mut self.inner.faults().forbidden;
        if forbid {
            forbidden.insert(key);
        } else {
            forbidden.remove(&key);
        }
    }

    /// Right after the next GET of `resource` (`configmaps`) `namespace/name` is answered,
    /// another writer applies `merge_patch` to it: whoever read it then conflicts on update.
    pub fn write_after_next_get(&self, resource: &str, namespace: &str, name: &str, merge_patch: serde_json::Value) {
        let key = (resource.to_owned(), namespace.to_owned(), name.to_owned());
        self.inner.faults().write_after_get.insert(key, merge_patch);
    }

    /// Delays every response by `latency`.
    pub fn set_latency(&self, latency: Duration) {
        self.inner.faults().latency = latency;
    }

    /// Stops listening and drops every connection: new connections are refused.
    pub fn stop(&self) {
        if let Some(server) = self.server.lock().unwrap_or_else(|p| p.into_inner()).take() {
            server.abort();
        }
    }

    /// Listens again on the same address, with the same data (an API server restart).
    pub async fn restart(&self) -> std::io::Result<()> {
        self.stop();
        let listener = loop {
            // The aborted accept loop may still hold the port for a moment.
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => tokio::task::yield_now().await,
                Err(e) => return Err(e),
            }
        };
        *self.server.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(tokio::spawn(serve(listener, self.inner.clone())));
        Ok(())
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Accepts connections until aborted; aborting drops every connection with it.
async fn serve(listener: TcpListener, inner: Arc<Inner>) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let inner = inner.clone();
        connections.spawn(async move {
            let service = service_fn(move |req| http::handle(inner.clone(), req));
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
        while connections.try_join_next().is_some() {}
    }
}
