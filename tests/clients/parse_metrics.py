"""Scrapes a /metrics URL and parses it with the Prometheus project's own parser (the
`prometheus_client` package, OpenMetrics flavour, as the service serves it). Prints every sample
as JSON lines: {"family", "type", "name", "labels", "value"}. Exits non-zero on a parse error."""

import json
import sys
import urllib.request

from prometheus_client.openmetrics.parser import text_string_to_metric_families

url = sys.argv[1]
with urllib.request.urlopen(url, timeout=10) as response:
    content_type = response.headers.get("Content-Type", "")
    text = response.read().decode("utf-8")
if not content_type.startswith("application/openmetrics-text"):
    sys.exit(f"unexpected Content-Type {content_type!r}")
for family in text_string_to_metric_families(text):
    for sample in family.samples:
        print(json.dumps({"family": family.name, "type": family.type, "name": sample.name,
                          "labels": sample.labels, "value": sample.value}))
