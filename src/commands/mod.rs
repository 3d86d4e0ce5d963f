//! The commands besides `serve`, each a function of its arguments and an output.

pub mod get;
pub mod record;
pub mod retention;
pub mod validate;
pub mod wait;

/// An object named as `NAMESPACE/NAME`, or as `NAME` with a namespace given apart.
pub fn split_name(named: &str, namespace: Option<&str>) -> Option<(String, String)> {
    let (ns, name) = match named.split_once('/') {
        Some((ns, name)) => (ns, name),
        None => (namespace?, named),
    };
    let valid = |s: &str| !s.is_empty() && s.len() <= 253 && !s.contains(['/', '?', '#', '%', ' ']);
    (valid(ns) && valid(name)).then(|| (ns.to_owned(), name.to_owned()))
}
