"""The layers the README promises, checked over every import in sandbox/ (top-level and inside
functions), read with `ast`: cli → core → adapters → foundation, and each external system's
client library imported by its one adapter only."""

from __future__ import annotations

import ast

from support import REPO

PACKAGE = REPO / "sandbox"

# Who may import what of sandbox itself: a layer may import the ones below it, never above.
LAYER_OF = {"cli": 3, "core": 2, "adapters": 1}  # everything else in sandbox/ is foundation (0)

# The libraries that reach an external system, and the only modules that may import them.
OWNERS = {
    "subprocess": {"sandbox/proc.py"},
    "docker": {"sandbox/adapters/docker_images.py"},
    "httpx": {"sandbox/adapters/airflow_api.py"},
    "urllib.request": {"sandbox/adapters/tools.py"},
    "http.client": {"sandbox/adapters/runtime.py"},
    # core/pod_render renders a pod in-process with the client's serializer (no connection)
    "kubernetes": {"sandbox/adapters/kube.py", "sandbox/core/pod_render.py"},
    "typer": {"sandbox/cli"},
    "rich": {"sandbox/cli"},
}


def layer(module: str) -> int:
    """0 foundation, 1 adapters, 2 core, 3 cli, for a dotted module name inside sandbox."""
    parts = module.split(".")
    return LAYER_OF.get(parts[1], 0) if len(parts) > 1 else 0


def imports(source: str) -> list[tuple[int, str]]:
    """(line, dotted module) of every import statement, wherever it stands."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def violations(relative: str, source: str) -> list[str]:
    """What `relative` (a path under the repo, e.g. sandbox/core/x.py) imports against the rules."""
    module = relative.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
    own = layer(module)
    found = []
    for line, name in imports(source):
        where = f"{relative}:{line} imports {name}"
        if name == "sandbox" or name.startswith("sandbox."):
            if module == "sandbox.__main__":
                continue  # the entry point runs the CLI
            if layer(name) > own:
                found.append(f"{where}: layer {layer(name)} above its own {own} (cli 3 > core 2 > adapters 1 > foundation 0)")
            continue
        for library, owners in OWNERS.items():
            if (name == library or name.startswith(library + ".")) and not any(
                relative == owner or relative.startswith(owner + "/") for owner in owners
            ):
                found.append(f"{where}: only {', '.join(sorted(owners))} may import {library}")
    return found


def test_every_module_keeps_to_its_layer() -> None:
    problems = [
        problem
        for path in sorted(PACKAGE.rglob("*.py"))
        for problem in violations(str(path.relative_to(REPO)), path.read_text())
    ]
    assert problems == []


def test_the_contract_catches_a_wrong_import() -> None:
    """The check itself can fail: each kind of violation is reported with its line."""
    assert violations("sandbox/adapters/kube.py", "from sandbox.core.kind_config import Taint\n") == [
        "sandbox/adapters/kube.py:1 imports sandbox.core.kind_config: layer 2 above its own 1 "
        "(cli 3 > core 2 > adapters 1 > foundation 0)"
    ]
    inside_a_function = "def f():\n    import subprocess\n"
    assert violations("sandbox/core/doctor.py", inside_a_function) == [
        "sandbox/core/doctor.py:2 imports subprocess: only sandbox/proc.py may import subprocess"
    ]
    assert violations("sandbox/state.py", "from sandbox.cli import console\n")
    assert violations("sandbox/cli/stack.py", "import rich.table\nfrom sandbox.core import stack\n") == []
