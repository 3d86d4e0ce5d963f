//! Kubernetes' name rules, written once: what a namespace, an object's name and a label's value
//! may be.

/// Whether `name` can be a namespace: an RFC 1123 DNS label (lowercase letters, digits and `-`,
/// 1 to 63 characters, starting and ending with a letter or digit).
pub fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=63).contains(&bytes.len())
        && bytes.iter().all(|b| is_alphanumeric(b) || *b == b'-')
        && bytes.first().is_some_and(is_alphanumeric)
        && bytes.last().is_some_and(is_alphanumeric)
}

/// Whether `name` can name a ConfigMap: an RFC 1123 DNS subdomain (DNS labels joined by `.`, at
/// most 253 characters).
pub fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(is_dns_label)
}

/// Whether `v` can be a label's value: up to 63 characters, alphanumerics and `-_.`, beginning and
/// ending with an alphanumeric.
pub fn is_label_value(v: &str) -> bool {
    v.len() <= 63
        && v.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && v.chars().next().is_none_or(|c| c.is_ascii_alphanumeric())
        && v.chars().last().is_none_or(|c| c.is_ascii_alphanumeric())
}

fn is_alphanumeric(b: &u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// An object named as `NAMESPACE/NAME`, or as `NAME` with a namespace given apart.
pub fn split_name(named: &str, namespace: Option<&str>) -> Option<(String, String)> {
    let (ns, name) = match named.split_once('/') {
        Some((ns, name)) => (ns, name),
        None => (namespace?, named),
    };
    (is_dns_label(ns) && is_dns_subdomain(name)).then(|| (ns.to_owned(), name.to_owned()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_namespace_slash_name_or_a_name_in_a_namespace() {
        let owned = |ns: &str, name: &str| Some((ns.to_owned(), name.to_owned()));
        assert_eq!(super::split_name("team-a/run-1", None), owned("team-a", "run-1"));
        assert_eq!(super::split_name("run-1", Some("team-a")), owned("team-a", "run-1"));
        assert_eq!(super::split_name("team-a/run.1", None), owned("team-a", "run.1"));
        for bad in ["run-1", "team-a/", "/run-1", "a/b/c", "a/b?c", "a/b%2F", "Team/run", "a/-run", "a/run..1"] {
            assert_eq!(super::split_name(bad, None), None, "{bad}");
        }
    }

    #[test]
    fn only_dns_labels_can_be_namespaces() {
        for good in ["a", "team-a", "0x", &"a".repeat(63)] {
            assert!(super::is_dns_label(good), "{good}");
        }
        for bad in ["", "-a", "a-", "Team", "a.b", "a_b", "ä", &"a".repeat(64), "a/b", "%2e"] {
            assert!(!super::is_dns_label(bad), "{bad}");
        }
    }
}
