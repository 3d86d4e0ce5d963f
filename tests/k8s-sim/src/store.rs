//! The object store: every object as JSON, one global resourceVersion counter, and a bounded
//! event history that watches resume from (and that `410 Gone` is judged against).

use std::collections::{BTreeMap, VecDeque};

use serde_json::{Value, json};

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
}

impl Resource {
    fn new(group: &str, version: &str, plural: &str, kind: &str, namespaced: bool, short: &[&str]) -> Self {
        let short_names = short.iter().map(|s| s.to_string()).collect();
        Resource {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
            kind: kind.into(),
            namespaced,
            short_names,
        }
    }
    pub fn namespaces() -> Self {
        Self::new("", "v1", "namespaces", "Namespace", false, &["ns"])
    }
    pub fn configmaps() -> Self {
        Self::new("", "v1", "configmaps", "ConfigMap", true, &["cm"])
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
    fn from_crd(crd: &Value) -> Vec<Resource> {
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
            })
            .collect()
    }
}

/// (resource id, namespace or "", name)
pub type Key = (String, String, String);

#[derive(Clone, Debug)]
pub struct Event {
    pub rv: u64,
    pub kind: &'static str,
    /// `Resource::id` of the object.
    pub resource: String,
    /// The object before the change (for selector transitions), if any.
    pub old: Option<Value>,
    pub object: Value,
}

pub struct Store {
    pub rv: u64,
    pub objects: BTreeMap<Key, Value>,
    pub history: VecDeque<Event>,
    /// Watches from a resourceVersion older than this get `410 Gone`.
    pub compacted: u64,
    pub history_limit: usize,
    uid: u64,
}

/// A failed request, as a Kubernetes `Status`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError { code, reason, message: message.into() }
    }
    pub fn status(&self) -> Value {
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": self.message, "reason": self.reason, "code": self.code})
    }
}

impl Store {
    pub fn new(history_limit: usize) -> Self {
        let mut store =
            Store { rv: 1, objects: BTreeMap::new(), history: VecDeque::new(), compacted: 0, history_limit, uid: 0 };
        store.create(&Resource::namespaces(), "", json!({"metadata": {"name": "default"}})).expect("fresh store");
        store
    }

    /// Every resource served now: the built-in ones and those of the CRDs that exist.
    pub fn resources(&self) -> Vec<Resource> {
        let mut all = vec![Resource::namespaces(), Resource::configmaps(), Resource::crds()];
        all.extend(self.list(&Resource::crds(), "").flat_map(|(_, crd)| Resource::from_crd(crd)));
        all
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn record(&mut self, kind: &'static str, resource: &Resource, old: Option<Value>, object: Value) {
        self.history.push_back(Event { rv: self.rv, kind, resource: resource.id(), old, object });
        while self.history.len() > self.history_limit {
            let dropped = self.history.pop_front().map(|e| e.rv).unwrap_or_default();
            self.compacted = self.compacted.max(dropped);
        }
    }

    fn check_namespace(&self, resource: &Resource, namespace: &str) -> Result<(), ApiError> {
        let key = (Resource::namespaces().id(), String::new(), namespace.to_owned());
        if resource.namespaced && !self.objects.contains_key(&key) {
            return Err(ApiError::new(404, "NotFound", format!("namespaces \"{namespace}\" not found")));
        }
        Ok(())
    }

    pub fn get(&self, resource: &Resource, namespace: &str, name: &str) -> Result<Value, ApiError> {
        self.objects
            .get(&(resource.id(), namespace.to_owned(), name.to_owned()))
            .cloned()
            .ok_or_else(|| not_found(resource, name))
    }

    pub fn create(&mut self, resource: &Resource, namespace: &str, mut object: Value) -> Result<Value, ApiError> {
        self.check_namespace(resource, namespace)?;
        let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned();
        if name.is_empty() {
            return Err(ApiError::new(
                422,
                "Invalid",
                format!("{} \"\" is invalid: metadata.name: Required value: name is required", resource.kind),
            ));
        }
        let key = (resource.id(), namespace.to_owned(), name.clone());
        if self.objects.contains_key(&key) {
            return Err(ApiError::new(409, "AlreadyExists", format!("{} \"{name}\" already exists", resource.id())));
        }
        let rv = self.next_rv();
        self.uid += 1;
        let meta = metadata(&mut object);
        meta.insert("resourceVersion".into(), rv.to_string().into());
        meta.insert("uid".into(), format!("00000000-0000-4000-8000-{:012}", self.uid).into());
        meta.insert("creationTimestamp".into(), now().into());
        if resource.namespaced {
            meta.insert("namespace".into(), namespace.into());
        }
        set_type(&mut object, resource);
        if *resource == Resource::namespaces() {
            object["status"] = json!({"phase": "Active"});
        }
        self.objects.insert(key, object.clone());
        self.record("ADDED", resource, None, object.clone());
        Ok(object)
    }

    /// Replaces an object; a stale `metadata.resourceVersion` is a 409 Conflict.
    pub fn update(
        &mut self,
        resource: &Resource,
        namespace: &str,
        name: &str,
        mut object: Value,
    ) -> Result<Value, ApiError> {
        let key = (resource.id(), namespace.to_owned(), name.to_owned());
        let old = self.objects.get(&key).cloned().ok_or_else(|| not_found(resource, name))?;
        let sent = object.pointer("/metadata/resourceVersion").and_then(Value::as_str).map(str::to_owned);
        let current = old.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or_default();
        if sent.as_deref().is_some_and(|rv| !rv.is_empty() && rv != current) {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                    resource.id()
                ),
            ));
        }
        let rv = self.next_rv();
        let meta = metadata(&mut object);
        for field in ["uid", "creationTimestamp", "namespace", "name"] {
            if let Some(v) = old.pointer(&format!("/metadata/{field}")) {
                meta.insert(field.into(), v.clone());
            }
        }
        meta.insert("resourceVersion".into(), rv.to_string().into());
        set_type(&mut object, resource);
        self.objects.insert(key, object.clone());
        self.record("MODIFIED", resource, Some(old), object.clone());
        Ok(object)
    }

    /// JSON merge patch (RFC 7386); for the kinds served here a strategic merge patch is the same.
    pub fn patch(
        &mut self,
        resource: &Resource,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Result<Value, ApiError> {
        let mut object = self.get(resource, namespace, name)?;
        merge(&mut object, patch);
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            // A patch only conflicts when it names a resourceVersion explicitly.
            if patch.pointer("/metadata/resourceVersion").is_none() {
                meta.remove("resourceVersion");
            }
        }
        self.update(resource, namespace, name, object)
    }

    pub fn delete(&mut self, resource: &Resource, namespace: &str, name: &str) -> Result<Value, ApiError> {
        let key = (resource.id(), namespace.to_owned(), name.to_owned());
        let mut object = self.objects.remove(&key).ok_or_else(|| not_found(resource, name))?;
        let rv = self.next_rv();
        metadata(&mut object).insert("resourceVersion".into(), rv.to_string().into());
        self.record("DELETED", resource, None, object.clone());
        // Deleting a namespace deletes what is in it; deleting a CRD deletes its objects.
        let owned: Vec<Resource> = if *resource == Resource::namespaces() {
            self.resources().into_iter().filter(|r| r.namespaced).collect()
        } else if *resource == Resource::crds() {
            Resource::from_crd(&object)
        } else {
            Vec::new()
        };
        let scope = if *resource == Resource::namespaces() { Some(name.to_owned()) } else { None };
        let doomed: Vec<(Resource, String, String)> = self
            .objects
            .keys()
            .filter(|(_, ns, _)| scope.as_ref().is_none_or(|s| s == ns))
            .filter_map(|(id, ns, n)| owned.iter().find(|r| r.id() == *id).map(|r| (r.clone(), ns.clone(), n.clone())))
            .collect();
        for (r, ns, n) in doomed {
            let _ = self.delete(&r, &ns, &n);
        }
        Ok(object)
    }

    /// Objects of `resource` in `namespace` ("" for all), ordered by namespace and name.
    pub fn list<'a>(
        &'a self,
        resource: &Resource,
        namespace: &'a str,
    ) -> impl Iterator<Item = (&'a Key, &'a Value)> + 'a {
        let id = resource.id();
        self.objects.iter().filter(move |((rid, ns, _), _)| *rid == id && (namespace.is_empty() || ns == namespace))
    }

    /// Drops all history up to now: watches from any older resourceVersion get `410 Gone`.
    pub fn compact(&mut self) {
        self.compacted = self.rv;
        self.history.clear();
    }
}

fn not_found(resource: &Resource, name: &str) -> ApiError {
    ApiError::new(404, "NotFound", format!("{} \"{name}\" not found", resource.id()))
}

fn metadata(object: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    object["metadata"].as_object_mut().expect("metadata is an object")
}

fn set_type(object: &mut Value, resource: &Resource) {
    object["kind"] = resource.kind.clone().into();
    object["apiVersion"] = resource.api_version().into();
}

/// RFC 7386 merge: objects merge, `null` deletes, anything else replaces.
pub fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else if !k.starts_with('$') {
                    // Strategic-merge directives ($patch, $retainKeys) do not apply to these kinds.
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// Now, to the second, as Kubernetes writes timestamps.
pub fn now() -> String {
    let now = jiff::Timestamp::now().as_second();
    jiff::Timestamp::from_second(now).unwrap_or(jiff::Timestamp::UNIX_EPOCH).to_string()
}
