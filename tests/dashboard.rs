//! The built-in dashboard in a real browser (headless Chromium over WebDriver), against the
//! service on the simulator with the bundled examples written by a kube-rs client: the board,
//! live updates without a reload, rejections, a module switched off, and access by token.
//! `EXECWATCH_SCREENSHOT=docs/dashboard.png` saves the board as the README shows it.

mod common;

use std::time::Duration;

use common::browser::Browser;
use common::{Cluster, Running, Setup, fast_watch, names, wait_until};
use execwatch::access::Access;
use execwatch::access::tokens::TokenFile;
use execwatch::fixtures::Doc;
use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::json;

const TEAMS: [&str; 2] = ["team-payments", "team-storefront"];

/// The simulator with the examples written into it, and the service watching both teams.
async fn cluster() -> Cluster {
    let c = Cluster::start(&TEAMS, &TEAMS).await;
    for cm in common::examples() {
        c.put(cm).await;
    }
    c.service.wait_for("the examples are served", "/api/v1/executions", |b| names(b).len() == 7).await;
    c
}

/// A writer's update of one execution: the example with `staging` (and its target) at `phase`.
fn checkout_43_with_staging(phase: &str) -> ConfigMap {
    let mut cm =
        common::examples().into_iter().find(|cm| cm.metadata.name.as_deref() == Some("checkout-api-43")).unwrap();
    let data = cm.data.as_mut().unwrap();
    let doc = data["execution.yaml"].replace(
        "  - name: staging\n    phase: Running\n    startedAt: \"2026-11-22T08:15:00Z\"\n    targets:\n      - cluster: staging-eu-1\n        namespace: checkout\n        phase: Running",
        &format!("  - name: staging\n    phase: {phase}\n    startedAt: \"2026-11-22T08:15:00Z\"\n    targets:\n      - cluster: staging-eu-1\n        namespace: checkout\n        phase: {phase}"),
    );
    assert!(doc.contains(&format!("phase: {phase}")), "the example changed shape:\n{doc}");
    data.insert("execution.yaml".to_owned(), doc);
    cm
}

const CHECKOUT_STAGING: &str = "tr[data-key='team-payments/checkout-api'] td[data-environment='staging']";

#[tokio::test(flavor = "multi_thread")]
async fn the_board_shows_the_pipelines_and_a_phase_change_without_a_reload() {
    let c = cluster().await;
    let Some(browser) = Browser::start(1280, 720).await else { return };
    browser.goto(&format!("{}/", c.service.base)).await;
    browser
        .wait_texts(
            "the examples' pipelines are on the board",
            "table.board tbody th a",
            &["checkout-api", "ledger", "storefront"],
        )
        .await;
    assert_eq!(browser.texts("table.board thead th").await[1..4], ["dev", "staging", "prod"], "promotion order");
    let cell = browser.text(CHECKOUT_STAGING).await.unwrap();
    assert!(cell.contains("Running") && cell.contains("1.42.1"), "phase in words and the version: {cell}");
    let prod = browser.text("tr[data-key='team-payments/checkout-api'] td[data-environment='prod']").await.unwrap();
    assert!(prod.contains("Succeeded") && prod.contains("1.41.0"), "prod keeps the version that got there: {prod}");
    browser.wait_text("the board is live", "#live", |t| t.contains("live")).await;
    if let Ok(path) = std::env::var("EXECWATCH_SCREENSHOT") {
        let png = browser.client.screenshot().await.expect("screenshot");
        std::fs::write(&path, png).expect("write the screenshot");
        println!("saved {path}");
    }

    browser.mark().await;
    let written = tokio::time::Instant::now();
    c.put(checkout_43_with_staging("Succeeded")).await;
    browser.wait_text("the staging cell follows the change", CHECKOUT_STAGING, |t| t.contains("Succeeded")).await;
    println!("a change in the simulator showed on the board after {:?}", written.elapsed());
    assert!(browser.still_marked().await, "the page was not reloaded");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_configmap_moves_to_rejections_with_its_reason() {
    let c = cluster().await;
    let Some(browser) = Browser::start(1024, 768).await else { return };
    browser.goto(&format!("{}/#/rejections", c.service.base)).await;
    browser.wait_text("the examples' rejections show", ".rejections", |t| t.contains("storefront-9")).await;
    browser.mark().await;

    let mut broken = checkout_43_with_staging("Running");
    let data = broken.data.as_mut().unwrap();
    let doc = data["execution.yaml"].replacen("phase: Running", "phase: Exploded", 1);
    data.insert("execution.yaml".to_owned(), doc);
    c.put(broken).await;
    let card = browser
        .wait_text("checkout-api-43 is rejected", "article[data-key='team-payments/checkout-api-43']", |_| true)
        .await;
    assert!(card.contains("SchemaViolation") && card.contains("/phase"), "code and pointer: {card}");
    assert!(card.contains("Exploded"), "the reason quotes the value: {card}");
    assert!(browser.still_marked().await, "the page was not reloaded");

    browser.goto(&format!("{}/#/executions", c.service.base)).await;
    browser.wait_text("the executions page shows", "main table tbody", |t| t.contains("checkout-api-42")).await;
    assert!(!browser.text("main table tbody").await.unwrap().contains("checkout-api-43"), "no longer served");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_environment_that_ended_without_a_finish_time_shows_no_growing_duration() {
    let c = cluster().await;
    let Some(browser) = Browser::start(1024, 768).await else { return };
    browser.goto(&format!("{}/#/execution/team-payments/checkout-api-43", c.service.base)).await;
    let staging = "ol.timeline li:nth-child(2)";
    let running = browser.wait_text("the timeline shows", staging, |t| t.contains("so far")).await;
    assert!(running.contains(" d "), "days since the example started, not hundreds of hours: {running}");
    c.put(checkout_43_with_staging("Succeeded")).await;
    let ended = browser.wait_text("staging ends", staging, |t| t.contains("Succeeded")).await;
    assert!(ended.contains("duration unknown") && !ended.contains("so far"), "{ended}");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_switched_off_pipelines_module_says_so_and_executions_still_work() {
    let c = cluster().await;
    c.install_crd().await;
    for module in ["executions", "pipelines", "rejections"] {
        c.set_module(module, true).await;
    }
    let Some(browser) = Browser::start(1024, 768).await else { return };
    browser.goto(&format!("{}/", c.service.base)).await;
    browser.wait_text("the board shows", "table.board tbody", |t| t.contains("checkout-api")).await;

    c.set_module("pipelines", false).await;
    browser
        .wait_text("the board says the module is off", "main .notice", |t| t == "module pipelines is not installed")
        .await;
    assert_eq!(browser.texts("table.board tbody tr").await.len(), 0, "no stale pipelines stay on show");
    browser.goto(&format!("{}/#/executions?pipeline=checkout-api", c.service.base)).await;
    browser
        .wait_texts(
            "the executions page still works, filtered from the URL",
            "main table tbody th a",
            &["checkout-api-43", "checkout-api-42", "checkout-api-41"],
        )
        .await;

    c.set_module("pipelines", true).await;
    browser.goto(&format!("{}/", c.service.base)).await;
    browser.wait_text("the board is back", "table.board tbody", |t| t.contains("checkout-api")).await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_for_one_team_shows_that_teams_namespaces_only() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.yaml");
    let digest = execwatch::access::digest_hex("payments-s3cret");
    std::fs::write(
        &tokens,
        format!("tokens:\n  - subject: payments\n    sha256: {digest}\n    namespaces: [team-payments]\n"),
    )
    .unwrap();
    let access = Access::tokens(TokenFile::load(&tokens, Duration::from_millis(100)).unwrap());
    let c = Cluster::launch(&TEAMS, &TEAMS, fast_watch(), Setup { access, ..Setup::default() }).await;
    for cm in common::examples() {
        c.put(cm).await;
    }
    let service = &c.service;
    wait_until("the service is ready", || async { (service.get("/readyz").await.0 == 200).then_some(()) }).await;

    let Some(browser) = Browser::start(1024, 768).await else { return };
    browser.goto(&format!("{}/", service.base)).await;
    wait_until("the sign-in dialog opens", || async {
        (browser.eval("return document.getElementById('login').open", vec![]).await == json!(true)).then_some(())
    })
    .await;
    browser
        .eval(
            "document.getElementById('login-token').value = arguments[0]; \
             document.getElementById('login-form').requestSubmit();",
            vec![json!("payments-s3cret")],
        )
        .await;
    browser.wait_texts("team-payments' pipelines show", "table.board tbody th a", &["checkout-api", "ledger"]).await;
    let namespaces = browser.texts("table.board tbody th .muted").await;
    assert!(namespaces.iter().all(|ns| ns == "team-payments"), "{namespaces:?}");
    browser.goto(&format!("{}/#/executions", service.base)).await;
    browser.wait_text("executions show", "main table tbody", |t| t.contains("checkout-api-43")).await;
    assert!(!browser.text("main table tbody").await.unwrap().contains("team-storefront"));

    let kept = browser.eval("return sessionStorage.getItem('execwatch.token')", vec![]).await;
    assert_eq!(kept, json!("payments-s3cret"), "the token is kept for the tab");
    let url = browser.client.current_url().await.unwrap();
    assert!(!url.as_str().contains("s3cret"), "never in a URL: {url}");
    browser.close().await;
}

#[tokio::test]
async fn the_dashboard_is_served_with_a_strict_policy_and_can_be_switched_off() {
    let dir = tempfile::tempdir().unwrap();
    let on = Running::launch(common::dir_source(dir.path(), Duration::from_millis(50)), common::Setup::default()).await;
    let page = reqwest::get(format!("{}/", on.base)).await.unwrap();
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(policy.contains("default-src 'none'") && policy.contains("script-src 'self'"), "{policy}");
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let script = reqwest::get(format!("{}/ui/app.js", on.base)).await.unwrap();
    assert!(script.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
    let etag = script.headers()["etag"].to_str().unwrap().to_owned();
    let again = reqwest::Client::new()
        .get(format!("{}/ui/app.js", on.base))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304, "an unchanged file is not sent again");
    assert_eq!(on.get("/ui/missing.js").await.0, 404);
    on.stop().await;

    let server = execwatch::api::ServerSettings { dashboard: false, ..Default::default() };
    let sources = common::dir_source(dir.path(), Duration::from_millis(50));
    let off = Running::launch(sources, common::Setup { server, ..common::Setup::default() }).await;
    let (status, body) = off.get("/").await;
    assert_eq!(status, 404);
    assert!(body["message"].as_str().unwrap().contains("--ui=false"), "{body}");
    assert_eq!(off.get("/ui/app.js").await.0, 404);
    assert_eq!(off.get("/api/v1/executions").await.0, 200, "the API needs no UI");
    off.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_board_fits_360_pixels_and_works_by_keyboard() {
    let c = cluster().await;
    let Some(browser) = Browser::start(360, 740).await else { return };
    browser.goto(&format!("{}/", c.service.base)).await;
    browser.wait_text("the board shows", "table.board tbody", |t| t.contains("checkout-api")).await;
    let overflow = browser.eval("return document.documentElement.scrollWidth - window.innerWidth", vec![]).await;
    assert!(overflow.as_i64().is_some_and(|px| px <= 0), "the page scrolls sideways by {overflow} px at 360 px");

    // Tab from the top: the skip link, the brand, then the views; Enter follows a link.
    const TAB: &str = "\u{E004}";
    const ENTER: &str = "\u{E007}";
    let body = browser.client.find(fantoccini::Locator::Css("body")).await.expect("body");
    body.send_keys(TAB).await.expect("tab");
    let focused = || async { browser.eval("return document.activeElement.textContent.trim()", vec![]).await };
    assert_eq!(focused().await, json!("Skip to content"));
    for _ in 0..3 {
        browser.client.active_element().await.expect("focus").send_keys(TAB).await.expect("tab");
    }
    assert_eq!(focused().await, json!("Executions"));
    browser.client.active_element().await.expect("focus").send_keys(ENTER).await.expect("enter");
    browser.wait_text("the executions page opens", "main h1", |t| t == "Executions").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn archived_executions_are_marked_and_the_list_pages_into_history() {
    let file = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", file.path().join("history.db").display()).parse().unwrap();
    let archive = execwatch::history::ArchiveSettings::new(url, Duration::from_secs(86400));
    let c = Cluster::launch(&TEAMS, &TEAMS, fast_watch(), Setup { archive: Some(archive), ..Setup::default() }).await;
    // 55 runs, 10 of them deleted: the first page (50) ends in history, the second is all history.
    for i in 0..55 {
        let doc = Doc::new("web").started_at(&format!("2026-11-01T10:{i:02}:00Z"));
        c.put_execution("team-payments", &format!("run-{i:02}"), &doc).await;
    }
    c.service.wait_for("every run is served", "/api/v1/executions?limit=100", |b| names(b).len() == 55).await;
    for i in 0..10 {
        c.delete("team-payments", &format!("run-{i:02}")).await;
    }
    c.service
        .wait_for("the deleted runs are listed as archived", "/api/v1/executions?limit=100", |b| {
            b["items"].as_array().unwrap().iter().filter(|e| e["archived"] == true).count() == 10
        })
        .await;

    let Some(browser) = Browser::start(1024, 768).await else { return };
    browser.goto(&format!("{}/#/executions", c.service.base)).await;
    browser
        .wait_text("the first page shows", "main table tbody", |t| t.contains("run-54") && t.contains("run-05"))
        .await;
    let marked = browser.texts("main table tbody tr:has(.archived) th a").await;
    assert_eq!(marked, ["run-09", "run-08", "run-07", "run-06", "run-05"], "archived runs are marked");
    browser.eval("document.querySelector('nav.pager a:last-child').click()", vec![]).await;
    browser.wait_text("the next page is history", "main table tbody", |t| t.contains("run-00")).await;
    let page = browser.texts("main table tbody th a").await;
    assert_eq!(page, ["run-04", "run-03", "run-02", "run-01", "run-00"]);
    assert_eq!(browser.texts("main table tbody .archived").await.len(), 5, "each marked");
    browser.goto(&format!("{}/#/execution/team-payments/run-00", c.service.base)).await;
    browser.wait_text("one archived run says so", "main", |t| t.contains("Archived: its ConfigMap was deleted")).await;
    browser.close().await;
}
