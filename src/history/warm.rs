//! A warm start: the versions the archive holds of executions that still exist, validated under
//! the schemas loaded now, so a start serves them as stored instead of parsing and validating
//! their documents again. Each shard loads its own namespace's (the directory, every one) before
//! it ingests; a database that does not answer within `LOAD_TIMEOUT` makes it a cold start,
//! never a late one.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ObjectMeta;
use sqlx::AnyPool;

use super::{ArchiveSettings, store};
use crate::index::{DetailBody, DetailUnavailable, ExecutionEntry, Index, StoredDetails};
use crate::model::{ExecutionView, ObjectRef};
use crate::quote::shorten;
use crate::source::dir::{Archived, FileNotes, parse_file_version};
use crate::wire::{Json, Tag};

/// What the archive kept of one execution version, as it was served.
pub struct Stored {
    pub uid: String,
    pub resource_version: String,
    pub sort_time: jiff::Timestamp,
    /// Read only where the row lacks what a warm start needs instead (its view and ETags): the
    /// details of the others follow once the shard is listed (`WarmSource::read_details`).
    pub detail: Option<String>,
    pub summary: String,
    /// The typed view (read as the rows arrive, beside the database's own work), and the
    /// detail's and summary's ETags, as written with the bodies; `None` in rows written by a
    /// version before (or a view this version cannot read), computed again from the bodies.
    pub served_view: Option<ExecutionView>,
    pub tags: (Option<Tag>, Option<Tag>),
}

impl Stored {
    /// The execution it was, with its bodies as they were served, which the index serves again
    /// as they are, so a warm start neither parses nor validates its document; its detail read
    /// from `details` later, unless the row was read with it. `None` when the stored detail is
    /// not what this version serves.
    pub fn into_entry(
        self,
        (id, labels, created): (ObjectRef, BTreeMap<String, String>, Option<jiff::Timestamp>),
        details: &Arc<WarmSource>,
    ) -> Option<ExecutionEntry> {
        let stored_view = self.served_view;
        let complete = stored_view.is_some() && self.tags.0.is_some() && self.tags.1.is_some();
        let view = stored_view.or_else(|| self.detail.as_deref().and_then(view_of_detail))?;
        let json = |text: String, tag: Option<Tag>| {
            let bytes = bytes::Bytes::from(text);
            match tag {
                Some(tag) => Json { bytes, tag },
                None => Json::from_bytes(bytes),
            }
        };
        let detail = match (self.detail, self.tags.0) {
            (Some(text), tag) => DetailBody::new(json(text, tag)),
            (None, Some(tag)) => DetailBody::stored(tag, details.clone()),
            (None, None) => return None,
        };
        let bodies = (detail, json(self.summary, self.tags.1));
        let meta = (self.uid, self.resource_version, self.sort_time, created);
        let mut entry = ExecutionEntry::of_bodies(id, labels, meta, view, bodies);
        // A row of a version before lacks what the next warm start reads: written again.
        entry.in_archive = complete;
        Some(entry)
    }
}

/// The typed view of a detail body as it was served; `None` for one this version cannot read.
pub(super) fn view_of_detail(detail: &str) -> Option<ExecutionView> {
    #[derive(serde::Deserialize)]
    struct Served {
        execution: ExecutionView,
    }
    serde_json::from_str::<Served>(detail).ok().map(|served| served.execution)
}

/// The longest a shard waits for its archived versions before it decodes everything.
const LOAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Where shards load their archived versions from: one connection pool for all of them.
pub struct WarmSource {
    settings: ArchiveSettings,
    /// The schemas' fingerprint: versions validated under others are decoded again.
    schema_set: String,
    pool: tokio::sync::OnceCell<Result<AnyPool, String>>,
}

impl WarmSource {
    pub fn new(settings: ArchiveSettings, schema_set: String) -> Self {
        WarmSource { settings, schema_set, pool: tokio::sync::OnceCell::new() }
    }

    async fn pool(&self) -> Result<&AnyPool, String> {
        let open = || async { store::open(&self.settings.url).await.map_err(|e| shorten(e.to_string())) };
        let pool = self.pool.get_or_init(open).await;
        pool.as_ref().map_err(|e| format!("cannot open the archive: {e}"))
    }

    /// The stored versions of `namespace` (every namespace with `None`), without the details
    /// they hold elsewhere (`read_details`); none when the archive cannot say in time. Each row
    /// goes into the maps as it arrives; a SQLite file is read on a blocking thread.
    pub async fn load(&self, namespace: Option<&str>) -> Loaded {
        let started = Instant::now();
        // Set when the load is given up (its timeout), so a file read on its own thread stops.
        let cancelled = CancelOnDrop(Arc::new(AtomicBool::new(false)));
        let through_pool = async |pool: &AnyPool| {
            let mut maps = Maps::default();
            let take = |namespace, name, labels, version| maps.add((namespace, name, labels, version));
            store::stored(pool, namespace, &self.schema_set, take).await.map(|()| maps)
        };
        let (of, schema_set, flag) = (namespace.map(str::to_owned), self.schema_set.clone(), cancelled.0.clone());
        let from_file = move |path: std::path::PathBuf| {
            let mut maps = Maps::default();
            let take = |namespace, name, labels, version| maps.add((namespace, name, labels, version));
            store::stored_from_file(&path, of.as_deref(), &schema_set, &flag, take).map(|()| maps)
        };
        let maps = match self.read(through_pool, from_file).await {
            Ok(maps) => maps,
            Err(error) => {
                tracing::warn!(%error, "no warm start: decoding every execution");
                return Loaded::default();
            }
        };
        let versions = maps.stored.len();
        tracing::info!(namespace, versions, took = ?started.elapsed(), "warm start: archived versions loaded");
        Loaded { stored: Mutex::new(maps.stored), files: Mutex::new(maps.files) }
    }

    /// What the archive kept of `directory`'s files (its shard's name): none when it cannot
    /// say in time, and then every file is read.
    pub async fn kept_files(&self, directory: &str) -> KeptFiles {
        let started = Instant::now();
        let of = directory.to_owned();
        let from_file = move |path: std::path::PathBuf| store::kept_files_from_file(&path, &of);
        let files = match self.read(async |pool: &AnyPool| store::kept_files(pool, directory).await, from_file).await {
            Ok(files) => files,
            Err(error) => {
                tracing::warn!(%error, "cannot read what the archive kept of the directory's files: reading every one");
                return KeptFiles::new();
            }
        };
        tracing::info!(files = files.len(), took = ?started.elapsed(), "warm start: files' digests loaded");
        files.into_iter().map(|(name, stamp, digest)| (name, (stamp, digest))).collect()
    }

    /// Reads what a start needs within `LOAD_TIMEOUT`: from a SQLite file on a blocking thread
    /// of its own (`from_file`: sqlx's SQLite driver hands over its rows one by one), else
    /// through the pool. `Err` says why not, shortened.
    async fn read<T: Send + 'static>(
        &self,
        through_pool: impl AsyncFnOnce(&AnyPool) -> Result<T, sqlx::Error>,
        from_file: impl FnOnce(std::path::PathBuf) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, String> {
        let read = async {
            let pool = self.pool().await?;
            let Some(path) = self.settings.url.sqlite_path() else {
                return through_pool(pool).await.map_err(|e| shorten(e.to_string()));
            };
            let path = std::path::PathBuf::from(path);
            let read = tokio::task::spawn_blocking(move || from_file(path)).await.map_err(|e| e.to_string())?;
            read.map_err(|e| shorten(e.to_string()))
        };
        match tokio::time::timeout(LOAD_TIMEOUT, read).await {
            Ok(read) => read,
            Err(_) => Err(format!("the archive did not answer within {LOAD_TIMEOUT:?}")),
        }
    }

    /// Writes what `directory`'s files were read as, in order, as `notes` come, until the shard
    /// stops. A failed write is logged and dropped: what it would have kept is read again at
    /// the next start, as a row whose stamp no longer matches is.
    pub async fn remember_files(&self, directory: &str, mut notes: tokio::sync::mpsc::UnboundedReceiver<FileNotes>) {
        while let Some(mut files) = notes.recv().await {
            while let Ok(more) = notes.try_recv() {
                files.extend(more);
            }
            let write = async {
                store::remember_files(self.pool().await?, directory, &files).await.map_err(|e| shorten(e.to_string()))
            };
            if let Err(error) = write.await {
                tracing::warn!(%error, files = files.len(), "cannot keep what the directory's files were read as");
            }
        }
    }

    /// Reads back the details a warm start left in the archive, of the executions `index` holds
    /// at the versions restored (of `namespace`, or of every one): about 3 s at 100 000, done
    /// once the shard is listed, after ready instead of before. A detail not read here is read
    /// when it is asked for.
    pub async fn read_details(&self, index: &Index, namespace: Option<&str>) {
        let started = Instant::now();
        let mut read = 0usize;
        let fill = |id: ObjectRef, (uid, version): (String, String), tag: Option<Tag>, detail: String| {
            let entry = index.get(&id).filter(|e| e.uid == uid && e.resource_version == version);
            // As it was served: a row written again since (by another version of execwatch) is not.
            let entry = entry.filter(|e| Some(e.detail.tag) == tag);
            if let Some(entry) = entry.filter(|e| e.detail.loaded().is_none()) {
                entry.detail.fill(bytes::Bytes::from(detail));
                read += 1;
            }
        };
        let details = async {
            let pool = self.pool().await?;
            store::details(pool, namespace, &self.schema_set, fill).await.map_err(|e| shorten(e.to_string()))
        };
        match tokio::time::timeout(DETAILS_TIMEOUT, details).await {
            Ok(Ok(())) => tracing::info!(namespace, read, took = ?started.elapsed(), "warm start: details read back"),
            Ok(Err(error)) => {
                tracing::warn!(%error, read, "warm start: details not read back; each is read when asked for")
            }
            Err(_) => {
                tracing::warn!(timeout = ?DETAILS_TIMEOUT, read, "warm start: details not all read back in time; each other is read when asked for")
            }
        }
    }
}

/// A detail a warm start has not read back yet, read for a request that needs it.
impl StoredDetails for WarmSource {
    fn read<'a>(
        &'a self,
        id: &'a ObjectRef,
        version: (&'a str, &'a str),
        tag: Tag,
    ) -> BoxFuture<'a, Result<Option<bytes::Bytes>, DetailUnavailable>> {
        Box::pin(async move {
            let read =
                async { store::detail(self.pool().await?, id, version, tag).await.map_err(|e| shorten(e.to_string())) };
            let failed = match tokio::time::timeout(DETAIL_TIMEOUT, read).await {
                Ok(Ok(detail)) => return Ok(detail.map(bytes::Bytes::from)),
                Ok(Err(error)) => error,
                Err(_) => format!("no answer within {DETAIL_TIMEOUT:?}"),
            };
            let (namespace, name) = (&id.namespace, &id.name);
            tracing::warn!(error = %failed, %namespace, %name, "cannot read an execution's detail from the archive");
            Err(DetailUnavailable::Unreadable)
        })
    }
}

/// The longest the details of a warm start take to read back; what is left is read when asked for.
const DETAILS_TIMEOUT: Duration = Duration::from_secs(600);

/// The longest a request waits for one detail from the archive.
const DETAIL_TIMEOUT: Duration = Duration::from_secs(5);

/// What a load gathers: stored versions by namespace and name and, for a directory, the
/// objects of each file content they came from.
#[derive(Default)]
struct Maps {
    files: HashMap<String, FileObjects>,
    stored: HashMap<(String, String), Stored>,
}

impl Maps {
    /// One stored version, by its namespace and name and, for a directory's, by its file's content.
    fn add(&mut self, (namespace, name, labels, version): (String, String, BTreeMap<String, String>, Stored)) {
        if let Some((hash, i, n)) = parse_file_version(&version.resource_version) {
            let metadata = ObjectMeta {
                namespace: Some(namespace.clone()),
                name: Some(name.clone()),
                labels: Some(labels),
                uid: Some(version.uid.clone()),
                resource_version: Some(version.resource_version.clone()),
                ..ObjectMeta::default()
            };
            self.files.entry(hash.to_owned()).or_default().push((i, n, metadata));
        }
        self.stored.insert((namespace, name), version);
    }
}

/// Sets its flag when dropped: a load given up stops its read.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Stored versions by namespace and name, each taken at most once; and, for a directory, the
/// objects of each file content they came from.
#[derive(Default)]
pub struct Loaded {
    stored: Mutex<HashMap<(String, String), Stored>>,
    files: Mutex<HashMap<String, FileObjects>>,
}

impl Loaded {
    /// Nothing stored: a cold start.
    pub fn is_empty(&self) -> bool {
        self.stored.lock().unwrap_or_else(|p| p.into_inner()).is_empty()
    }
}

/// What the archive kept of a directory's files, by name: each one's stamp and digest (in hex).
pub type KeptFiles = HashMap<String, (String, String)>;

/// What a shard starts from: the versions `WarmSource::load` gives, once it has (a source may
/// start reading meanwhile, as the directory does: the two overlap).
pub struct Warm {
    loaded: OnceLock<Loaded>,
    done: tokio::sync::watch::Sender<bool>,
    /// What the archive kept of the directory's files (none for a namespace's shard), until
    /// the first listing has been told (`remember`): the only one to ask (`digest`).
    kept: OnceLock<Mutex<KeptFiles>>,
    /// Where what the directory's files were read as goes, to be kept (`WarmSource::remember_files`).
    notes: Option<tokio::sync::mpsc::UnboundedSender<FileNotes>>,
}

impl Default for Warm {
    /// Nothing stored: a cold start.
    fn default() -> Self {
        let warm = Warm::pending(None);
        warm.fill(Loaded::default());
        warm.keep_files(KeptFiles::new());
        warm
    }
}

impl Warm {
    /// Versions still to come: `fill` them and `keep_files` (a `Filling` guard always does);
    /// what files are read as goes to `notes`.
    pub fn pending(notes: Option<tokio::sync::mpsc::UnboundedSender<FileNotes>>) -> Self {
        Warm { loaded: OnceLock::new(), done: tokio::sync::watch::Sender::new(false), kept: OnceLock::new(), notes }
    }

    /// The versions loaded; the first fill stands.
    pub fn fill(&self, loaded: Loaded) {
        let _ = self.loaded.set(loaded);
        self.done.send_replace(true);
    }

    /// What the archive kept of the directory's files; the first stands.
    pub fn keep_files(&self, kept: KeptFiles) {
        let _ = self.kept.set(Mutex::new(kept));
    }

    /// Once the versions are loaded.
    pub async fn ready(&self) {
        let _ = self.done.subscribe().wait_for(|done| *done).await;
    }
}

/// Fills its `Warm` with nothing when dropped unfilled (a shard stopped while loading), so a
/// source waiting for it is never stuck.
pub struct Filling(pub Arc<Warm>);

impl Drop for Filling {
    fn drop(&mut self) {
        if self.0.loaded.get().is_none() {
            self.0.fill(Loaded::default());
        }
        self.0.keep_files(KeptFiles::new());
    }
}

/// The objects of one file content: each one's place, how many there were, its metadata.
type FileObjects = Vec<(usize, usize, ObjectMeta)>;

impl Warm {
    /// The stored version of `cm`, if the archive holds this very one (same uid and
    /// resourceVersion). Sources send nothing before the versions are loaded; anything earlier
    /// is decoded.
    pub fn take(&self, cm: &ConfigMap) -> Option<Stored> {
        let meta = &cm.metadata;
        let key = (meta.namespace.clone()?, meta.name.clone()?);
        let mut stored = self.loaded.get()?.stored.lock().unwrap_or_else(|p| p.into_inner());
        let same = stored.get(&key).is_some_and(|s| {
            Some(&s.uid) == meta.uid.as_ref() && Some(&s.resource_version) == meta.resource_version.as_ref()
        });
        if same { stored.remove(&key) } else { None }
    }
}

/// The directory source reads and hashes files while the versions load, and asks after.
impl Archived for Warm {
    fn ready(&self) -> bool {
        self.loaded.get().is_some()
    }

    /// The objects a file of this content yielded, when the archive holds every one of them
    /// as an execution (so none was rejected). Blocks until the versions are loaded (a
    /// `Filling` bounds that).
    fn objects(&self, hash: &str) -> Option<Vec<ObjectMeta>> {
        let loaded = self.loaded.wait();
        let mut objects = loaded.files.lock().unwrap_or_else(|p| p.into_inner()).remove(hash)?;
        objects.sort_by_key(|(i, ..)| *i);
        let n = objects.first()?.1;
        let complete =
            objects.len() == n && objects.iter().enumerate().all(|(at, (i, count, _))| at == *i && *count == n);
        complete.then(|| objects.into_iter().map(|(.., metadata)| metadata).collect())
    }

    /// Blocks until what was kept of the files is loaded (a `Filling` bounds that).
    fn digest(&self, name: &str, stamp: &str) -> Option<String> {
        let kept = self.kept.wait().lock().unwrap_or_else(|p| p.into_inner());
        let (kept, digest) = kept.get(name)?;
        (kept == stamp).then(|| digest.clone())
    }

    /// What the archive holds already is not written again (at a warm start, nearly every
    /// file); what it kept is then let go, as the first listing, the one that asks, is done.
    fn remember(&self, files: FileNotes) {
        let Some(notes) = &self.notes else { return };
        let kept = self.kept.get().map(|kept| std::mem::take(&mut *kept.lock().unwrap_or_else(|p| p.into_inner())));
        let kept = kept.unwrap_or_default();
        let files: FileNotes = files.into_iter().filter(|(name, file)| kept.get(name) != file.as_ref()).collect();
        if !files.is_empty() {
            let _ = notes.send(files);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{ArchiveKey, Note};
    use crate::model::Execution;
    use jiff::Timestamp;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    /// An execution as decoding would make it (this room does not decode).
    fn execution(cm: &ConfigMap) -> Execution {
        let document = serde_json::json!({
            "pipeline": "web", "application": { "name": "web", "version": "1.0.0" },
            "phase": "Running", "startedAt": "2026-12-01T10:00:00Z", "environments": [],
        });
        Execution {
            id: ObjectRef::of(cm),
            labels: cm.metadata.labels.clone().unwrap_or_default(),
            uid: cm.metadata.uid.clone().unwrap_or_default(),
            resource_version: cm.metadata.resource_version.clone().unwrap_or_default(),
            sort_time: "2026-12-01T10:00:00Z".parse().unwrap(),
            created: cm.metadata.creation_timestamp.as_ref().map(|t: &Time| t.0),
            view: serde_json::from_value(document.clone()).unwrap(),
            document,
        }
    }

    /// What a directory's files were read as is kept in the archive and read back at the next
    /// start (through either client): a file is answered with its digest only under the stamp
    /// it was kept with, and what the archive holds already is not written again.
    #[tokio::test]
    async fn the_files_digests_are_kept_and_given_back_under_their_stamp_only() {
        use crate::source::dir::Archived;
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("h.db").display()).parse().unwrap();
        let source = Arc::new(WarmSource::new(ArchiveSettings::new(url, Duration::from_secs(3600)), "s".to_owned()));
        let kept = |stamp: &str, digest: &str| Some((stamp.to_owned(), digest.to_owned()));
        let (notes, noted) = tokio::sync::mpsc::unbounded_channel();
        let warm = Warm::pending(Some(notes));
        warm.keep_files(source.kept_files("dir:/d").await);
        warm.remember(vec![("a.yaml".into(), kept("1:1", "aa")), ("b.yaml".into(), kept("1:2", "bb"))]);
        drop(warm);
        source.remember_files("dir:/d", noted).await;

        let files = source.kept_files("dir:/d").await;
        assert_eq!(files.len(), 2);
        let pool = source.pool().await.unwrap();
        let through_sqlx = store::kept_files(pool, "dir:/d").await.unwrap();
        assert_eq!(through_sqlx.len(), 2, "read alike by sqlx (as from PostgreSQL)");
        assert!(source.kept_files("dir:/other").await.is_empty(), "kept by directory");

        let (notes, mut noted) = tokio::sync::mpsc::unbounded_channel();
        let warm = Warm::pending(Some(notes));
        warm.keep_files(files);
        assert_eq!(warm.digest("a.yaml", "1:1").as_deref(), Some("aa"));
        assert_eq!(warm.digest("a.yaml", "1:9"), None, "another stamp: read again");
        assert_eq!(warm.digest("c.yaml", "1:1"), None);
        let told = vec![
            ("a.yaml".into(), kept("1:1", "aa")),
            ("b.yaml".into(), None),
            ("c.yaml".into(), kept("1:3", "cc")),
            ("d.yaml".into(), None),
        ];
        warm.remember(told);
        assert_eq!(warm.digest("a.yaml", "1:1"), None, "let go once the first listing is told");
        let written = noted.try_recv().unwrap();
        assert_eq!(written, [("b.yaml".to_owned(), None), ("c.yaml".to_owned(), kept("1:3", "cc"))], "only changes");
        drop(warm);
        source.remember_files("dir:/d", channel_of(written)).await;
        let files = source.kept_files("dir:/d").await;
        assert_eq!(
            files,
            KeptFiles::from([
                ("a.yaml".into(), ("1:1".into(), "aa".into())),
                ("c.yaml".into(), ("1:3".into(), "cc".into()))
            ])
        );
    }

    /// A channel that gives `notes` and ends.
    fn channel_of(notes: FileNotes) -> tokio::sync::mpsc::UnboundedReceiver<FileNotes> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tx.send(notes).unwrap();
        rx
    }

    /// A warm start serves an execution before it reads its detail back: the detail is read
    /// from the archive once, when asked for, and kept; the deletion of one never read marks
    /// its row without writing a detail over it (nor spools one it does not have); and a
    /// version the archive no longer holds is said to be replaced, never served as another's.
    #[tokio::test]
    async fn a_detail_left_in_the_archive_is_read_when_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("h.db").display()).parse().unwrap();
        let settings = ArchiveSettings::new(url, Duration::from_secs(3600));
        let metadata = ObjectMeta {
            namespace: Some("team-a".to_owned()),
            name: Some("run-1".to_owned()),
            uid: Some("u1".to_owned()),
            resource_version: Some("1".to_owned()),
            labels: Some(BTreeMap::from([("app".to_owned(), "web".to_owned())])),
            ..ObjectMeta::default()
        };
        let cm = ConfigMap { metadata, ..ConfigMap::default() };
        let served = Arc::new(ExecutionEntry::new(execution(&cm)));
        let (key, schema_set) = (ArchiveKey::of(&served), "schemas-1".to_owned());
        let pool = store::open(&settings.url).await.unwrap();
        let note = (key.clone(), Note::Served(served.clone(), Timestamp::now()));
        store::write(&pool, &[note], &schema_set).await.unwrap();

        let source = Arc::new(WarmSource::new(settings, schema_set.clone()));
        let restore = || async {
            let warm = Warm::pending(None);
            warm.fill(source.load(Some("team-a")).await);
            let stored = warm.take(&cm).expect("the archive holds this version");
            let labels = cm.metadata.labels.clone().unwrap_or_default();
            Arc::new(stored.into_entry((ObjectRef::of(&cm), labels, None), &source).expect("restored"))
        };
        let (read, unread) = (restore().await, restore().await);
        assert!(read.detail.loaded().is_none(), "the detail is not read with the rest");
        assert_eq!(read.detail.tag, served.detail.tag, "its ETag is");
        assert_eq!(read.detail().await.ok().as_ref(), served.detail.loaded(), "read when asked for");
        assert_eq!(read.detail.loaded(), served.detail.loaded(), "and kept");

        let at = Timestamp::now();
        let deleted = Note::Deleted(unread.clone(), at);
        let spooled = serde_json::to_string(&store::StoredNote::of(&key, &deleted)).unwrap();
        assert_eq!(serde_json::from_str::<store::StoredNote>(&spooled).unwrap(), store::StoredNote::of(&key, &deleted));
        store::write(&pool, &[(key, deleted)], &schema_set).await.unwrap();
        let (detail, deleted_at): (String, Option<i64>) =
            sqlx::query_as("SELECT detail, deleted_at FROM executions").fetch_one(&pool).await.unwrap();
        assert_eq!(Some(detail.as_bytes()), served.detail.loaded().map(|b| &b[..]), "the row keeps its detail");
        assert_eq!(deleted_at, Some(at.as_millisecond()), "and is marked deleted");
        assert!(unread.detail.loaded().is_none());

        let rewritten = "UPDATE executions SET detail_tag = '0123456789abcdef0123456789abcdef'";
        sqlx::query(rewritten).execute(&pool).await.unwrap();
        assert_eq!(unread.detail().await.err(), Some(DetailUnavailable::Replaced), "the row was written again");
        let tag = served.detail.tag.to_hex();
        sqlx::query("UPDATE executions SET detail_tag = $1").bind(tag).execute(&pool).await.unwrap();
        sqlx::query("UPDATE executions SET resource_version = '2'").execute(&pool).await.unwrap();
        assert_eq!(unread.detail().await.err(), Some(DetailUnavailable::Replaced), "another version");
        pool.close().await;
    }
}
