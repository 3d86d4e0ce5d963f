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
    pub fn answered(&self) -> bool {
        use ::kube::runtime::watcher::Error as W;
        match self {
            SourceError::Watch(
                W::InitialListFailed(e) | W::WatchStartFailed(e) | W::WatchFailed(e),
            ) => {
                matches!(e, ::kube::Error::Api(_))
            }
            SourceError::Watch(W::WatchError(_)) => true,
            SourceError::Watch(_) => false,
            SourceError::Dir { .. } => true,
        }
    }
}
