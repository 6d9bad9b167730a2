"""Frozen settings: defaults <- sandbox.toml or [tool.sandbox] <- SANDBOX_* env <- CLI flags.

Every name, path, version, port and timeout the sandbox uses comes from here; nothing below
the CLI reads os.environ for configuration.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sandbox.errors import ConfigError
from sandbox.resources import is_shipped, shipped

Profile = Literal["aci-v1", "aci-v2"]
RuntimeChoice = Literal["auto", "docker", "podman"]
ImageLoad = Literal["auto", "archive"]
PROFILES: tuple[str, ...] = ("aci-v1", "aci-v2")
RUNTIMES: tuple[str, ...] = ("auto", "docker", "podman")
IMAGE_LOADS: tuple[str, ...] = ("auto", "archive")

# Official images the compose stack runs (Airflow's tag comes from the pinned package version).
POSTGRES_IMAGE = "postgres:16"
RABBITMQ_IMAGE = "rabbitmq:3.13-management"
AZURITE_IMAGE = "mcr.microsoft.com/azure-storage/azurite:3.35.0"
AIRFLOW_PYTHON = "3.11"


def airflow_version() -> str:
    """The Airflow version pinned in pyproject.toml: the one place it is named."""
    requirements, _, _ = _own_metadata()
    for requirement in requirements:
        match = re.match(r"apache-airflow(\[[^\]]*\])?\s*==\s*([\w.]+)", requirement)
        if match:
            return match.group(2)
    raise ConfigError("pyproject.toml pins no apache-airflow version (expected `==X.Y.Z`)")


def _own_metadata() -> tuple[list[str], dict[str, str], str]:
    """This tool's requirements, project URLs and version: from the installed distribution, or
    from pyproject.toml when run from a source tree that was never installed."""
    from importlib import metadata

    try:
        meta = metadata.metadata("sandbox")
        urls = dict(entry.split(", ", 1) for entry in meta.get_all("Project-URL") or [])
        return metadata.requires("sandbox") or [], urls, meta["Version"]
    except metadata.PackageNotFoundError:
        project = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())["project"]
        return project["dependencies"], project.get("urls", {}), project["version"]


def tool_action() -> str:
    """`owner/repo@vX.Y.Z`: the GitHub Action of this tool's own repository and release, which the
    workflow `sandbox init` scaffolds uses (the Repository URL in pyproject.toml)."""
    _, urls, version = _own_metadata()
    match = re.match(r"https://github\.com/([\w.-]+/[\w.-]+?)(?:\.git)?/?$", urls.get("Repository", ""))
    if not match:
        raise ConfigError("pyproject.toml names no GitHub Repository URL under [project.urls]")
    return f"{match.group(1)}@v{version}"


def airflow_image() -> str:
    return f"apache/airflow:{airflow_version()}-python{AIRFLOW_PYTHON}"


@dataclass(frozen=True)
class Ports:
    """Host ports; every one is published on 127.0.0.1 only."""

    api: int = 8080
    rabbitmq_ui: int = 15672
    flower: int = 5555
    azurite_blob: int = 10000

    def items(self) -> list[tuple[str, int]]:
        return [(f.name, getattr(self, f.name)) for f in dataclasses.fields(self)]


@dataclass(frozen=True)
class Timeouts:
    """Seconds each wait may take before it fails with a diagnostic."""

    cluster_create: float = 600
    node_ready: float = 300
    stack_up: float = 900  # `compose up -d`: first-run image pulls, then dependencies healthy
    stack_healthy: float = 300
    dag_parsed: float = 120
    run: float = 3600


COMPOSE_OVERRIDE = "compose.override.yaml"
_SHIPPED_DEFAULTS = (
    ("kind_config", Path("kind-config.yaml"), lambda: shipped("kind-config.yaml")),
    ("compose_file", Path("compose/docker-compose.yaml"), lambda: shipped("compose") / "docker-compose.yaml"),
)


@dataclass(frozen=True)
class Concurrency:
    """Airflow's global caps ([core] in Airflow's config; defaults are Airflow's own, from its
    config.yml). Composer exposes the same knobs; a backfill over many days hits them first."""

    parallelism: int = 32  # task instances running at once, whole installation
    max_active_tasks_per_dag: int = 16  # ... of one DAG (DAG(max_active_tasks=) overrides)
    max_active_runs_per_dag: int = 16  # runs of one DAG at once (DAG(max_active_runs=) overrides)

    def items(self) -> list[tuple[str, int]]:
        return [(f.name, getattr(self, f.name)) for f in dataclasses.fields(self)]


@dataclass(frozen=True)
class VirtualNodeQuota:
    """What the simulated virtual node admits at once: the subscription's ACI quota per region.

    Defaults are ACI's default quotas: 100 standard container groups (a pod is one container
    group) and 100 standard cores per region per subscription
    (learn.microsoft.com/azure/container-instances/container-instances-resource-and-quota-limits).
    ACI has no memory quota per subscription (only 16 GB per group, the `memory-max` rule), so
    memory has no budget unless one is set. Set these to what your subscription has left.
    """

    pods: int = 100
    cpu: float = 100.0
    memory_gib: float | None = None

    def items(self) -> list[tuple[str, float | int | None]]:
        return [(f.name, getattr(self, f.name)) for f in dataclasses.fields(self)]


@dataclass(frozen=True)
class Settings:
    project_dir: Path
    name: str = "sandbox"
    dags_folder: Path = Path("sample_dags")
    images_folders: tuple[Path, ...] = (Path("sample_dags/images"),)
    # Build arguments of every task image build (part of the content tag, so `up`, `build`, `lint`
    # and the record agree); `--build-arg` adds to them for one command.
    build_args: Mapping[str, str] = field(default_factory=dict, hash=False)
    # A pip requirements file for the Airflow containers (what DAG files and PythonOperator tasks
    # import): `up` builds the official image extended with it, tagged by content.
    airflow_requirements: Path | None = None
    kind_config: Path = Path("kind-config.yaml")
    compose_file: Path = Path("compose/docker-compose.yaml")
    state_dir: Path = Path(".sandbox")
    task_namespace: str = "sandbox-tasks"
    service_account: str = "airflow-tasks"
    profile: Profile = "aci-v1"
    runtime: RuntimeChoice = "auto"
    # How task images reach the kind nodes: "auto" tries `kind load docker-image` and falls back
    # to an image archive where that fails; "archive" always loads from an archive (an engine
    # whose direct load misbehaves in a way the fallback does not recognise; the e2e uses it to
    # exercise the fallback, which Docker's containerd store rarely triggers).
    image_load: ImageLoad = "auto"
    ports: Ports = field(default_factory=Ports)
    timeouts: Timeouts = field(default_factory=Timeouts)
    concurrency: Concurrency = field(default_factory=Concurrency)
    virtual_node_quota: VirtualNodeQuota = field(default_factory=VirtualNodeQuota)
    # Whether Airflow's scheduler creates runs from schedules (cron, assets) as in production.
    # Off, only what you trigger (run-dag, backfill, the UI) runs: run-dag's unpause then does
    # not also start the latest scheduled interval.
    scheduled_runs: bool = True

    def __post_init__(self) -> None:
        # Relative paths are relative to the project directory.
        base = self.project_dir
        # A project's own kind config / compose file wins; without one, the tool's packaged copy.
        for name, default, packaged in _SHIPPED_DEFAULTS:
            value = getattr(self, name)
            if value == default and not (base / value).is_file():
                object.__setattr__(self, name, packaged())
        for name in ("dags_folder", "kind_config", "compose_file", "state_dir", "airflow_requirements"):
            value = getattr(self, name)
            if value is not None and not value.is_absolute():
                object.__setattr__(self, name, base / value)
        object.__setattr__(
            self,
            "images_folders",
            tuple(p if p.is_absolute() else base / p for p in self.images_folders),
        )
        if self.profile not in PROFILES:
            raise ConfigError(
                f"unknown profile {self.profile!r}",
                hint=f"set profile to one of: {', '.join(PROFILES)}",
            )
        if self.runtime not in RUNTIMES:
            raise ConfigError(
                f"unknown runtime {self.runtime!r}",
                hint=f"set runtime to one of: {', '.join(RUNTIMES)}",
            )
        if self.image_load not in IMAGE_LOADS:
            raise ConfigError(
                f"unknown image_load {self.image_load!r}",
                hint=f"set image_load to one of: {', '.join(IMAGE_LOADS)}",
            )
        ports = self.ports.items()
        bad = [f"{name}={port}" for name, port in ports if not 1 <= port <= 65535]
        if bad:
            raise ConfigError(f"port(s) out of range: {', '.join(bad)}", hint="host ports are 1 to 65535")
        numbers = [port for _, port in ports]
        if len(set(numbers)) != len(numbers):
            raise ConfigError(
                f"two services share a host port: {', '.join(f'{n}={p}' for n, p in ports)}",
                hint="give each entry of [ports] its own port",
            )
        for key, table in (("concurrency", self.concurrency), ("virtual_node_quota", self.virtual_node_quota)):
            low = [f"{name}={value}" for name, value in table.items() if value is not None and value < 1]
            if low:
                raise ConfigError(
                    f"[{key}] values must be at least 1: {', '.join(low)}",
                    hint=f"e.g. {table.items()[0][0]} = {getattr(type(table)(), table.items()[0][0])}",
                )
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,30}", self.name):
            raise ConfigError(
                f"sandbox name {self.name!r} is not a valid cluster/project name",
                hint="use lowercase letters, digits and dashes (at most 31 characters)",
            )

    @property
    def compose_override(self) -> Path | None:
        """The project's compose.override.yaml, added last to every compose command when present."""
        path = self.project_dir / COMPOSE_OVERRIDE
        return path if path.is_file() else None

    def file_sources(self) -> dict[str, str]:
        """Which kind config and compose files are in use, and whose: `status` says so."""
        def whose(path: Path) -> str:
            return f"{path} ({'packaged default' if is_shipped(path) else 'project'})"

        sources = {"kind config": whose(self.kind_config), "compose": whose(self.compose_file)}
        if self.compose_override:
            sources["compose override"] = whose(self.compose_override)
        return sources

    @property
    def cluster_name(self) -> str:
        return self.name

    @property
    def compose_project(self) -> str:
        return self.name

    @property
    def control_plane_host(self) -> str:
        """The API server's name on the `kind` docker network (never 127.0.0.1)."""
        return f"{self.cluster_name}-control-plane"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.api}"


_SCALARS = ("name", "task_namespace", "service_account", "profile", "runtime", "image_load")
_PATHS = ("dags_folder", "kind_config", "compose_file", "state_dir", "airflow_requirements")


def is_project(folder: Path) -> bool:
    """A sandbox project: sandbox.toml, a kind-config.yaml, or [tool.sandbox] in pyproject.toml."""
    if (folder / "sandbox.toml").is_file() or (folder / "kind-config.yaml").is_file():
        return True
    try:
        return "[tool.sandbox]" in (folder / "pyproject.toml").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def find_project_dir(start: Path) -> Path | None:
    """The nearest project folder at or above `start`; None outside any project."""
    start = start.resolve()
    return next((c for c in (start, *start.parents) if is_project(c)), None)


def _file_values(project_dir: Path) -> dict[str, Any]:
    toml_file = project_dir / "sandbox.toml"
    pyproject = project_dir / "pyproject.toml"
    source = toml_file if toml_file.is_file() else pyproject
    try:
        if toml_file.is_file():
            values = tomllib.loads(toml_file.read_text(encoding="utf-8"))
        elif pyproject.is_file():
            tool = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("tool", {})
            values = tool.get("sandbox", {}) if isinstance(tool, Mapping) else {}
        else:
            return {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"cannot parse {source}: {exc}", hint="fix the TOML syntax") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source} is not UTF-8 text ({exc.reason})", hint="save it as UTF-8") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read {source}: {exc.strerror}", hint="check its permissions") from exc
    if not isinstance(values, Mapping):
        raise ConfigError(f"[tool.sandbox] in {source} must be a table", hint="write it as [tool.sandbox] with key = value lines")
    return dict(values)


def _env_values(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key in (*_SCALARS, *_PATHS):
        env_key = f"SANDBOX_{key.upper()}"
        if env_key in environ:
            values[key] = environ[env_key]
    for port in dataclasses.fields(Ports):
        env_key = f"SANDBOX_PORT_{port.name.upper()}"
        if env_key in environ:
            values.setdefault("ports", {})[port.name] = environ[env_key]
    if "SANDBOX_SCHEDULED_RUNS" in environ:
        values["scheduled_runs"] = environ["SANDBOX_SCHEDULED_RUNS"]
    if "SANDBOX_IMAGES_FOLDERS" in environ:
        values["images_folders"] = environ["SANDBOX_IMAGES_FOLDERS"].split(os.pathsep)
    return values


def _table(key: str, value: Any, example: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key} must be a table, not {value!r}", hint=f"write it as [{key}] with lines like {example}")
    return value


def _numbers(key: str, table: Mapping[str, Any], model: type, kind: type) -> dict[str, Any]:
    """A [ports] / [timeouts] table's values, each named in the error when it is not a number."""
    known = {f.name for f in dataclasses.fields(model)}
    numbers: dict[str, Any] = {}
    for name, value in table.items():
        if name not in known:
            raise ConfigError(f"unknown setting {key}.{name}", hint=f"known: {', '.join(sorted(known))}")
        bad = ConfigError(
            f"{key}.{name} must be {'a whole' if kind is int else 'a positive'} number, not {value!r}",
            hint=f"e.g. {name} = {getattr(model(), name)}",
        )
        if isinstance(value, bool):
            raise bad
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise bad from None
        if not math.isfinite(number) or (kind is int and not number.is_integer()) or (kind is float and number <= 0):
            raise bad
        numbers[name] = kind(number)
    return numbers


def _boolean(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{key} must be true or false, not {value!r}", hint=f"e.g. {key} = false")


def _merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
                merged[key] = {**merged[key], **value}
            elif value is not None:
                merged[key] = value
    return merged


def _build(project_dir: Path, values: Mapping[str, Any]) -> Settings:
    known = {f.name for f in dataclasses.fields(Settings)} - {"project_dir"}
    unknown = set(values) - known
    if unknown:
        raise ConfigError(
            f"unknown setting(s): {', '.join(sorted(unknown))}",
            hint=f"known settings: {', '.join(sorted(known))}",
        )
    kwargs: dict[str, Any] = {}
    try:
        for key, value in values.items():
            if key in _PATHS:
                kwargs[key] = Path(value)
            elif key == "images_folders":
                if isinstance(value, str) or not isinstance(value, (list, tuple)):
                    raise ConfigError(
                        f"images_folders must be a list of folders, not {value!r}",
                        hint='e.g. images_folders = ["sample_dags/images", "images"]',
                    )
                kwargs[key] = tuple(Path(v) for v in value)
            elif key == "build_args":
                table = _table(key, value, 'BASE_IMAGE = "python:3.11-slim"')
                for name, arg in table.items():
                    if isinstance(arg, (Mapping, list)):
                        raise ConfigError(f"build_args.{name} must be a string, not {arg!r}", hint=f'e.g. {name} = "value"')
                kwargs[key] = {str(k): str(v) for k, v in table.items()}
            elif key == "ports":
                kwargs[key] = Ports(**_numbers(key, _table(key, value, "api = 8080"), Ports, int))
            elif key == "timeouts":
                kwargs[key] = Timeouts(**_numbers(key, _table(key, value, "run = 3600"), Timeouts, float))
            elif key == "concurrency":
                table = _table(key, value, "max_active_runs_per_dag = 4")
                kwargs[key] = Concurrency(**_numbers(key, table, Concurrency, int))
            elif key == "virtual_node_quota":
                table = dict(_table(key, value, "pods = 10"))
                numbers = {
                    **_numbers(key, {k: v for k, v in table.items() if k != "pods"}, VirtualNodeQuota, float),
                    **_numbers(key, {k: v for k, v in table.items() if k == "pods"}, VirtualNodeQuota, int),
                }
                kwargs[key] = VirtualNodeQuota(**numbers)
            elif key == "scheduled_runs":
                kwargs[key] = _boolean(key, value)
            else:
                kwargs[key] = str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid setting value: {exc}", hint="check sandbox.toml") from exc
    return Settings(project_dir=project_dir, **kwargs)


def load_settings(
    project_dir: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Resolve settings through every layer; `overrides` are the CLI flags (None = not given)."""
    environ = os.environ if environ is None else environ
    if project_dir is None:
        env_dir = environ.get("SANDBOX_PROJECT_DIR")
        project_dir = Path(env_dir) if env_dir else (find_project_dir(Path.cwd()) or Path.cwd())
    project_dir = project_dir.resolve()
    values = _merge(_file_values(project_dir), _env_values(environ), overrides or {})
    return _build(project_dir, values)
