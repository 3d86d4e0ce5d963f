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

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_namespace_slash_name_or_a_name_in_a_namespace() {
        let owned = |ns: &str, name: &str| Some((ns.to_owned(), name.to_owned()));
        assert_eq!(super::split_name("team-a/run-1", None), owned("team-a", "run-1"));
        assert_eq!(super::split_name("run-1", Some("team-a")), owned("team-a", "run-1"));
        for bad in ["run-1", "team-a/", "/run-1", "a/b/c", "a/b?c", "a/b%2F"] {
            assert_eq!(super::split_name(bad, None), None, "{bad}");
        }
    }
}
