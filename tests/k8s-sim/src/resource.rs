//! The kinds of object the simulator serves: built in, or defined by a CustomResourceDefinition,
//! and what a CRD's status says once it is served.

use serde_json::{Value, json};

use crate::store::{ApiError, now};

/// A kind of object the simulator serves: built in, or defined by a CustomResourceDefinition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resource {
    /// "" for the core group.
    pub group: String,
    pub version: String,
    pub plural: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    /// A custom kind whose CRD serves `/status` as a subresource.
    pub status_subresource: bool,
}

impl Resource {
    pub fn new(group: &str, version: &str, plural: &str, kind: &str, namespaced: bool, short: &[&str]) -> Self {
        let short_names = short.iter().map(|s| s.to_string()).collect();
        Resource {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
            kind: kind.into(),
            namespaced,
            short_names,
            status_subresource: false,
        }
    }
    pub fn namespaces() -> Self {
        Self::new("", "v1", "namespaces", "Namespace", false, &["ns"])
    }
    pub fn configmaps() -> Self {
        Self::new("", "v1", "configmaps", "ConfigMap", true, &["cm"])
    }
    pub fn secrets() -> Self {
        Self::new("", "v1", "secrets", "Secret", true, &[])
    }
    pub fn events() -> Self {
        Self::new("", "v1", "events", "Event", true, &["ev"])
    }
    pub fn leases() -> Self {
        Self::new("coordination.k8s.io", "v1", "leases", "Lease", true, &[])
    }
    pub fn crds() -> Self {
        Self::new(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            &["crd", "crds"],
        )
    }
    /// `v1` or `group/version`, as objects and lists carry it.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }
    /// The store's name for the resource: `plural` or `plural.group`.
    pub fn id(&self) -> String {
        if self.group.is_empty() { self.plural.clone() } else { format!("{}.{}", self.plural, self.group) }
    }
    /// The resources a CRD object defines, one per served version.
    pub fn from_crd(crd: &Value) -> Vec<Resource> {
        let spec = &crd["spec"];
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        spec["versions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| v["served"].as_bool().unwrap_or(true))
            .map(|v| Resource {
                group: text(&spec["group"]),
                version: text(&v["name"]),
                plural: text(&spec["names"]["plural"]),
                kind: text(&spec["names"]["kind"]),
                namespaced: spec["scope"] == "Namespaced",
                short_names: serde_json::from_value(spec["names"]["shortNames"].clone()).unwrap_or_default(),
                status_subresource: v["subresources"]["status"].is_object(),
            })
            .collect()
    }
}

/// A CRD's name must be `<plural>.<group>`.
pub fn check_crd(crd: &Value) -> Result<(), ApiError> {
    let spec = &crd["spec"];
    let expected =
        format!("{}.{}", spec["names"]["plural"].as_str().unwrap_or(""), spec["group"].as_str().unwrap_or(""));
    let name = crd["metadata"]["name"].as_str().unwrap_or_default();
    if name != expected {
        return Err(ApiError::new(
            422,
            "Invalid",
            format!(
                "CustomResourceDefinition {name:?} is invalid: metadata.name: Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"
            ),
        ));
    }
    Ok(())
}

/// What kube-apiserver's CRD controllers report once the names are accepted and the API is served.
pub fn crd_status(crd: &Value) -> Value {
    let condition = |kind: &str, reason: &str, message: &str| json!({"type": kind, "status": "True", "lastTransitionTime": now(), "reason": reason, "message": message});
    let versions: Vec<Value> = crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["storage"] == true)
        .map(|v| v["name"].clone())
        .collect();
    json!({
        "conditions": [
            condition("NamesAccepted", "NoConflicts", "no conflicts found"),
            condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        "acceptedNames": crd["spec"]["names"],
        "storedVersions": versions,
    })
}
