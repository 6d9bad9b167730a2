"""The docker SDK: the only module importing `docker`. Builds, inspects, saves, execs in nodes.

Talks to Docker's socket or podman's Docker-compatible one (`base_url`); None means the SDK's
own environment handling (DOCKER_HOST, DOCKER_TLS_VERIFY, ...), as `docker.from_env()` does.
Podman reports unqualified names with a `localhost/` prefix; `short_name` normalises that.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from sandbox.errors import CommandFailed, ImageBuildError, ImageInUse, PrerequisiteError
from sandbox.models import ImageInfo

if TYPE_CHECKING:
    import docker

_STEP = re.compile(r"^(STEP \d+/\d+: |Step \d+/\d+ : )")
_DEFAULT_REGISTRY_PREFIXES = ("docker.io/library/", "localhost/", "docker.io/")


def short_name(reference: str) -> str:
    """`docker.io/library/x:t` and podman's `localhost/x:t` are both `x:t` to a user and to kubelet."""
    for prefix in _DEFAULT_REGISTRY_PREFIXES:
        if reference.startswith(prefix):
            return reference[len(prefix) :]
    return reference


# The Engine API takes `platform` on image save from 1.48 (Docker 28); podman's compat API says 1.41.
SAVE_PLATFORM_API = (1, 48)


def save_params(api_version: str, arch: str) -> dict[str, str]:
    """Query parameters of GET /images/{name}/get: the engine's own linux platform where supported."""
    try:
        version = tuple(int(part) for part in api_version.split(".")[:2])
    except ValueError:
        return {}
    if version < SAVE_PLATFORM_API or not arch:
        return {}
    return {"platform": json.dumps({"os": "linux", "architecture": arch})}


@dataclass
class BuildFailure:
    """What a failed build said: the error line and the output of the step that failed."""

    error: str
    step: str | None
    step_output: list[str]


class BuildFailed(ImageBuildError):
    def __init__(self, message: str, failure: BuildFailure, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.failure = failure


def _info(attrs: Mapping[str, Any]) -> ImageInfo:
    return ImageInfo(
        id=attrs["Id"],
        tags=tuple(short_name(tag) for tag in attrs.get("RepoTags") or ()),
        size=int(attrs.get("Size") or 0),
        created=str(attrs.get("Created") or ""),
        labels=dict((attrs.get("Config") or {}).get("Labels") or {}),
    )


class DockerImages:
    """One engine connection; created lazily so constructing it never touches the socket."""

    def __init__(self, base_url: str | None = None, *, timeout: float = 600) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self._client: docker.DockerClient | None = None

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            import docker

            try:
                if self.base_url:
                    self._client = docker.DockerClient(base_url=self.base_url, timeout=self.timeout)
                else:
                    self._client = docker.from_env(timeout=self.timeout)
                self._client.ping()
            except docker.errors.DockerException as exc:
                where = self.base_url or "DOCKER_HOST / the default socket"
                raise PrerequisiteError(
                    f"cannot reach the container engine at {where}: {exc}",
                    hint="start Docker (or `podman system service`), or set runtime in sandbox.toml",
                ) from exc
        return self._client

    def inspect(self, reference: str) -> ImageInfo | None:
        import docker

        try:
            return _info(self.client.api.inspect_image(reference))
        except docker.errors.ImageNotFound:
            return None

    def build(
        self,
        context: IO[bytes],
        *,
        tag: str,
        dockerfile: str = "Dockerfile",
        build_args: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        on_line: Callable[[str], None] = lambda line: None,
    ) -> str:
        """Build from a context tar, streaming each output line; returns the image ID.

        Raises BuildFailed carrying the failing step and its output.
        """
        import docker

        lines: list[str] = []
        step: str | None = None
        step_start = 0
        image_id: str | None = None
        try:
            stream = self.client.api.build(
                fileobj=context,
                custom_context=True,
                tag=tag,
                dockerfile=dockerfile,
                buildargs=dict(build_args or {}),
                labels=dict(labels or {}),
                rm=True,
                forcerm=True,
                decode=True,
            )
            for chunk in stream:
                if "error" in chunk:
                    detail = (chunk.get("errorDetail") or {}).get("message") or chunk["error"]
                    failure = BuildFailure(detail.strip(), step, lines[step_start:])
                    raise BuildFailed(detail.strip(), failure)
                if "aux" in chunk and isinstance(chunk["aux"], Mapping) and "ID" in chunk["aux"]:
                    image_id = chunk["aux"]["ID"]
                text = chunk.get("stream") or chunk.get("status") or ""
                for line in text.splitlines():
                    if _STEP.match(line):
                        step, step_start = _STEP.sub("", line).strip(), len(lines)
                    lines.append(line)
                    on_line(line)
        except docker.errors.APIError as exc:
            failure = BuildFailure(str(exc.explanation or exc), step, lines[step_start:])
            raise BuildFailed(str(exc.explanation or exc), failure) from exc
        if image_id is None:
            info = self.inspect(tag)
            if info is None:
                failure = BuildFailure("the engine reported no image", step, lines[step_start:])
                raise BuildFailed(f"the build of {tag} produced no image", failure)
            image_id = info.id
        return image_id

    def save(self, reference: str, destination: Path) -> None:
        """`docker save --platform <the engine's>` into a file (the input of `kind load
        image-archive`). One platform is what kind's documented workaround for Docker's containerd
        image store does: a whole multi-platform index names blobs that were never pulled.
        docker-py has no platform argument, so this is its own `get_image` plus the parameter."""
        import docker

        api = self.client.api
        version = api.version()
        params = save_params(str(version.get("ApiVersion", "")), str(version.get("Arch", "")))
        try:
            response = api._get(api._url("/images/{0}/get", reference), params=params, stream=True)
            with open(destination, "wb") as handle:
                for chunk in api._stream_raw_result(response, 1 << 20, False):
                    handle.write(chunk)
        except docker.errors.APIError as exc:
            raise ImageBuildError(f"cannot save {short_name(reference)}: {exc.explanation or exc}") from exc

    def exec(self, container: str, argv: Sequence[str]) -> str:
        """Run argv inside a running container (a kind node); stdout, or CommandFailed."""
        import docker

        try:
            result = self.client.containers.get(container).exec_run(list(argv), demux=True)
        except docker.errors.NotFound as exc:
            raise CommandFailed(["exec", container, *argv], -1, f"no container {container}") from exc
        stdout, stderr = result.output if isinstance(result.output, tuple) else (result.output, b"")
        out = (stdout or b"").decode(errors="replace")
        if result.exit_code != 0:
            err = (stderr or b"").decode(errors="replace")
            raise CommandFailed(["exec", container, *argv], result.exit_code, err or out)
        return out

    def remove(self, reference: str) -> None:
        """Untag/remove one image; gone already is fine, one a container uses is ImageInUse."""
        import docker

        try:
            self.client.images.remove(reference)
        except docker.errors.ImageNotFound:
            pass
        except docker.errors.APIError as exc:
            raise ImageInUse(f"cannot remove {short_name(reference)}: {exc.explanation or exc}") from exc
