"""Recording fakes for the boundaries that cannot run here: external CLIs and a live Kubernetes API.

Import as `from fakes import RecordingRunner, FakeKube` (tests/ is on sys.path via conftest).
Both record exactly what the code asked for, so tests assert on commands and API requests, and
both behave like the real thing where it matters (a failing command raises CommandFailed, a
missing node is a 404), so a test that expects the wrong thing fails.
"""

from __future__ import annotations

import base64
import copy
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sandbox.adapters.kube import KubeApi, describe, resource_path
from sandbox.core.kind_config import NodeSpec
from sandbox.models import Node, Taint
from sandbox.errors import CommandFailed, KubeApiError
from sandbox.proc import Completed

Answer = Completed | CommandFailed | Callable[[list[str]], Completed]


@dataclass
class Call:
    argv: list[str]
    env: dict[str, str] | None
    streamed: bool
    input: str | None = None
    cwd: str | None = None
    attached: bool = False  # run with the terminal's stdio (inherit_stdio)

    @property
    def line(self) -> str:
        return " ".join(self.argv)


class RecordingRunner:
    """Drop-in for sandbox.proc.run: records each call, answers from a script.

    `script` maps a regex (matched against the space-joined argv with re.search) to an answer or
    a list of answers consumed in order (the last one repeats). An answer is a Completed, a
    CommandFailed (raised when check=True, returned as a non-zero Completed otherwise), or a
    callable taking argv. Unscripted commands succeed with empty output when `strict` is false,
    and raise AssertionError when it is true.
    """

    def __init__(
        self, script: Mapping[str, Answer | list[Answer]] | None = None, *, strict: bool = False
    ):
        self.script: dict[str, list[Answer]] = {}
        for pattern, answer in (script or {}).items():
            self.on(pattern, answer)
        self.strict = strict
        self.calls: list[Call] = []

    def on(self, pattern: str, answer: Answer | list[Answer]) -> RecordingRunner:
        self.script[pattern] = list(answer) if isinstance(answer, list) else [answer]
        return self

    def __call__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Any = None,
        input: str | None = None,
        check: bool = True,
        timeout: float | None = None,
        on_line: Callable[[str], None] | None = None,
        inherit_stdio: bool = False,
    ) -> Completed:
        argv = [str(a) for a in argv]
        self.calls.append(
            Call(argv, dict(env) if env else None, on_line is not None, input, str(cwd) if cwd else None, inherit_stdio)
        )
        line = " ".join(argv)
        for pattern, answers in self.script.items():
            if re.search(pattern, line):
                answer = answers.pop(0) if len(answers) > 1 else answers[0]
                break
        else:
            if self.strict:
                raise AssertionError(f"unscripted command: {line}")
            answer = Completed(argv, 0, "", "")
        if callable(answer) and not isinstance(answer, (Completed, CommandFailed)):
            answer = answer(argv)
        if isinstance(answer, CommandFailed):
            if check:
                raise CommandFailed(argv, answer.returncode, answer.stderr)
            answer = Completed(argv, answer.returncode, "", answer.stderr)
        answer = Completed(argv, answer.returncode, answer.stdout, answer.stderr)
        if on_line is not None:
            for out in answer.stdout.splitlines():
                on_line(out)
        if check and answer.returncode != 0:
            raise CommandFailed(argv, answer.returncode, answer.stderr or answer.stdout)
        return answer

    @property
    def argvs(self) -> list[list[str]]:
        return [c.argv for c in self.calls]

    @property
    def lines(self) -> list[str]:
        return [c.line for c in self.calls]


def ok(stdout: str = "", stderr: str = "") -> Completed:
    return Completed([], 0, stdout, stderr)


def fail(stderr: str = "boom", returncode: int = 1) -> CommandFailed:
    return CommandFailed([], returncode, stderr)


@dataclass
class FakeNode:
    name: str
    labels: dict[str, str]
    taints: list[Taint]
    ready: bool = True
    pods_capacity: int = 110  # kubelet's default --max-pods


@dataclass
class FakeKube:
    """In-memory stand-in for sandbox.adapters.kube.KubeApi.

    `requests` records (method, what) in order, e.g. ("GET", "nodes"), ("PATCH", "Node x"),
    ("APPLY", "Role ns/name"). Like the API server: labelling an unknown node is a 404, a
    namespaced object needs its Namespace, and a service-account-token Secret gets its token only
    after `token_after_reads` reads (the token controller is asynchronous).
    """

    nodes_by_name: dict[str, FakeNode] = field(default_factory=dict)
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)  # resource path -> object
    requests: list[tuple[str, str]] = field(default_factory=list)
    ca_data: str = base64.b64encode(
        b"-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n"
    ).decode()
    token_after_reads: int = 0
    ready_after_reads: int = 0
    unreachable: bool = False
    _reads: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_specs(
        cls, specs: Sequence[NodeSpec], *, as_created_by_kind: bool = True, **kwargs: Any
    ) -> FakeKube:
        """Nodes as kind leaves them: without the labels only `up` sets through the API, except
        the OS labels kubelet sets itself (unless told otherwise); pod capacity from --max-pods."""
        from sandbox.core.kind_config import kind_of_labels

        nodes = {}
        for spec in specs:
            labels = dict(spec.labels)
            kind = kind_of_labels(labels) if spec.is_virtual_node else None
            if as_created_by_kind and kind is not None:
                for key in kind.api_labels:
                    if not key.endswith("kubernetes.io/os"):
                        labels.pop(key, None)
            capacity = spec.pods_capacity or FakeNode.pods_capacity
            nodes[spec.name] = FakeNode(spec.name, labels, list(spec.taints), pods_capacity=capacity)
        return cls(nodes_by_name=nodes, **kwargs)

    def _check_reachable(self) -> None:
        from sandbox.errors import ClusterError

        if self.unreachable:
            raise ClusterError(
                "cannot reach the Kubernetes API at https://127.0.0.1:6443: MaxRetryError"
            )

    def nodes(self) -> list[Node]:
        self._check_reachable()
        self.requests.append(("GET", "nodes"))
        reads = self._reads["nodes"] = self._reads.get("nodes", 0) + 1
        return [
            Node(
                n.name,
                dict(n.labels),
                tuple(n.taints),
                ready=n.ready and reads > self.ready_after_reads,
                pods_capacity=n.pods_capacity,
            )
            for n in self.nodes_by_name.values()
        ]

    def label_node(self, name: str, labels: Mapping[str, str | None]) -> None:
        self._check_reachable()
        self.requests.append(("PATCH", f"Node {name}"))
        if name not in self.nodes_by_name:
            raise KubeApiError(
                404, f'Kubernetes API: PATCH /api/v1/nodes/{name} returned 404: nodes "{name}" not found'
            )
        node_labels = self.nodes_by_name[name].labels
        for key, value in labels.items():  # a JSON merge patch: null removes the key
            if value is None:
                node_labels.pop(key, None)
            else:
                node_labels[key] = value

    def apply(self, manifest: Mapping[str, Any]) -> None:
        self._check_reachable()
        self.requests.append(("APPLY", describe(manifest)))
        path = resource_path(manifest)
        namespace = (manifest.get("metadata") or {}).get("namespace")
        if namespace and f"/api/v1/namespaces/{namespace}" not in self.objects:
            raise KubeApiError(
                404, f'Kubernetes API: PATCH {path} returned 404: namespaces "{namespace}" not found'
            )
        merged = copy.deepcopy(dict(manifest))
        previous = self.objects.get(path)
        if previous and "data" in previous and "data" not in merged:
            merged["data"] = previous["data"]  # server-populated fields survive a re-apply
        self.objects[path] = merged

    def get(self, manifest: Mapping[str, Any]) -> dict[str, Any] | None:
        self._check_reachable()
        self.requests.append(("GET", describe(manifest)))
        path = resource_path(manifest)
        obj = self.objects.get(path)
        if obj is None:
            return None
        if obj.get("type") == "kubernetes.io/service-account-token" and "token" not in (
            obj.get("data") or {}
        ):
            account = obj["metadata"]["annotations"]["kubernetes.io/service-account.name"]
            namespace = obj["metadata"]["namespace"]
            account_exists = f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}" in self.objects
            reads = self._reads[path] = self._reads.get(path, 0) + 1
            if account_exists and reads > self.token_after_reads:
                token = f"token-for-{account}"
                obj.setdefault("data", {})["token"] = base64.b64encode(token.encode()).decode()
        return copy.deepcopy(obj)

    # The real lookup (a GET of the token Secret), run against this fake's get().
    service_account_token = KubeApi.service_account_token

    def server_ca_data(self) -> str:
        return self.ca_data

    def writes(self) -> list[tuple[str, str]]:
        """Only the requests that change something."""
        return [r for r in self.requests if r[0] != "GET"]
