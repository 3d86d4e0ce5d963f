//! Test harness: the real service, started in-process on port 0, against the Kubernetes API
//! simulator over HTTP; a kube-rs client plays the pipeline writer; waits are conditions with
//! deadlines, never sleeps.
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod binary;
pub mod browser;
pub mod clients;
pub mod postgres;
pub mod proxy;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use execwatch::api::{PageLimits, ServerSettings};
use execwatch::decode::{Limits, SchemaRegistry};
use execwatch::fixtures::{Cm, Doc};
use execwatch::selector::Selector;
use execwatch::source::cluster::WatchSettings;
use execwatch::{Service, Sources};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_sim::Sim;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client};
use serde_json::Value;
use tokio::sync::oneshot;

/// How long any condition may take before a test fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

pub fn schemas_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas")
}

pub fn registry() -> Arc<SchemaRegistry> {
    Arc::new(SchemaRegistry::load(&schemas_dir(), Limits::default()).expect("shipped schemas compile"))
}

pub fn selector() -> Selector {
    "pipelines.gitops.dev/execution=true".parse().expect("valid selector")
}

/// Polls `probe` until it yields `Some`, or fails the test after `DEADLINE` with `what`.
pub async fn wait_until<T, F, Fut>(what: &str, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    wait_until_within(what, DEADLINE, probe).await
}

/// As `wait_until`, for what takes longer than `DEADLINE` by design.
pub async fn wait_until_within<T, F, Fut>(what: &str, within: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Resident set size of this process, in MiB: a test that measures it runs alone in its binary.
pub fn rss_mib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: f64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).expect("resident pages");
    pages * 4096.0 / (1024.0 * 1024.0)
}

/// How a test service runs, beyond its source.
pub struct Setup {
    pub staleness: Duration,
    pub modules: Vec<execwatch::model::ModuleName>,
    pub server: ServerSettings,
    pub access: execwatch::access::Access,
    pub limits: execwatch::api::CallerLimits,
    /// Serve `/metrics` on a port of its own.
    pub metrics: bool,
    /// Archive executions there.
    pub archive: Option<execwatch::history::ArchiveSettings>,
    /// A retention policy and how to apply it.
    pub retention: Option<(execwatch::retention::RetentionSettings, execwatch::retention::Policy)>,
    /// Notifications, with an archive and a cluster.
    pub notify: Option<execwatch::notify::NotifySettings>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            staleness: Duration::from_secs(60),
            modules: execwatch::model::MODULES.to_vec(),
            server: ServerSettings::default(),
            access: execwatch::access::Access::open(),
            limits: execwatch::api::CallerLimits::new(64, 10_000, None),
            metrics: false,
            archive: None,
            retention: None,
            notify: None,
        }
    }
}

/// A running execwatch service and a client for its HTTP API.
pub struct Running {
    pub base: String,
    /// Where `/metrics` is served, when asked for.
    pub metrics: Option<String>,
    pub http: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Starts the service on port 0 as `setup` says.
    pub async fn launch(sources: Sources, setup: Setup) -> Running {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let base = format!("http://{}", listener.local_addr().expect("local addr"));
        let metrics_listener = match setup.metrics {
            true => Some(tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind port 0")),
            false => None,
        };
        let metrics = metrics_listener.as_ref().map(|l| format!("http://{}/metrics", l.local_addr().expect("addr")));
        let service = Service {
            sources,
            registry: registry(),
            staleness: setup.staleness,
            page: PageLimits::default(),
            server: setup.server,
            access: setup.access,
            limits: setup.limits,
            modules: setup.modules.into_iter().collect(),
            metrics: metrics_listener,
            archive: setup.archive,
            retention: setup.retention,
            notify: setup.notify,
        };
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(service.run(listener, async {
            let _ = rx.await;
        }));
        Running { base, metrics, http: reqwest::Client::new(), shutdown: Some(tx), task: Some(task) }
    }

    /// GETs `path`, returning the status and the JSON body.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.http.get(format!("{}{path}", self.base)).send().await.expect("service answers");
        let status = response.status().as_u16();
        let body = response.json::<Value>().await.expect("JSON body");
        (status, body)
    }

    /// GETs `path` with `Authorization: Bearer <token>`, returning the whole response.
    pub async fn get_as(&self, path: &str, token: &str) -> reqwest::Response {
        self.http.get(format!("{}{path}", self.base)).bearer_auth(token).send().await.expect("service answers")
    }

    /// The `ETag` of `path` now, as the holder of `token` (or anyone) sees it.
    pub async fn etag(&self, path: &str, token: Option<&str>) -> String {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("service answers");
        assert_eq!(response.status(), 200, "{path}");
        response.headers()["etag"].to_str().expect("ASCII ETag").to_owned()
    }

    /// Starts a conditional GET of `path` that holds `etag`: a long poll when `path` has
    /// `timeoutSeconds`.
    pub fn long_poll(
        &self,
        path: &str,
        etag: &str,
        token: Option<&str>,
    ) -> tokio::task::JoinHandle<reqwest::Result<reqwest::Response>> {
        let mut request = self.http.get(format!("{}{path}", self.base)).header("if-none-match", etag);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        tokio::spawn(request.send())
    }

    /// Waits until GET `path` answers 200 with a body that satisfies `check`.
    pub async fn wait_for(&self, what: &str, path: &str, check: impl Fn(&Value) -> bool) -> Value {
        wait_until(what, || async {
            let (status, body) = self.get(path).await;
            (status == 200 && check(&body)).then_some(body)
        })
        .await
    }

    /// Names of the listed executions, in order.
    pub async fn execution_names(&self, path: &str) -> Vec<String> {
        let (status, body) = self.get(path).await;
        assert_eq!(status, 200, "{body}");
        names(&body)
    }

    /// Signals shutdown without waiting for it.
    pub fn begin_stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Waits for the service to have stopped, after `begin_stop`.
    pub async fn stopped(mut self) {
        if let Some(task) = self.task.take() {
            task.await.expect("service stops cleanly");
        }
    }

    pub fn address(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("service stops cleanly");
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// `items[].name` of a list body, sorted.
pub fn sorted(body: &Value) -> Vec<String> {
    let mut names = names(body);
    names.sort();
    names
}

/// `items[].name` of a list body.
pub fn names(body: &Value) -> Vec<String> {
    body["items"].as_array().into_iter().flatten().filter_map(|i| i["name"].as_str().map(str::to_owned)).collect()
}

/// Fast timings so failure paths finish in seconds.
pub fn fast_watch() -> WatchSettings {
    WatchSettings {
        label_selector: selector().to_string(),
        watch_timeout: Duration::from_secs(3),
        backoff_max: Duration::from_millis(500),
        list_timeout: Duration::from_secs(2),
    }
}

pub fn client_for(sim: &Sim) -> Client {
    let config = kube::Config::new(sim.url().parse::<http::Uri>().expect("simulator URL"));
    Client::try_from(config).expect("client for the simulator")
}

/// The simulator, the service watching `namespaces` in it, and a writer.
pub struct Cluster {
    pub sim: Sim,
    pub service: Running,
    pub writer: Client,
}

impl Cluster {
    /// Creates `existing` namespaces, then starts the service watching `watched`.
    pub async fn start(existing: &[&str], watched: &[&str]) -> Cluster {
        Self::launch(existing, watched, fast_watch(), Setup::default()).await
    }

    /// Creates `existing` namespaces, then starts the service watching `watched` as `setup` says.
    pub async fn launch(existing: &[&str], watched: &[&str], watch: WatchSettings, setup: Setup) -> Cluster {
        let sim = Sim::start().await.expect("simulator starts");
        for ns in existing {
            sim.create_namespace(ns);
        }
        let sources = Sources::Kube {
            client: client_for(&sim),
            namespaces: watched.iter().map(|s| s.to_string()).collect::<Vec<_>>().into(),
            watch,
        };
        let service = Running::launch(sources, setup).await;
        let writer = client_for(&sim);
        Cluster { sim, service, writer }
    }

    pub async fn wait_ready(&self) -> Value {
        wait_until("the service is ready", || async {
            let (status, body) = self.service.get("/readyz").await;
            (status == 200).then_some(body)
        })
        .await
    }

    fn configmaps(&self, ns: &str) -> Api<ConfigMap> {
        Api::namespaced(self.writer.clone(), ns)
    }

    /// Creates or replaces a ConfigMap, as a pipeline writer does.
    pub async fn put(&self, cm: ConfigMap) {
        let ns = cm.metadata.namespace.clone().expect("namespace");
        let name = cm.metadata.name.clone().expect("name");
        let api = self.configmaps(&ns);
        let mut cm = cm;
        match api.get_opt(&name).await.expect("get") {
            Some(existing) => {
                cm.metadata.resource_version = existing.metadata.resource_version;
                api.replace(&name, &PostParams::default(), &cm).await.expect("replace");
            }
            None => {
                cm.metadata.resource_version = None;
                api.create(&PostParams::default(), &cm).await.expect("create");
            }
        }
    }

    /// Writes a valid execution document.
    pub async fn put_execution(&self, ns: &str, name: &str, doc: &Doc) {
        self.put(Cm::new(ns, name).doc(doc).build()).await;
    }

    /// Names of the labelled ConfigMaps the API server holds in `namespaces`.
    pub async fn held(&self, namespaces: &[&str]) -> std::collections::BTreeSet<String> {
        let mut all = std::collections::BTreeSet::new();
        for ns in namespaces {
            let listed = self.configmaps(ns).list(&ListParams::default().labels(&selector().to_string())).await;
            all.extend(listed.expect("list").items.into_iter().filter_map(|cm| cm.metadata.name));
        }
        all
    }

    /// Names of the executions the service serves (up to 500).
    pub async fn served(&self) -> std::collections::BTreeSet<String> {
        let (_, body) = self.service.get("/api/v1/executions?limit=500").await;
        names(&body).into_iter().collect()
    }

    pub async fn delete(&self, ns: &str, name: &str) {
        self.configmaps(ns).delete(name, &DeleteParams::default()).await.expect("delete");
    }

    pub async fn create_namespace(&self, name: &str) {
        let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).expect("namespace");
        Api::<Namespace>::all(self.writer.clone()).create(&PostParams::default(), &ns).await.expect("create namespace");
    }
}

/// The shipped BackendModule CRD.
pub fn backendmodule_crd()
-> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("manifests/base/crd-backendmodule.yaml");
    serde_yaml::from_str(&std::fs::read_to_string(path).expect("CRD manifest")).expect("CRD parses")
}

impl Cluster {
    /// Installs the shipped BackendModule CRD.
    pub async fn install_crd(&self) {
        let api: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
            Api::all(self.writer.clone());
        api.create(&PostParams::default(), &backendmodule_crd()).await.expect("create CRD");
    }

    fn backendmodules(&self) -> Api<kube::api::DynamicObject> {
        let gvk = kube::api::GroupVersionKind::gvk("pipelines.gitops.dev", "v1alpha1", "BackendModule");
        Api::all_with(self.writer.clone(), &kube::api::ApiResource::from_gvk_with_plural(&gvk, "backendmodules"))
    }

    /// Creates (`true`) or deletes (`false`) the BackendModule object of `module`.
    pub async fn set_module(&self, module: &str, enabled: bool) {
        let api = self.backendmodules();
        if enabled {
            let object: kube::api::DynamicObject = serde_json::from_value(serde_json::json!({
                "apiVersion": "pipelines.gitops.dev/v1alpha1", "kind": "BackendModule", "metadata": {"name": module}
            }))
            .expect("object");
            api.create(&PostParams::default(), &object).await.expect("create BackendModule");
        } else {
            api.delete(module, &DeleteParams::default()).await.expect("delete BackendModule");
        }
    }

    /// `/api/v1/modules` entry of `module`.
    pub async fn module(&self, module: &str) -> Value {
        let (_, body) = self.service.get("/api/v1/modules").await;
        body["items"].as_array().into_iter().flatten().find(|m| m["name"] == module).cloned().unwrap_or(Value::Null)
    }
}

/// A tokens file (`tokens=FILE`) of (subject, token, namespaces as YAML) entries.
pub fn tokens_file(entries: &[(&str, &str, &str)]) -> String {
    let mut text = String::from("tokens:\n");
    for (subject, token, namespaces) in entries {
        text.push_str(&format!(
            "  - subject: {subject}\n    sha256: {}\n    namespaces: {namespaces}\n",
            execwatch::access::digest_hex(token)
        ));
    }
    text
}

/// A manifest of a run of pipeline `web`.
pub fn web_run(ns: &str, name: &str) -> String {
    manifest(ns, name, &Doc::new("web").yaml())
}

/// A labelled ConfigMap manifest holding `execution` (YAML text), as the directory source reads it.
pub fn manifest(ns: &str, name: &str, execution: &str) -> String {
    let indented: String = execution.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels:\n    {}: \"true\"\ndata:\n  execution.yaml: |\n{indented}",
        execwatch::fixtures::EXECUTION_LABEL
    )
}

/// The directory source on `path`, polled every `interval`, with the default size limit.
pub fn dir_source(path: &std::path::Path, interval: Duration) -> Sources {
    Sources::Dir(execwatch::source::DirSource {
        path: path.to_owned(),
        selector: selector(),
        interval,
        max_file_bytes: execwatch::source::dir::max_file_bytes(Limits::default().max_document_bytes),
    })
}

/// Switches the simulator's faults over HTTP (`POST /_sim/faults`), as a script would; returns
/// what is switched on.
pub async fn sim_faults(sim: &Sim, switches: Value) -> Value {
    let url = format!("{}/_sim/faults", sim.url());
    let response = reqwest::Client::new().post(url).json(&switches).send().await.expect("the simulator answers");
    assert_eq!(response.status(), 200, "{switches}");
    response.json().await.expect("the fault state")
}

/// Retention by the policy in `file`, planned every 100 ms, in `mode`, deleting at `rate` per
/// second, with a Lease of its own `identity` in namespace `execwatch`.
pub fn retention(
    file: &std::path::Path,
    mode: execwatch::retention::Mode,
    rate: u32,
    identity: &str,
) -> (execwatch::retention::RetentionSettings, execwatch::retention::Policy) {
    let policy = execwatch::retention::Policy::load(file).expect("the retention file loads");
    let lease = execwatch::retention::LeaseSettings {
        namespace: "execwatch".to_owned(),
        name: "execwatch-retention".to_owned(),
        identity: identity.to_owned(),
        duration: Duration::from_secs(3),
    };
    let settings = execwatch::retention::RetentionSettings {
        file: file.to_owned(),
        mode,
        rate: std::num::NonZeroU32::new(rate).expect("a rate above 0"),
        interval: Duration::from_millis(100),
        without_archive: false,
        lease,
    };
    (settings, policy)
}

/// Writes run `name` of pipeline `web` in team-a, at `phase`, into `dir` as writers do: a
/// temporary file renamed over the old one.
pub fn write_run(dir: &std::path::Path, name: &str, phase: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, manifest("team-a", name, &execwatch::fixtures::Doc::new("web").phase(phase).yaml())).unwrap();
    std::fs::rename(&tmp, dir.join(format!("{name}.yaml"))).unwrap();
}

/// GETs `url`: the status and the JSON body.
pub async fn get_json(url: &str) -> (u16, Value) {
    let response = reqwest::get(url).await.expect("the server answers");
    (response.status().as_u16(), response.json().await.expect("JSON body"))
}

/// The ConfigMaps of `manifests/examples` (not the RBAC objects beside them).
pub fn examples() -> Vec<ConfigMap> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/examples");
    let mut maps = Vec::new();
    for file in ["team-payments.yaml", "team-storefront.yaml", "invalid.yaml"] {
        let text = std::fs::read_to_string(dir.join(file)).expect("example");
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value: Value = serde::Deserialize::deserialize(doc).expect("YAML");
            if value["kind"] == "ConfigMap" {
                maps.push(serde_json::from_value(value).expect("a ConfigMap"));
            }
        }
    }
    maps
}
