//! Where ConfigMaps come from. Every source yields kube-runtime's `watcher::Event`, one stream per
//! shard, so the index consumes the directory exactly as it consumes a namespace watch.

pub mod dir;
pub mod kube;

/// A recoverable failure of a source; the stream goes on after it.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Watch(#[from] ::kube::runtime::watcher::Error),
    #[error("cannot read {path}: {message}")]
    Dir { path: String, message: String },
}

impl SourceError {
    /// True when the API server answered (for example 403 Forbidden) rather than being
    /// unreachable: an answered failure is reported, but does not hold readiness back.
    /// True when the API server said the resource does not exist (e.g. a CRD not installed).
    pub fn not_found(&self) -> bool {
        use ::kube::runtime::watcher::Error as W;
        matches!(self, SourceError::Watch(W::InitialListFailed(::kube::Error::Api(s)) | W::WatchStartFailed(::kube::Error::Api(s))) if s.code == 404)
    }

    pub fn answered(&self) -> bool {
        use ::kube::runtime::watcher::Error as W;
        match self {
            SourceError::Watch(W::InitialListFailed(e) | W::WatchStartFailed(e) | W::WatchFailed(e)) => {
                matches!(e, ::kube::Error::Api(_))
            }
            SourceError::Watch(W::WatchError(_)) => true,
            SourceError::Watch(_) => false,
            SourceError::Dir { .. } => true,
        }
    }
}
