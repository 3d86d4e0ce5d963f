"""A webhook receiver as a team would run one: verifies each message's Standard Webhooks
signature with the reference `standardwebhooks` package, checks the CloudEvent and, for
CDEvents, validates its data against the vendored CDEvents schemas, and answers.

Every request is printed as one JSON line on stdout (flushed), so a test can follow them:
    {"id", "type", "subject", "verified", "schema", "status"}
The first line is {"listening": PORT}. POST /_mode with a body of "200", "503" (answered with
Retry-After: 1) or "redirect URL" (a 302 there) changes how messages are answered.

Usage: webhook_receiver.py SCHEMAS_DIR SECRET [SECRET...]   (any one secret verifies)
"""

import json
import pathlib
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jsonschema
import referencing
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

SCHEMAS = pathlib.Path(sys.argv[1])
HOOKS = [Webhook(secret) for secret in sys.argv[2:]]
MODE = {"answer": "200"}
LOCK = threading.Lock()

resources = []
validators = {}
for path in SCHEMAS.rglob("*.json"):
    schema = json.loads(path.read_text())
    resources.append((schema["$id"], referencing.Resource.from_contents(schema)))
REGISTRY = referencing.Registry().with_resources(resources)
for path in SCHEMAS.glob("*.json"):
    schema = json.loads(path.read_text())
    kind = schema["properties"]["context"]["properties"]["type"]["enum"][0]
    validators[kind] = jsonschema.Draft202012Validator(schema, registry=REGISTRY)


def emit(record):
    with LOCK:
        print(json.dumps(record), flush=True)


def verify(body, headers):
    for hook in HOOKS:
        try:
            hook.verify(body, headers)
            return True
        except WebhookVerificationError:
            continue
    return False


def check(event):
    """What is wrong with the CloudEvent (and its CDEvent), or "ok"."""
    for field in ("specversion", "id", "source", "type"):
        if not event.get(field):
            return f"CloudEvent without {field}"
    if event["specversion"] != "1.0":
        return "not CloudEvents 1.0"
    validator = validators.get(event["type"])
    if validator is None:
        return "ok" if not event["type"].startswith("dev.cdevents.") else f"no schema for {event['type']}"
    errors = sorted(validator.iter_errors(event.get("data")), key=str)
    if errors:
        return f"CDEvent invalid: {errors[0].message}"
    if event["data"]["context"]["id"] != event["id"]:
        return "the CDEvent's id is not the CloudEvent's"
    return "ok"


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path == "/_mode":
            MODE["answer"] = body.decode()
            return self.answer(204)
        headers = {k.lower(): v for k, v in self.headers.items()}
        record = {"id": headers.get("webhook-id"), "path": self.path,
                  "contentType": headers.get("content-type")}
        record["verified"] = verify(body, headers)
        mode = MODE["answer"]
        if not record["verified"]:
            record["status"] = 401
        elif mode == "503":
            record["status"] = 503
        elif mode.startswith("redirect "):
            record["status"] = 302
        else:
            event = json.loads(body)
            record.update(type=event.get("type"), subject=event.get("subject"), schema=check(event),
                          transition=event.get("data", {}).get("customData", {}).get("execwatch", {}).get("phase"))
            record["event"] = event
            record["status"] = 204
        emit(record)
        if record["status"] == 503:
            return self.answer(503, [("Retry-After", "1")])
        if record["status"] == 302:
            return self.answer(302, [("Location", mode.split(" ", 1)[1])])
        self.answer(record["status"])


class Server(ThreadingHTTPServer):
    # The default backlog of 5 drops connections when a few replicas send at once, and a dropped
    # SYN is retried a second later: the senders would wait on this receiver, not on themselves.
    request_queue_size = 256
    daemon_threads = True


server = Server(("127.0.0.1", 0), Handler)
emit({"listening": server.server_address[1]})
server.serve_forever()
