//! The hostile-input corpus (`tests/data/hostile/`, and three large cases generated here) served
//! from a directory: every document is rejected with its reason within a time bound, none hides
//! the valid execution beside it, and the service keeps answering throughout.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Running, dir_source, names};
use execwatch::fixtures::Doc;
use serde_json::Value;

/// How long one hostile document may take to be rejected (a debug build, on a loaded machine).
const BOUND: Duration = Duration::from_secs(10);

/// A ConfigMap manifest carrying `payload` under `key`, byte for byte.
fn manifest(name: &str, key: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: team-a\n  labels:\n    {}: \"true\"\ndata:\n  {key}: |\n",
        execwatch::fixtures::EXECUTION_LABEL
    )
    .into_bytes();
    for line in payload.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        out.extend_from_slice(b"    ");
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out
}

/// Every case: a name, the ConfigMap key, the payload and the code it must be rejected with.
fn corpus() -> Vec<(String, &'static str, Vec<u8>, &'static str)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/hostile");
    let expected = [
        ("alias-bomb.yaml", "Unparsable"),
        ("duplicate-keys.yaml", "DuplicateKey"),
        ("duplicate-keys.json", "DuplicateKey"),
        ("overflowing-numbers.yaml", "Unparsable"),
        ("overflowing-numbers.json", "Unparsable"),
        ("regex-heavy.yaml", "SchemaViolation"),
        ("tags-and-types.yaml", "SchemaViolation"),
        ("invalid-utf8.yaml", "Unreadable"),
    ];
    let stored =
        std::fs::read_dir(&dir).unwrap().filter(|e| e.as_ref().unwrap().path().extension() != Some("md".as_ref()));
    assert_eq!(stored.count(), expected.len(), "every file of the corpus has an expectation");
    let key = |file: &str| if file.ends_with(".json") { "execution.json" } else { "execution.yaml" };
    let mut cases: Vec<_> = expected
        .iter()
        .map(|(file, code)| {
            let name = file.replace('.', "-");
            (name, key(file), std::fs::read(dir.join(file)).unwrap(), *code)
        })
        .collect();
    let deep_yaml = format!("a: {}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_json = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let long = format!("{}message: \"{}\"\n", Doc::new("web").yaml(), "x".repeat(1 << 20));
    cases.push(("deep-yaml".into(), "execution.yaml", deep_yaml.into_bytes(), "TooDeep"));
    // serde_json stops at 128 levels, before the depth limit is checked.
    cases.push(("deep-json".into(), "execution.json", deep_json.into_bytes(), "Unparsable"));
    // Larger than a file the directory source reads at all.
    cases.push(("long-string".into(), "execution.yaml", long.into_bytes(), "TooLarge"));
    cases
}

/// The rejection of `name` (a ConfigMap), or of file `name.yaml` (a file that could not be read).
fn rejection<'a>(body: &'a Value, name: &str) -> Option<&'a Value> {
    let file = format!("{name}.yaml");
    body["items"]
        .as_array()?
        .iter()
        .find(|r| r["name"] == name || r["file"].as_str().is_some_and(|f| f.ends_with(&file)))
}

#[tokio::test(flavor = "multi_thread")]
async fn every_hostile_document_is_rejected_in_time_and_hides_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("good.yaml"), common::manifest("team-a", "good", &Doc::new("web").yaml())).unwrap();
    let service = Running::launch(dir_source(dir.path(), Duration::from_millis(50)), common::Setup::default()).await;
    service.wait_for("the valid run is served", "/api/v1/executions", |b| names(b) == ["good"]).await;

    // While the corpus is read, /livez is asked every 10 ms: the slowest answer is kept.
    let slowest = Arc::new(AtomicU64::new(0));
    let probe = {
        let (url, slowest) = (format!("{}/livez", service.base), slowest.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            loop {
                let asked = Instant::now();
                let answered = http.get(&url).send().await.is_ok_and(|r| r.status() == 200);
                assert!(answered, "/livez answers");
                slowest.fetch_max(asked.elapsed().as_millis() as u64, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let cases = corpus();
    let written = Instant::now();
    for (name, key, payload, _) in &cases {
        std::fs::write(dir.path().join(format!("{name}.yaml")), manifest(name, key, payload)).unwrap();
    }
    let rejections = common::wait_until("every hostile document is rejected", || async {
        let (_, body) = service.get("/api/v1/rejections?limit=500").await;
        cases.iter().all(|(name, ..)| rejection(&body, name).is_some()).then_some(body)
    })
    .await;
    let took = written.elapsed();
    probe.abort();
    assert!(took < BOUND, "the corpus took {took:?} to be rejected");
    for (name, _, _, code) in &cases {
        let rejected = rejection(&rejections, name).unwrap();
        assert_eq!(rejected["reasons"][0]["code"], *code, "{name}: {rejected}");
        let text = rejected.to_string();
        assert!(text.len() < 4096, "{name}: the rejection quotes at most a bounded part: {} bytes", text.len());
    }
    assert_eq!(service.execution_names("/api/v1/executions").await, ["good"], "nothing hides the valid run");
    let slowest = Duration::from_millis(slowest.load(Ordering::Relaxed));
    assert!(slowest < Duration::from_secs(1), "/livez took up to {slowest:?} meanwhile");
    service.stop().await;
}
