//! A warm start: the versions the archive holds of executions that still exist, validated under
//! the schemas loaded now, so a start serves them as stored instead of parsing and validating
//! their documents again. Each shard loads its own namespace's (the directory, every one) before
//! it ingests; a database that does not answer within `LOAD_TIMEOUT` makes it a cold start,
//! never a late one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use sqlx::AnyPool;

use super::{ArchiveSettings, short, store};
use crate::index::Stored;

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
            store::stored(pool, namespace, &self.schema_set).await.map_err(short)
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
        Warm(Mutex::new(rows.into_iter().map(|(ns, name, stored)| ((ns, name), stored)).collect()))
    }
}

/// Stored versions by namespace and name, each taken at most once.
#[derive(Default)]
pub struct Warm(Mutex<HashMap<(String, String), Stored>>);

impl Warm {
    /// The stored version of `cm`, if the archive holds this very one (same uid and
    /// resourceVersion).
    pub fn take(&self, cm: &ConfigMap) -> Option<Stored> {
        let meta = &cm.metadata;
        let key = (meta.namespace.clone()?, meta.name.clone()?);
        let mut stored = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let same = stored.get(&key).is_some_and(|s| {
            Some(&s.uid) == meta.uid.as_ref() && Some(&s.resource_version) == meta.resource_version.as_ref()
        });
        if same { stored.remove(&key) } else { None }
    }
}
