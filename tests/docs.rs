//! Every code block of the README, `docs/` and the simulator's README is run or checked here, so
//! the docs cannot drift: `curl` lines run against a service serving `manifests/examples` (and
//! what they pipe to `jq` or `grep` is checked), `kubectl` lines run against the simulator (or,
//! for `apply -k`, are rendered by kustomize), `execwatch` and `cargo run` lines parse with the
//! real argument parser (and `validate` runs), YAML manifests validate, tokens files and
//! retention policies load, and JSON responses validate against `/openapi.json`. A block or
//! command no check knows fails.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use common::clients::Kubectl;
use common::{Running, Setup, dir_source};
use execwatch::access::tokens::TokenFile;
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fenced code block: where it is, its language and its text.
struct Block {
    place: String,
    lang: String,
    text: String,
}

fn blocks() -> Vec<Block> {
    let mut files = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs")).unwrap().map(|e| e.unwrap().path()).collect();
    docs.sort();
    files.extend(docs.into_iter().filter(|p| p.extension().is_some_and(|e| e == "md")));
    // Last: it turns on the simulator's faults.
    files.push(root().join("tests/k8s-sim/README.md"));
    let mut blocks = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.strip_prefix(root()).unwrap().display().to_string();
        let mut open: Option<(usize, String, String)> = None;
        for (i, line) in text.lines().enumerate() {
            match (line.strip_prefix("```"), open.take()) {
                (Some(lang), None) => open = Some((i + 1, lang.trim().to_owned(), String::new())),
                (Some(_), Some((at, lang, text))) => blocks.push(Block { place: format!("{name}:{at}"), lang, text }),
                (None, Some((at, lang, mut text))) => {
                    text.push_str(line);
                    text.push('\n');
                    open = Some((at, lang, text));
                }
                (None, None) => {}
            }
        }
        assert!(open.is_none(), "{name}: a code block is not closed");
    }
    blocks
}

/// The commands of a shell block: continuation lines joined, comments dropped.
fn commands(text: &str) -> Vec<String> {
    let joined = text.replace("\\\n", " ");
    joined
        .lines()
        .map(|l| l.split_once("  #").map_or(l, |(command, _)| command).trim())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// The service and the simulator the commands run against.
struct Env {
    service: Running,
    sim: k8s_sim::Sim,
    kubectl: Kubectl,
    _dir: tempfile::TempDir,
}

impl Env {
    async fn start() -> Env {
        let examples = dir_source(&root().join("manifests/examples"), Duration::from_millis(100));
        let service = Running::launch(examples, Setup::default()).await;
        service.wait_for("the examples are served", "/api/v1/executions", |b| b["items"][0].is_object()).await;
        let sim = k8s_sim::Sim::start().await.unwrap();
        for ns in ["team-payments", "team-storefront", "execwatch"] {
            sim.create_namespace(ns);
        }
        let dir = tempfile::tempdir().unwrap();
        let kubectl = Kubectl::new(dir.path(), &sim.kubeconfig());
        // What the docs' kubectl lines take as installed: the CRD and its objects.
        for file in [
            "manifests/base/crd-backendmodule.yaml",
            "manifests/base/modules.yaml",
            "manifests/notifications/crd-notificationsubscription.yaml",
        ] {
            kubectl.ok(&["apply", "-f", &root().join(file).display().to_string()], None).await;
        }
        Env { service, sim, kubectl, _dir: dir }
    }

    /// Runs one command line: `&&` and `|` separate its stages; a stage's output feeds the next.
    async fn run(&self, place: &str, line: &str) {
        let line = self.substitute(place, line).await;
        let words = shell_words::split(&line).unwrap_or_else(|e| panic!("{place}: {line}: {e}"));
        let mut dir = root();
        let mut output = Output::default();
        for stage in words.split(|w| w == "&&" || w == "|") {
            let stage: Vec<&str> = stage.iter().map(String::as_str).skip_while(|w| is_assignment(w)).collect();
            let what = format!("{place}: {}", stage.join(" "));
            output = match stage.as_slice() {
                ["cd", to] => {
                    dir = dir.join(to);
                    Output::default()
                }
                ["curl", args @ ..] => self.curl(&what, args).await,
                ["kubectl", args @ ..] => self.kubectl(&what, args).await,
                ["cargo", args @ ..] => cargo(&what, &dir, args),
                ["execwatch", args @ ..] => execwatch(&what, args),
                ["jq", filter] => jq(&what, &output, filter),
                ["jq"] => jq(&what, &output, "."),
                ["grep", "-i", word] => {
                    assert!(output.text.to_lowercase().contains(&word.to_lowercase()), "{what}: {}", output.text);
                    Output::default()
                }
                _ => panic!("{what}: no check knows this command"),
            };
        }
    }

    /// `$(kubectl …)` replaced by what it prints, as the shell would.
    async fn substitute(&self, place: &str, line: &str) -> String {
        let Some((before, rest)) = line.split_once("$(") else { return line.to_owned() };
        let (inner, after) = rest.split_once(')').unwrap_or_else(|| panic!("{place}: unclosed $("));
        let words = shell_words::split(inner).unwrap();
        assert_eq!(words[0], "kubectl", "{place}: only kubectl is substituted");
        let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
        let printed = self.kubectl.ok(&args, None).await.unwrap_or_default();
        format!("{before}{}{after}", printed.trim())
    }

    async fn kubectl(&self, what: &str, args: &[&str]) -> Output {
        if let ["apply", "-k", dir] = args {
            let out = std::process::Command::new("kubectl").arg("kustomize").arg(root().join(dir)).output();
            let out = out.unwrap_or_else(|e| panic!("{what}: kubectl: {e}"));
            assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
            return Output::default();
        }
        let args: Vec<String> = args.iter().map(|a| self.local(a)).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let text = self.kubectl.run(&args, None).await.map(|(ok, out)| {
            // Two pages may show the same `kubectl create`.
            assert!(ok || out.contains("already exists"), "{what}: {out}");
            out
        });
        Output { text: text.unwrap_or_default(), json: None }
    }

    /// A file named relative to the repository, as the docs run from its root.
    fn local(&self, arg: &str) -> String {
        let path = root().join(arg);
        if arg.contains('/') && path.exists() { path.display().to_string() } else { arg.to_owned() }
    }

    async fn curl(&self, what: &str, args: &[&str]) -> Output {
        let (mut headers, mut method, mut body, mut url, mut head) = (Vec::new(), "GET", None, None, false);
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match *arg {
                "-s" | "-N" => {}
                "-i" | "-si" => head = true,
                "-H" => headers.push(args.next().unwrap().replace('…', "")),
                "-X" => method = args.next().unwrap(),
                "-d" => body = Some(args.next().unwrap().to_string()),
                url_arg if !url_arg.starts_with('-') => url = Some(url_arg.to_owned()),
                other => panic!("{what}: no check knows curl's {other}"),
            }
        }
        let url = url.unwrap_or_else(|| panic!("{what}: no URL"));
        let path = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
        let (host, path) = path.split_at(path.find('/').unwrap_or(path.len()));
        let base = if host.ends_with(":6443") { self.sim.url() } else { format!("http://{}", self.service.address()) };
        let mut path = path.to_owned();
        if let Some((page, _)) = path.split_once("&continue=<") {
            let first = reqwest::get(format!("{base}{page}")).await.unwrap().json::<Value>().await.unwrap();
            let token = first["continue"].as_str().unwrap_or_else(|| panic!("{what}: the first page has no continue"));
            path = format!("{page}&continue={token}");
        }
        let mut request = reqwest::Client::new().request(method.parse().unwrap(), format!("{base}{path}"));
        for header in &headers {
            let (name, value) = header.split_once(':').unwrap();
            request = request.header(name.trim(), value.trim());
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let mut response = request.send().await.unwrap_or_else(|e| panic!("{what}: {e}"));
        let status = response.status();
        assert!(status.is_success() || status == 304, "{what}: {status}");
        if headers.iter().any(|h| h.contains("text/event-stream")) {
            let mut seen = String::new();
            while !seen.contains("event:snapshot") {
                let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk()).await;
                let chunk = chunk.unwrap_or_else(|_| panic!("{what}: no snapshot: {seen}")).unwrap();
                seen.push_str(&String::from_utf8_lossy(&chunk.unwrap_or_else(|| panic!("{what}: ended: {seen}"))));
            }
            return Output { text: seen, json: None };
        }
        let head_text: String =
            response.headers().iter().map(|(k, v)| format!("{k}: {}\n", v.to_str().unwrap())).collect();
        let text = response.text().await.unwrap();
        let json = serde_json::from_str(&text).ok();
        Output { text: if head { format!("{head_text}\n{text}") } else { text }, json }
    }
}

/// What a stage printed, and its JSON when it was JSON.
#[derive(Default)]
struct Output {
    text: String,
    json: Option<Value>,
}

fn is_assignment(word: &str) -> bool {
    word.split_once('=')
        .is_some_and(|(name, _)| !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
}

/// The `jq` filters the docs use: `.`, `.field`, and `.items[] | {a, b}`, checked on the JSON.
fn jq(what: &str, output: &Output, filter: &str) -> Output {
    let json = output.json.as_ref().unwrap_or_else(|| panic!("{what}: not JSON: {}", output.text));
    if filter == "." {
        return Output::default();
    }
    if let Some((list, keys)) = filter.split_once("[] | {") {
        let items = json[list.trim_start_matches('.')].as_array().unwrap_or_else(|| panic!("{what}: {json}"));
        assert!(!items.is_empty(), "{what}: no items to show");
        for key in keys.trim_end_matches('}').split(',').map(str::trim) {
            assert!(items.iter().all(|i| i.get(key).is_some()), "{what}: an item has no {key}: {json}");
        }
        return Output::default();
    }
    let field = filter.strip_prefix('.').filter(|f| f.chars().all(|c| c.is_ascii_alphanumeric()));
    let field = field.unwrap_or_else(|| panic!("{what}: no check knows this filter"));
    assert!(json.get(field).is_some(), "{what}: no {field} in {json}");
    Output::default()
}

fn cargo(what: &str, dir: &Path, args: &[&str]) -> Output {
    match args {
        ["run", rest @ ..] => {
            let split = rest.iter().position(|a| *a == "--").unwrap_or_else(|| panic!("{what}: no --"));
            let (cargo, program) = (&rest[..split], &rest[split + 1..]);
            if cargo.contains(&"k8s-sim") {
                let argv = std::iter::once("k8s-sim").chain(program.iter().copied());
                k8s_sim::Args::try_parse_from(argv).unwrap_or_else(|e| panic!("{what}: {e}"));
                Output::default()
            } else {
                execwatch(what, program)
            }
        }
        ["test", "--workspace"] => Output::default(),
        ["test", "--test", name, filter] => {
            let text = std::fs::read_to_string(root().join(format!("tests/{name}.rs")))
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(text.contains(&format!("fn {filter}")), "{what}: no test {filter} in tests/{name}.rs");
            Output::default()
        }
        ["bench", "--bench", name] => {
            let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
            assert!(manifest.contains(&format!("[[bench]]\nname = \"{name}\"")), "{what}: no bench {name}");
            Output::default()
        }
        ["install", "cargo-fuzz"] => Output::default(),
        ["+nightly", "fuzz", "run", target, corpus, seeds, ..] => {
            assert!(dir.join(format!("fuzz_targets/{target}.rs")).exists(), "{what}: no fuzz target {target}");
            assert!(corpus.starts_with("target/"), "{what}: the corpus grows under target/");
            assert!(dir.join(seeds).is_dir(), "{what}: no seeds at {seeds}");
            Output::default()
        }
        _ => panic!("{what}: no check knows this cargo command"),
    }
}

/// Parses the arguments with the binary's own parser; `validate` runs on the files named.
fn execwatch(what: &str, args: &[&str]) -> Output {
    let argv = std::iter::once("execwatch").chain(args.iter().copied());
    let parsed = execwatch::cli::Args::try_parse_from(argv).unwrap_or_else(|e| panic!("{what}: {e}"));
    match parsed.command {
        execwatch::cli::Command::Validate(args) if !args.files.iter().any(|f| f.starts_with("path/to")) => {
            let files: Vec<PathBuf> = args.files.iter().map(|f| root().join(f)).collect();
            assert_eq!(validate(&files), 0, "{what}: every ConfigMap is accepted");
        }
        execwatch::cli::Command::Serve(serve) => {
            if let Some(dir) = serve.source.from_dir {
                assert!(root().join(dir).is_dir(), "{what}: no such directory");
            }
        }
        execwatch::cli::Command::Validate(_) => {}
        execwatch::cli::Command::Completions { .. } => {}
        execwatch::cli::Command::Get(_) | execwatch::cli::Command::Wait(_) | execwatch::cli::Command::Archive(_) => {}
        execwatch::cli::Command::Record(record) => {
            if let Some(file) = record.record.file.filter(|f| f.as_os_str() != "-" && !f.starts_with("path/to")) {
                assert!(root().join(file).is_file(), "{what}: no such file");
            }
        }
        execwatch::cli::Command::Retention(execwatch::cli::RetentionCommand::Plan(plan)) => {
            if let Some(dir) = plan.from_dir {
                assert!(root().join(dir).is_dir(), "{what}: no such directory");
            }
        }
    }
    Output::default()
}

/// How many ConfigMaps in `files` are rejected.
fn validate(files: &[PathBuf]) -> usize {
    let mut out = Vec::new();
    let text = execwatch::cli::commands::validate::Format::Text;
    execwatch::cli::commands::validate::validate_files(&common::registry(), &common::selector(), files, text, &mut out)
        .unwrap()
}

fn check_yaml(block: &Block) {
    let dir = tempfile::tempdir().unwrap();
    for document in serde_yaml::Deserializer::from_str(&block.text) {
        let value: Value = serde::Deserialize::deserialize(document).unwrap_or_else(|e| panic!("{}: {e}", block.place));
        let file = dir.path().join("block.yaml");
        std::fs::write(&file, serde_yaml::to_string(&value).unwrap()).unwrap();
        if value["kind"] == "ConfigMap" {
            assert_eq!(validate(&[file]), 0, "{}: the ConfigMap is accepted", block.place);
        } else if value.get("tokens").is_some() {
            TokenFile::load(&file, Duration::from_secs(1)).unwrap_or_else(|e| panic!("{}: {e}", block.place));
        } else if value["kind"] == "NotificationSubscription" {
            let mut object: kube::api::DynamicObject = serde_json::from_value(value.clone()).unwrap();
            object.metadata.uid = Some("uid".into());
            let id = execwatch::notify::subscription::SubscriptionId::of(&object).expect("a namespaced name");
            execwatch::notify::Subscription::parse(&id, &object).unwrap_or_else(|e| panic!("{}: {e}", block.place));
        } else if value.get("rules").is_some() {
            let policy = execwatch::retention::Policy::load(&file).unwrap_or_else(|e| panic!("{}: {e}", block.place));
            assert!(!policy.rules.is_empty(), "{}: a retention policy of rules", block.place);
        } else {
            panic!("{}: no check knows this YAML", block.place);
        }
    }
}

/// A response shown in the docs validates against the schema `/openapi.json` gives its kind.
fn check_json(block: &Block) {
    let value: Value = serde_json::from_str(&block.text).unwrap_or_else(|e| panic!("{}: {e}", block.place));
    let document: Value = serde_json::from_slice(&execwatch::api::openapi::DOCUMENT).unwrap();
    assert!(value.get("items").is_some(), "{}: no check knows this JSON", block.place);
    let schema =
        serde_json::json!({"$ref": "#/components/schemas/ExecutionList", "components": document["components"]});
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    let errors: Vec<String> =
        validator.iter_errors(&value).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{}: {errors:?}", block.place);
}

/// A receiver's snippet runs, and accepts a message the reference library signed.
fn check_python(block: &Block) {
    let test = r#"
import datetime, json
body = json.dumps({"type": "dev.cdevents.pipelinerun.finished.0.2.0", "subject": "team-payments/run-1"})
signer = Webhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
now = datetime.datetime.now(datetime.timezone.utc)
headers = {"webhook-id": "msg_1", "webhook-timestamp": str(int(now.timestamp())),
           "webhook-signature": signer.sign("msg_1", now, body)}
assert receive(body.encode(), headers) == 204
assert receive(body.encode(), dict(headers, **{"webhook-signature": "v1,bm9wZQ=="})) == 401
"#;
    let out = std::process::Command::new("python3").args(["-c", &format!("{}{test}", block.text)]).output();
    match out {
        Ok(out) if out.status.success() => {}
        Ok(out) if String::from_utf8_lossy(&out.stderr).contains("No module named 'standardwebhooks'") => {
            common::clients::missing("the Python package standardwebhooks (pip install standardwebhooks)")
        }
        Ok(out) => panic!("{}: {}", block.place, String::from_utf8_lossy(&out.stderr)),
        Err(e) => common::clients::missing(&format!("python3 ({e})")),
    }
}

#[tokio::test]
async fn every_code_block_of_the_docs_runs_or_is_checked() {
    if std::process::Command::new("kubectl").arg("version").arg("--client").output().is_err() {
        common::clients::missing("kubectl");
        return;
    }
    let env = Env::start().await;
    let blocks = blocks();
    assert!(blocks.len() > 20, "the docs were read: {} blocks", blocks.len());
    for block in &blocks {
        match block.lang.as_str() {
            "yaml" => check_yaml(block),
            "json" => check_json(block),
            "sh" => {
                for line in commands(&block.text) {
                    env.run(&block.place, &line).await;
                }
            }
            "python" => check_python(block),
            other => panic!("{}: no check knows ```{other} blocks", block.place),
        }
    }
    env.service.stop().await;
}
