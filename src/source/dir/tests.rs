use std::path::Path;
use std::sync::Mutex;

use super::*;
use crate::fixtures::EXECUTION_LABEL;
use crate::model::ReasonCode;

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

/// Every object of a first read.
fn read(source: &DirSource) -> Result<Vec<Object>, SourceError> {
    let mut objects = Vec::new();
    Scan::default().update(source, &mut |o| objects.push(o))?;
    Ok(objects)
}

/// Names of the ConfigMaps read, and (file, code) of everything unreadable.
fn outcome(objects: &[Object]) -> (Vec<String>, Vec<(String, ReasonCode)>) {
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
    let objects = read(&source(dir.path())).unwrap();
    let (served, unreadable) = outcome(&objects);
    assert_eq!(served, ["one", "two"]);
    assert_eq!(unreadable, [("b.yaml".to_owned(), ReasonCode::Unparsable)]);
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

    let objects = read(&source(dir.path())).unwrap();
    let (served, unreadable) = outcome(&objects);
    assert_eq!(served, ["good"]);
    let codes: BTreeMap<String, ReasonCode> = unreadable.into_iter().collect();
    let expected: BTreeMap<String, ReasonCode> = [
        ("big.yaml", ReasonCode::TooLarge),
        ("dir.yaml", ReasonCode::Unreadable),
        ("dup.yaml", ReasonCode::DuplicateKey),
        ("fifo.yaml", ReasonCode::Unreadable),
        ("latin1.yaml", ReasonCode::Unreadable),
        ("loop-a.yaml", ReasonCode::Unreadable),
        ("loop-b.yaml", ReasonCode::Unreadable),
        ("zero.yaml", ReasonCode::Unreadable),
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

/// Names of what one update emitted and of what it found gone.
fn update(scan: &mut Scan, source: &DirSource) -> (Vec<String>, Vec<String>) {
    let mut emitted = Vec::new();
    let gone = scan.update(source, &mut |o| emitted.push(o.id().name)).unwrap();
    (emitted, gone.into_iter().map(|id| id.name).collect())
}

#[test]
fn after_the_first_read_only_changed_files_are_read_and_sent() {
    let dir = tempfile::tempdir().unwrap();
    let write = |file: &str, text: String| std::fs::write(dir.path().join(file), text).unwrap();
    write("a.yaml", manifest("one"));
    write("b.yaml", format!("{}---\n{}", manifest("two"), manifest("three")));
    let source = source(dir.path());
    let mut scan = Scan::default();
    assert_eq!(update(&mut scan, &source), (vec!["one".into(), "two".into(), "three".into()], vec![]));
    // Files written this instant are racy: hashed again, and unchanged, so nothing is sent.
    assert_eq!(update(&mut scan, &source), (vec![], vec![]));
    write("a.yaml", manifest("one").replace(": x", ": y"));
    assert_eq!(update(&mut scan, &source), (vec!["one".into()], vec![]));
    // "three" moves from b to c: sent again, never deleted.
    write("b.yaml", manifest("two"));
    write("c.yaml", manifest("three"));
    assert_eq!(update(&mut scan, &source), (vec!["two".into(), "three".into()], vec![]));
    std::fs::remove_file(dir.path().join("a.yaml")).unwrap();
    assert_eq!(update(&mut scan, &source), (vec![], vec!["one".into()]));
}

#[test]
fn a_rewrite_keeping_size_and_mtime_is_still_seen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.yaml");
    std::fs::write(&path, manifest("one")).unwrap();
    let old = SystemTime::now() - Duration::from_secs(60);
    std::fs::File::options().write(true).open(&path).unwrap().set_modified(old).unwrap();
    let source = source(dir.path());
    let mut scan = Scan::default();
    update(&mut scan, &source);
    // Same size, same mtime, new content: only the ctime (and the hash) can tell.
    std::fs::write(&path, manifest("one").replace(": x", ": y")).unwrap();
    std::fs::File::options().write(true).open(&path).unwrap().set_modified(old).unwrap();
    assert_eq!(update(&mut scan, &source), (vec!["one".into()], vec![]));
}

#[test]
fn a_temporary_file_is_ignored_its_rename_names_the_manifest_and_only_a_volume_swap_scans_all() {
    let dir = tempfile::tempdir().unwrap();
    let source = source(dir.path());
    let at = |name: &str| dir.path().join(name);
    assert_eq!(classify(&source, &at("run.yaml")), Touched::Manifest("run.yaml".into()));
    for temporary in ["run.yaml.tmp", ".run.yaml.swp", "run.yaml~", "4913", "sub/run.yaml"] {
        assert_eq!(classify(&source, &at(temporary)), Touched::Other, "{temporary}");
    }
    for everything in ["..data", "..2026_12_02_10_00_00.123", ""] {
        assert_eq!(classify(&source, &at(everything)), Touched::Unknown, "{everything:?}");
    }
    assert_eq!(classify(&source, Path::new("/elsewhere/run.yaml")), Touched::Unknown);
}

/// An archive that kept digests of files under given stamps and knows the objects of some
/// contents; it has not loaded yet (files are only hashed until it has), and notes what it is told.
#[derive(Default)]
struct KeptArchive {
    digests: HashMap<String, (String, String)>,
    objects: HashMap<String, Vec<ObjectMeta>>,
    told: Mutex<FileNotes>,
}

impl Archived for KeptArchive {
    fn ready(&self) -> bool {
        false
    }

    fn objects(&self, hash: &str) -> Option<Vec<ObjectMeta>> {
        self.objects.get(hash).cloned()
    }

    fn digest(&self, name: &str, stamp: &str) -> Option<String> {
        self.digests.get(name).filter(|(kept, _)| kept == stamp).map(|(_, digest)| digest.clone())
    }

    fn remember(&self, files: FileNotes) {
        self.told.lock().unwrap().extend(files);
    }
}

/// A file whose stamp is the one its digest was kept under is not read: the kept digest names
/// its content (here a made-up one, whose objects the archive answers with). A file whose stamp
/// changed, or changed too recently to be trusted, is read; the archive is told what each file
/// read was, and which are gone.
#[test]
fn a_file_whose_stamp_is_unchanged_since_its_digest_was_kept_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let source = source(dir.path());
    std::fs::write(dir.path().join("a.yaml"), manifest("one")).unwrap();
    std::fs::write(dir.path().join("b.yaml"), manifest("two")).unwrap();
    let stamp = |name: &str| Stamp::of(&dir.path().join(name)).unwrap().text();
    let made_up = "000102030405060708090a0b0c0d0e0f".to_owned();
    let kept_one = ObjectMeta { namespace: Some("default".into()), name: Some("kept".into()), ..Default::default() };
    let archive = Arc::new(KeptArchive {
        digests: HashMap::from([
            ("a.yaml".to_owned(), (stamp("a.yaml"), made_up.clone())),
            ("b.yaml".to_owned(), ("0:0:0:0.0:0.0".to_owned(), made_up.clone())),
        ]),
        objects: HashMap::from([(made_up.clone(), vec![kept_one])]),
        ..KeptArchive::default()
    });
    let scan_as_of = |now: SystemTime| {
        let mut scan = Scan::with_archived(Some(archive.clone() as ArchivedFiles));
        let mut objects = Vec::new();
        scan.update_as_of(now, &source, &mut |o| objects.push(o)).unwrap();
        (scan, outcome(&objects).0)
    };

    // The files were just written: their stamps are not trusted, both are read.
    let (_, served) = scan_as_of(SystemTime::now());
    assert_eq!(served, ["one", "two"]);
    let told = std::mem::take(&mut *archive.told.lock().unwrap());
    assert_eq!(told, [("a.yaml".to_owned(), None), ("b.yaml".to_owned(), None)], "too recent to keep");

    let (mut scan, served) = scan_as_of(SystemTime::now() + Duration::from_secs(60));
    assert_eq!(served, ["kept", "two"], "a.yaml not read, b.yaml (another stamp) read");
    let told = std::mem::take(&mut *archive.told.lock().unwrap());
    let b = hex::encode(digest(&Ok(manifest("two"))));
    assert_eq!(
        told,
        [("a.yaml".to_owned(), Some((stamp("a.yaml"), made_up))), ("b.yaml".to_owned(), Some((stamp("b.yaml"), b)))]
    );

    std::fs::remove_file(dir.path().join("b.yaml")).unwrap();
    scan.update(&source, &mut |_| {}).unwrap();
    assert_eq!(*archive.told.lock().unwrap(), [("b.yaml".to_owned(), None)], "b.yaml is gone");
}
