"""The one wiring point: the external systems one command talks to, built once per command.

The CLI makes one `Adapters` per invocation (sandbox.cli.app.CliContext.adapters) and hands it
to core; each adapter is built on first use and kept, so a command that needs no engine never
looks for one, and `up` finds compose once. Tests pass their fakes through the constructor.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from sandbox.config import Settings
from sandbox.core.ports import HealthProbe, ImageEngine, KindApi, KubeApi, KubeFactory, Tools
from sandbox.errors import PrerequisiteError, ToolMissing
from sandbox.proc import Runner, run
from sandbox.state import StateDir

if TYPE_CHECKING:
    from sandbox.adapters.airflow_api import AirflowApi
    from sandbox.adapters.compose import Compose, ComposeCommand
    from sandbox.adapters.runtime import Runtime
    from sandbox.core.stack_files import Mode

_UNSET = object()


class Adapters:
    """Every external system of one command; each built on first use, or given (a test's fake)."""

    def __init__(
        self,
        settings: Settings,
        *,
        runner: Runner = run,
        runtime: Runtime | None = None,
        compose_command: ComposeCommand | None | object = _UNSET,
        tools: Tools | None = None,
        kind: KindApi | None = None,
        kube_factory: KubeFactory | None = None,
        image_engine: ImageEngine | None = None,
        health: HealthProbe | None = None,
    ) -> None:
        self.settings = settings
        self.runner = runner
        self._runtime = runtime
        self._compose_command = compose_command
        self._tools = tools
        self._kind = kind
        self._kube_factory = kube_factory
        self._image_engine = image_engine
        self._health = health

    @property
    def runtime(self) -> Runtime:
        """The engine that answers (Docker or podman); PrerequisiteError when none does."""
        if self._runtime is None:
            from sandbox.adapters.runtime import detect_runtime

            self._runtime = detect_runtime(self.settings)
        return self._runtime

    @property
    def compose_command(self) -> ComposeCommand | None:
        """The compose implementation for this runtime (None: there is none), looked for once."""
        if self._compose_command is _UNSET:
            from sandbox.adapters.compose import find_compose

            self._compose_command = find_compose(self.runtime, runner=self.runner)
        return self._compose_command  # type: ignore[return-value]

    def compose(self, mode: Mode) -> Compose:
        from sandbox.adapters.compose import Compose, ComposeProject
        from sandbox.core.stack_files import compose_files

        command = self.compose_command
        if command is None:
            raise PrerequisiteError("no usable compose implementation found", hint="run `sandbox doctor`")
        state = StateDir(self.settings.state_dir)
        project = ComposeProject(self.settings.compose_project, compose_files(self.settings, mode), state.compose_env_file)
        return Compose(command, project, self.runtime, runner=self.runner, cwd=self.settings.project_dir)

    @property
    def tools(self) -> Tools:
        if self._tools is None:
            from sandbox.core.tools import PinnedTools

            self._tools = PinnedTools(self.settings, runner=self.runner)
        return self._tools

    def kind(self, on_info: Callable[[str], None] | None = None) -> KindApi:
        """The kind CLI with this runtime's provider. With `on_info` (a reporter line sink) a
        missing or unsupported kind is downloaded; without, it is ToolMissing here."""
        if self._kind is None:
            from sandbox.adapters.kind import KindCli

            if on_info is not None:
                binary: Path | None = self.tools.ensure("kind", on_info)
            else:
                binary = self.tools.find("kind")
                if binary is None:
                    from sandbox.core.tools import KIND_MISSING_HINT

                    raise ToolMissing("kind", hint=KIND_MISSING_HINT)
            self._kind = KindCli(str(binary), provider=self.runtime.kind_provider, runner=self.runner)
        return self._kind

    def optional_kind(self) -> KindApi | None:
        """The kind CLI, or None when there is none to ask (image commands work without a cluster)."""
        try:
            return self.kind()
        except ToolMissing:
            return None

    def kube(self, kubeconfig: Path) -> KubeApi:
        if self._kube_factory is None:
            from sandbox.adapters.kube import KubeApi as RealKubeApi

            self._kube_factory = RealKubeApi.from_kubeconfig
        return self._kube_factory(kubeconfig)

    @property
    def images(self) -> ImageEngine:
        """The engine's image API (build, inspect, save, exec in nodes)."""
        if self._image_engine is None:
            from sandbox.adapters.docker_images import DockerImages

            self._image_engine = DockerImages(self.runtime.base_url)
        return self._image_engine

    def health(self, base_url: str) -> dict:
        if self._health is None:
            from sandbox.adapters.airflow_api import fetch_health

            self._health = fetch_health
        return self._health(base_url)

    def airflow(self) -> AirflowApi:
        """A client for the sandbox's Airflow, logged in with the generated admin password."""
        from sandbox.adapters.airflow_api import AirflowApi
        from sandbox.state import ADMIN_USER

        secrets = StateDir(self.settings.state_dir).secrets()
        return AirflowApi(self.settings.api_url, ADMIN_USER, secrets.admin_password)
