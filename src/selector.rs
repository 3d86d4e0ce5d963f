//! Kubernetes label selectors (`a=b,c!=d,e in (f,g),h notin (i),j,!k`), parsed once into
//! kube's `Expression`s, which match and print themselves. kube has no parser: this is it. The
//! API simulator has a matcher of its own, so the two are checked against each other.

use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use kube::core::{Expression, SelectorExt};

use crate::model::names::is_label_value;
use crate::quote::quote;

/// A parsed selector: kube's expressions, which match and print themselves. The empty selector
/// matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector(Vec<Expression>);

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid label selector {}: {reason}", quote(input))]
pub struct SelectorError {
    pub input: String,
    pub reason: String,
}

impl Selector {
    /// True when it selects everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The requirements an index can answer from label postings: a key and the values it must
    /// take (one for `=`, several for `in`).
    pub fn indexed(&self) -> Vec<(&str, Vec<&str>)> {
        self.0
            .iter()
            .filter_map(|e| match e {
                Expression::Equal(k, v) => Some((k.as_str(), vec![v.as_str()])),
                Expression::In(k, vs) => Some((k.as_str(), vs.iter().map(String::as_str).collect())),
                _ => None,
            })
            .collect()
    }

    /// Labels a writer sets so an object matches: each `=` (or first `in`) value, `true` for an
    /// existence term; none when no labels can (`a=b,a=c`).
    pub fn labels_to_match(&self) -> Option<BTreeMap<String, String>> {
        let mut labels = BTreeMap::new();
        for e in &self.0 {
            match e {
                Expression::Equal(k, v) => _ = labels.insert(k.clone(), v.clone()),
                Expression::In(k, vs) => _ = labels.insert(k.clone(), vs.iter().next()?.clone()),
                Expression::Exists(k) => _ = labels.entry(k.clone()).or_insert_with(|| "true".to_owned()),
                _ => {}
            }
        }
        self.matches(&labels).then_some(labels)
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|e| e.matches(labels))
    }
}

/// Hashed as printed: the printed form is canonical (sets are sorted), and a continue token's
/// filter fingerprint needs no more.
impl Hash for Selector {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.to_string().hash(h);
    }
}

impl FromStr for Selector {
    type Err = SelectorError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| SelectorError { input: input.to_owned(), reason: reason.to_owned() };
        let mut requirements = Vec::new();
        for part in split_top_level(input).map_err(|r| err(&r))? {
            let part = part.trim();
            if part.is_empty() {
                if input.trim().is_empty() {
                    continue;
                }
                return Err(err("empty requirement"));
            }
            requirements.push(parse_requirement(part).map_err(|r| err(&r))?);
        }
        Ok(Selector(requirements))
    }
}

/// Splits on commas outside parentheses.
fn split_top_level(input: &str) -> Result<Vec<&str>, String> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in input.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&input[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if !(0..=1).contains(&depth) {
            return Err("unbalanced parentheses".to_owned());
        }
    }
    if depth != 0 {
        return Err("unbalanced parentheses".to_owned());
    }
    parts.push(&input[start..]);
    Ok(parts)
}

fn parse_requirement(part: &str) -> Result<Expression, String> {
    if let Some(key) = part.strip_prefix('!') {
        return Ok(Expression::DoesNotExist(key_of(key.trim())?));
    }
    for (op, ctor) in
        [("!=", Expression::NotEqual as fn(_, _) -> _), ("==", Expression::Equal), ("=", Expression::Equal)]
    {
        if let Some((k, v)) = part.split_once(op) {
            return Ok(ctor(key_of(k.trim())?, value_of(v.trim())?));
        }
    }
    for (op, ctor) in [(" notin ", Expression::NotIn as fn(_, _) -> _), (" in ", Expression::In)] {
        if let Some((k, set)) = part.split_once(op) {
            let set = set.trim();
            let inner = set
                .strip_prefix('(')
                .and_then(|s| s.strip_suffix(')'))
                .ok_or_else(|| format!("values of {} must be in parentheses", quote(k.trim())))?;
            let values = inner.split(',').map(|v| value_of(v.trim())).collect::<Result<_, _>>()?;
            return Ok(ctor(key_of(k.trim())?, values));
        }
    }
    Ok(Expression::Exists(key_of(part)?))
}

fn key_of(key: &str) -> Result<String, String> {
    let (prefix, name) = key.rsplit_once('/').unwrap_or(("", key));
    let prefix_ok = prefix.len() <= 253 && prefix.chars().all(|c| c.is_ascii_alphanumeric() || "-.".contains(c));
    if name.is_empty() || !prefix_ok || !is_label_value(name) {
        return Err(format!("{} is not a valid label key", quote(key)));
    }
    Ok(key.to_owned())
}

fn value_of(value: &str) -> Result<String, String> {
    if !is_label_value(value) {
        return Err(format!("{} is not a valid label value", quote(value)));
    }
    Ok(value.to_owned())
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, expression) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{expression}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_writer_gets_labels_that_match_or_none_where_none_can() {
        let sel = |s: &str| s.parse::<Selector>().unwrap();
        let wanted = sel("pipelines.gitops.dev/execution=true,tier in (front),managed,stage!=old,!legacy");
        let got = wanted.labels_to_match().expect("labels");
        assert_eq!(got, labels(&[("pipelines.gitops.dev/execution", "true"), ("tier", "front"), ("managed", "true")]));
        assert!(wanted.matches(&got));
        assert_eq!(sel("a=b,a=c").labels_to_match(), None);
        assert_eq!(sel("").labels_to_match(), Some(BTreeMap::new()));
    }

    #[test]
    fn every_operator_matches_like_kubernetes() {
        let l = labels(&[("app", "web"), ("tier", "front"), ("pipelines.gitops.dev/execution", "true")]);
        let yes = [
            "",
            "app=web",
            "app==web",
            "app!=db",
            "tier in (front,back)",
            "env notin (prod)",
            "app",
            "!env",
            "pipelines.gitops.dev/execution=true,app=web",
        ];
        let no = ["app=db", "app!=web", "tier in (back)", "tier notin (front)", "env", "!app", "app=web,tier=back"];
        for s in yes {
            assert!(s.parse::<Selector>().unwrap().matches(&l), "{s} should match");
        }
        for s in no {
            assert!(!s.parse::<Selector>().unwrap().matches(&l), "{s} should not match");
        }
    }

    #[test]
    fn malformed_selectors_name_the_problem() {
        for bad in ["a=-x", "=web", "a in b", "a in (b", "a,,b", "app=we b", "!"] {
            let err = bad.parse::<Selector>().unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    #[test]
    fn display_round_trips() {
        let s: Selector = "a=b,c!=d,e in (g,f),h notin (i),j,!k".parse().unwrap();
        assert_eq!(s.to_string().parse::<Selector>().unwrap(), s);
    }
}
