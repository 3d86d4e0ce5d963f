//! A real browser for the dashboard's tests: Debian's `chromium` driven over WebDriver by
//! `chromedriver` (`apt-get install chromium chromium-driver`), through the `fantoccini`
//! client. Where chromedriver is missing the test says it skipped, unless
//! `EXECWATCH_REQUIRE_CLIENTS` is set (as CI sets it).

use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};

use super::wait_until;

/// Headless Chromium, and the chromedriver that drives it (killed on drop).
pub struct Browser {
    pub client: Client,
    _driver: tokio::process::Child,
}

impl Browser {
    /// A new browser at `width` × `height`; `None` (after reporting it) without chromedriver.
    pub async fn start(width: u32, height: u32) -> Option<Browser> {
        let program = std::env::var("EXECWATCH_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".to_owned());
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let driver = tokio::process::Command::new(&program)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn();
        let driver = match driver {
            Ok(driver) => driver,
            Err(e) => {
                super::clients::missing(&format!(
                    "{program}, for the browser tests (apt-get install chromium chromium-driver): {e}"
                ));
                return None;
            }
        };
        let mut capabilities = serde_json::Map::new();
        let args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"];
        let mut options = json!({ "args": args.iter().map(|a| a.to_string()).chain([format!("--window-size={width},{height}")]).collect::<Vec<_>>() });
        if let Ok(binary) = std::env::var("EXECWATCH_CHROMIUM") {
            options["binary"] = json!(binary);
        }
        capabilities.insert("goog:chromeOptions".to_owned(), options);
        let url = format!("http://127.0.0.1:{port}");
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        // chromedriver takes a moment to listen.
        let client = wait_until("chromedriver starts a session", || async {
            ClientBuilder::new(connector.clone()).capabilities(capabilities.clone()).connect(&url).await.ok()
        })
        .await;
        Some(Browser { client, _driver: driver })
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    /// Runs `script` (with `arguments`) in the page and returns its value.
    pub async fn eval(&self, script: &str, arguments: Vec<Value>) -> Value {
        self.client.execute(script, arguments).await.expect("script runs")
    }

    /// The text of the first element matching `css`, if there is one.
    pub async fn text(&self, css: &str) -> Option<String> {
        let text = self
            .eval("const e = document.querySelector(arguments[0]); return e ? e.innerText : null;", vec![json!(css)]);
        text.await.as_str().map(str::to_owned)
    }

    /// Waits until the element matching `css` has text that satisfies `check`; that text.
    pub async fn wait_text(&self, what: &str, css: &str, check: impl Fn(&str) -> bool) -> String {
        wait_until(what, || async { self.text(css).await.filter(|t| check(t)) }).await
    }

    /// The texts of every element matching `css`.
    pub async fn texts(&self, css: &str) -> Vec<String> {
        let script = "return [...document.querySelectorAll(arguments[0])].map(e => e.innerText);";
        let texts = self.eval(script, vec![json!(css)]).await;
        texts.as_array().into_iter().flatten().filter_map(|t| t.as_str().map(str::to_owned)).collect()
    }

    /// Waits until `css` matches exactly `want` texts (in order).
    pub async fn wait_texts(&self, what: &str, css: &str, want: &[&str]) {
        wait_until(what, || async { (self.texts(css).await == want).then_some(()) }).await;
    }

    /// Marks the page, so that a test can tell the page was never reloaded.
    pub async fn mark(&self) {
        self.eval("window.__execwatchMark = true;", vec![]).await;
    }

    pub async fn still_marked(&self) -> bool {
        self.eval("return window.__execwatchMark === true;", vec![]).await == json!(true)
    }

    pub async fn close(self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.client.close()).await;
    }
}
