"""What core needs from each external system, as Protocols: the adapters satisfy them, and so do
the tests' recording fakes (passed to sandbox.core.wiring.Adapters in place of the real ones)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Protocol

from sandbox.models import ImageInfo, Node


class ImageEngine(Protocol):
    """The container engine's image API (sandbox.adapters.docker_images.DockerImages)."""

    def inspect(self, reference: str) -> ImageInfo | None: ...

    def build(
        self,
        context: IO[bytes],
        *,
        tag: str,
        dockerfile: str = ...,
        build_args: Mapping[str, str] | None = ...,
        labels: Mapping[str, str] | None = ...,
        on_line: Callable[[str], None] = ...,
    ) -> str: ...

    def save(self, reference: str, destination: Path) -> None: ...

    def exec(self, container: str, argv: Sequence[str]) -> str: ...

    def remove(self, reference: str) -> None: ...


class KindApi(Protocol):
    """The kind CLI (sandbox.adapters.kind.KindCli)."""

    def clusters(self) -> list[str]: ...

    def create(
        self,
        name: str,
        config: Path,
        *,
        wait: str = ...,
        on_line: Callable[[str], None] | None = ...,
        kubeconfig: Path | None = ...,
        timeout: float | None = ...,
    ) -> None: ...

    def delete(self, name: str, *, kubeconfig: Path | None = ...) -> None: ...

    def nodes(self, name: str) -> list[str]: ...

    def kubeconfig(self, name: str) -> str: ...

    def load_docker_image(self, name: str, image: str, nodes: Sequence[str]) -> None: ...

    def load_image_archive(self, name: str, archive: Path, nodes: Sequence[str]) -> None: ...


class KubeApi(Protocol):
    """The Kubernetes API as `up` and `status` use it (sandbox.adapters.kube.KubeApi)."""

    def nodes(self) -> list[Node]: ...

    def label_node(self, name: str, labels: Mapping[str, str]) -> None: ...

    def apply(self, manifest: Mapping[str, Any]) -> None: ...

    def service_account_token(self, namespace: str, secret_name: str) -> str | None: ...

    def server_ca_data(self) -> str: ...


class Tools(Protocol):
    """kind and kubectl on this machine (sandbox.core.tools.PinnedTools)."""

    def find(self, name: str) -> Path | None: ...

    def ensure(self, name: str, on_info: Callable[[str], None]) -> Path: ...


KubeFactory = Callable[[Path], KubeApi]  # admin kubeconfig -> client
HealthProbe = Callable[[str], dict[str, Any]]  # Airflow's base URL -> GET /api/v2/monitor/health
