//! The HTTP server as a careless client, an attacker and an orchestrator meet it: slow and idle
//! connections are closed, connections are capped, shutdown answers long polls and ends within
//! its grace period, errors echo little, and methods are answered as RFC 9110 asks.

mod common;

use std::time::Duration;

use common::{Running, dir_source, names, web_run};
use execwatch::api::ServerSettings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn service(server: ServerSettings) -> (tempfile::TempDir, Running) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), web_run("team-a", "one")).unwrap();
    let sources = dir_source(dir.path(), Duration::from_millis(50));
    let service = Running::launch(sources, common::Setup { server, ..common::Setup::default() }).await;
    service.wait_for("one is served", "/api/v1/executions", |b| names(b) == ["one"]).await;
    (dir, service)
}

/// Reads until the server closes the connection; fails the test past the deadline.
async fn closed_by_server(mut stream: TcpStream) {
    let mut buf = [0u8; 1024];
    let read_all = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(common::DEADLINE, read_all).await.expect("the server closes the connection");
}

#[tokio::test]
async fn slow_and_idle_connections_are_closed() {
    let settings = ServerSettings { header_read_timeout: Duration::from_millis(300), ..ServerSettings::default() };
    let (_dir, service) = service(settings).await;
    // Headers trickling in, never finished.
    let mut slow = TcpStream::connect(service.address()).await.unwrap();
    slow.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Slow: a").await.unwrap();
    // A connection that never sends anything.
    let idle = TcpStream::connect(service.address()).await.unwrap();
    closed_by_server(slow).await;
    closed_by_server(idle).await;
    service.stop().await;
}

#[tokio::test]
async fn a_full_connection_cap_waits_for_slots_instead_of_failing() {
    let settings = ServerSettings {
        header_read_timeout: Duration::from_millis(300),
        max_connections: 2,
        ..ServerSettings::default()
    };
    let (_dir, service) = service(settings).await;
    let hogs =
        [TcpStream::connect(service.address()).await.unwrap(), TcpStream::connect(service.address()).await.unwrap()];
    // The hogs hold both slots until the header timeout frees them; then this is served.
    let (status, body) = service.get("/livez").await;
    assert_eq!((status, &body["status"]), (200, &serde_json::json!("ok")));
    for hog in hogs {
        closed_by_server(hog).await;
    }
    service.stop().await;
}

#[tokio::test]
async fn shutdown_answers_long_polls_at_once_and_closes_what_is_left_after_the_grace() {
    let settings = ServerSettings { shutdown_grace: Duration::from_millis(500), ..ServerSettings::default() };
    let (_dir, mut service) = service(settings).await;
    let held = service.etag("/api/v1/executions", None).await;
    let polls: Vec<_> =
        (0..50).map(|_| service.long_poll("/api/v1/executions?timeoutSeconds=300", &held, None)).collect();
    // A request whose headers never finish must not hold the exit.
    let mut half = TcpStream::connect(service.address()).await.unwrap();
    half.write_all(b"GET /api/v1/executions HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    service.wait_for("the polls are waiting", "/readyz", |b| b["waiting"] == 50).await;

    service.begin_stop();
    for poll in polls {
        let answered = tokio::time::timeout(common::DEADLINE, poll).await.expect("the long poll is answered at once");
        let response = answered.unwrap().expect("the long poll is answered, not reset");
        assert_eq!(response.status(), 304, "nothing changed: the client's page is current");
        assert!(response.bytes().await.unwrap().is_empty());
    }
    tokio::time::timeout(common::DEADLINE, service.stopped()).await.expect("shutdown ends after the grace period");
    closed_by_server(half).await;
}

#[tokio::test]
async fn head_is_get_without_a_body_and_other_methods_get_405_with_allow() {
    let (_dir, service) = service(ServerSettings::default()).await;
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/executions", service.base);
    let get = http.get(&url).send().await.unwrap().bytes().await.unwrap();
    let head = http.head(&url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"].to_str().unwrap(), get.len().to_string());
    assert!(head.bytes().await.unwrap().is_empty());

    for method in [reqwest::Method::POST, reqwest::Method::DELETE, reqwest::Method::PUT] {
        let response = http.request(method.clone(), &url).send().await.unwrap();
        assert_eq!(response.status(), 405, "{method}");
        assert_eq!(response.headers()["allow"], "GET, HEAD", "{method}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["code"], "MethodNotAllowed");
    }
    service.stop().await;
}

#[tokio::test]
async fn errors_quote_only_a_short_prefix_of_hostile_input() {
    let (_dir, service) = service(ServerSettings::default()).await;
    let long = "k".repeat(60_000);
    for path in [
        format!("/api/v1/executions?labelSelector={long}"),
        format!("/api/v1/executions?{long}=1"),
        format!("/api/v1/executions?limit={long}"),
        format!("/api/v1/namespaces/team-a/executions/{long}"),
        format!("/api/v1/namespaces/{long}/pipelines/x"),
    ] {
        let (status, body) = service.get(&path).await;
        assert!(status == 400 || status == 404, "{status}");
        let message = body["message"].as_str().unwrap();
        assert!(message.len() < 300 && message.contains("60000 bytes"), "{}", &message[..message.len().min(400)]);
    }
    service.stop().await;
}

#[tokio::test]
async fn cors_admits_only_the_listed_origins_and_every_response_is_nosniff() {
    let ui = "https://ui.example.com";
    let settings = ServerSettings { cors_origins: vec![ui.to_owned()], ..ServerSettings::default() };
    let (_dir, service) = service(settings).await;
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/executions", service.base);

    let preflight = http
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", ui)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization, if-none-match, last-event-id")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 200);
    assert_eq!(preflight.headers()["access-control-allow-origin"], ui);
    let allowed = preflight.headers()["access-control-allow-headers"].to_str().unwrap().to_owned();
    for header in ["authorization", "if-none-match", "last-event-id"] {
        assert!(allowed.contains(header), "{allowed}");
    }

    let get = http.get(&url).header("origin", ui).send().await.unwrap();
    assert_eq!(get.status(), 200);
    assert_eq!(get.headers()["access-control-allow-origin"], ui);
    assert!(get.headers()["access-control-expose-headers"].to_str().unwrap().contains("etag"));
    assert!(get.headers().get_all("vary").iter().any(|v| v == "Origin"));
    assert_eq!(get.headers()["x-content-type-options"], "nosniff");

    let traced = http.get(&url).header("x-request-id", "trace-42.a_b").send().await.unwrap();
    assert_eq!(traced.headers()["x-request-id"], "trace-42.a_b", "a plain client id is kept");
    let hostile = http.get(&url).header("x-request-id", "a b;rm -rf /").send().await;
    assert_ne!(hostile.unwrap().headers()["x-request-id"], "a b;rm -rf /", "anything else is replaced");
    let other = http.get(&url).header("origin", "https://evil.example.com").send().await.unwrap();
    assert_eq!(other.status(), 403);
    assert!(other.headers().get("access-control-allow-origin").is_none());
    assert_eq!(other.json::<serde_json::Value>().await.unwrap()["code"], "CorsForbidden");

    for path in ["/api/v1/nothing", "/healthz", "/readyz", "/api/v1/executions?limit=0"] {
        let response = http.get(format!("{}{path}", service.base)).send().await.unwrap();
        assert_eq!(response.headers()["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(response.headers()["x-request-id"].len(), 16, "a request id of its own: {path}");
        assert!(response.headers().get("access-control-allow-origin").is_none(), "no Origin, no CORS: {path}");
    }
    service.stop().await;
}
