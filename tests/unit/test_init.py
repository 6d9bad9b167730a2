"""`sandbox init`: what it scaffolds, that it never overwrites, that a second run is a no-op; the
vendored helper is the tool's copy and lint warns when it drifts; commands outside a project
refuse with the init hint, and name the project folder when it is not the current one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.core.lint import lint_dags
from sandbox.config import load_settings
from sandbox.core.scaffold import helper_drift, init_project
from sandbox.resources import shipped
from support import REPO

SCAFFOLD = [
    "sandbox.toml",
    "dags/example.py",
    "dags/.airflowignore",
    "images/example/Dockerfile",
    "images/example/metrics_step.py",
    "dags/sandbox_tasks/__init__.py",
    "dags/sandbox_tasks/images.py",
    "dags/sandbox_tasks/pods.py",
    ".github/workflows/sandbox.yml",
    ".gitignore",
]


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def cli(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_")}
    environ.update({"PYTHONPATH": str(REPO), "COLUMNS": "200", **(env or {})})
    return subprocess.run([sys.executable, "-m", "sandbox", *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=environ)


def test_init_scaffolds_a_new_folder_and_a_second_run_changes_nothing(tmp_path: Path) -> None:
    project = tmp_path / "My Project"
    report = init_project(project)
    helper = sorted(f"dags/sandbox_tasks/{p.name}" for p in shipped("sandbox_tasks").glob("*.py"))
    expected = sorted([p for p in SCAFFOLD if not p.startswith("dags/sandbox_tasks/")] + helper)
    assert sorted(report.created) == expected and report.kept == [] and report.updated == []
    assert 'name = "my-project"' in (project / "sandbox.toml").read_text()
    assert (project / ".gitignore").read_text() == ".sandbox/\n.sandbox-images.json\n"
    for name in helper:  # the vendored helper is the tool's own copy, byte for byte
        assert (project / name).read_bytes() == (shipped("sandbox_tasks") / Path(name).name).read_bytes()
    before = tree(project)
    again = init_project(project)
    assert not again.changed and sorted(again.kept) == expected
    assert tree(project) == before


def test_init_into_an_existing_project_overwrites_nothing(tmp_path: Path) -> None:
    (tmp_path / "sandbox.toml").write_text('name = "mine"\ndags_folder = "pipelines"\nimages_folders = ["containers"]\n')
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "example.py").write_text("# my own example\n")
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / ".github" / "workflows" / "sandbox.yml").write_text("name: mine\n")
    (tmp_path / ".gitignore").write_text("*.log\n.sandbox/")  # no final newline
    report = init_project(tmp_path)
    assert sorted(report.kept) == [".github/workflows/sandbox.yml", "pipelines/example.py", "sandbox.toml"]
    assert report.updated == [".gitignore"]
    assert "containers/example/Dockerfile" in report.created and "pipelines/sandbox_tasks/pods.py" in report.created
    assert not (tmp_path / "dags").exists()  # the project's own folders are used
    assert (tmp_path / "sandbox.toml").read_text().startswith('name = "mine"')
    assert (tmp_path / "pipelines" / "example.py").read_text() == "# my own example\n"
    assert (tmp_path / ".github" / "workflows" / "sandbox.yml").read_text() == "name: mine\n"
    assert (tmp_path / ".gitignore").read_text() == "*.log\n.sandbox/\n.sandbox-images.json\n"
    before = tree(tmp_path)
    assert not init_project(tmp_path).changed and tree(tmp_path) == before


def test_a_drifted_helper_is_found_and_replaced_only_when_asked(tmp_path: Path) -> None:
    init_project(tmp_path)
    dags = tmp_path / "dags"
    assert helper_drift(dags) == []
    assert helper_drift(REPO / "sample_dags") == []  # the samples use the shipped copy itself
    (dags / "sandbox_tasks" / "pods.py").write_text("# an old copy\n")
    assert helper_drift(dags) == ["pods.py"]
    assert not init_project(tmp_path).changed
    report = init_project(tmp_path, update_helper=True)
    assert report.updated == ["dags/sandbox_tasks/pods.py"] and helper_drift(dags) == []


def test_the_scaffolded_project_lints_clean(tmp_path: Path) -> None:
    init_project(tmp_path)
    report = lint_dags(load_settings(tmp_path, environ={}))
    assert report.ok, "\n".join(report.lines())
    [task] = report.tasks
    assert (task.dag_id, task.task_id, task.target) == ("example", "metrics", "virtual-node")
    assert not task.warnings


def test_the_cli_outside_a_project(tmp_path: Path) -> None:
    outside = cli(tmp_path, "status")
    assert outside.returncode == 2 and "Traceback" not in outside.stderr
    assert f"error: no sandbox project in {tmp_path} or any folder above it" in " ".join(outside.stderr.split())
    assert "run `sandbox init`" in outside.stderr
    first = cli(tmp_path, "init", "proj")
    assert first.returncode == 0, first.stderr
    assert "created     sandbox.toml" in first.stdout and "next: cd " in first.stdout
    second = cli(tmp_path, "init", "proj")
    assert "nothing to do" in second.stdout and "created" not in second.stdout
    # a command in a subfolder acts on the project above and says which
    inside = cli(tmp_path / "proj" / "dags", "status", "--json")
    assert f"project: {tmp_path / 'proj'}" in inside.stderr
    named = cli(tmp_path, "-C", str(tmp_path / "proj"), "status", "--json")  # named: not repeated
    assert "project: " not in named.stderr
    # lint of a folder outside any project: packaged kind config, said so
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "example.py").write_text((tmp_path / "proj" / "dags" / "example.py").read_text())
    (tmp_path / "proj" / "dags" / "sandbox_tasks").rename(loose / "sandbox_tasks")
    (loose / "sandbox_tasks" / "images.py").write_text((loose / "sandbox_tasks" / "images.py").read_text() + "\n")
    linted = cli(tmp_path, "lint", "loose")
    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert "not in a sandbox project: the packaged kind config" in " ".join(linted.stderr.split())
    assert "sandbox_tasks differs from the helper this sandbox ships (images.py)" in " ".join(linted.stderr.split())
    assert "example.metrics → virtual-node" in linted.stdout


@pytest.mark.parametrize("name", ["sandbox.toml", "kind-config.yaml"])
def test_a_project_is_marked_by_its_files(tmp_path: Path, name: str) -> None:
    from sandbox.config import find_project_dir

    (tmp_path / "a" / "b").mkdir(parents=True)
    assert find_project_dir(tmp_path / "a" / "b") in (None, *tmp_path.parents)
    (tmp_path / "a" / name).write_text("")
    assert find_project_dir(tmp_path / "a" / "b") == tmp_path / "a"


def test_the_action_and_the_readme_install_line_come_from_pyproject_s_repository() -> None:
    """One place names the repository: the workflow's action and the README's pipx line follow it."""
    import tomllib

    from sandbox.config import tool_action

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    url = project["urls"]["Repository"]
    assert tool_action() == f"{url.removeprefix('https://github.com/')}@v{project['version']}"
    assert f"pipx install git+{url}" in (REPO / "README.md").read_text()


def test_init_action_option_and_its_bad_input(tmp_path: Path) -> None:
    done = cli(tmp_path, "init", "--action", "my-org/sandbox-fork@v9")
    assert done.returncode == 0, done.stderr
    assert "- uses: my-org/sandbox-fork@v9\n" in (tmp_path / ".github" / "workflows" / "sandbox.yml").read_text()
    (tmp_path / "other").mkdir()
    bad = cli(tmp_path / "other", "init", "--action", "not an action")
    assert bad.returncode == 2 and not (tmp_path / "other" / "sandbox.toml").exists()
    assert bad.stderr.count("\n") <= 2 and "OWNER/REPO@REF" in bad.stderr and "Traceback" not in bad.stderr
