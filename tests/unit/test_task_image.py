"""`task_image()` as DAG files see it in the Airflow containers: only the DAG folder and
site-packages on sys.path, the `sandbox` package unimportable.

One isolated interpreter (`python -I`, path stripped, a meta-path blocker for `sandbox`) runs
every scenario in turn, changing the environment and the record file between calls, and
reports what each call returned or raised.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sandbox.core.images.records import RECORD_FILE
from support import CONTAINER_VIEW

REPO = Path(__file__).resolve().parents[2]

SCENARIOS = CONTAINER_VIEW + r"""
import json, os

from sandbox_tasks import task_image  # as DAG files import it
from sandbox_tasks.images import task_image_pull_policy

results = {}
def attempt(key, call):
    try:
        results[key] = {"value": call()}
    except Exception as exc:
        results[key] = {"error": f"{type(exc).__name__}: {exc}"}

record = dags / ".sandbox-images.json"
for key in ("TASK_IMAGE_REGISTRY", "TASK_IMAGE_TAG"):
    os.environ.pop(key, None)

os.environ["SANDBOX_CLUSTER"] = "kind"
attempt("never_built", lambda: task_image("recommend"))
os.environ["SANDBOX_CLUSTER"] = "none"
attempt("stack_only", lambda: task_image("recommend"))
del os.environ["SANDBOX_CLUSTER"]
record.write_text(json.dumps({"version": 1, "images": {"steps": {"image": "steps:0123456789ab"}}}))
attempt("sandbox", lambda: task_image("steps"))
attempt("sandbox_policy", task_image_pull_policy)
attempt("sandbox_other", lambda: task_image("recommend"))
os.environ["TASK_IMAGE_REGISTRY"] = "myacr.azurecr.io/ml/"
os.environ["TASK_IMAGE_TAG"] = "2024.06.1"
attempt("env", lambda: task_image("steps"))
attempt("env_policy", task_image_pull_policy)
del os.environ["TASK_IMAGE_TAG"]
attempt("env_half", lambda: task_image("steps"))
del os.environ["TASK_IMAGE_REGISTRY"]
record.unlink()
attempt("variables", lambda: task_image("steps"))
try:
    import sandbox
    results["sandbox_importable"] = True
except ImportError:
    results["sandbox_importable"] = False
results["sandbox_loaded"] = any(m == "sandbox" or m.startswith("sandbox.") for m in sys.modules)
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict:
    dags = tmp_path_factory.mktemp("dags")
    shutil.copytree(REPO / "sample_dags" / "sandbox_tasks", dags / "sandbox_tasks")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TASK_IMAGE_", "AIRFLOW", "SANDBOX_"))}
    env["AIRFLOW_HOME"] = str(dags.parent / "airflow-home")
    proc = subprocess.run(
        [sys.executable, "-I", "-c", textwrap.dedent(SCENARIOS), str(dags)],
        capture_output=True, text=True, timeout=120, cwd=dags, env=env,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_helper_imports_without_the_sandbox_package(outcomes: dict) -> None:
    assert outcomes["sandbox_importable"] is False
    assert outcomes["sandbox_loaded"] is False


def test_sandbox_resolves_the_tag_sandbox_build_recorded(outcomes: dict) -> None:
    assert outcomes["sandbox"] == {"value": "steps:0123456789ab"}
    assert outcomes["sandbox_policy"] == {"value": "IfNotPresent"}
    assert RECORD_FILE == ".sandbox-images.json"  # the file `sandbox build` writes


def test_an_image_never_built_names_the_command_that_builds_it(outcomes: dict) -> None:
    assert "run `sandbox build recommend`" in outcomes["never_built"]["error"]
    assert "TaskImageNotFound" in outcomes["sandbox_other"]["error"]
    assert "built: steps" in outcomes["sandbox_other"]["error"]


def test_production_from_environment_variables(outcomes: dict) -> None:
    assert outcomes["env"] == {"value": "myacr.azurecr.io/ml/steps:2024.06.1"}
    assert outcomes["env_policy"] == {"value": None}
    assert "TASK_IMAGE_REGISTRY/TASK_IMAGE_TAG: the image registry is set but not the tag" in outcomes["env_half"]["error"]


def test_stack_only_without_a_record_imports(outcomes: dict) -> None:
    assert outcomes["stack_only"] == {"value": "recommend:not-built"}


def test_production_from_airflow_variables_is_a_template_rendered_at_run_time(outcomes: dict) -> None:
    # rendered by the worker (test_dag_parse_no_variables renders it); never read at parse time
    assert outcomes["variables"] == {
        "value": "{{ var.value.task_image_registry }}/steps:{{ var.value.task_image_tag }}"
    }
