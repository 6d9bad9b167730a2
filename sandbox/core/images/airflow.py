"""The Airflow image the stack runs: the official one, or that image extended with the project's
requirements (`airflow_requirements` in sandbox.toml), the way Airflow's docs say to add packages.

The extended image is tagged by content (base image, Dockerfile, requirements), so an unchanged
file costs one `inspect` and no build, and a changed one gives a new tag, which changes
.sandbox/compose.env, which makes `up` recreate the Airflow containers. It runs only in compose
(never in kind), so nothing is loaded into the cluster.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from sandbox.adapters.docker_images import BuildFailed
from sandbox.config import Settings, airflow_image, airflow_version
from sandbox.core.build_context import context_entries, write_context_tar
from sandbox.core.images.history import remember_built
from sandbox.core.images.naming import CANONICAL_PREFIX, RESERVED_NAME, TAG_LENGTH
from sandbox.core.ports import ImageEngine
from sandbox.errors import ConfigError
from sandbox.progress import Reporter

# Named like a task image, so its refs share .sandbox/images-built.json and `sandbox prune`.
EXTENDED_REPOSITORY = CANONICAL_PREFIX + RESERVED_NAME
LABEL = "sandbox.airflow-image"
# apache-airflow is named in the same install, pinned, so no requirement can up- or downgrade it
# (Airflow's "Extending the image" docs); the image runs pip as its `airflow` user.
DOCKERFILE = """\
FROM {base}
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_TRUSTED_HOST
COPY requirements.txt /tmp/sandbox-requirements.txt
RUN pip install --no-cache-dir "apache-airflow=={version}" -r /tmp/sandbox-requirements.txt
"""
# Of sandbox.toml's [build_args], what this build uses: pip's index settings (declared above) and
# Docker's predefined proxy arguments, for a laptop behind a corporate proxy or mirror.
BUILD_ARG_KEYS = frozenset(
    {"PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST"}
    | {f"{name}_PROXY" for name in ("HTTP", "HTTPS", "FTP", "NO", "ALL")}
    | {f"{name}_proxy" for name in ("http", "https", "ftp", "no", "all")}
)


def dockerfile() -> str:
    return DOCKERFILE.format(base=airflow_image(), version=airflow_version())


def build_args(settings: Settings) -> dict[str, str]:
    return {key: value for key, value in sorted(settings.build_args.items()) if key in BUILD_ARG_KEYS}


def _requirements(settings: Settings) -> bytes:
    path = settings.airflow_requirements
    assert path is not None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read airflow_requirements {path}: {exc.strerror}",
            hint="create the file (pip requirements format) or remove airflow_requirements from sandbox.toml",
        ) from None


def planned_ref(settings: Settings) -> str:
    """The image compose runs: the official tag, or the extended image's content tag."""
    if settings.airflow_requirements is None:
        return airflow_image()
    digest = hashlib.sha256()
    args = "".join(f"{key}={value}\n" for key, value in build_args(settings).items()).encode()
    for part in (dockerfile().encode(), _requirements(settings), args):
        digest.update(len(part).to_bytes(8, "big") + part)
    return f"{EXTENDED_REPOSITORY}:{digest.hexdigest()[:TAG_LENGTH]}"


def ensure_airflow_image(settings: Settings, client: ImageEngine, reporter: Reporter) -> str:
    """The image reference for compose; builds the extended image when its tag is missing."""
    ref = planned_ref(settings)
    if settings.airflow_requirements is None or client.inspect(ref) is not None:
        return ref
    with tempfile.TemporaryDirectory(prefix="sandbox-airflow-") as tmp, tempfile.TemporaryFile() as context:
        root = Path(tmp)
        (root / "Dockerfile").write_text(dockerfile())
        (root / "requirements.txt").write_bytes(_requirements(settings))
        write_context_tar(context_entries(root), context)
        with reporter.step(f"airflow image with {settings.airflow_requirements.name}"):
            try:
                client.build(
                    context, tag=ref, build_args=build_args(settings), labels={LABEL: settings.name},
                    on_line=reporter.output,
                )
            except BuildFailed as exc:
                for line in exc.failure.step_output[-30:]:
                    reporter.info(line)
                raise BuildFailed(
                    f"the Airflow image with {settings.airflow_requirements} failed to build: {exc.failure.error}",
                    exc.failure,
                    hint=f"fix {settings.airflow_requirements} (pip's output is above), then run `sandbox up`",
                ) from None
    remember_built(settings, [ref.removeprefix(CANONICAL_PREFIX)])
    return ref
