"""A recording fake of the Kubernetes API over HTTP, for code that uses the official clients
(the cncf.kubernetes provider's hooks and trigger, in DAG-folder code that cannot use the
sandbox's adapter). It serves recorded pod objects (tests/fixtures/kube) and pod logs; every
request is recorded as (method, path, query). An unknown pod is a 404 Status, like the API server.

`serving(pods, logs)` yields the server's URL and the request list; `kubeconfig(url, path)`
writes a kubeconfig pointing at it (no TLS, a token the server ignores).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml


@dataclass
class FakeKubeHttp:
    pods: dict[tuple[str, str], list[dict[str, Any]]]  # (namespace, name) -> answers in order
    logs: dict[tuple[str, str], str]
    requests: list[tuple[str, str, dict[str, list[str]]]] = field(default_factory=list)

    def answer(self, method: str, url: str) -> tuple[int, str, str]:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        self.requests.append((method, parts.path, query))
        segments = parts.path.strip("/").split("/")
        # /api/v1/namespaces/<ns>/pods/<name>[/log]  and  /api/v1/namespaces/<ns>/events
        if segments[:3] == ["api", "v1", "namespaces"] and len(segments) >= 5:
            namespace, resource = segments[3], segments[4]
            if resource == "events":
                return 200, "application/json", json.dumps({"kind": "EventList", "apiVersion": "v1", "metadata": {}, "items": []})
            if resource == "pods" and len(segments) in (6, 7):
                key = (namespace, segments[5])
                if key not in self.pods:
                    return 404, "application/json", _not_found(segments[5])
                if len(segments) == 7 and segments[6] == "log":
                    text = self.logs.get(key, "")
                    tail = query.get("tailLines")
                    if tail:
                        text = "".join(text.splitlines(keepends=True)[-int(tail[0]):])
                    return 200, "text/plain", text
                answers = self.pods[key]
                pod = answers.pop(0) if len(answers) > 1 else answers[0]
                return 200, "application/json", json.dumps(pod)
        return 404, "application/json", _not_found(parts.path)


def _not_found(name: str) -> str:
    return json.dumps(
        {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": f'pods "{name}" not found', "reason": "NotFound",
            "details": {"name": name, "kind": "pods"}, "code": 404,
        }
    )


@contextmanager
def serving(
    pods: Mapping[tuple[str, str], Sequence[dict[str, Any]]], logs: Mapping[tuple[str, str], str] | None = None
) -> Iterator[tuple[str, FakeKubeHttp]]:
    fake = FakeKubeHttp({k: list(v) for k, v in pods.items()}, dict(logs or {}))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            status, content_type, body = fake.answer("GET", self.path)
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", fake
    finally:
        server.shutdown()
        server.server_close()


def kubeconfig(url: str, path: Path, namespace: str = "sandbox-tasks") -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": url}}],
                "users": [{"name": "airflow", "user": {"token": "fake-token"}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "airflow", "namespace": namespace}}],
                "current-context": "fake",
            }
        )
    )
    return path
