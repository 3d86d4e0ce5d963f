//! The binary as pipeline writers and operators use it.

mod common;

use std::process::Command;

use common::binary::blocking;
use common::clients::missing;

fn execwatch(args: &[&str]) -> (i32, String) {
    let out = blocking(args).output().expect("binary runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn validate_prints_every_reason_and_fails_on_rejections() {
    let (code, out) =
        execwatch(&["validate", "manifests/examples/invalid.yaml", "manifests/examples/team-payments.yaml"]);
    assert_eq!(code, 1, "{out}");
    for expected in [
        "REJECTED team-storefront/storefront-9",
        "SchemaViolation at /phase",
        "UnknownKind",
        "Unparsable",
        "SeveralDocuments",
        "ok       team-payments/checkout-api-41",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
}

#[test]
fn validate_passes_valid_manifests() {
    let (code, out) =
        execwatch(&["validate", "manifests/examples/team-payments.yaml", "manifests/examples/team-storefront.yaml"]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn an_invalid_schema_stops_start_up_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.json"),
        r#"{"properties": {"apiVersion": {"const": "x/v1"}, "kind": {"const": "X"}, "a": {"pattern": "(?<=a)b"}}}"#,
    )
    .unwrap();
    let schemas = dir.path().to_str().unwrap();
    let (code, out) =
        execwatch(&["serve", "--from-dir", "manifests/examples", "--listen", "127.0.0.1:0", "--schemas", schemas]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("bad.json is invalid"), "{out}");
}

#[test]
fn schemas_that_are_not_there_are_named_once_with_where_it_looked_and_how_to_point_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere");
    let (code, out) = execwatch(&["serve", "--from-dir", "manifests/examples", "--schemas", missing.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}");
    assert_eq!(out.matches("No such file or directory").count(), 1, "the cause, once: {out}");
    assert!(out.contains(&missing.display().to_string()) && out.contains("--schemas"), "{out}");
}

#[test]
fn help_says_how_to_run_two_services_side_by_side() {
    let (code, out) = execwatch(&["serve", "--help"]);
    assert_eq!(code, 0, "{out}");
    let flat = out.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains("to run two services side by side") && flat.contains("127.0.0.1:0"), "{out}");
}

/// `execwatch serve` on port 0 with JSON debug logs; stop it with `stop()`.
struct Server {
    /// Taken by `stop()`; a server still here when the test ends (it failed) is killed.
    child: Option<std::process::Child>,
    port: u16,
    logs: Option<std::thread::JoinHandle<String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Server {
    /// Starts the server and waits (with a deadline) for the log line that names its port.
    fn start(args: &[&str]) -> Server {
        use std::io::BufRead;
        let mut child = blocking(&["serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
            .args(["--log-format", "json", "--log-level", "debug,hyper=info,kube=info"])
            .args(args)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("binary runs");
        let stderr = std::io::BufReader::new(child.stderr.take().expect("stderr"));
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let logs = std::thread::spawn(move || {
            let mut all = String::new();
            for line in stderr.lines().map_while(Result::ok) {
                let entry: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                if entry["fields"]["message"] == "serving" {
                    let listen = entry["fields"]["listen"].as_str().unwrap_or_default();
                    let _ = port_tx.send(listen.rsplit(':').next().and_then(|p| p.parse::<u16>().ok()));
                }
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        let port =
            port_rx.recv_timeout(std::time::Duration::from_secs(30)).ok().flatten().expect("the server says its port");
        let server = Server { child: Some(child), port, logs: Some(logs) };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while server.get("/readyz", "") != "200" {
            assert!(std::time::Instant::now() < deadline, "the server never became ready");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        server
    }

    /// The status code of GET `path` with extra header lines.
    fn get(&self, path: &str, headers: &str) -> String {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("the server listens");
        write!(stream, "GET {path} HTTP/1.1\r\nHost: execwatch\r\n{headers}Connection: close\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response.split(' ').nth(1).unwrap_or_default().to_owned()
    }

    /// Sends SIGTERM; returns how long the exit took and the logs.
    fn stop(mut self) -> (std::time::Duration, String) {
        let mut child = self.child.take().expect("running");
        let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill runs");
        assert!(killed.success());
        let started = std::time::Instant::now();
        let status = child.wait().expect("the server exits");
        let took = started.elapsed();
        assert!(status.success(), "{status:?}");
        (took, self.logs.take().expect("the log reader").join().expect("the log reader"))
    }
}

#[test]
fn sigterm_stops_the_server_in_seconds_and_client_errors_are_not_logged_as_errors() {
    let server = Server::start(&["--from-dir", "manifests/examples"]);
    assert_eq!(server.get("/livez", ""), "200");
    let long = "x".repeat(60_000);
    assert_eq!(server.get(&format!("/api/v1/executions?labelSelector={long}"), ""), "400");
    assert_eq!(server.get(&format!("/api/v1/namespaces/team-payments/executions/{long}"), ""), "404");
    assert_eq!(server.get("/api/v1/nothing", ""), "404");
    let (took, logs) = server.stop();
    assert!(took < std::time::Duration::from_secs(10), "exit took {took:?}");
    let lines: Vec<serde_json::Value> = logs.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(lines.iter().any(|l| l["fields"]["status"] == 400), "client errors are logged at debug:\n{logs}");
    let errors: Vec<_> = lines.iter().filter(|l| l["level"] == "ERROR" || l["level"] == "WARN").collect();
    assert!(errors.is_empty(), "{errors:?}");
    let longest = logs.lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 2_000, "a log line of {longest} bytes echoes client input");
}

#[test]
fn bearer_tokens_never_reach_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.yaml");
    let sha256 = execwatch::access::digest_hex("tok-3f9a-secret");
    std::fs::write(&tokens, format!("tokens:\n- subject: board\n  sha256: {sha256}\n  namespaces: [team-payments]\n"))
        .unwrap();
    let auth = format!("tokens={}", tokens.display());
    let server = Server::start(&["--from-dir", "manifests/examples", "--auth", &auth]);
    assert_eq!(server.get("/api/v1/executions", "Authorization: Bearer tok-3f9a-secret\r\n"), "200");
    assert_eq!(
        server.get("/api/v1/namespaces/team-storefront/executions", "Authorization: Bearer tok-3f9a-secret\r\n"),
        "404"
    );
    assert_eq!(server.get("/api/v1/executions", "Authorization: Bearer tok-guessed-wrong\r\n"), "401");
    assert_eq!(server.get("/api/v1/executions?token=tok-3f9a-secret", ""), "401", "never from the query string");
    let (_, logs) = server.stop();
    assert!(logs.contains("\"status\":401"), "requests were logged:\n{logs}");
    let requests: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["fields"]["message"] == "request")
        .collect();
    assert!(requests.len() >= 4, "{logs}");
    let ids: std::collections::BTreeSet<&str> =
        requests.iter().filter_map(|l| l["span"]["request_id"].as_str()).collect();
    assert_eq!(ids.len(), requests.len(), "every request line has an id of its own:\n{logs}");
    assert!(!logs.contains("tok-3f9a-secret") && !logs.contains("tok-guessed-wrong"), "a token was logged:\n{logs}");
}

#[test]
fn serve_needs_a_source() {
    let (code, out) = execwatch(&["serve"]);
    assert_eq!(code, 4, "a usage error, for every command (docs/cli.md): {out}");
    assert!(out.contains("--namespaces"), "{out}");
}

#[test]
fn enforcing_retention_without_an_archive_is_refused_unless_meant() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("retention.yaml");
    std::fs::write(&policy, "rules: []\n").unwrap();
    let policy = policy.to_str().unwrap();
    let args = ["serve", "--from-dir", "manifests/examples", "--listen", "127.0.0.1:0", "--retention", policy];
    let (code, out) = execwatch(&[&args[..], &["--retention-mode", "enforce"]].concat());
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("without --archive") && out.contains("--retention-without-archive"), "{out}");
    std::fs::write(dir.path().join("broken.yaml"), "rules: [{name: a, keep: {since: soon}}]\n").unwrap();
    let broken = dir.path().join("broken.yaml");
    let args = ["serve", "--from-dir", "manifests/examples", "--listen", "127.0.0.1:0", "--retention"];
    let (code, out) = execwatch(&[&args[..], &[broken.to_str().unwrap()]].concat());
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("/rules/0/keep/since"), "{out}");
}

#[test]
fn notifications_without_an_archive_or_a_cluster_or_with_bad_settings_are_refused() {
    let serve = ["serve", "--listen", "127.0.0.1:0", "--notify-allow", "hooks.example.com"];
    let (code, out) = execwatch(&[&serve[..], &["--namespaces", "team-a"]].concat());
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("--notify-allow needs --archive"), "{out}");
    let from_dir = ["--from-dir", "manifests/examples", "--archive", "sqlite:/nonexistent/history.db"];
    let (code, out) = execwatch(&[&serve[..], &from_dir[..]].concat());
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("--notify-allow needs a cluster"), "{out}");
    let short = ["--namespaces", "team-a", "--archive", "sqlite:/nonexistent/history.db", "--notify-keep", "1h"];
    let (code, out) = execwatch(&[&serve[..], &short[..]].concat());
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("--notify-keep (1h) must be longer than --notify-max-age (1day)"), "{out}");
    let (code, out) = execwatch(&["serve", "--namespaces", "team-a", "--notify-allow", "10.0.0.0/33"]);
    assert_eq!(code, 4, "a usage error: {out}");
    assert!(out.contains("is not a CIDR"), "{out}");
}

#[test]
fn completions_load_into_a_real_bash() {
    let (code, script) = execwatch(&["completions", "bash"]);
    assert_eq!(code, 0, "{script}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("execwatch.bash");
    std::fs::write(&file, &script).unwrap();
    // Loaded, the script completes the subcommands after `execwatch `.
    let probe = format!(
        "source {}; COMP_WORDS=(execwatch re); COMP_CWORD=1; COMP_LINE='execwatch re'; COMP_POINT=12; \
         _execwatch execwatch re execwatch; echo \"${{COMPREPLY[@]}}\"",
        file.display()
    );
    let out = Command::new("bash").args(["-c", &probe]).output().expect("bash runs");
    let replies = String::from_utf8_lossy(&out.stdout);
    assert!(replies.split_whitespace().any(|w| w == "retention"), "{replies}{}", String::from_utf8_lossy(&out.stderr));
    for shell in ["zsh", "fish"] {
        let (code, script) = execwatch(&["completions", shell]);
        assert!(code == 0 && script.contains("validate"), "{shell}: {script}");
    }
}

/// `kubectl execwatch …` through kubectl's own plugin mechanism: an executable named
/// `kubectl-execwatch` on the PATH.
#[test]
fn the_binary_is_a_kubectl_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::binary::plugin_path(dir.path());
    let out = match Command::new("kubectl")
        .args(["execwatch", "validate", "manifests/examples/team-payments.yaml"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("PATH", &path)
        .env("EXECWATCH_LOG_LEVEL", "warn")
        .output()
    {
        Ok(out) => out,
        Err(e) => return missing(&format!("kubectl ({e})")),
    };
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("ok       team-payments/checkout-api-41"), "{text}");
    let listed = Command::new("kubectl").args(["plugin", "list"]).env("PATH", &path).output().unwrap();
    assert!(String::from_utf8_lossy(&listed.stdout).contains("kubectl-execwatch"));
}

/// `-o junit` read by a real JUnit parser, `-o github` pointing at the offending field's line,
/// `-o json` whole.
#[test]
fn validate_reports_for_ci_as_junit_github_annotations_and_json() {
    let files = ["manifests/examples/invalid.yaml", "manifests/examples/team-payments.yaml"];
    let (code, xml) = execwatch(&[&["validate", "-o", "junit"], &files[..]].concat());
    assert_eq!(code, 1, "{xml}");
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.xml");
    std::fs::write(&report, xml.lines().filter(|l| !l.contains(" INFO ")).collect::<Vec<_>>().join("\n")).unwrap();
    let script = "import sys, junitparser\n\
                  xml = junitparser.JUnitXml.fromfile(sys.argv[1])\n\
                  for suite in xml:\n\
                  \x20   for case in suite:\n\
                  \x20       print(suite.name, case.name, 'failed' if case.result else 'passed')\n";
    match Command::new("python3").args(["-c", script]).arg(&report).output() {
        Ok(out) if out.status.success() => {
            let cases = String::from_utf8_lossy(&out.stdout);
            assert!(cases.contains("manifests/examples/invalid.yaml team-storefront/storefront-9 failed"), "{cases}");
            assert!(
                cases.contains("manifests/examples/team-payments.yaml team-payments/checkout-api-41 passed"),
                "{cases}"
            );
        }
        out => missing(&format!("junitparser ({out:?})")),
    }

    let (code, annotations) = execwatch(&["validate", "-o", "github", files[0]]);
    assert_eq!(code, 1, "{annotations}");
    let text = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(files[0])).unwrap();
    let phase_line = text.lines().position(|l| l.trim() == "phase: Exploded").unwrap() + 1;
    let expected =
        format!("::error file={},line={phase_line},title=team-storefront/storefront-9%3A SchemaViolation::", files[0]);
    assert!(annotations.lines().any(|l| l.starts_with(&expected)), "{expected}\n{annotations}");

    let (code, json) = execwatch(&["validate", "-o", "json", files[1]]);
    assert_eq!(code, 0, "{json}");
    let start = json.find('[').unwrap();
    let verdicts: serde_json::Value = serde_json::from_str(&json[start..]).unwrap();
    assert!(verdicts.as_array().unwrap().iter().all(|v| v["accepted"] == true), "{verdicts}");
}

/// A writer's CI job has the binary but no `schemas/`: the shipped schemas are built in.
#[test]
fn without_a_schemas_directory_the_built_in_schemas_check_documents() {
    let dir = tempfile::tempdir().unwrap();
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/examples/invalid.yaml");
    let out = blocking(&["validate", example.to_str().unwrap()]).current_dir(dir.path()).output().expect("binary runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("SchemaViolation at /phase"), "checked against the schema: {text}");
    let missing = dir.path().join("nowhere");
    let (code, out) = execwatch(&["validate", "--schemas", missing.to_str().unwrap(), example.to_str().unwrap()]);
    assert_eq!(code, 2, "a directory named is read, never replaced: {out}");
}
