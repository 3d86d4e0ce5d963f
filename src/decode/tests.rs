//! Unit tests of `decode()`: every class of bad input is rejected with its reason.

use std::path::Path;

use super::*;
use crate::fixtures::{Cm, Doc};
use crate::model::ReasonCode;

fn registry() -> SchemaRegistry {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    SchemaRegistry::load(&dir, Limits::default()).expect("shipped schemas compile")
}

fn codes(r: &Rejection) -> Vec<ReasonCode> {
    r.reasons.iter().map(|r| r.code).collect()
}

#[test]
fn valid_yaml_document_decodes() {
    let cm = Cm::new("team-a", "run-1").doc(&Doc::new("podinfo").phase("Succeeded")).build();
    let exec = registry().decode(&cm).expect("valid");
    assert_eq!(exec.id.to_string(), "team-a/run-1");
    assert_eq!(exec.view.pipeline, "podinfo");
    assert_eq!(exec.view.phase, crate::model::Phase::Succeeded);
    assert_eq!(exec.view.environments.len(), 2);
    assert_eq!(exec.sort_time.to_string(), "2026-11-01T10:00:00Z");
}

#[test]
fn valid_json_document_decodes() {
    let yaml: Value = serde_yaml::from_str(&Doc::new("p").yaml()).unwrap();
    let cm = Cm::new("ns", "j").data("execution.json", &yaml.to_string()).build();
    assert!(registry().decode(&cm).is_ok());
}

#[test]
fn missing_and_extra_data_keys_are_rejected() {
    let none = Cm::new("ns", "a").build();
    assert_eq!(codes(&registry().decode(&none).unwrap_err()), [ReasonCode::NoDocument]);
    let two = Cm::new("ns", "b").doc(&Doc::new("p")).data("execution.json", "{}").build();
    let err = registry().decode(&two).unwrap_err();
    assert_eq!(codes(&err), [ReasonCode::SeveralDocuments]);
    assert!(err.reasons[0].message.contains("execution.json, execution.yaml"));
    let wrong = Cm::new("ns", "c").data("run.yaml", "a: b").build();
    assert_eq!(codes(&registry().decode(&wrong).unwrap_err()), [ReasonCode::SeveralDocuments]);
}

#[test]
fn unparsable_documents_are_rejected() {
    let cm = Cm::new("ns", "a").data("execution.yaml", "a: [unclosed").build();
    assert_eq!(codes(&registry().decode(&cm).unwrap_err()), [ReasonCode::Unparsable]);
    let cm = Cm::new("ns", "b").data("execution.json", "{\"a\": ").build();
    assert_eq!(codes(&registry().decode(&cm).unwrap_err()), [ReasonCode::Unparsable]);
}

#[test]
fn unknown_kind_names_the_known_ones() {
    let doc = Doc::new("p").yaml().replace("v1alpha1", "v9");
    let err = registry().decode(&Cm::new("ns", "a").data("execution.yaml", &doc).build()).unwrap_err();
    assert_eq!(codes(&err), [ReasonCode::UnknownKind]);
    assert!(err.reasons[0].message.contains("pipelines.gitops.dev/v1alpha1 PipelineExecution"));
}

#[test]
fn schema_violations_carry_json_pointers() {
    let doc =
        Doc::new("p").phase("Exploded").yaml().replace("startedAt: \"2026-11-01T10:00:00Z\"", "startedAt: yesterday");
    let err = registry().decode(&Cm::new("ns", "a").data("execution.yaml", &doc).build()).unwrap_err();
    let pointers: Vec<_> = err.reasons.iter().filter_map(|r| r.pointer.as_deref()).collect();
    assert!(pointers.contains(&"/phase"), "{err:?}");
    assert!(pointers.contains(&"/startedAt"), "{err:?}");
    assert!(err.reasons.iter().all(|r| r.code == ReasonCode::SchemaViolation));
}

#[test]
fn oversized_documents_are_rejected_before_parsing() {
    let big = format!("{}message: \"{}\"\n", Doc::new("p").yaml(), "x".repeat(300 * 1024));
    let err = registry().decode(&Cm::new("ns", "a").data("execution.yaml", &big).build()).unwrap_err();
    assert_eq!(codes(&err), [ReasonCode::TooLarge]);
}

#[test]
fn yaml_alias_bombs_are_rejected() {
    let mut bomb = String::from("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    for (prev, next) in ["a", "b", "c", "d", "e", "f", "g", "h"].iter().zip(["b", "c", "d", "e", "f", "g", "h", "i"]) {
        bomb.push_str(&format!(
            "{next}: &{next} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
        ));
    }
    let err = registry().decode(&Cm::new("ns", "a").data("execution.yaml", &bomb).build()).unwrap_err();
    assert_eq!(codes(&err), [ReasonCode::Unparsable], "{err:?}");
}

#[test]
fn absurd_nesting_is_rejected() {
    let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
    let err = registry().decode(&Cm::new("ns", "a").data("execution.json", &deep).build()).unwrap_err();
    assert_eq!(codes(&err), [ReasonCode::TooDeep]);
    // Refused by a linear scan, before libyaml spends quadratic time on it.
    let very_deep = format!("a: {}{}", "[".repeat(100_000), "]".repeat(100_000));
    let err = registry().decode(&Cm::new("ns", "b").data("execution.yaml", &very_deep).build()).unwrap_err();
    assert_eq!(codes(&err), [ReasonCode::TooDeep]);
    let sneaky = format!("a: don't {}", "[".repeat(40));
    assert_eq!(
        codes(&registry().decode(&Cm::new("ns", "c").data("execution.yaml", &sneaky).build()).unwrap_err()),
        [ReasonCode::TooDeep]
    );
}

#[test]
fn brackets_in_strings_and_comments_do_not_count_as_nesting() {
    let brackets = "[".repeat(40);
    let doc = format!("{}message: \"{brackets}\"\n# {brackets}\n", Doc::new("p").yaml());
    let doc = doc.replacen("pipeline: p", &format!("pipeline: p # {brackets}"), 1);
    assert!(registry().decode(&Cm::new("ns", "a").data("execution.yaml", &doc).build()).is_ok());
}

fn load_one(schema: &str) -> Result<SchemaRegistry, SchemaError> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.json"), schema).unwrap();
    SchemaRegistry::load(dir.path(), Limits::default())
}

const NAMED: &str = r#""apiVersion": {"const": "x/v1"}, "kind": {"const": "X"}"#;

#[test]
fn invalid_schemas_stop_start_up() {
    let invalid = format!(r#"{{"type": "object", "properties": {{{NAMED}, "a": {{"type": "nonsense"}}}}}}"#);
    assert!(matches!(load_one(&invalid), Err(SchemaError::Invalid { .. })));
    let remote = format!(r#"{{"properties": {{{NAMED}, "a": {{"$ref": "https://example.com/s.json"}}}}}}"#);
    assert!(matches!(load_one(&remote), Err(SchemaError::Invalid { .. })));
    let backtracking = format!(r#"{{"properties": {{{NAMED}, "a": {{"pattern": "^(a)\\1$"}}}}}}"#);
    assert!(matches!(load_one(&backtracking), Err(SchemaError::Invalid { .. })));
    assert!(matches!(load_one(r#"{"type": "object"}"#), Err(SchemaError::Unnamed { .. })));
    assert!(load_one(&format!(r#"{{"properties": {{{NAMED}}}}}"#)).is_ok());
}

#[test]
fn duplicate_keys_are_rejected_in_yaml_and_json_naming_key_and_pointer() {
    let yaml = format!("{}phase: Failed\n", Doc::new("p").phase("Running").yaml());
    let err = registry().decode(&Cm::new("ns", "y").data("execution.yaml", &yaml).build()).unwrap_err();
    assert_eq!((codes(&err), err.reasons[0].pointer.as_deref()), (vec![ReasonCode::DuplicateKey], Some("/phase")));
    assert!(err.reasons[0].message.contains("\"phase\""), "{}", err.reasons[0].message);

    let json = r#"{"apiVersion":"pipelines.gitops.dev/v1alpha1","kind":"PipelineExecution","application":{"name":"a","name":"b"}}"#;
    let err = registry().decode(&Cm::new("ns", "j").data("execution.json", json).build()).unwrap_err();
    assert_eq!(
        (codes(&err), err.reasons[0].pointer.as_deref()),
        (vec![ReasonCode::DuplicateKey], Some("/application/name"))
    );
}
