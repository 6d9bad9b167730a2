"""The installable tool: build the wheel, install it into a fresh virtualenv outside the
repository, and use it from an empty folder as a new user would (`sandbox init`, `sandbox lint`,
`sandbox status`): proves the package data (compose files, kind config, ACI rules, scaffold
templates, the DAG-side helper) without the repository on sys.path.

Offline-friendly: the wheel is installed with --no-deps; its dependencies come from this test
run's own environment through a .pth file (which adds the path only: that environment's own
.pth hooks, like an editable install of `sandbox`, do not run).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest
import yaml

from support import REPO

pytestmark = pytest.mark.integration

IGNORE = shutil.ignore_patterns(".git", ".venv", ".sandbox", "node_modules", "build", "*.egg-info", "__pycache__", ".sandbox-images.json", "_packaged")


def run(argv: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin/ folder of a fresh venv with the wheel installed."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(REPO, source, ignore=IGNORE, symlinks=True)
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(work / "dist"), str(source)], work)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    [wheel] = (work / "dist").glob("sandbox-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for inside, original in (
            ("sandbox/_packaged/compose/docker-compose.yaml", "compose/docker-compose.yaml"),
            ("sandbox/_packaged/compose/kind.yaml", "compose/kind.yaml"),
            ("sandbox/_packaged/kind-config.yaml", "kind-config.yaml"),
            ("sandbox/_packaged/sandbox_tasks/images.py", "sample_dags/sandbox_tasks/images.py"),
            ("sandbox/_packaged/sandbox_tasks/pods.py", "sample_dags/sandbox_tasks/pods.py"),
            ("sandbox/policy/aci_rules.yaml", "sandbox/policy/aci_rules.yaml"),
            ("sandbox/scaffold/dags/example.py", "sandbox/scaffold/dags/example.py"),
        ):
            assert archive.read(inside) == (REPO / original).read_bytes(), inside
    assert not [n for n in names if n.startswith(("sample_dags/", "tests/", "compose/"))]
    env_dir = work / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    site = Path(run([str(env_dir / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], work).stdout.strip())
    (site / "zz_shared_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = run([sys.executable, "-m", "pip", "--python", str(env_dir / "bin" / "python"), "install", "--no-deps", "--no-index", str(wheel)], work)
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-2000:]
    return env_dir / "bin"


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("SANDBOX_", "PYTHON", "AIRFLOW", "VIRTUAL_ENV"))} | {"COLUMNS": "200"}


def test_the_installed_tool_is_the_wheel(installed: Path, tmp_path: Path) -> None:
    where = run([str(installed / "python"), "-c", "import sandbox, sandbox.resources as r; print(sandbox.__file__); print(r.shipped('compose'))"], tmp_path, clean_env())
    module, compose = where.stdout.split()
    assert module.startswith(str(installed.parent)) and compose.startswith(str(installed.parent))


def test_init_lint_and_status_from_an_empty_folder(installed: Path, tmp_path: Path) -> None:
    sandbox = str(installed / "sandbox")
    init = run([sandbox, "init", "demo"], tmp_path, clean_env())
    assert init.returncode == 0, init.stderr
    project = tmp_path / "demo"
    assert (project / "dags" / "sandbox_tasks" / "images.py").read_bytes() == (REPO / "sample_dags" / "sandbox_tasks" / "images.py").read_bytes()
    # the workflow's action comes from the wheel's own metadata (Project-URL, Version)
    workflow = yaml.safe_load((project / ".github" / "workflows" / "sandbox.yml").read_text())
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    repository = pyproject["urls"]["Repository"].removeprefix("https://github.com/")
    assert {"uses": f"{repository}@v{pyproject['version']}"}.items() <= workflow["jobs"]["dags"]["steps"][1].items()
    lint = run([sandbox, "lint"], project, clean_env())
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "example.metrics → virtual-node (fits demo-worker2)" in lint.stdout
    status = run([sandbox, "status", "--json"], project, clean_env())
    files = json.loads(status.stdout)["files"]
    packaged = installed.parent / "lib"
    assert files["kind config"].startswith(str(packaged)) and files["kind config"].endswith("(packaged default)")
    assert files["compose"].startswith(str(packaged))
    # the project's own kind config wins, and status says so
    (project / "kind-config.yaml").write_bytes((REPO / "kind-config.yaml").read_bytes())
    status = run([sandbox, "status", "--json"], project, clean_env())
    assert json.loads(status.stdout)["files"]["kind config"] == f"{project / 'kind-config.yaml'} (project)"


def test_the_readme_commands_verbatim(installed: Path, tmp_path: Path) -> None:
    """README "Use it on your project": the block a test runs verbatim, with the installed tool."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Use it on your project"):]
    after = section.index("a test runs these lines verbatim")
    block = section[section.index("```bash\n", after) + len("```bash\n"):]
    block = block[: block.index("```")]
    assert "sandbox init" in block and "sandbox lint" in block
    env = clean_env() | {"PATH": f"{installed}:{os.environ['PATH']}"}
    result = run(["bash", "-euo", "pipefail", "-c", block], tmp_path, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "example.metrics → virtual-node" in result.stdout
