//! The retention file: first-match rules, validated against the JSON Schema shipped in
//! `schemas/retention/` (embedded, so the binary cannot run with another), then checked for what a
//! schema cannot say (a selector that parses, names used once).
//!
//! ```yaml
//! rules:
//!   - name: payments-keep-all          # first match wins: nothing of team-payments is pruned
//!     namespaces: [team-payments]
//!   - name: finished
//!     phases: [Succeeded, Failed, Cancelled]
//!     keep: {newest: 10, since: 30d}    # per pipeline; either keeps
//! ```

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::files::read_bounded;
use crate::model::Phase;
use crate::quote::quote;
use crate::selector::Selector;

/// The schema retention files are validated against.
const SCHEMA: &str = include_str!("../../schemas/retention/retention-v1.json");
/// The largest retention file read.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Rules in the order they are tried. No rule: everything is kept.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Policy {
    pub rules: Vec<Rule>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub name: String,
    /// `None`: every watched namespace.
    pub namespaces: Option<BTreeSet<String>>,
    pub selector: Selector,
    /// `None`: every phase.
    pub phases: Option<BTreeSet<Phase>>,
    pub keep: Keep,
    pub clock_skew: ClockSkew,
}

/// What a rule keeps of what it selects. Both `None`: everything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Keep {
    /// The newest N terminal executions of each pipeline.
    pub newest: Option<usize>,
    /// Everything younger than this.
    pub since: Option<Duration>,
}

impl Keep {
    pub fn everything(&self) -> bool {
        self.newest.is_none() && self.since.is_none()
    }
}

/// What to do with an execution whose ConfigMap was created more than `tolerance` before or
/// after the payload says the run started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockSkew {
    pub tolerance: Duration,
    pub action: SkewAction,
}

impl Default for ClockSkew {
    fn default() -> Self {
        ClockSkew { tolerance: Duration::from_secs(3600), action: SkewAction::Keep }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum SkewAction {
    /// Never prune it.
    Keep,
    /// Age and order it by when the API server created its ConfigMap.
    ConfigMapTime,
    /// Trust the payload's `startedAt`.
    PayloadTime,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileFormat {
    #[serde(default)]
    rules: Vec<RuleFormat>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RuleFormat {
    name: String,
    namespaces: Option<BTreeSet<String>>,
    #[serde(default)]
    selector: String,
    phases: Option<BTreeSet<Phase>>,
    #[serde(default)]
    keep: KeepFormat,
    clock_skew: Option<SkewFormat>,
}

#[derive(Default, Deserialize)]
struct KeepFormat {
    newest: Option<usize>,
    since: Option<String>,
}

#[derive(Deserialize)]
struct SkewFormat {
    tolerance: Option<String>,
    action: Option<SkewAction>,
}

/// Why a retention file is refused: where (the file, and the place in it), and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyError {
    /// The file and the JSON pointer into it, each where known.
    pub at: Vec<String>,
    pub message: String,
}

impl PolicyError {
    fn new(message: impl std::fmt::Display) -> Self {
        PolicyError { at: Vec::new(), message: message.to_string() }
    }

    /// The same error, within `place` (a file, a rule, a field).
    fn within(mut self, place: impl std::fmt::Display) -> Self {
        self.at.insert(0, place.to_string());
        self
    }
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for place in &self.at {
            write!(f, "{place}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for PolicyError {}

impl Policy {
    /// Reads and checks a retention file; the error names the file and, for a schema violation,
    /// the place in it.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let text = read_bounded(path, MAX_FILE_BYTES).map_err(|(_, e)| PolicyError::new(e).within(path.display()))?;
        Policy::parse(&text).map_err(|e| e.within(path.display()))
    }

    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let value = match crate::decode::strict::yaml(text).map_err(PolicyError::new)? {
            // An empty file is the empty policy.
            serde_json::Value::Null => serde_json::json!({}),
            value => value,
        };
        let schema: serde_json::Value = serde_json::from_str(SCHEMA).expect("the shipped retention schema is JSON");
        let validator = jsonschema::options().offline().build(&schema).expect("the shipped retention schema compiles");
        if let Some(e) = validator.iter_errors(&value).next() {
            let at = e.instance_path().as_str().to_owned();
            let at = if at.is_empty() { "/".to_owned() } else { at };
            return Err(PolicyError::new(crate::quote::shorten(e.to_string())).within(at));
        }
        let file: FileFormat = serde_json::from_value(value).map_err(PolicyError::new)?;
        let mut names = BTreeSet::new();
        let rules = file.rules.into_iter().enumerate().map(|(i, rule)| {
            if !names.insert(rule.name.clone()) {
                let twice = PolicyError::new(format!("rule {} is named twice", quote(&rule.name)));
                return Err(twice.within(format!("/rules/{i}/name")));
            }
            rule.check().map_err(|e| PolicyError { at: vec![format!("/rules/{i}/{}", e.at.join("/"))], ..e })
        });
        Ok(Policy { rules: rules.collect::<Result<_, _>>()? })
    }
}

impl RuleFormat {
    /// The rule, checked; an error's place is within the rule (`selector`, `keep/since`, …).
    fn check(self) -> Result<Rule, PolicyError> {
        let selector = self.selector.parse::<Selector>().map_err(|e| PolicyError::new(e).within("selector"))?;
        let since = self.keep.since.as_deref().map(|s| duration(s).map_err(|e| e.within("keep/since"))).transpose()?;
        let mut clock_skew = ClockSkew::default();
        if let Some(skew) = self.clock_skew {
            if let Some(tolerance) = skew.tolerance {
                clock_skew.tolerance = duration(&tolerance).map_err(|e| e.within("clockSkew/tolerance"))?;
            }
            clock_skew.action = skew.action.unwrap_or(clock_skew.action);
        }
        Ok(Rule {
            name: self.name,
            namespaces: self.namespaces,
            selector,
            phases: self.phases,
            keep: Keep { newest: self.keep.newest, since },
            clock_skew,
        })
    }
}

fn duration(text: &str) -> Result<Duration, PolicyError> {
    humantime::parse_duration(text).map_err(|e| PolicyError::new(format!("{}: {e}", quote(text))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_keeps_everything() {
        for text in ["", "{}", "rules: []", "# nothing yet\n"] {
            assert_eq!(Policy::parse(text).unwrap(), Policy::default(), "{text:?}");
        }
    }

    #[test]
    fn rules_are_read_with_their_defaults() {
        let text = "rules:\n- name: payments\n  namespaces: [team-payments]\n- name: finished\n  selector: tier=gold\n  \
                    phases: [Succeeded, Failed]\n  keep: {newest: 10, since: 30d}\n  clockSkew: {action: configMapTime}\n";
        let policy = Policy::parse(text).unwrap();
        let [payments, finished] = &policy.rules[..] else { panic!("{policy:?}") };
        assert!(payments.keep.everything());
        assert_eq!(payments.namespaces.as_ref().unwrap().len(), 1);
        assert_eq!(finished.keep, Keep { newest: Some(10), since: Some(Duration::from_secs(30 * 86400)) });
        assert_eq!(
            finished.clock_skew,
            ClockSkew { tolerance: Duration::from_secs(3600), action: SkewAction::ConfigMapTime }
        );
        assert_eq!(finished.phases.as_ref().unwrap().len(), 2);
        assert!(finished.selector.matches(&[("tier".to_owned(), "gold".to_owned())].into()));
    }

    #[test]
    fn the_policy_the_manifests_ship_loads() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/retention/policy.yaml");
        let cm: serde_json::Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let policy = Policy::parse(cm["data"]["retention.yaml"].as_str().unwrap()).unwrap();
        assert_eq!(policy.rules[0].keep, Keep { newest: Some(20), since: Some(Duration::from_secs(30 * 86400)) });
    }

    #[test]
    fn a_bad_file_says_where_and_why() {
        for (text, why) in [
            ("rules: [{name: a, keep: {newest: -1}}]", "/rules/0/keep/newest"),
            ("rules: [{name: a, keep: {since: soon}}]", "/rules/0/keep/since"),
            ("rules: [{name: a, keep: {since: 99999999999999999999d}}]", "/rules/0/keep/since"),
            ("rules: [{name: a, selector: 'a in (b'}]", "/rules/0/selector"),
            ("rules: [{name: a}, {name: a}]", "named twice"),
            ("rules: [{name: a, phases: [Done]}]", "/rules/0/phases/0"),
            ("rules: [{name: a, keep: {newest: 1, forever: true}}]", "forever"),
            ("rule: []", "rule"),
            ("rules: [", "did not find expected"),
        ] {
            let err = Policy::parse(text).unwrap_err();
            assert!(err.to_string().contains(why), "{text}: {err}");
        }
    }
}
