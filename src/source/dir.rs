//! The embedded default source: ConfigMap manifests (`*.yaml`, `*.yml`, multi-document) in a
//! directory, followed as they change.
//!
//! The first read is a relist (`Init`, `InitApply`..., `InitDone`); after it, only what changed
//! is sent, as `Apply` and `Delete`.
//!
//! inotify says which files changed, and only those are looked at again, so an idle directory
//! costs nothing whatever its size. A file written the usual safe way (a temporary file renamed
//! over the manifest) costs the manifest's read alone: the temporary file's events are ignored and
//! the rename names the manifest. Only an event that may change many manifests at once (a
//! ConfigMap volume swapping its `..data` symlink, the directory itself, a lost event) means a
//! full scan, and so does every minute, as a safety net; where inotify is unavailable, a full scan runs every poll interval instead. A full scan
//! costs a `stat` per file: a file is read again only when its inode, size, mtime or ctime
//! changed (or it changed too recently for its timestamps to tell), and decoded again only when
//! its content hash changed.
//!
//! A file that cannot be read (not a regular file, too large, not UTF-8, a symlink loop) or a
//! document that is not a ConfigMap becomes an `Unreadable` object of its own, reported like any
//! rejection: it hides nothing else. Only a directory that cannot be listed fails the source.

use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::Stream;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ObjectMeta;
use kube::runtime::watcher::Event;
use notify::Watcher;
use serde_json::Value;
use tokio::sync::mpsc;

use super::{Object, SourceError, SourceEvent, Unreadable};
use crate::decode::strict::{self, ParseError};
use crate::files::read_bounded;
use crate::model::ObjectRef;
use crate::model::ReasonCode;
use crate::selector::Selector;

/// What the directory source reads, and how.
#[derive(Clone, Debug)]
pub struct DirSource {
    pub path: PathBuf,
    pub selector: Selector,
    pub interval: Duration,
    /// Larger files are reported as `TooLarge` without being read.
    pub max_file_bytes: u64,
}

/// The largest manifest file read: the largest document plus room for the manifest's own
/// fields (metadata, labels).
pub fn max_file_bytes(max_document_bytes: usize) -> u64 {
    max_document_bytes as u64 + 64 * 1024
}

/// Events waiting for ingestion at most: bounds what a relist holds undecoded.
const QUEUE: usize = 1024;

/// How often the whole directory is scanned while inotify reports changes.
const FULL_SCAN: Duration = Duration::from_secs(60);

/// How long to wait for more events after one, so a burst of writes is one update.
const SETTLE: Duration = Duration::from_millis(10);

/// Follows the directory on a thread of its own (all of its work is blocking file I/O). The
/// stream never ends; dropping it stops the thread within one interval.
pub fn watch_dir(source: DirSource, archived: Option<ArchivedFiles>) -> impl Stream<Item = SourceEvent> + Send {
    let (tx, rx) = mpsc::channel(QUEUE);
    let follow = move || {
        let mut scan = Scan::with_archived(archived);
        // The first listing reads every file: the directory is watched only after it, so its
        // own opens and reads do not become as many events to wake the watcher's thread for,
        // and the full scan that follows at once (a stat per file) sees what changed meanwhile.
        if follow_once(&source, &mut scan, None, &tx).is_err() {
            return;
        }
        let (changed_tx, changed) = std::sync::mpsc::channel();
        let watcher = notify::recommended_watcher(move |event| {
            let _ = changed_tx.send(event);
        })
        .and_then(|mut w| w.watch(&source.path, notify::RecursiveMode::NonRecursive).map(|()| w));
        let full_scan = match &watcher {
            Ok(_) => FULL_SCAN,
            Err(e) => {
                tracing::warn!(error = %e, path = %source.path.display(), "cannot watch the directory with inotify: polling it instead");
                source.interval
            }
        };
        let mut scanned = std::time::Instant::now();
        let mut only: Option<HashSet<String>> = None;
        while follow_once(&source, &mut scan, only.as_ref(), &tx).is_ok() {
            if only.is_none() {
                scanned = std::time::Instant::now();
            }
            only = wait(&source, &changed, scanned + full_scan, &tx);
        }
        drop(watcher);
    };
    if let Err(e) = std::thread::Builder::new().name("dir-source".into()).spawn(follow) {
        tracing::error!(error = %e, "cannot start the directory source's thread");
    }
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|event| (event, rx)) })
}

/// Waits for changes: the manifests inotify named, or `None` for a full scan (an event naming
/// something else, or `full_scan_at` passed). Wakes every interval to see whether the stream is
/// still wanted.
fn wait(
    source: &DirSource,
    changed: &std::sync::mpsc::Receiver<notify::Result<notify::Event>>,
    full_scan_at: std::time::Instant,
    tx: &mpsc::Sender<SourceEvent>,
) -> Option<HashSet<String>> {
    use std::sync::mpsc::RecvTimeoutError;
    let mut names = HashSet::new();
    loop {
        let now = std::time::Instant::now();
        if now >= full_scan_at || tx.is_closed() {
            return None;
        }
        let timeout = if names.is_empty() { source.interval.min(full_scan_at - now) } else { SETTLE };
        match changed.recv_timeout(timeout) {
            // Opening and reading a file (as this source does) changes nothing.
            Ok(Ok(event)) if !changes_content(&event.kind) => {}
            Ok(Ok(event)) if !event.need_rescan() => {
                for path in event.paths {
                    match classify(source, &path) {
                        Touched::Manifest(name) => names.insert(name),
                        Touched::Other => false,
                        Touched::Unknown => return None,
                    };
                }
            }
            Ok(_) => return None,
            Err(RecvTimeoutError::Timeout) if !names.is_empty() => return Some(names),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => std::thread::sleep(timeout),
        }
    }
}

/// Whether an event may change what a file holds: not an open, a read or a read-only close.
fn changes_content(kind: &notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode, EventKind};
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// What an event's path means to the source.
#[derive(Debug, PartialEq, Eq)]
enum Touched {
    /// A manifest of the directory: read it (a rename's destination is one too).
    Manifest(String),
    /// A file that is not read: a writer's temporary file before its rename (`x.yaml.tmp`,
    /// `.x.yaml.swp`, `x.yaml~`), anything in a subdirectory. Ignored: its rename over a
    /// manifest names the manifest.
    Other,
    /// Something that may change many manifests at once (the directory itself, a volume's
    /// `..data` link swapped by the kubelet): scan the whole directory.
    Unknown,
}

fn classify(source: &DirSource, path: &std::path::Path) -> Touched {
    let Some(name) = path.strip_prefix(&source.path).ok().and_then(|p| p.to_str()) else { return Touched::Unknown };
    if name.is_empty() || name.starts_with("..") {
        Touched::Unknown
    } else if !name.contains('/') && is_manifest(name) {
        Touched::Manifest(name.to_owned())
    } else {
        Touched::Other
    }
}

/// Whether a file of the directory is read: `*.yaml` and `*.yml`.
pub(crate) fn is_manifest(name: &str) -> bool {
    std::path::Path::new(name).extension().is_some_and(|x| x == "yaml" || x == "yml")
}

/// One update: a relist the first time (and after a failure), the changes after; of the files
/// in `only`, or of the whole directory. `Err` when the stream was dropped.
fn follow_once(
    source: &DirSource,
    scan: &mut Scan,
    only: Option<&HashSet<String>>,
    tx: &mpsc::Sender<SourceEvent>,
) -> Result<(), ()> {
    let send = |event: SourceEvent| tx.blocking_send(event).map_err(|_| ());
    if tx.is_closed() {
        return Err(());
    }
    let relist = !scan.listed;
    let only = only.filter(|_| !relist);
    let mut sent = Ok(());
    if relist {
        send(Ok(Event::Init))?;
    }
    let mut emit = |object: Object| {
        if sent.is_ok() {
            sent = send(Ok(if relist { Event::InitApply(object) } else { Event::Apply(object) }));
        }
    };
    let updated = match only {
        Some(names) => Ok(scan.update_files(source, names, &mut emit)),
        None => scan.update(source, &mut emit),
    };
    match updated {
        Ok(gone) => {
            sent?;
            if relist {
                send(Ok(Event::InitDone))?;
            }
            for id in gone {
                send(Ok(Event::Delete(deleted(id))))?;
            }
        }
        Err(e) => {
            sent?;
            // The next good read is a relist even if nothing changed, so the source is seen
            // to recover.
            *scan = Scan::with_archived(scan.archived.take());
            send(Err(e))?;
        }
    }
    Ok(())
}

/// What each file held when it was last read, and how many files hold each object.
#[derive(Default)]
pub struct Scan {
    files: HashMap<String, FileState>,
    holders: HashMap<ObjectRef, u32>,
    /// True once a listing succeeded: until then, an update is a relist.
    listed: bool,
    /// What a warm start knows of files by their content.
    archived: Option<ArchivedFiles>,
    /// What files were read as since the archive was last told (`Archived::remember`).
    unremembered: FileNotes,
}

/// What a warm start knows of files by their content, from the archive.
pub trait Archived: Send + Sync {
    /// Whether the archive's versions are loaded: until then, files are only read and hashed.
    fn ready(&self) -> bool;
    /// The objects a file of this content (its `digest`, in hex) yielded before, each archived
    /// as an execution at this very version: such a file is not parsed again. Each answer is
    /// given once, so a copy of a file is parsed as usual. Waits until `ready`.
    fn objects(&self, hash: &str) -> Option<Vec<ObjectMeta>>;
    /// The digest (in hex) the file `name` had when it was last read with this very `stamp`
    /// (see `remember`): such a file is not read again. Waits until what was kept is loaded.
    fn digest(&self, name: &str, stamp: &str) -> Option<String>;
    /// Keeps what files were read as, their stamp and digest (in hex), or forgets them (`None`:
    /// gone, or changed too recently for their stamp to be trusted).
    fn remember(&self, files: FileNotes);
}

/// What files were read as, by name: their stamp and digest (in hex), or `None` to forget them.
pub type FileNotes = Vec<(String, Option<(String, String)>)>;

/// How the source reaches what the archive knows.
pub type ArchivedFiles = Arc<dyn Archived>;

impl Scan {
    pub fn with_archived(archived: Option<ArchivedFiles>) -> Self {
        Scan { archived, ..Scan::default() }
    }
}

struct FileState {
    stamp: Option<Stamp>,
    /// The mtime is so close to when it was read that a later write may keep the same stamp:
    /// such a file is hashed again next time.
    racy: bool,
    digest: ContentDigest,
    objects: Vec<ObjectRef>,
}

/// What a `stat` tells of a file's content without reading it.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(path: &std::path::Path) -> Option<Stamp> {
        let m = std::fs::metadata(path).ok()?;
        Some(Stamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }

    /// Whether a write within timestamp granularity of `now` could leave the stamp unchanged.
    fn racy(&self, now: SystemTime) -> bool {
        let now = now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        self.mtime.0.max(self.ctime.0) >= now - 2
    }

    /// The stamp as the archive keeps it (`Archived::remember`).
    fn text(&self) -> String {
        let Stamp { dev, ino, len, mtime, ctime } = self;
        format!("{dev}:{ino}:{len}:{}.{}:{}.{}", mtime.0, mtime.1, ctime.0, ctime.1)
    }
}

impl Scan {
    /// Reads what changed since the last update, passing every object of a changed file to
    /// `emit`, and returns the objects no file holds any longer. Fails only when the directory
    /// cannot be listed.
    pub fn update(&mut self, source: &DirSource, emit: &mut dyn FnMut(Object)) -> Result<Vec<ObjectRef>, SourceError> {
        self.update_as_of(SystemTime::now(), source, emit)
    }

    /// `update`, telling files changed too recently to trust their stamps by the clock at `now`.
    fn update_as_of(
        &mut self,
        now: SystemTime,
        source: &DirSource,
        emit: &mut dyn FnMut(Object),
    ) -> Result<Vec<ObjectRef>, SourceError> {
        let names = list(source)?;
        self.listed = true;
        let mut released = Vec::new();
        self.visit(now, source, &names, emit, &mut released);
        let present: HashSet<&String> = names.iter().collect();
        let removed: Vec<String> = self.files.keys().filter(|f| !present.contains(f)).cloned().collect();
        for name in removed {
            self.forget(name, &mut released);
        }
        self.tell_archive();
        Ok(self.release(released))
    }

    /// Forgets a file gone: what it held goes to `released`, and the archive is to forget it too
    /// (a file never read, it never knew).
    fn forget(&mut self, name: String, released: &mut Vec<ObjectRef>) {
        if let Some(file) = self.files.remove(&name) {
            released.extend(file.objects);
            self.unremembered.push((name, None));
        }
    }

    /// Tells the archive what files were read as since it was last told.
    fn tell_archive(&mut self) {
        if let Some(archived) = &self.archived
            && !self.unremembered.is_empty()
        {
            archived.remember(std::mem::take(&mut self.unremembered));
        }
    }

    /// Like `update`, for these files of the directory only (present or not).
    pub fn update_files(
        &mut self,
        source: &DirSource,
        names: &HashSet<String>,
        emit: &mut dyn FnMut(Object),
    ) -> Vec<ObjectRef> {
        let mut released = Vec::new();
        let mut present = Vec::new();
        for name in names {
            // Gone, or replaced by something that is not a file: `visit` reports the latter.
            if std::fs::symlink_metadata(source.path.join(name)).is_err() {
                self.forget(name.clone(), &mut released);
            } else {
                present.push(name.clone());
            }
        }
        self.visit(SystemTime::now(), source, &present, emit, &mut released);
        self.tell_archive();
        self.release(released)
    }

    /// Reads again the files whose stamp says they may have changed, and sends the objects of
    /// those whose content did; what they held before goes to `released`. Files are read and
    /// parsed on every core, a batch at a time, so memory holds one batch of text at most.
    /// While a warm start's archive loads, files are read and hashed only (or not even read,
    /// where the archive kept their digest under the stamp they still have), and looked up in
    /// it once it has loaded: the two overlap. Stamps within two seconds of `now` are not trusted.
    fn visit(
        &mut self,
        now: SystemTime,
        source: &DirSource,
        names: &[String],
        emit: &mut dyn FnMut(Object),
        released: &mut Vec<ObjectRef>,
    ) {
        let racy = |stamp: Option<Stamp>| stamp.is_none_or(|s| s.racy(now));
        let mut hashed = Vec::new();
        for batch in names.chunks(256) {
            let stale = self.stale(source, batch);
            let archived = self.archived.as_deref();
            if let Some(archived) = archived.filter(|archived| !archived.ready()) {
                hashed.extend(crate::parallel::map(&stale, |(name, stamp, _)| {
                    // A file whose stamp is as when its digest was kept is not read.
                    let kept = stamp.filter(|s| !s.racy(now)).and_then(|s| archived.digest(name, &s.text()));
                    let kept = kept.and_then(|hex| parse_digest(&hex));
                    let digest =
                        kept.unwrap_or_else(|| digest(&read_bounded(&source.path.join(name), source.max_file_bytes)));
                    (name.to_string(), *stamp, digest)
                }));
                continue;
            }
            let loaded = crate::parallel::map(&stale, |(name, _, known)| {
                let read = read_bounded(&source.path.join(name), source.max_file_bytes);
                let digest = digest(&read);
                // The same content as last time: nothing to parse or send.
                let objects = (Some(digest) != *known).then(|| objects(source, name, (read, &digest), archived));
                (digest, objects)
            });
            for ((name, stamp, _), (digest, objects)) in stale.into_iter().zip(loaded) {
                self.record(name.clone(), (stamp, racy(stamp), digest), objects, emit, released);
            }
        }
        for batch in hashed.chunks(256) {
            let archived = self.archived.as_deref();
            let loaded = crate::parallel::map(batch, |(name, _, hashed)| {
                let known = archived.and_then(|archived| archived.objects(&hex::encode(hashed)));
                match known {
                    Some(known) => (*hashed, known_objects(known)),
                    // Not archived as it was: read again (it may have changed meanwhile; the archive
                    // is asked again only for other content).
                    None => {
                        let read = read_bounded(&source.path.join(name), source.max_file_bytes);
                        let digest = digest(&read);
                        let archived = archived.filter(|_| digest != *hashed);
                        (digest, objects(source, name, (read, &digest), archived))
                    }
                }
            });
            for ((name, stamp, _), (digest, objects)) in batch.iter().zip(loaded) {
                self.record(name.clone(), (*stamp, racy(*stamp), digest), Some(objects), emit, released);
            }
        }
    }

    /// The files of `batch` whose stamp says they may have changed, with what was known of them.
    fn stale<'a>(
        &self,
        source: &DirSource,
        batch: &'a [String],
    ) -> Vec<(&'a String, Option<Stamp>, Option<ContentDigest>)> {
        batch
            .iter()
            .filter_map(|name| {
                let stamp = Stamp::of(&source.path.join(name));
                let known = self.files.get(name.as_str());
                let current = known.is_some_and(|k| stamp.is_some() && k.stamp == stamp && !k.racy);
                (!current).then(|| (name, stamp, known.map(|k| k.digest)))
            })
            .collect()
    }

    /// Keeps what a file was read as, and sends its objects where its content changed
    /// (`objects` is `None` where it did not).
    fn record(
        &mut self,
        name: String,
        (stamp, racy, digest): (Option<Stamp>, bool, ContentDigest),
        objects: Option<Vec<Object>>,
        emit: &mut dyn FnMut(Object),
        released: &mut Vec<ObjectRef>,
    ) {
        if self.archived.is_some() {
            let kept = stamp.filter(|_| !racy).map(|stamp| (stamp.text(), hex::encode(digest)));
            self.unremembered.push((name.clone(), kept));
        }
        let Some(objects) = objects else {
            if let Some(known) = self.files.get_mut(name.as_str()) {
                (known.stamp, known.racy) = (stamp, racy);
            }
            return;
        };
        let ids: Vec<ObjectRef> = objects.iter().map(Object::id).collect();
        for id in &ids {
            *self.holders.entry(id.clone()).or_default() += 1;
        }
        objects.into_iter().for_each(&mut *emit);
        let previous = self.files.insert(name, FileState { stamp, racy, digest, objects: ids });
        released.extend(previous.into_iter().flat_map(|f| f.objects));
    }

    /// Forgets one holding of each of `released`: those no file holds any longer are gone.
    fn release(&mut self, released: Vec<ObjectRef>) -> Vec<ObjectRef> {
        let mut gone = Vec::new();
        for id in released {
            let Some(count) = self.holders.get_mut(&id) else { continue };
            *count -= 1;
            if *count == 0 {
                self.holders.remove(&id);
                gone.push(id);
            }
        }
        gone
    }
}

/// The manifest files of the directory, sorted.
fn list(source: &DirSource) -> Result<Vec<String>, SourceError> {
    let dir = &source.path;
    let listing_failed =
        |e: std::io::Error| SourceError::Dir { path: dir.display().to_string(), message: e.to_string() };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(listing_failed)? {
        let path = entry.map_err(listing_failed)?.path();
        if let Some(name) = path.file_name().map(|n| n.to_string_lossy())
            && is_manifest(&name)
        {
            names.push(name.into_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// The first 128 bits of a file's SHA-256. Stable across processes and releases, as the
/// archive keeps versions made of it (`file_version`).
type ContentDigest = [u8; 16];

/// A digest from its hex, as `Archived::remember` kept it.
fn parse_digest(hex: &str) -> Option<ContentDigest> {
    let mut digest = [0u8; 16];
    hex::decode_to_slice(hex, &mut digest).ok().map(|()| digest)
}

/// A read's digest: of its text, or of why it could not be read. It tells whether a file
/// changed and, in hex, names its content in versions; one hash of each file read (the files
/// of a directory are a gigabyte at 100 000 executions).
fn digest(read: &Result<String, (ReasonCode, String)>) -> ContentDigest {
    let sha = match read {
        Ok(text) => Sha256::digest(text.as_bytes()),
        // 0xFF never occurs in UTF-8, so no text has the digest of a failed read.
        Err((code, message)) => {
            Sha256::new().chain_update([0xFF]).chain_update(format!("{code:?}:{message}")).finalize()
        }
    };
    let mut digest = [0u8; 16];
    digest.copy_from_slice(&sha[..16]);
    digest
}

/// Every selected ConfigMap and every unreadable document of one file. A ConfigMap without a
/// resourceVersion gets one from the file's content and its place among the file's objects.
fn objects(
    source: &DirSource,
    name: &str,
    (read, digest): (Result<String, (ReasonCode, String)>, &ContentDigest),
    archived: Option<&dyn Archived>,
) -> Vec<Object> {
    let text = match read {
        Ok(text) => text,
        Err((code, message)) => return vec![Object::Unreadable(Unreadable { file: name.to_owned(), code, message })],
    };
    let hash = hex::encode(digest);
    if let Some(known) = archived.and_then(|archived| archived.objects(&hash)) {
        return known_objects(known);
    }
    let documents = parse_manifests(&text);
    let several = documents.len() > 1;
    let mut objects = Vec::new();
    for (i, parsed) in documents.into_iter().enumerate() {
        let file = if several { format!("{name} (document {})", i + 1) } else { name.to_owned() };
        match parsed {
            Ok(Some(cm)) if source.selector.matches(cm.metadata.labels.as_ref().unwrap_or(&BTreeMap::new())) => {
                objects.push(Object::ConfigMap(cm))
            }
            Ok(_) => {}
            Err((code, message)) => objects.push(Object::Unreadable(Unreadable { file, code, message })),
        }
    }
    let n = objects.len();
    for (i, object) in objects.iter_mut().enumerate() {
        if let Object::ConfigMap(cm) = object {
            cm.metadata.resource_version.get_or_insert_with(|| file_version(&hash, i, n));
        }
    }
    objects
}

/// The objects of a file as the archive knows them: their metadata, the data left out (the
/// archive holds what it was served as).
fn known_objects(known: Vec<ObjectMeta>) -> Vec<Object> {
    known.into_iter().map(|metadata| Object::ConfigMap(ConfigMap { metadata, ..ConfigMap::default() })).collect()
}

/// The resourceVersion of the `i`th of a file's `n` objects.
pub fn file_version(hash: &str, i: usize, n: usize) -> String {
    format!("{hash}-{i}-{n}")
}

/// Which file content, and which of its objects, a version names (see `file_version`).
pub fn parse_file_version(version: &str) -> Option<(&str, usize, usize)> {
    let mut parts = version.splitn(3, '-');
    let (hash, i, n) = (parts.next()?, parts.next()?.parse().ok()?, parts.next()?.parse().ok()?);
    (hash.len() == 32 && i < n).then_some((hash, i, n))
}

/// The object a `Delete` names: a ConfigMap always has a namespace (`default` when omitted).
fn deleted(id: ObjectRef) -> Object {
    if id.namespace.is_empty() {
        return Object::Unreadable(Unreadable { file: id.name, code: ReasonCode::Unreadable, message: String::new() });
    }
    let metadata = ObjectMeta { namespace: Some(id.namespace), name: Some(id.name), ..ObjectMeta::default() };
    Object::ConfigMap(ConfigMap { metadata, ..ConfigMap::default() })
}

/// Every document of a manifest file, as a ConfigMap where it is one (`None` for empty
/// documents and other kinds); an error is a reason code and a message.
pub fn parse_manifests(text: &str) -> Vec<Result<Option<ConfigMap>, (ReasonCode, String)>> {
    strict::yaml_documents(text)
        .into_iter()
        .map(|doc| match doc {
            Ok(value) => configmap(value).map_err(|e| (ReasonCode::Unparsable, format!("not a valid ConfigMap: {e}"))),
            Err(e @ ParseError::DuplicateKey { .. }) => Err((ReasonCode::DuplicateKey, e.to_string())),
            Err(e) => Err((ReasonCode::Unparsable, e.to_string())),
        })
        .collect()
}

/// One document as a ConfigMap: `None` for empty documents and other kinds.
fn configmap(value: Value) -> Result<Option<ConfigMap>, serde_json::Error> {
    if value.is_null() || value.get("kind").and_then(|k| k.as_str()) != Some("ConfigMap") {
        return Ok(None);
    }
    let mut cm: ConfigMap = serde_json::from_value(value)?;
    cm.metadata.namespace.get_or_insert_with(|| "default".to_owned());
    // Files carry no uid: one derived from the name is the same in every process, so
    // the archive keeps one row per file's execution across restarts.
    let key = format!(
        "{}/{}",
        cm.metadata.namespace.as_deref().unwrap_or_default(),
        cm.metadata.name.as_deref().unwrap_or_default()
    );
    cm.metadata.uid.get_or_insert_with(|| hex::encode(&Sha256::digest(key.as_bytes())[..16]));
    Ok(Some(cm))
}

#[cfg(test)]
mod tests;
