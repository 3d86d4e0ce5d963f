//! Where ConfigMaps come from. Every source yields kube-runtime's `watcher::Event`, one stream per
//! shard, so the index consumes the directory exactly as it consumes a namespace watch.

pub mod cluster;
pub mod dir;
pub mod namespaces;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::watcher::Event;

pub use dir::DirSource;

use crate::model::ObjectRef;
use crate::model::ReasonCode;

use self::cluster::WatchSettings;

/// Where executions come from.
#[derive(Clone)]
pub enum Sources {
    /// One watcher per namespace; modules follow BackendModule objects.
    Kube { client: kube::Client, namespaces: Namespaces, watch: WatchSettings },
    /// Manifests in a directory, followed with inotify (or polled); modules come from `--modules`.
    Dir(DirSource),
}

/// Which namespaces the Kubernetes source watches.
#[derive(Clone, Debug)]
pub enum Namespaces {
    /// These, fixed (`--namespaces`).
    Listed(Vec<String>),
    /// Those whose labels match (`--namespace-selector`), followed as they come and go.
    Selected(crate::selector::Selector),
}

impl From<Vec<String>> for Namespaces {
    fn from(names: Vec<String>) -> Self {
        Namespaces::Listed(names)
    }
}

/// One object a source yields: a ConfigMap, or (from the directory source) a file or document
/// that could not be read as one, which is reported instead of hiding anything else.
#[derive(Clone, Debug)]
// Nearly every object is a ConfigMap: boxing it would cost an allocation each to save room in
// the rare unreadable case.
#[allow(clippy::large_enum_variant)]
pub enum Object {
    ConfigMap(ConfigMap),
    Unreadable(Unreadable),
}

impl Object {
    /// The identity the index keys it by: an unreadable file has no namespace, and its name is
    /// the file's (and document's).
    pub fn id(&self) -> ObjectRef {
        match self {
            Object::ConfigMap(cm) => ObjectRef::of(cm),
            Object::Unreadable(u) => ObjectRef { namespace: String::new(), name: u.file.clone() },
        }
    }
}

/// A file, or one document of it, that is not a readable ConfigMap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unreadable {
    /// The file, relative to the directory, and the document's position where it has several.
    pub file: String,
    /// `Unreadable`, `TooLarge`, `Unparsable` or `DuplicateKey`.
    pub code: ReasonCode,
    pub message: String,
}

/// What every source stream yields.
pub type SourceEvent = Result<Event<Object>, SourceError>;

/// Applies `f` to every object of an event.
pub fn map_event<A, B>(event: Event<A>, f: impl Fn(A) -> B) -> Event<B> {
    match event {
        Event::Init => Event::Init,
        Event::InitApply(a) => Event::InitApply(f(a)),
        Event::InitDone => Event::InitDone,
        Event::Apply(a) => Event::Apply(f(a)),
        Event::Delete(a) => Event::Delete(f(a)),
    }
}

/// A recoverable failure of a source; the stream goes on after it.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Watch(#[from] kube::runtime::watcher::Error),
    #[error("cannot read {path}: {message}")]
    Dir { path: String, message: String },
    /// A list page took longer than this to arrive: kube-runtime puts no timeout of its own on it.
    #[error("the list did not answer within {0:?}; starting over")]
    ListStalled(std::time::Duration),
}

impl SourceError {
    /// True when the API server said the resource does not exist (e.g. a CRD not installed).
    pub fn not_found(&self) -> bool {
        use kube::runtime::watcher::Error as W;
        matches!(self, SourceError::Watch(W::InitialListFailed(kube::Error::Api(s)) | W::WatchStartFailed(kube::Error::Api(s))) if s.code == 404)
    }

    /// True when the API server answered (for example 403 Forbidden) rather than being
    /// unreachable: an answered failure is reported, but does not hold readiness back.
    pub fn answered(&self) -> bool {
        use kube::runtime::watcher::Error as W;
        match self {
            SourceError::Watch(W::InitialListFailed(e) | W::WatchStartFailed(e) | W::WatchFailed(e)) => {
                matches!(e, kube::Error::Api(_))
            }
            SourceError::Watch(W::WatchError(_)) => true,
            SourceError::Watch(_) | SourceError::ListStalled(_) => false,
            SourceError::Dir { .. } => true,
        }
    }
}
