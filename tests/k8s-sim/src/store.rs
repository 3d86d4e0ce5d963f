//! The object store: every object as JSON, one global resourceVersion counter, and a bounded
//! event history that watches resume from (and that `410 Gone` is judged against).

use std::collections::{BTreeMap, VecDeque};

use serde_json::{Value, json};

use crate::patch::{Patch, merge, set_managed_fields};
pub use crate::resource::Resource;
use crate::resource::{check_crd, crd_status};
use crate::validation::validate;

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

/// What a delete expects of the object (`DeleteOptions.preconditions`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Preconditions<'a> {
    pub uid: Option<&'a str>,
    pub resource_version: Option<&'a str>,
}

impl Store {
    pub fn new(history_limit: usize) -> Self {
        let mut store =
            Store { rv: 1, objects: BTreeMap::new(), history: VecDeque::new(), compacted: 0, history_limit, uid: 0 };
        store
            .create(&Resource::namespaces(), "", json!({"metadata": {"name": "default"}}), false)
            .expect("fresh store");
        store
    }

    /// Whether `resource` is compiled in (as opposed to defined by a CRD).
    pub fn built_in(resource: &Resource) -> bool {
        Self::built_ins().contains(resource)
    }

    fn built_ins() -> Vec<Resource> {
        let mut all = vec![
            Resource::namespaces(),
            Resource::configmaps(),
            Resource::secrets(),
            Resource::events(),
            Resource::leases(),
            Resource::crds(),
        ];
        all.extend(crate::rbac::rbac_resources());
        all.extend([crate::rbac::tokenreviews(), crate::rbac::subjectaccessreviews()]);
        all
    }

    /// Every resource served now: the built-in ones and those of the CRDs that exist.
    pub fn resources(&self) -> Vec<Resource> {
        let mut all = Self::built_ins();
        all.extend(self.list(&Resource::crds(), "").flat_map(|(_, crd)| Resource::from_crd(crd)));
        all
    }

    /// The next resourceVersion; a dry run only says what it would be.
    fn next_rv(&mut self, dry_run: bool) -> u64 {
        if dry_run {
            return self.rv + 1;
        }
        self.rv += 1;
        self.rv
    }

    /// Stores `object` under `key` and records the event, unless this is a dry run.
    fn commit(
        &mut self,
        dry_run: bool,
        kind: &'static str,
        resource: &Resource,
        key: Key,
        old: Option<Value>,
        object: &Value,
    ) {
        if dry_run {
            return;
        }
        self.objects.insert(key, object.clone());
        self.record(kind, resource, old, object.clone());
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

    /// Creates an object, naming it from `metadata.generateName` when it has no name.
    pub fn create(
        &mut self,
        resource: &Resource,
        namespace: &str,
        mut object: Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        self.check_namespace(resource, namespace)?;
        let mut name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned();
        let generate = object.pointer("/metadata/generateName").and_then(Value::as_str).unwrap_or_default().to_owned();
        if name.is_empty() && !generate.is_empty() {
            name = self.generate_name(resource, namespace, &generate);
            metadata(&mut object).insert("name".into(), name.clone().into());
        }
        if name.is_empty() {
            return Err(ApiError::new(
                422,
                "Invalid",
                format!(
                    "{} \"\" is invalid: metadata.name: Required value: name or generateName is required",
                    resource.kind
                ),
            ));
        }
        validate(resource, &object, None)?;
        if *resource == Resource::crds() {
            check_crd(&object)?;
        }
        let key = (resource.id(), namespace.to_owned(), name.clone());
        if self.objects.contains_key(&key) {
            return Err(ApiError::new(409, "AlreadyExists", format!("{} \"{name}\" already exists", resource.id())));
        }
        let rv = self.next_rv(dry_run);
        if !dry_run {
            self.uid += 1;
        }
        let uid = format!("00000000-0000-4000-8000-{:012}", self.uid);
        let meta = metadata(&mut object);
        meta.insert("resourceVersion".into(), rv.to_string().into());
        meta.insert("uid".into(), uid.into());
        meta.insert("creationTimestamp".into(), now().into());
        if resource.namespaced {
            meta.insert("namespace".into(), namespace.into());
        }
        set_type(&mut object, resource);
        if !Self::built_in(resource) {
            metadata(&mut object).insert("generation".into(), 1.into());
        }
        if resource.status_subresource {
            // As kube-apiserver: a create sets no status where the status is a subresource.
            if let Some(fields) = object.as_object_mut() {
                fields.remove("status");
            }
        }
        if *resource == Resource::namespaces() {
            object["status"] = json!({"phase": "Active"});
        }
        if *resource == Resource::crds() {
            object["status"] = crd_status(&object);
        }
        self.commit(dry_run, "ADDED", resource, key, None, &object);
        Ok(object)
    }

    /// `prefix` and five characters from kube-apiserver's alphabet, unused so far.
    fn generate_name(&self, resource: &Resource, namespace: &str, prefix: &str) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let mut seed = (self.rv ^ self.uid.rotate_left(17)).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        loop {
            let suffix: String = (0..5)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    ALPHABET[(seed % ALPHABET.len() as u64) as usize] as char
                })
                .collect();
            let name = format!("{prefix}{suffix}");
            if !self.objects.contains_key(&(resource.id(), namespace.to_owned(), name.clone())) {
                return name;
            }
        }
    }

    /// Replaces an object; a stale `metadata.resourceVersion` is a 409 Conflict. Built-in kinds
    /// may be replaced without one; custom objects, as on a real server, may not.
    pub fn update(
        &mut self,
        resource: &Resource,
        namespace: &str,
        name: &str,
        object: Value,
        (dry_run, part): (bool, Part),
    ) -> Result<Value, ApiError> {
        let sent = object.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or_default();
        if sent.is_empty() && !Self::built_in(resource) {
            return Err(ApiError::new(
                422,
                "Invalid",
                format!(
                    "{} {name:?} is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update",
                    resource.kind
                ),
            ));
        }
        self.replace(resource, namespace, name, object, (dry_run, part))
    }

    /// Replaces an object, checking `metadata.resourceVersion` only when it is set.
    fn replace(
        &mut self,
        resource: &Resource,
        namespace: &str,
        name: &str,
        mut object: Value,
        (dry_run, part): (bool, Part),
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
        object = split_status(resource, &old, object, part);
        let meta = metadata(&mut object);
        for field in ["uid", "creationTimestamp", "namespace", "name", "generation"] {
            if let Some(v) = old.pointer(&format!("/metadata/{field}")) {
                meta.insert(field.into(), v.clone());
            }
        }
        validate(resource, &object, Some(&old))?;
        if !Self::built_in(resource) && part == Part::Main && without_status(&object) != without_status(&old) {
            let generation = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1);
            metadata(&mut object).insert("generation".into(), (generation + 1).into());
        }
        let rv = self.next_rv(dry_run);
        metadata(&mut object).insert("resourceVersion".into(), rv.to_string().into());
        set_type(&mut object, resource);
        if *resource == Resource::crds() {
            object["status"] = crd_status(&object);
        }
        self.commit(dry_run, "MODIFIED", resource, key, Some(old), &object);
        Ok(object)
    }

    /// Applies a patch of `kind` to an object. Server-side apply creates the object when it
    /// does not exist.
    pub fn patch(
        &mut self,
        resource: &Resource,
        namespace: &str,
        name: &str,
        patch: &Patch,
        (dry_run, part): (bool, Part),
    ) -> Result<Value, ApiError> {
        let existing = self.get(resource, namespace, name);
        let (mut object, named_rv) = match (patch, existing) {
            (Patch::Apply { object: applied, manager }, Err(e)) if e.code == 404 => {
                let mut object = applied.clone();
                metadata(&mut object).insert("name".into(), name.into());
                set_managed_fields(&mut object, manager);
                return self.create(resource, namespace, object, dry_run);
            }
            (_, Err(e)) => return Err(e),
            (Patch::Merge(p), Ok(mut object)) => {
                merge(&mut object, p);
                (object, p.pointer("/metadata/resourceVersion").is_some())
            }
            (Patch::Json(ops), Ok(object)) => {
                let before = object.pointer("/metadata/resourceVersion").cloned();
                let object = crate::patch::json_patch(object, ops)?;
                let named = object.pointer("/metadata/resourceVersion").cloned() != before;
                (object, named)
            }
            (Patch::Apply { object: applied, manager }, Ok(mut object)) => {
                merge(&mut object, applied);
                set_managed_fields(&mut object, manager);
                (object, applied.pointer("/metadata/resourceVersion").is_some())
            }
        };
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            // A patch only conflicts when it names a resourceVersion explicitly.
            if !named_rv {
                meta.remove("resourceVersion");
            }
        }
        self.replace(resource, namespace, name, object, (dry_run, part))
    }

    /// Deletes an object; `preconditions` are the uid and resourceVersion the caller expects it
    /// to have, checked uid first as kube-apiserver does.
    pub fn delete(
        &mut self,
        resource: &Resource,
        namespace: &str,
        name: &str,
        preconditions: Preconditions<'_>,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let key = (resource.id(), namespace.to_owned(), name.to_owned());
        let mut object = self.objects.get(&key).cloned().ok_or_else(|| not_found(resource, name))?;
        for (field, pointer, expected) in [
            ("UID", "/metadata/uid", preconditions.uid),
            ("ResourceVersion", "/metadata/resourceVersion", preconditions.resource_version),
        ] {
            let current = object.pointer(pointer).and_then(Value::as_str).unwrap_or_default();
            if let Some(expected) = expected.filter(|e| *e != current) {
                return Err(ApiError::new(
                    409,
                    "Conflict",
                    format!(
                        "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: {field} in precondition: {expected}, {field} in object meta: {current}",
                        resource.id()
                    ),
                ));
            }
        }
        if dry_run {
            return Ok(object);
        }
        self.objects.remove(&key);
        let rv = self.next_rv(false);
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
            let _ = self.delete(&r, &ns, &n, Preconditions::default(), false);
        }
        Ok(object)
    }

    /// Objects of `resource` in `namespace` ("" for all), ordered by namespace and name: a range
    /// of the store's order, so listing one kind costs nothing for the objects of others.
    pub fn list<'a>(
        &'a self,
        resource: &Resource,
        namespace: &'a str,
    ) -> impl Iterator<Item = (&'a Key, &'a Value)> + 'a {
        let id = resource.id();
        let from = (id.clone(), namespace.to_owned(), String::new());
        self.objects
            .range(from..)
            .take_while(move |((rid, ns, _), _)| *rid == id && (namespace.is_empty() || ns == namespace))
    }

    /// The objects of `resource` in `namespace` as they were at resourceVersion `rv`, rebuilt
    /// by undoing the history since; `None` when that history is compacted.
    pub fn snapshot(&self, resource: &Resource, namespace: &str, rv: u64) -> Option<BTreeMap<Key, Value>> {
        if rv < self.compacted {
            return None;
        }
        let mut objects: BTreeMap<Key, Value> =
            self.list(resource, namespace).map(|(k, v)| (k.clone(), v.clone())).collect();
        let id = resource.id();
        for event in self.history.iter().rev().take_while(|e| e.rv > rv).filter(|e| e.resource == id) {
            let ns = event.object["metadata"]["namespace"].as_str().unwrap_or_default().to_owned();
            if !namespace.is_empty() && ns != namespace {
                continue;
            }
            let key = (id.clone(), ns, event.object["metadata"]["name"].as_str().unwrap_or_default().to_owned());
            match (event.kind, &event.old) {
                ("ADDED", _) => objects.remove(&key),
                ("MODIFIED", Some(old)) => objects.insert(key, old.clone()),
                _ => objects.insert(key, event.object.clone()),
            };
        }
        Some(objects)
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

pub fn metadata(object: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    object["metadata"].as_object_mut().expect("metadata is an object")
}

fn set_type(object: &mut Value, resource: &Resource) {
    object["kind"] = resource.kind.clone().into();
    object["apiVersion"] = resource.api_version().into();
}

/// Now, to the second, as Kubernetes writes timestamps.
pub fn now() -> String {
    let now = jiff::Timestamp::now().as_second();
    jiff::Timestamp::from_second(now).unwrap_or(jiff::Timestamp::UNIX_EPOCH).to_string()
}

/// Which part of an object a write changes: where a custom kind has a status subresource, a
/// write of the object keeps its status, and a write of `/status` changes only the status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Main,
    Status,
}

/// The object a write makes, as its part allows: `sent` with the stored status, or the stored
/// object with `sent`'s status.
fn split_status(resource: &Resource, old: &Value, sent: Value, part: Part) -> Value {
    if !resource.status_subresource {
        return sent;
    }
    let (mut kept, from) = match part {
        Part::Main => (sent, old),
        Part::Status => {
            let mut kept = old.clone();
            if let Some(rv) = sent.pointer("/metadata/resourceVersion") {
                metadata(&mut kept).insert("resourceVersion".into(), rv.clone());
            }
            (kept, &sent)
        }
    };
    if let Some(fields) = kept.as_object_mut() {
        match from.get("status") {
            Some(status) => fields.insert("status".into(), status.clone()),
            None => fields.remove("status"),
        };
    }
    kept
}

/// An object without its metadata and status: what a change of bumps `metadata.generation`.
fn without_status(object: &Value) -> Value {
    let mut rest = object.clone();
    if let Some(fields) = rest.as_object_mut() {
        fields.remove("metadata");
        fields.remove("status");
    }
    rest
}
