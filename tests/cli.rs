//! The binary as pipeline writers and operators use it.

use std::process::Command;

fn execwatch(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_execwatch"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("EXECWATCH_LOG_LEVEL", "warn")
        .output()
        .expect("binary runs");
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
fn serve_needs_a_source() {
    let (code, out) = execwatch(&["serve"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("--namespaces"), "{out}");
}
