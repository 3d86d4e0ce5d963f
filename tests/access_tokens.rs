//! The `tokens=FILE` authority with the directory source, and the per-caller limits: a file
//! edit takes effect without a restart, a broken edit refuses every token until it is mended
//! (so a revocation with a typo still revokes), only readers of everything see the file's
//! status, long polls
//! and request rates are capped per subject, and tokens never reach the logs.

mod common;

use std::num::NonZeroU32;
use std::time::Duration;

use common::{Running, Setup, dir_source, names, tokens_file, wait_until, web_run};
use execwatch::access::Access;
use execwatch::access::tokens::TokenFile;
use execwatch::api::CallerLimits;

struct Fixture {
    service: Running,
    tokens: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

async fn fixture(limits: CallerLimits) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("a.yaml"), web_run("team-a", "a-1")).unwrap();
    std::fs::write(data.join("b.yaml"), web_run("team-b", "b-1")).unwrap();
    std::fs::write(data.join("broken.yaml"), "kind: ConfigMap\nmetadata: [unclosed\n").unwrap();
    let tokens = dir.path().join("tokens.yaml");
    std::fs::write(
        &tokens,
        tokens_file(&[("dashboard", "s3cret-dashboard", "[team-a]"), ("ops", "s3cret-ops", "['*']")]),
    )
    .unwrap();
    let file = TokenFile::load(&tokens, Duration::from_millis(100)).unwrap();
    let setup = Setup { access: Access::tokens(file), limits, ..Setup::default() };
    let service = Running::launch(dir_source(&data, Duration::from_millis(50)), setup).await;
    Fixture { service, tokens, _dir: dir }
}

async fn names_as(service: &Running, token: &str, path: &str) -> (u16, Vec<String>) {
    let response = service.get_as(path, token).await;
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap();
    let mut names = names(&body);
    names.sort();
    (status, names)
}

#[tokio::test]
async fn a_tokens_file_edit_takes_effect_without_a_restart_and_a_broken_one_refuses_every_token() {
    let f = fixture(CallerLimits::new(8, 10_000, None)).await;
    wait_until("ops sees both", || async {
        (names_as(&f.service, "s3cret-ops", "/api/v1/executions").await.1.len() == 2).then_some(())
    })
    .await;
    assert_eq!(names_as(&f.service, "s3cret-dashboard", "/api/v1/executions").await, (200, vec!["a-1".into()]));
    assert_eq!(names_as(&f.service, "s3cret-dashboard", "/api/v1/namespaces/team-b/executions").await.0, 404);
    let files = |token| names_as(&f.service, token, "/api/v1/rejections");
    assert_eq!(files("s3cret-ops").await.1, ["broken.yaml"], "an unreadable file shows to a reader of everything");
    assert!(files("s3cret-dashboard").await.1.is_empty(), "and to nobody else");

    std::fs::write(&f.tokens, tokens_file(&[("dashboard", "s3cret-dashboard", "[team-a, team-b]")])).unwrap();
    wait_until("the edit grants team-b", || async {
        let seen = names_as(&f.service, "s3cret-dashboard", "/api/v1/executions").await;
        (seen == (200, vec!["a-1".into(), "b-1".into()])).then_some(())
    })
    .await;
    wait_until("the removed token is refused", || async {
        (names_as(&f.service, "s3cret-ops", "/api/v1/executions").await.0 == 401).then_some(())
    })
    .await;

    let service = &f.service;
    let readyz = |token: &'static str| async move {
        let response = service.get_as("/readyz", token).await;
        response.json::<serde_json::Value>().await.unwrap()
    };
    let ready = readyz("s3cret-dashboard").await;
    assert_eq!(ready["tokensFile"]["tokens"], 1, "a reader of every namespace sees the file's status: {ready}");

    // A revocation with a typo: the file no longer parses, and no token stays valid.
    std::fs::write(&f.tokens, "tokens:\n  - subject: x\n    token: in-clear\n").unwrap();
    wait_until("a broken edit refuses every token", || async {
        (names_as(&f.service, "s3cret-dashboard", "/api/v1/executions").await.0 == 401).then_some(())
    })
    .await;

    std::fs::write(&f.tokens, tokens_file(&[("dashboard", "s3cret-dashboard", "[team-a]")])).unwrap();
    wait_until("the mended file is in force", || async {
        let seen = names_as(&f.service, "s3cret-dashboard", "/api/v1/executions").await;
        (seen == (200, vec!["a-1".into()])).then_some(())
    })
    .await;
    let ready = readyz("s3cret-dashboard").await;
    assert!(
        ready.get("tokensFile").is_none(),
        "the file's path and errors are not for a reader of one namespace: {ready}"
    );
}

#[tokio::test]
async fn long_polls_and_request_rates_are_capped_per_subject() {
    let f = fixture(CallerLimits::new(2, 10_000, NonZeroU32::new(1000))).await;
    wait_until("both runs are served", || async {
        let body: serde_json::Value = f.service.get_as("/api/v1/executions", "s3cret-ops").await.json().await.unwrap();
        (names(&body).len() == 2).then_some(body)
    })
    .await;
    let (ops, dashboard) = (
        f.service.etag("/api/v1/executions", Some("s3cret-ops")).await,
        f.service.etag("/api/v1/executions", Some("s3cret-dashboard")).await,
    );
    let path = "/api/v1/executions?timeoutSeconds=300";
    let hold = |token: &'static str| {
        let etag = if token == "s3cret-ops" { &ops } else { &dashboard };
        f.service.long_poll(path, etag, Some(token))
    };
    let held_now = |count: u64| {
        let service = &f.service;
        wait_until("the polls are held", move || async move {
            let body: serde_json::Value = service.get_as("/readyz", "s3cret-ops").await.json().await.unwrap();
            (body["waiting"] == count).then_some(())
        })
    };
    let mut held = vec![hold("s3cret-ops"), hold("s3cret-ops")];
    held_now(2).await;
    // How many follow counts every namespace's followers: shown to readers of everything only.
    let readiness: serde_json::Value = f.service.get_as("/readyz", "s3cret-dashboard").await.json().await.unwrap();
    assert!(readiness.get("waiting").is_none(), "{readiness}");
    let refused = hold("s3cret-ops").await.unwrap().unwrap();
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "TooManyRequests");
    held.push(hold("s3cret-dashboard"));
    held_now(3).await;
    f.service.stop().await;
    for poll in held {
        let answered = poll.await.unwrap().unwrap();
        assert_eq!(answered.status(), 304, "held polls are answered at shutdown: nothing changed");
    }

    let f = fixture(CallerLimits::new(2, 10_000, NonZeroU32::new(3))).await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(f.service.get_as("/api/v1/modules", "s3cret-ops").await.status().as_u16());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 3, "{statuses:?}");
    assert_eq!(f.service.get_as("/api/v1/modules", "s3cret-dashboard").await.status(), 200, "rates are per subject");
}

#[tokio::test]
async fn an_anonymous_caller_learns_nothing_of_modules_not_even_that_one_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.yaml");
    std::fs::write(&tokens, tokens_file(&[("ops", "s3cret-ops", "['*']")])).unwrap();
    let file = TokenFile::load(&tokens, Duration::from_millis(100)).unwrap();
    let modules = vec![execwatch::model::ModuleName::Executions];
    let setup = Setup { access: Access::tokens(file), modules, ..Setup::default() };
    let service = Running::launch(dir_source(dir.path(), Duration::from_millis(50)), setup).await;
    let (status, body) = service.get("/api/v1/pipelines").await;
    assert_eq!(status, 401, "authentication comes before the module gate: {body}");
    let response = service.get_as("/api/v1/pipelines", "s3cret-ops").await;
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "ModuleNotInstalled", "{body}");
}
