//! The cost of access control: GET one and a list page with `--auth kubernetes` on a warm
//! cache, beside the same service without auth, both in this process on one simulator's data.

use std::sync::Arc;
use std::time::Duration;

use execwatch::access::{Access, AccessSettings};
use execwatch::api::{PageLimits, ServerSettings};
use execwatch::decode::{Limits, SchemaRegistry};
use execwatch::fixtures::{Cm, Doc};
use execwatch::source::cluster::WatchSettings;
use execwatch::{Service, Sources};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::PostParams;
use serde::Deserialize;

use crate::load::{bare_hyper, measure, median, oha};

/// Rounds of alternating oha runs whose medians are reported.
const ROUNDS: usize = 5;

/// How the benchmark's services watch the simulator.
fn watch_settings() -> WatchSettings {
    WatchSettings {
        label_selector: "pipelines.gitops.dev/execution=true".into(),
        watch_timeout: Duration::from_secs(290),
        backoff_max: Duration::from_secs(1),
        list_timeout: Duration::from_secs(30),
    }
}

fn client_for(sim: &k8s_sim::Sim) -> kube::Client {
    kube::Client::try_from(kube::Config::new(sim.url().parse::<http::Uri>().expect("url"))).expect("client")
}

fn registry() -> Arc<SchemaRegistry> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    Arc::new(SchemaRegistry::load(&dir, Limits::default()).expect("schemas"))
}

/// Throughput and fixed-rate latency of GET one and a list page of 50 with `--auth kubernetes`
/// on a warm cache, beside the same service without auth, both on one simulator's data.
pub async fn access_cost() {
    let sim = k8s_sim::Sim::start().await.expect("simulator");
    sim.set_token_file("bench-token,dashboard,1,\"readers\"\n").expect("tokens");
    let client = client_for(&sim);
    let namespaces = ["bench-a", "bench-b"];
    for ns in namespaces {
        sim.create_namespace(ns);
    }
    grant_readers(&client).await;
    create_executions(&client, &namespaces, 2000).await;
    let watch = watch_settings();
    let sources =
        Sources::Kube { client: client.clone(), namespaces: namespaces.map(String::from).to_vec().into(), watch };
    let settings = AccessSettings {
        allow_ttl: Duration::from_secs(600),
        deny_ttl: Duration::from_secs(600),
        ..AccessSettings::default()
    };
    let open = start_with(sources.clone(), Access::open()).await;
    let guarded = start_with(sources, Access::kubernetes(client, settings)).await;
    for (base, token) in [(&open, None), (&guarded, Some("bench-token"))] {
        wait_for_page(base, token).await;
    }
    let oha = oha();
    for (what, path) in
        [("GET one", "/api/v1/namespaces/bench-a/executions/run-0"), ("list 50", "/api/v1/executions?limit=50")]
    {
        let body = reqwest::get(format!("{open}{path}")).await.expect("get").bytes().await.expect("body");
        let bare = bare_hyper(200, body).await;
        let run = |url: String, token: Option<&'static str>, rate| {
            let oha = oha.clone();
            let header = token.map(|t| format!("Authorization: Bearer {t}"));
            tokio::task::spawn_blocking(move || measure(&oha, &url, header.as_deref(), rate, 200))
        };
        // This machine's throughput drifts by tens of percent from one second to the next: runs
        // alternate, and the medians of ROUNDS rounds are compared.
        let (mut plain, mut authed, mut ceiling, mut ratios, mut p99s, mut bare_p99s) = Default::default();
        for _ in 0..ROUNDS {
            let p = run(format!("{open}{path}"), None, None).await.expect("oha").per_second;
            let a = run(format!("{guarded}{path}"), Some("bench-token"), None).await.expect("oha").per_second;
            let c = run(bare.clone(), None, None).await.expect("oha").per_second;
            let fixed = run(format!("{guarded}{path}"), Some("bench-token"), Some(2000)).await.expect("oha");
            let fixed_bare = run(bare.clone(), None, Some(2000)).await.expect("oha");
            for (all, value) in [(&mut plain, p), (&mut authed, a), (&mut ceiling, c), (&mut ratios, a / p)] {
                Vec::push(all, value);
            }
            Vec::push(&mut p99s, fixed.p99);
            Vec::push(&mut bare_p99s, fixed_bare.p99);
        }
        println!(
            "access: {what}: {:.0}/s with --auth kubernetes (warm cache) vs {:.0}/s without: ratio {:.2} (bare hyper on the same bytes: {:.0}/s); at 2000 req/s with auth p99 {:?} (bare hyper p99 {:?}); medians of {ROUNDS} alternating rounds",
            median(authed),
            median(plain),
            median(ratios),
            median(ceiling),
            median(p99s),
            median(bare_p99s),
        );
    }
    let reviews = sim.requests("create", "tokenreviews.authentication.k8s.io", "");
    let decisions = sim.requests("create", "subjectaccessreviews.authorization.k8s.io", "");
    println!("access: the whole run made {reviews} TokenReview(s) and {decisions} SubjectAccessReview(s)");
}

/// `count` executions, spread over `namespaces`, created through the API.
async fn create_executions(client: &kube::Client, namespaces: &[&str], count: usize) {
    for i in 0..count {
        let ns = namespaces[i % namespaces.len()];
        let cm = Cm::new(ns, &format!("run-{i}")).doc(&Doc::new(&format!("pipeline-{}", i % 50))).build();
        kube::Api::<ConfigMap>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &cm)
            .await
            .expect("create");
    }
}

/// Waits until the service at `base` serves a full page of 500 to `token`.
async fn wait_for_page(base: &str, token: Option<&str>) {
    let url = format!("{base}/api/v1/executions?limit=500");
    loop {
        let mut request = reqwest::Client::new().get(&url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let body: serde_json::Value = request.send().await.expect("list").json().await.expect("json");
        if body["items"].as_array().is_some_and(|i| i.len() == 500) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Binds the shipped executions reader to the group `readers`, cluster-wide.
async fn grant_readers(client: &kube::Client) {
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
    let rbac = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/base/rbac-cluster.yaml"))
        .expect("rbac");
    let role = serde_yaml::Deserializer::from_str(&rbac)
        .filter_map(|doc| serde_yaml::Value::deserialize(doc).ok())
        .find(|doc| doc["metadata"]["name"] == "execwatch-executions-reader")
        .expect("the reader ClusterRole");
    let role: ClusterRole = serde_yaml::from_value(role).expect("ClusterRole");
    kube::Api::<ClusterRole>::all(client.clone()).create(&PostParams::default(), &role).await.expect("role");
    let binding: ClusterRoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "readers"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "execwatch-executions-reader"},
        "subjects": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "readers"}]
    }))
    .expect("binding");
    kube::Api::<ClusterRoleBinding>::all(client.clone())
        .create(&PostParams::default(), &binding)
        .await
        .expect("binding");
}

async fn start_with(sources: Sources, access: Access) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let modules = execwatch::model::MODULES.into_iter().collect();
    let service = Service {
        sources,
        registry: registry(),
        staleness: Duration::from_secs(60),
        page: PageLimits::default(),
        server: ServerSettings::default(),
        access,
        limits: execwatch::api::CallerLimits::new(64, 10_000, None),
        modules,
        metrics: None,
        archive: None,
        retention: None,
        notify: None,
    };
    tokio::spawn(service.run(listener, std::future::pending()));
    base
}
