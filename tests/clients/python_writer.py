"""The official Python `kubernetes` client, playing a pipeline writer against k8s-sim.

Usage: python3 python_writer.py SERVER_URL NAMESPACE CRD_MANIFEST
Each check asserts what a real kube-apiserver does; the first failure exits non-zero with why.
"""
import json
import sys
import urllib.error
import urllib.request

import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

server, ns, crd_manifest = sys.argv[1:4]
configuration = client.Configuration()
configuration.host = server
api_client = client.ApiClient(configuration)
core = client.CoreV1Api(api_client)
LABELS = {"pipelines.gitops.dev/execution": "true"}


def configmap(name=None, data=None, generate_name=None, immutable=None, labels=None):
    meta = client.V1ObjectMeta(name=name, generate_name=generate_name, labels=labels or LABELS)
    return client.V1ConfigMap(metadata=meta, data=data or {"execution.yaml": "phase: Running"}, immutable=immutable)


def refused(status, call, *args, **kwargs):
    """Runs a call that must fail with `status` (or one of them); returns the message."""
    try:
        call(*args, **kwargs)
    except ApiException as e:
        assert e.status in (status if isinstance(status, tuple) else (status,)), f"{e.status}: {e.body}"
        return e.body
    raise AssertionError(f"{call.__name__} succeeded; expected {status}")


def generate_name():
    created = core.create_namespaced_config_map(ns, configmap(generate_name="checkout-api-"))
    name = created.metadata.name
    assert name.startswith("checkout-api-") and len(name) == len("checkout-api-") + 5, name
    assert core.read_namespaced_config_map(name, ns).metadata.uid == created.metadata.uid


def dry_run_changes_nothing():
    core.create_namespaced_config_map(ns, configmap("dry"), dry_run="All")
    refused(404, core.read_namespaced_config_map, "dry", ns)
    core.create_namespaced_config_map(ns, configmap("wet"))
    core.patch_namespaced_config_map("wet", ns, {"data": {"execution.yaml": "phase: Failed"}}, dry_run="All")
    core.delete_namespaced_config_map("wet", ns, dry_run="All")
    kept = core.read_namespaced_config_map("wet", ns)
    assert kept.data["execution.yaml"] == "phase: Running", kept.data


def json_patch():
    core.create_namespaced_config_map(ns, configmap("patched"))
    # A list body is sent as application/json-patch+json.
    ops = [{"op": "add", "path": "/metadata/labels/tier", "value": "gold"},
           {"op": "replace", "path": "/data/execution.yaml", "value": "phase: Succeeded"}]
    patched = core.patch_namespaced_config_map("patched", ns, ops)
    assert patched.metadata.labels["tier"] == "gold", patched.metadata.labels
    assert patched.data["execution.yaml"] == "phase: Succeeded", patched.data
    refused(422, core.patch_namespaced_config_map, "patched", ns, [{"op": "remove", "path": "/data/nope"}])


def post_raw(path, body):
    """POSTs JSON the typed client would refuse to send; returns the HTTP status."""
    request = urllib.request.Request(server + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


def invalid_objects_are_refused_and_listing_still_works():
    raw = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "numeric"}, "data": {"execution.yaml": 7}}
    status = post_raw(f"/api/v1/namespaces/{ns}/configmaps", raw)
    assert status == 400, status
    refused(422, core.create_namespaced_config_map, ns, configmap("Bad_Name"))
    refused(422, core.create_namespaced_config_map, ns, configmap("bad-label", labels={"-no": "x"}))
    refused(422, core.create_namespaced_config_map, ns, configmap("huge", data={"k": "x" * (1024 * 1024 + 1)}))
    names = [cm.metadata.name for cm in core.list_namespaced_config_map(ns).items]
    assert not {"numeric", "Bad_Name", "bad-label", "huge"} & set(names), names


def immutable_configmaps_keep_their_data():
    core.create_namespaced_config_map(ns, configmap("frozen", immutable=True))
    body = refused(422, core.patch_namespaced_config_map, "frozen", ns, {"data": {"execution.yaml": "phase: Failed"}})
    assert "immutable" in body, body
    core.patch_namespaced_config_map("frozen", ns, {"metadata": {"labels": {"tier": "gold"}}})


def delete_preconditions():
    current = core.create_namespaced_config_map(ns, configmap("guarded")).metadata.resource_version
    stale = client.V1DeleteOptions(preconditions=client.V1Preconditions(resource_version="1"))
    refused(409, core.delete_namespaced_config_map, "guarded", ns, body=stale)
    exact = client.V1DeleteOptions(preconditions=client.V1Preconditions(resource_version=current))
    core.delete_namespaced_config_map("guarded", ns, body=exact)
    refused(404, core.read_namespaced_config_map, "guarded", ns)


def continue_pages_are_a_snapshot():
    page_ns = ns + "-pages"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=page_ns)))
    for i in range(5):
        core.create_namespaced_config_map(page_ns, configmap(f"run-{i}"))
    first = core.list_namespaced_config_map(page_ns, limit=2)
    assert first.metadata.remaining_item_count == 3, first.metadata
    core.create_namespaced_config_map(page_ns, configmap("run-9-late"))
    core.delete_namespaced_config_map("run-4", page_ns)
    seen = [cm.metadata.name for cm in first.items]
    token = first.metadata._continue
    while token:
        page = core.list_namespaced_config_map(page_ns, limit=2, _continue=token)
        seen += [cm.metadata.name for cm in page.items]
        token = page.metadata._continue
    assert seen == [f"run-{i}" for i in range(5)], seen


def custom_objects_need_a_resource_version_to_be_replaced():
    with open(crd_manifest) as f:
        crd = yaml.safe_load(f)
    client.ApiextensionsV1Api(api_client).create_custom_resource_definition(crd)
    custom = client.CustomObjectsApi(api_client)
    group, version, plural = "pipelines.gitops.dev", "v1alpha1", "backendmodules"
    body = {"apiVersion": f"{group}/{version}", "kind": "BackendModule", "metadata": {"name": "pipelines"}}
    created = custom.create_cluster_custom_object(group, version, plural, body)
    refused(422, custom.replace_cluster_custom_object, group, version, plural, "pipelines", body)
    body["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
    custom.replace_cluster_custom_object(group, version, plural, "pipelines", body)


CHECKS = [generate_name, dry_run_changes_nothing, json_patch, invalid_objects_are_refused_and_listing_still_works,
          immutable_configmaps_keep_their_data, delete_preconditions, continue_pages_are_a_snapshot,
          custom_objects_need_a_resource_version_to_be_replaced]

for check in CHECKS:
    try:
        check()
    except Exception as e:  # report which check failed, and why
        print(f"FAILED {check.__name__}: {type(e).__name__}: {e}")
        sys.exit(1)
    print(f"ok {check.__name__}")
