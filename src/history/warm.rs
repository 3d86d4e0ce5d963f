//! A warm start: the versions the archive holds of executions that still exist, validated under
//! the schemas loaded now, so a start serves them as stored instead of parsing and validating
//! their documents again. Each shard loads its own namespace's (the directory, every one) before
//! it ingests; a database that does not answer within `LOAD_TIMEOUT` makes it a cold start,
//! never a late one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ObjectMeta;
use sqlx::AnyPool;

use super::{ArchiveSettings, store};
use crate::index::ExecutionEntry;
use crate::model::{ExecutionView, ObjectRef};
use crate::quote::shorten;
use crate::source::dir::parse_file_version;
use crate::wire::Json;

/// What the archive kept of one execution version, as it was served.
pub struct Stored {
    pub uid: String,
    pub resource_version: String,
    pub sort_time: jiff::Timestamp,
    pub detail: String,
    pub summary: String,
}

impl Stored {
    /// The execution it was, with its bodies as they were served, which the index serves again
    /// as they are, so a warm start neither parses nor validates its document. `None` when the
    /// stored detail is not what this version serves.
    pub fn into_entry(
        self,
        id: ObjectRef,
        labels: std::collections::BTreeMap<String, String>,
        created: Option<jiff::Timestamp>,
    ) -> Option<ExecutionEntry> {
        let view = view_of_detail(&self.detail)?;
        let json = |text: String| Json::from_bytes(bytes::Bytes::from(text));
        let meta = (self.uid, self.resource_version, self.sort_time, created);
        Some(ExecutionEntry::of_bodies(id, labels, meta, view, (json(self.detail), json(self.summary))))
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
    pool: tokio::sync::OnceCell<Option<AnyPool>>,
}

impl WarmSource {
    pub fn new(settings: ArchiveSettings, schema_set: String) -> Self {
        WarmSource { settings, schema_set, pool: tokio::sync::OnceCell::new() }
    }

    /// The stored versions of `namespace` (every namespace with `None`); none when the
    /// archive cannot say in time.
    pub async fn load(&self, namespace: Option<&str>) -> Warm {
        let started = Instant::now();
        let load = async {
            let pool = self.pool.get_or_init(|| async { store::open(&self.settings.url).await.ok() }).await;
            let pool = pool.as_ref().ok_or_else(|| "cannot open the archive".to_owned())?;
            store::stored(pool, namespace, &self.schema_set).await.map_err(|e| shorten(e.to_string()))
        };
        let rows = match tokio::time::timeout(LOAD_TIMEOUT, load).await {
            Ok(Ok(rows)) => rows,
            Ok(Err(error)) => {
                tracing::warn!(%error, "no warm start: decoding every execution");
                return Warm::default();
            }
            Err(_) => {
                tracing::warn!(timeout = ?LOAD_TIMEOUT, "no warm start: the archive did not answer in time");
                return Warm::default();
            }
        };
        tracing::info!(namespace, versions = rows.len(), took = ?started.elapsed(), "warm start: archived versions loaded");
        let mut files: HashMap<String, FileObjects> = HashMap::new();
        let mut stored = HashMap::with_capacity(rows.len());
        for (namespace, name, labels, version) in rows {
            if let Some((hash, i, n)) = parse_file_version(&version.resource_version) {
                let metadata = ObjectMeta {
                    namespace: Some(namespace.clone()),
                    name: Some(name.clone()),
                    labels: Some(labels),
                    uid: Some(version.uid.clone()),
                    resource_version: Some(version.resource_version.clone()),
                    ..ObjectMeta::default()
                };
                files.entry(hash.to_owned()).or_default().push((i, n, metadata));
            }
            stored.insert((namespace, name), version);
        }
        Warm { stored: Mutex::new(stored), files: Mutex::new(files) }
    }
}

/// Stored versions by namespace and name, each taken at most once; and, for a directory, the
/// objects of each file content they came from.
#[derive(Default)]
pub struct Warm {
    stored: Mutex<HashMap<(String, String), Stored>>,
    files: Mutex<HashMap<String, FileObjects>>,
}

/// The objects of one file content: each one's place, how many there were, its metadata.
type FileObjects = Vec<(usize, usize, ObjectMeta)>;

impl Warm {
    /// The stored version of `cm`, if the archive holds this very one (same uid and
    /// resourceVersion).
    pub fn take(&self, cm: &ConfigMap) -> Option<Stored> {
        let meta = &cm.metadata;
        let key = (meta.namespace.clone()?, meta.name.clone()?);
        let mut stored = self.stored.lock().unwrap_or_else(|p| p.into_inner());
        let same = stored.get(&key).is_some_and(|s| {
            Some(&s.uid) == meta.uid.as_ref() && Some(&s.resource_version) == meta.resource_version.as_ref()
        });
        if same { stored.remove(&key) } else { None }
    }

    /// The objects a file of this content yielded, when the archive holds every one of them
    /// as an execution (so none was rejected): the directory source need not parse it. Given
    /// once per content.
    pub fn file(&self, hash: &str) -> Option<Vec<ObjectMeta>> {
        let mut objects = self.files.lock().unwrap_or_else(|p| p.into_inner()).remove(hash)?;
        objects.sort_by_key(|(i, ..)| *i);
        let n = objects.first()?.1;
        let complete =
            objects.len() == n && objects.iter().enumerate().all(|(at, (i, count, _))| at == *i && *count == n);
        complete.then(|| objects.into_iter().map(|(.., metadata)| metadata).collect())
    }
}
