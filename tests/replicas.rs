//! Two replicas on one API server serve the same data with the same ETags, so a UI may poll
//! either of them, conditionally, through one Service.

mod common;

use common::{Cluster, Running, client_for, fast_watch, names};
use execwatch::Sources;
use execwatch::fixtures::Doc;

async fn fetch(service: &Running, path: &str) -> (String, bytes::Bytes) {
    let response = reqwest::get(format!("{}{path}", service.base)).await.expect("service answers");
    assert_eq!(response.status(), 200, "{path}");
    let etag = response.headers()["etag"].to_str().expect("ETag").to_owned();
    (etag, response.bytes().await.expect("body"))
}

#[tokio::test]
async fn two_replicas_converge_to_the_same_lists_and_etags() {
    let c = Cluster::start(&["team-a", "team-b"], &["team-a", "team-b"]).await;
    let sources = Sources::Kube {
        client: client_for(&c.sim),
        namespaces: vec!["team-a".into(), "team-b".into()].into(),
        watch: fast_watch(),
    };
    let second = Running::launch(sources, common::Setup::default()).await;
    for (ns, name, pipeline) in [("team-a", "run-1", "web"), ("team-a", "run-2", "api"), ("team-b", "run-3", "web")] {
        c.put_execution(ns, name, &Doc::new(pipeline)).await;
    }
    c.put_execution("team-a", "run-1", &Doc::new("web").phase("Succeeded")).await;
    for service in [&c.service, &second] {
        service
            .wait_for("every run, and the update, are served", "/api/v1/executions?phase=Succeeded", |b| {
                names(b) == ["run-1"]
            })
            .await;
        service.wait_for("every run is served", "/api/v1/executions", |b| names(b).len() == 3).await;
    }
    for path in [
        "/api/v1/executions",
        "/api/v1/namespaces/team-a/executions?pipeline=web",
        "/api/v1/namespaces/team-a/executions/run-1",
        "/api/v1/pipelines",
        "/api/v1/namespaces/team-b/pipelines/web",
    ] {
        let (first_tag, first_body) = fetch(&c.service, path).await;
        let (second_tag, second_body) = fetch(&second, path).await;
        assert_eq!(first_body, second_body, "{path}: the same body");
        assert_eq!(first_tag, second_tag, "{path}: the same ETag");
    }
    second.stop().await;
}
