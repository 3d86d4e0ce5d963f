//! Builder-style fixtures for ConfigMaps and execution documents, shared by unit tests,
//! integration tests and benchmarks.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ObjectMeta;

/// The label that marks a ConfigMap as a pipeline execution.
pub const EXECUTION_LABEL: &str = "pipelines.gitops.dev/execution";

/// A valid v1alpha1 execution document as YAML.
#[derive(Clone, Debug)]
pub struct Doc {
    pub pipeline: String,
    pub application: String,
    pub version: String,
    pub phase: String,
    pub started_at: String,
    pub environments: Vec<(String, String)>,
}

impl Doc {
    pub fn new(pipeline: &str) -> Self {
        Doc {
            pipeline: pipeline.to_owned(),
            application: "podinfo".to_owned(),
            version: "6.5.0".to_owned(),
            phase: "Running".to_owned(),
            started_at: "2026-11-01T10:00:00Z".to_owned(),
            environments: vec![("dev".into(), "Succeeded".into()), ("prod".into(), "Running".into())],
        }
    }
    pub fn phase(mut self, phase: &str) -> Self {
        self.phase = phase.to_owned();
        self
    }
    pub fn version(mut self, version: &str) -> Self {
        self.version = version.to_owned();
        self
    }
    pub fn started_at(mut self, at: &str) -> Self {
        self.started_at = at.to_owned();
        self
    }
    pub fn environments(mut self, envs: &[(&str, &str)]) -> Self {
        self.environments = envs.iter().map(|(n, p)| (n.to_string(), p.to_string())).collect();
        self
    }
    pub fn yaml(&self) -> String {
        let mut out = format!(
            "apiVersion: pipelines.gitops.dev/v1alpha1\nkind: PipelineExecution\npipeline: {}\n\
             application:\n  name: {}\n  version: \"{}\"\ntrigger:\n  type: GitPush\n\
             phase: {}\nstartedAt: \"{}\"\nenvironments:\n",
            self.pipeline, self.application, self.version, self.phase, self.started_at
        );
        if self.environments.is_empty() {
            out.push_str("  []\n");
        }
        for (name, phase) in &self.environments {
            out.push_str(&format!(
                "  - name: {name}\n    phase: {phase}\n    targets:\n      - cluster: {name}-1\n        namespace: podinfo\n        phase: {phase}\n"
            ));
        }
        out
    }
}

/// A ConfigMap under construction.
#[derive(Clone, Debug)]
pub struct Cm(ConfigMap);

impl Cm {
    /// A labelled ConfigMap with no data yet.
    pub fn new(namespace: &str, name: &str) -> Self {
        Cm(ConfigMap {
            metadata: ObjectMeta {
                namespace: Some(namespace.to_owned()),
                name: Some(name.to_owned()),
                resource_version: Some("1".to_owned()),
                labels: Some(BTreeMap::from([(EXECUTION_LABEL.to_owned(), "true".to_owned())])),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        })
    }
    pub fn data(mut self, key: &str, value: &str) -> Self {
        self.0.data.get_or_insert_with(BTreeMap::new).insert(key.to_owned(), value.to_owned());
        self
    }
    pub fn doc(self, doc: &Doc) -> Self {
        self.data("execution.yaml", &doc.yaml())
    }
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.0.metadata.labels.get_or_insert_with(BTreeMap::new).insert(key.to_owned(), value.to_owned());
        self
    }
    pub fn build(self) -> ConfigMap {
        self.0
    }
}
