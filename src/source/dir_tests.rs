use std::path::Path;

use super::*;
use crate::fixtures::EXECUTION_LABEL;

fn manifest(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  labels:\n    {EXECUTION_LABEL}: \"true\"\ndata:\n  execution.yaml: x\n"
    )
}

fn source(dir: &Path) -> DirSource {
    DirSource {
        path: dir.to_owned(),
        selector: format!("{EXECUTION_LABEL}=true").parse().unwrap(),
        interval: Duration::from_millis(50),
        max_file_bytes: 4096,
    }
}

/// Names of the ConfigMaps read, and (file, code) of everything unreadable.
fn outcome(objects: &[Object]) -> (Vec<String>, Vec<(String, &'static str)>) {
    let mut served = Vec::new();
    let mut unreadable = Vec::new();
    for object in objects {
        match object {
            Object::ConfigMap(cm) => served.push(cm.metadata.name.clone().unwrap_or_default()),
            Object::Unreadable(u) => unreadable.push((u.file.clone(), u.code)),
        }
    }
    (served, unreadable)
}

#[test]
fn reads_multi_document_files_and_reports_broken_documents() {
    let dir = tempfile::tempdir().unwrap();
    let unlabelled = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other\n";
    std::fs::write(dir.path().join("a.yaml"), format!("{}---\n{}---\n{unlabelled}", manifest("one"), manifest("two")))
        .unwrap();
    std::fs::write(dir.path().join("b.yaml"), "kind: ConfigMap\nmetadata: [broken\n").unwrap();
    std::fs::write(dir.path().join("notes.txt"), manifest("ignored")).unwrap();
    let (_, objects) = read(&source(dir.path())).unwrap();
    let (served, unreadable) = outcome(&objects);
    assert_eq!(served, ["one", "two"]);
    assert_eq!(unreadable, [("b.yaml".to_owned(), "Unparsable")]);
}

#[test]
fn hostile_files_are_reported_one_by_one_and_hide_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    std::fs::write(path("good.yaml"), manifest("good")).unwrap();
    std::fs::write(path("latin1.yaml"), b"kind: ConfigMap\nmetadata: {name: caf\xe9}\n").unwrap();
    std::fs::write(path("big.yaml"), "#".repeat(5000)).unwrap();
    std::os::unix::fs::symlink(path("loop-b.yaml"), path("loop-a.yaml")).unwrap();
    std::os::unix::fs::symlink(path("loop-a.yaml"), path("loop-b.yaml")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", path("zero.yaml")).unwrap();
    std::fs::create_dir(path("dir.yaml")).unwrap();
    // mkfifo(1) keeps this crate free of unsafe code.
    assert!(std::process::Command::new("mkfifo").arg(path("fifo.yaml")).status().unwrap().success());
    let duplicate = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dup\n  name: again\n";
    std::fs::write(path("dup.yaml"), duplicate).unwrap();

    let (_, objects) = read(&source(dir.path())).unwrap();
    let (served, unreadable) = outcome(&objects);
    assert_eq!(served, ["good"]);
    let codes: BTreeMap<String, &str> = unreadable.into_iter().collect();
    let expected: BTreeMap<String, &str> = [
        ("big.yaml", "TooLarge"),
        ("dir.yaml", "Unreadable"),
        ("dup.yaml", "DuplicateKey"),
        ("fifo.yaml", "Unreadable"),
        ("latin1.yaml", "Unreadable"),
        ("loop-a.yaml", "Unreadable"),
        ("loop-b.yaml", "Unreadable"),
        ("zero.yaml", "Unreadable"),
    ]
    .into_iter()
    .map(|(f, c)| (f.to_owned(), c))
    .collect();
    assert_eq!(codes, expected);
    let message = |file: &str| {
        objects.iter().find_map(|o| match o {
            Object::Unreadable(u) if u.file == file => Some(u.message.clone()),
            _ => None,
        })
    };
    assert_eq!(message("fifo.yaml").unwrap(), "not a regular file but a FIFO");
    assert_eq!(message("zero.yaml").unwrap(), "not a regular file but a character device");
    assert!(message("latin1.yaml").unwrap().contains("offset 36"), "{:?}", message("latin1.yaml"));
    assert!(message("dup.yaml").unwrap().contains("\"name\" at /metadata/name"), "{:?}", message("dup.yaml"));
}

#[test]
fn only_a_directory_that_cannot_be_listed_fails() {
    let dir = tempfile::tempdir().unwrap();
    let missing = source(&dir.path().join("absent"));
    assert!(matches!(read(&missing), Err(SourceError::Dir { .. })));
}
