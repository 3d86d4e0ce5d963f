//! Namespace-scoped access end to end: real RBAC objects created with kubectl in the simulator,
//! bearer tokens from its static token file, TokenReview and SubjectAccessReview decided as a
//! cluster decides them. Every caller sees exactly the namespaces they may read.

mod common;

use std::time::Duration;

use common::clients::Kubectl;
use common::{DEADLINE, Running, Setup, client_for, fast_watch, names, sorted, wait_until};
use execwatch::Sources;
use execwatch::access::{Access, AccessSettings};
use execwatch::fixtures::{Cm, Doc};
use execwatch::source::Namespaces;
use k8s_sim::Sim;

/// alice reads team-a (and the unwatched team-c) as a user; bob reads team-b through his group;
/// admin reads everything through a ClusterRoleBinding; carol reads nothing; dave may only get
/// team-a's executions and erin only get and list them; prometheus may read /metrics.
const TOKENS: &str = "alice-token,alice,1,\"\"\nbob-token,bob,2,\"team-b-devs\"\nadmin-token,admin,3,\"readers\"\ncarol-token,carol,4,\"\"\ndave-token,dave,5,\"\"\nerin-token,erin,6,\"\"\nprom-token,prometheus,7,\"\"\n";

/// Roles narrower than the shipped reader: get alone, and get and list without watch.
const NARROW_ROLES: &str = "apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: executions-getter}
rules: [{apiGroups: [pipelines.gitops.dev], resources: [executions], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: executions-lister}
rules: [{apiGroups: [pipelines.gitops.dev], resources: [executions], verbs: [get, list]}]
";

/// The label `SELECTED` namespaces carry.
const SELECTED: &str = "pipelines.gitops.dev/executions=enabled";

const SAR: &str = "subjectaccessreviews.authorization.k8s.io";
const TOKEN_REVIEWS: &str = "tokenreviews.authentication.k8s.io";

struct Fixture {
    sim: Sim,
    service: Running,
    kubectl: Kubectl,
    _dir: tempfile::TempDir,
}

/// The simulator with its RBAC objects, the service watching team-a and team-b with
/// `--auth kubernetes`, and data in both. `None` where kubectl is not available.
async fn fixture(settings: AccessSettings) -> Option<Fixture> {
    let namespaces = Namespaces::Listed(vec!["team-a".into(), "team-b".into()]);
    let fixture = fixture_with(settings, namespaces, &[]).await?;
    fixture.wait_for("admin", "every run is served", "/api/v1/executions", |b| names(b).len() == 5).await;
    Some(fixture)
}

/// The same, with the service watching `namespaces`, and `labelled` namespaces labelled
/// `SELECTED` before it starts.
async fn fixture_with(settings: AccessSettings, namespaces: Namespaces, labelled: &[&str]) -> Option<Fixture> {
    let sim = Sim::start().await.unwrap();
    sim.set_token_file(TOKENS).unwrap();
    for ns in ["team-a", "team-b", "team-c"] {
        sim.create_namespace(ns);
    }
    for ns in labelled {
        label(&sim, ns).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let kubectl = Kubectl::new(dir.path(), &sim.kubeconfig());
    let rbac = format!("{}/manifests/base/rbac-cluster.yaml", env!("CARGO_MANIFEST_DIR"));
    kubectl.ok(&["apply", "-f", &rbac], None).await?;
    let reader = "--clusterrole=execwatch-executions-reader";
    for (ns, name, subject) in [
        ("team-a", "alice", "--user=alice"),
        ("team-c", "alice", "--user=alice"),
        ("team-b", "devs", "--group=team-b-devs"),
    ] {
        kubectl.ok(&["create", "rolebinding", name, "-n", ns, reader, subject], None).await?;
    }
    kubectl.ok(&["create", "clusterrolebinding", "readers", reader, "--group=readers"], None).await?;
    kubectl.ok(&["apply", "-f", "-"], Some(NARROW_ROLES)).await?;
    for (name, role) in [("dave", "executions-getter"), ("erin", "executions-lister")] {
        let (role, user) = (format!("--clusterrole={role}"), format!("--user={name}"));
        kubectl.ok(&["create", "rolebinding", name, "-n", "team-a", &role, &user], None).await?;
    }
    let metrics = ["create", "clusterrolebinding", "prometheus", "--clusterrole=execwatch-metrics-reader"];
    kubectl.ok(&[&metrics[..], &["--user=prometheus"]].concat(), None).await?;

    let writer = client_for(&sim);
    for (ns, name, pipeline) in [
        ("team-a", "a-1", "web"),
        ("team-a", "a-2", "web"),
        ("team-b", "b-1", "api"),
        ("team-b", "b-2", "api"),
        ("team-b", "b-3", "db"),
    ] {
        let cm = Cm::new(ns, name).doc(&Doc::new(pipeline)).build();
        kube::Api::namespaced(writer.clone(), ns).create(&Default::default(), &cm).await.unwrap();
    }
    for ns in ["team-a", "team-b"] {
        let broken = Cm::new(ns, &format!("{ns}-broken")).data("execution.yaml", "phase: [").build();
        kube::Api::namespaced(writer.clone(), ns).create(&Default::default(), &broken).await.unwrap();
    }
    let client = client_for(&sim);
    let sources = Sources::Kube { client: client.clone(), namespaces, watch: fast_watch() };
    let setup = Setup { access: Access::kubernetes(client, settings), metrics: true, ..Setup::default() };
    let service = Running::launch(sources, setup).await;
    Some(Fixture { sim, service, kubectl, _dir: dir })
}

/// Labels `namespace` so that a `SELECTED` selector picks it.
async fn label(sim: &Sim, namespace: &str) {
    let (key, value) = SELECTED.split_once('=').unwrap();
    let patch = kube::api::Patch::Merge(serde_json::json!({"metadata": {"labels": {key: value}}}));
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client_for(sim));
    namespaces.patch(namespace, &Default::default(), &patch).await.unwrap();
}

fn settings() -> AccessSettings {
    AccessSettings {
        allow_ttl: Duration::from_secs(60),
        deny_ttl: Duration::from_secs(60),
        ..AccessSettings::default()
    }
}

impl Fixture {
    async fn get(&self, token: &str, path: &str) -> (u16, serde_json::Value) {
        let response = self.service.get_as(path, token).await;
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    async fn wait_for(&self, token: &str, what: &str, path: &str, check: impl Fn(&serde_json::Value) -> bool) {
        wait_until(what, || async {
            let (status, body) = self.get(&format!("{token}-token"), path).await;
            (status == 200 && check(&body)).then_some(())
        })
        .await
    }

    /// Status, headers but the date and the request id, and body: what must not differ between
    /// two 404s.
    async fn raw(&self, token: &str, path: &str) -> (u16, Vec<(String, String)>, String) {
        let response = self.service.get_as(path, token).await;
        let status = response.status().as_u16();
        let mut headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .filter(|(k, _)| *k != "date" && *k != "x-request-id")
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        headers.sort();
        (status, headers, response.text().await.unwrap())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_caller_sees_only_the_namespaces_they_may_read_in_every_endpoint() {
    let Some(f) = fixture(settings()).await else { return };
    f.sim.fail_namespace("team-b", Some(500));
    f.wait_for("admin", "team-b fails", "/api/v1/executions", |b| b["freshness"]["complete"] == false).await;

    let (_, list) = f.get("alice-token", "/api/v1/executions").await;
    assert_eq!(sorted(&list), ["a-1", "a-2"], "{list}");
    assert_eq!(list["freshness"]["complete"], true, "team-b's failure is not alice's to know: {list}");
    let (_, page) = f.get("alice-token", "/api/v1/executions?limit=1").await;
    let token = page["continue"].as_str().expect("a second page");
    let (_, rest) = f.get("alice-token", &format!("/api/v1/executions?limit=1&continue={token}")).await;
    assert_eq!(names(&rest).len(), 1);
    assert!(rest["continue"].is_null(), "pages cover alice's namespaces alone: {rest}");
    let (_, pipelines) = f.get("alice-token", "/api/v1/pipelines").await;
    assert_eq!(names(&pipelines), ["web"], "{pipelines}");
    assert_eq!(pipelines["items"][0]["executionCount"], 2, "{pipelines}");
    let (_, rejections) = f.get("alice-token", "/api/v1/rejections").await;
    assert_eq!(names(&rejections), ["team-a-broken"]);
    let (status, _) = f.get("alice-token", "/api/v1/executions?namespace=team-b").await;
    assert_eq!(status, 404);

    let (_, bobs) = f.get("bob-token", "/api/v1/executions").await;
    assert_eq!(sorted(&bobs), ["b-1", "b-2", "b-3"], "a group binding grants bob team-b: {bobs}");
    let (_, admins) = f.get("admin-token", "/api/v1/executions").await;
    assert_eq!(names(&admins).len(), 5, "a cluster-wide reader sees both");
    assert_eq!(admins["freshness"]["incompleteSources"][0]["source"], "team-b");
    let (_, carols) = f.get("carol-token", "/api/v1/executions").await;
    assert!(names(&carols).is_empty() && carols["freshness"]["complete"] == true, "{carols}");

    let (_, ready) = f.get("alice-token", "/readyz").await;
    let sources: Vec<_> = ready["sources"].as_array().unwrap().iter().map(|s| s["source"].clone()).collect();
    assert_eq!(sources, ["team-a"], "{ready}");
    let probe: serde_json::Value =
        reqwest::get(format!("{}/readyz", f.service.base)).await.unwrap().json().await.unwrap();
    assert_eq!(probe.as_object().unwrap().len(), 2, "a probe without a token learns the status only: {probe}");
    let (_, modules) = f.get("alice-token", "/api/v1/modules").await;
    assert!(!modules.to_string().contains("team-b"), "{modules}");
    let (_, modules) = f.get("admin-token", "/api/v1/modules").await;
    assert!(modules.to_string().contains("team-b"), "a reader of everything sees which namespace fails: {modules}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forbidden_namespace_is_the_same_404_as_an_unwatched_one_or_a_missing_object() {
    let Some(f) = fixture(settings()).await else { return };
    // team-b is watched but alice may not read it; team-c she may read, but it is not watched.
    let forbidden = f.raw("alice-token", "/api/v1/namespaces/team-b/executions").await;
    let unwatched = f.raw("alice-token", "/api/v1/namespaces/team-c/executions").await;
    assert_eq!(forbidden.0, 404);
    assert_eq!((forbidden.0, &forbidden.1), (unwatched.0, &unwatched.1));
    assert_eq!(forbidden.2.replace("team-b", "team-c"), unwatched.2);
    // The same path: an execution alice may not read, and one that does not exist.
    let hidden = f.raw("alice-token", "/api/v1/namespaces/team-b/executions/b-1").await;
    let missing = f.raw("admin-token", "/api/v1/namespaces/team-b/executions/b-9").await;
    assert_eq!((hidden.0, &hidden.1), (missing.0, &missing.1));
    assert_eq!(hidden.2.replace("b-1", "b-9"), missing.2);
    for path in ["/api/v1/namespaces/team-b/pipelines/api", "/api/v1/namespaces/team-b/rejections"] {
        assert_eq!(f.raw("alice-token", path).await.0, 404, "{path}");
    }
    // A review is made for the unwatched namespace as for the forbidden one.
    let before = f.sim.requests("create", SAR, "");
    f.raw("carol-token", "/api/v1/namespaces/team-b/executions").await;
    f.raw("carol-token", "/api/v1/namespaces/nowhere/executions").await;
    assert_eq!(f.sim.requests("create", SAR, "") - before, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_malformed_and_rejected_tokens_get_401_and_no_resource_information() {
    let Some(f) = fixture(settings()).await else { return };
    let base = &f.service.base;
    let http = reqwest::Client::new();
    let paths = [
        "/api/v1/executions",
        "/api/v1/namespaces/team-a/executions",
        "/api/v1/namespaces/team-a/executions/a-1",
        "/api/v1/pipelines",
        "/api/v1/namespaces/team-a/pipelines",
        "/api/v1/namespaces/team-a/pipelines/web",
        "/api/v1/rejections",
        "/api/v1/namespaces/team-a/rejections",
        "/api/v1/modules",
        "/api/v1/executions?access_token=alice-token",
    ];
    for path in paths {
        for auth in [None, Some("Basic YWxpY2U6eA=="), Some("Bearer"), Some("Bearer not-a-token")] {
            let mut request = http.get(format!("{base}{path}"));
            if let Some(value) = auth {
                request = request.header("authorization", value);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 401, "{path} {auth:?}");
            assert_eq!(response.headers()["www-authenticate"], "Bearer realm=\"execwatch\"");
            let body = response.text().await.unwrap();
            assert!(!body.contains("team-") && !body.contains("a-1"), "{body}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_grant_takes_effect_within_the_ttl_and_ends_an_open_long_poll() {
    let short =
        AccessSettings { allow_ttl: Duration::from_millis(500), deny_ttl: Duration::from_millis(500), ..settings() };
    let Some(f) = fixture(short).await else { return };
    let (namespaced, wide) = ("/api/v1/namespaces/team-a/executions", "/api/v1/executions");
    let alice = Some("alice-token");
    let (held, held_wide) = (f.service.etag(namespaced, alice).await, f.service.etag(wide, alice).await);
    let poll = f.service.long_poll(&format!("{namespaced}?timeoutSeconds=300"), &held, alice);
    let wide_poll = f.service.long_poll(&format!("{wide}?timeoutSeconds=300"), &held_wide, alice);
    let (_, all) = f.get("alice-token", "/api/v1/executions").await;
    assert_eq!(sorted(&all), ["a-1", "a-2"]);
    f.kubectl.ok(&["delete", "rolebinding", "alice", "-n", "team-a"], None).await.unwrap();
    let ended = tokio::time::timeout(DEADLINE, poll).await.expect("the long poll ends").unwrap().unwrap();
    assert_eq!(ended.status(), 404, "the poll ends with the caller's 404");
    let ended = tokio::time::timeout(DEADLINE, wide_poll).await.expect("the cluster-wide poll ends").unwrap().unwrap();
    let body: serde_json::Value = ended.json().await.unwrap();
    assert!(names(&body).is_empty(), "it answers with what alice may read now: {body}");
    let (status, _) = f.get("alice-token", "/api/v1/namespaces/team-a/executions").await;
    assert_eq!(status, 404);
    let (_, all) = f.get("alice-token", "/api/v1/executions").await;
    assert!(names(&all).is_empty(), "{all}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_or_hanging_review_api_denies_with_503_and_is_not_cached() {
    let quick = AccessSettings { timeout: Duration::from_millis(300), ..settings() };
    let Some(f) = fixture(quick).await else { return };
    f.sim.fail_reviews(Some(500));
    let (status, body) = f.get("bob-token", "/api/v1/executions").await;
    assert_eq!((status, body["code"].as_str()), (503, Some("AuthUnavailable")), "{body}");
    assert!(!body.to_string().contains("team-"), "{body}");
    f.sim.fail_reviews(None);
    f.sim.hang_reviews(true);
    let (status, _) = tokio::time::timeout(DEADLINE, f.get("bob-token", "/api/v1/executions")).await.unwrap();
    assert_eq!(status, 503, "a hanging review is abandoned at the deadline");
    f.sim.hang_reviews(false);
    let (status, bobs) = f.get("bob-token", "/api/v1/executions").await;
    assert_eq!((status, names(&bobs).len()), (200, 3), "errors were not cached: {bobs}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_polls_make_one_token_review_and_one_access_review_per_namespace() {
    let Some(f) = fixture(settings()).await else { return };
    let (reviews, decisions) = (f.sim.requests("create", TOKEN_REVIEWS, ""), f.sim.requests("create", SAR, ""));
    let url = format!("{}/api/v1/executions", f.service.base);
    let http = reqwest::Client::new();
    for _ in 0..20 {
        let batch = (0..50).map(|_| http.get(&url).bearer_auth("bob-token").send());
        for response in futures::future::join_all(batch).await {
            assert_eq!(response.unwrap().status(), 200);
        }
    }
    assert_eq!(f.sim.requests("create", TOKEN_REVIEWS, "") - reviews, 1, "one TokenReview");
    assert_eq!(f.sim.requests("create", SAR, "") - decisions, 2, "one SubjectAccessReview per watched namespace");
}

type Events = std::pin::Pin<Box<dyn futures::Stream<Item = eventsource_stream::Event> + Send>>;

impl Fixture {
    /// Opens a stream of `path` as the holder of `token`.
    async fn stream(&self, token: &str, path: &str) -> Events {
        use eventsource_stream::Eventsource;
        use futures::StreamExt;
        let url = format!("{}{path}", self.service.base);
        let request = reqwest::Client::new().get(url).bearer_auth(token).header("accept", "text/event-stream");
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        Box::pin(response.bytes_stream().eventsource().map(|e| e.expect("well-formed events")))
    }

    /// Creates execution `name` of pipeline `web` in `namespace`, as a writer does.
    async fn put(&self, namespace: &str, name: &str) {
        let cm = Cm::new(namespace, name).doc(&Doc::new("web")).build();
        let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
            kube::Api::namespaced(client_for(&self.sim), namespace);
        api.create(&Default::default(), &cm).await.unwrap();
    }
}

/// The next event that is not a heartbeat, within the deadline.
async fn next(events: &mut Events) -> eventsource_stream::Event {
    use futures::StreamExt;
    tokio::time::timeout(DEADLINE, events.next()).await.expect("an event in time").expect("the stream goes on")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_over_16_kib_or_a_name_that_cannot_be_a_namespace_is_refused_before_any_review() {
    let Some(f) = fixture(settings()).await else { return };
    let (reviews, decisions) = (f.sim.requests("create", TOKEN_REVIEWS, ""), f.sim.requests("create", SAR, ""));
    let huge = "x".repeat(16 * 1024 + 1);
    let (status, body) = f.get(&huge, "/api/v1/executions").await;
    assert_eq!(status, 401, "{body}");
    assert!(body["message"].as_str().unwrap().contains("16 KiB"), "{body}");
    for bad in ["Team-A", "team_a", "a.b", "-a", &"a".repeat(64)] {
        let (status, _) = f.get("alice-token", &format!("/api/v1/namespaces/{bad}/executions")).await;
        assert_eq!(status, 404, "{bad}");
        let (status, _) = f.get("alice-token", &format!("/api/v1/executions?namespace={bad}")).await;
        assert_eq!(status, 404, "{bad}");
    }
    assert_eq!(f.sim.requests("create", TOKEN_REVIEWS, "") - reviews, 1, "alice's token alone was reviewed");
    assert_eq!(f.sim.requests("create", SAR, "") - decisions, 0, "no namespace review for impossible names");
}

/// Reviews in flight are capped with a clear 503, and tokens nobody knows (a flood of random
/// ones) have a budget of their own, a sixteenth of the cap (at least one): they never take the reviews that
/// authenticated callers' decisions need.
#[tokio::test(flavor = "multi_thread")]
async fn reviews_in_flight_are_capped_and_unknown_tokens_cannot_take_them_all() {
    let capped = AccessSettings { max_reviews_in_flight: 8, timeout: Duration::from_secs(20), ..settings() };
    let Some(f) = fixture(capped).await else { return };
    // bob is known: his identity is cached, and so is his list of team-b.
    assert_eq!(f.get("bob-token", "/api/v1/namespaces/team-b/executions").await.0, 200);
    f.sim.hang_reviews(true);
    // Counted from here: the fixture's own requests may have been reviewed already.
    let before = f.sim.requests("create", TOKEN_REVIEWS, "");
    let (base, http) = (f.service.base.clone(), reqwest::Client::new());
    let refused = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let flood: Vec<_> = (0..8)
        .map(|i| {
            let request = http.get(format!("{base}/api/v1/executions")).bearer_auth(format!("stranger-{i}")).send();
            let refused = refused.clone();
            tokio::spawn(async move {
                if request.await.is_ok_and(|r| r.status() == 503) {
                    refused.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            })
        })
        .collect();
    wait_until("every stranger is reviewed or refused", || async {
        let reviewing = f.sim.requests("create", TOKEN_REVIEWS, "") - before;
        (reviewing + refused.load(std::sync::atomic::Ordering::SeqCst) >= 8).then_some(())
    })
    .await;
    let started = std::time::Instant::now();
    let (status, body) = f.get("stranger-9", "/api/v1/executions").await;
    assert_eq!((status, body["code"].as_str()), (503, Some("TooManyReviews")), "{body}");
    assert!(started.elapsed() < Duration::from_secs(10), "refused at once, not at the review deadline");
    assert_eq!(f.sim.requests("create", TOKEN_REVIEWS, "") - before, 1, "a sixteenth of the cap for unknown tokens");
    // The strangers' reviews still hang; bob's new decision is made all the same.
    f.sim.hang_reviews(false);
    let (status, body) = f.get("bob-token", "/api/v1/namespaces/team-b/executions/b-1").await;
    assert_eq!(status, 200, "{body}");
    for request in flood {
        request.abort();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_verb_authorised_is_the_verb_served() {
    let Some(f) = fixture(settings()).await else { return };
    let service = &f.service;
    let status = |token: &'static str, path: &'static str| async move {
        // A stream is never read here: only its status matters.
        service.get_as(path, token).await.status().as_u16()
    };
    assert_eq!(status("dave-token", "/api/v1/namespaces/team-a/executions/a-1").await, 200, "dave may get");
    for path in [
        "/api/v1/namespaces/team-a/executions",
        "/api/v1/namespaces/team-a/executions/",
        "/api/v1/executions?namespace=team-a",
        "/api/v1/namespaces/team-a/executions/a-1?watch=true",
        "/api/v1/namespaces/team-a/executions/a-1?timeoutSeconds=1",
    ] {
        assert_eq!(status("dave-token", path).await, 404, "dave may not list or watch: {path}");
    }
    assert_eq!(status("erin-token", "/api/v1/namespaces/team-a/executions/").await, 200, "erin may list");
    let url = format!("{}/api/v1/namespaces/team-a/executions", f.service.base);
    let two_accepts = reqwest::Client::new()
        .get(url)
        .bearer_auth("erin-token")
        .header("accept", "application/json")
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(two_accepts.status(), 404, "a stream is a watch, whichever Accept header asks for it");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reader_of_every_watched_namespace_gets_none_watched_later_before_it_is_reviewed() {
    let selected = Namespaces::Selected(SELECTED.parse().unwrap());
    let Some(f) = fixture_with(settings(), selected, &["team-a"]).await else { return };
    f.wait_for("admin", "team-a is served", "/api/v1/executions", |b| names(b).len() == 2).await;
    // alice may read team-a, the one namespace watched now: every namespace there is.
    let mut events = f.stream("alice-token", "/api/v1/executions").await;
    assert_eq!(names(&serde_json::from_str(&next(&mut events).await.data).unwrap()).len(), 2);
    label(&f.sim, "team-b").await;
    f.wait_for("admin", "team-b is served", "/api/v1/executions", |b| names(b).len() == 5).await;
    f.put("team-b", "b-later").await;
    f.wait_for("admin", "b-later is served", "/api/v1/executions", |b| names(b).contains(&"b-later".into())).await;
    f.put("team-a", "a-later").await;
    let event = next(&mut events).await;
    assert_eq!(event.event, "added");
    assert!(event.data.contains("a-later"), "nothing of team-b reached alice before: {}", event.data);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_ends_when_its_token_is_revoked_though_its_grants_stand() {
    let short =
        AccessSettings { allow_ttl: Duration::from_millis(300), deny_ttl: Duration::from_millis(300), ..settings() };
    let Some(f) = fixture(short).await else { return };
    let mut events = f.stream("alice-token", "/api/v1/namespaces/team-a/executions").await;
    assert_eq!(next(&mut events).await.event, "snapshot");
    f.sim.set_token_file(&TOKENS.replace("alice-token,", "alice-new-token,")).unwrap();
    let closed = next(&mut events).await;
    assert_eq!(closed.event, "closed", "{closed:?}");
    assert_eq!(f.get("alice-token", "/api/v1/namespaces/team-a/executions").await.0, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_are_read_only_with_a_token_allowed_the_metrics_url() {
    let Some(f) = fixture(settings()).await else { return };
    let url = f.service.metrics.clone().expect("metrics are served");
    let http = reqwest::Client::new();
    let anonymous = http.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let forbidden = http.get(&url).bearer_auth("admin-token").send().await.unwrap();
    assert_eq!(forbidden.status(), 403, "reading every namespace's executions is not reading /metrics");
    let scraper = http.get(&url).bearer_auth("prom-token").send().await.unwrap();
    assert_eq!(scraper.status(), 200);
    assert!(scraper.text().await.unwrap().contains("team-a"), "the scraper sees the counts by namespace");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_an_audience_only_tokens_made_for_it_are_accepted() {
    let audience = AccessSettings { audience: Some("execwatch".into()), ..settings() };
    let Some(f) = fixture_with(audience, Namespaces::Listed(vec!["team-a".into()]), &[]).await else { return };
    f.sim.add_bound_token("bound-token", "team-a", "dashboard", &["execwatch"]);
    f.sim.add_bound_token("other-token", "team-a", "dashboard", &["vault"]);
    let sa = "--serviceaccount=team-a:dashboard";
    f.kubectl
        .ok(&["create", "rolebinding", "sa", "-n", "team-a", "--clusterrole=execwatch-executions-reader", sa], None)
        .await
        .unwrap();
    f.wait_for("bound", "the bound token reads team-a", "/api/v1/namespaces/team-a/executions", |b| {
        names(b).len() == 2
    })
    .await;
    assert_eq!(f.get("other-token", "/api/v1/executions").await.0, 401, "a token made for another audience");
    assert_eq!(f.get("alice-token", "/api/v1/executions").await.0, 401, "an API-server token");
    // A token minted by a TokenRequest for the audience, as `kubectl create token` makes one.
    let minted = f.kubectl.ok(&["create", "token", "dashboard", "-n", "team-a", "--audience", "execwatch"], None);
    let minted = minted.await.unwrap();
    let (status, body) = f.get(minted.trim(), "/api/v1/namespaces/team-a/executions").await;
    assert_eq!((status, names(&body).len()), (200, 2), "{body}");
    // The command line mints its own, through the kubeconfig, and sends only that.
    let kubeconfig = f._dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, f.sim.kubeconfig()).unwrap();
    let get = |audience: &'static str| {
        let args = ["get", "executions", "-o", "name", "--server", f.service.base.as_str()];
        std::process::Command::new(env!("CARGO_BIN_EXE_execwatch"))
            .args(args)
            .args(["--service-account", "team-a/dashboard", "--audience", audience])
            .env("KUBECONFIG", &kubeconfig)
            .env("EXECWATCH_LOG_LEVEL", "warn")
            .output()
            .unwrap()
    };
    let out = get("execwatch");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2, "team-a's two runs");
    let out = get("vault");
    assert_eq!(out.status.code(), Some(3), "a token for another audience is refused");
}
