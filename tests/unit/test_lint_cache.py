"""The lint cache: an unchanged DAG folder is answered from .sandbox/lint-cache without importing
Airflow's DagBag again; any change to what the report depends on lints again."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.config import load_settings
from sandbox.core import lint
from sandbox.core.scaffold import init_project


@pytest.fixture
def project(tmp_path: Path) -> Path:
    init_project(tmp_path)
    return tmp_path


def _no_dagbag(*args: object, **kwargs: object) -> None:
    raise AssertionError("the DAG folder was parsed again")


def test_unchanged_folder_is_not_parsed_again_and_a_change_is(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(project, environ={})
    first = lint.lint_dags(settings)
    assert first.ok and [t.task_id for t in first.tasks] == ["metrics"]
    assert len(list((settings.state_dir / "lint-cache").glob("*.json"))) == 1
    with monkeypatch.context() as patched:
        patched.setattr(lint, "_lint_folder", _no_dagbag)
        assert lint.lint_dags(settings) == first  # the same report, read back
    # an edit the DagBag must see: a task ACI refuses (more than 4 vCPU)
    dag = project / "dags" / "example.py"
    dag.write_text(dag.read_text().replace("**virtual_node(),", '**virtual_node(cpu="8", cpu_limit="8"),'))
    second = lint.lint_dags(settings)
    assert not second.ok and second.violation_count
    # each input of the key invalidates: the profile, the DAGs asked for, a new task image
    with monkeypatch.context() as patched:
        patched.setattr(lint, "_lint_folder", _no_dagbag)
        assert lint.lint_dags(settings) == second
        for call in (
            lambda: lint.lint_dags(settings, profile="aci-v2"),
            lambda: lint.lint_dags(settings, dag_ids=["example"]),
        ):
            with pytest.raises(AssertionError, match="parsed again"):
                call()
        # step code saved (a new content tag): the same verdicts, from the cache — the inner loop
        (project / "images" / "example" / "metrics_step.py").write_text("print('{}')\n")
        assert lint.lint_dags(settings) == second
        (project / "images" / "other").mkdir()
        (project / "images" / "other" / "Dockerfile").write_text("FROM python:3.12-slim\n")
        with pytest.raises(AssertionError, match="parsed again"):
            lint.lint_dags(settings)
    # and the verdicts really do not depend on the tag: a fresh lint after the save agrees
    assert lint.lint_dags(settings, cache=False) == second


def test_a_corrupt_entry_is_linted_again(project: Path) -> None:
    settings = load_settings(project, environ={})
    report = lint.lint_dags(settings)
    [entry] = (settings.state_dir / "lint-cache").glob("*.json")
    entry.write_text("{not json")
    assert lint.lint_dags(settings) == report
    assert lint.lint_dags(settings, cache=False) == report


def test_outside_a_project_nothing_is_written(tmp_path: Path) -> None:
    (tmp_path / "dag.py").write_text("x = 1\n")
    settings = load_settings(tmp_path, environ={})
    lint.lint_dags(settings, tmp_path)
    assert not (tmp_path / ".sandbox").exists()
