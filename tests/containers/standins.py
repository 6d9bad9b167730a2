"""Stand-in images for the official ones the compose file runs, built here from local bases.

No registry is reachable on these machines, so podman cannot pull postgres, rabbitmq,
apache/airflow or Azurite. Each stand-in is built from `tests/containers/standins/<name>/` and
tagged with the fully qualified name of the image it stands in for (read from sandbox.config,
never written twice), so podman resolves the compose file's short names to it without pulling.

`ensure_standins()` is idempotent: an image whose `sandbox.standin.hash` label matches the hash
of its build context, build arguments and base image is kept; otherwise it is rebuilt. Builds run
one at a time (a file lock across processes: they are heavy on a 2-core machine).

Run as a script to build them ahead of the tests: `python tests/containers/standins.py`
(`--cold` rebuilds every one without podman's layer cache, to measure a fresh machine).
"""

from __future__ import annotations

import fcntl
import json
import hashlib
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # when run as a script
    sys.path.insert(0, str(REPO))

from sandbox import config  # noqa: E402
from sandbox.errors import CommandFailed, ImageBuildError  # noqa: E402
from sandbox.proc import run  # noqa: E402

HERE = Path(__file__).resolve().parent
STANDINS_DIR = HERE / "standins"
BASE_SCRIPT = REPO / "tests" / "images" / "build_base.sh"
BASE_IMAGES = ("localhost/debian:bookworm", "localhost/sandbox-python:3.11")
HASH_LABEL = "sandbox.standin.hash"
LOCK_FILE = Path(tempfile.gettempdir()) / "sandbox-standins.lock"
TAIL_LINES = 60


def qualified(reference: str) -> str:
    """Docker's normalisation of an image reference: `postgres:16` -> `docker.io/library/postgres:16`."""
    first, _, rest = reference.partition("/")
    if not rest:
        return f"docker.io/library/{reference}"
    if "." in first or ":" in first or first == "localhost":
        return reference
    return f"docker.io/{reference}"


def tag_of(reference: str) -> str:
    name = reference.rsplit("/", 1)[-1]
    return name.split(":", 1)[1] if ":" in name else "latest"


@dataclass(frozen=True)
class StandIn:
    """One stand-in: its build folder, the image name it takes, its build inputs."""

    name: str
    image: str
    build_args: dict[str, str] = field(default_factory=dict)
    extra_files: tuple[Path, ...] = ()

    @property
    def folder(self) -> Path:
        return STANDINS_DIR / self.name

    def context_files(self) -> list[tuple[str, Path]]:
        files = [(p.relative_to(self.folder).as_posix(), p) for p in self.folder.rglob("*") if p.is_file()]
        files += [(p.name, p) for p in self.extra_files]
        return sorted(files)


def standins() -> tuple[StandIn, ...]:
    """The four stand-ins, named exactly as sandbox.config names the official images."""
    return (
        StandIn("postgres", qualified(config.POSTGRES_IMAGE)),
        StandIn("rabbitmq", qualified(config.RABBITMQ_IMAGE)),
        StandIn(
            "airflow",
            qualified(config.airflow_image()),
            build_args={"AIRFLOW_VERSION": config.airflow_version()},
            extra_files=(REPO / "requirements.lock",),
        ),
        StandIn(
            "azurite",
            qualified(config.AZURITE_IMAGE),
            build_args={"AZURITE_VERSION": tag_of(config.AZURITE_IMAGE)},
        ),
    )


def _podman(*args: str) -> str:
    return run(["podman", *args]).stdout.strip()


def _label(image: str, label: str) -> str | None:
    result = run(["podman", "image", "inspect", "--format", "{{json .Labels}}", image], check=False)
    if result.returncode != 0:
        return None
    labels = json.loads(result.stdout.strip() or "null") or {}
    return labels.get(label)


def content_hash(standin: StandIn, base_ids: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for name, path in standin.context_files():
        digest.update(f"file {name}\n".encode())
        digest.update(path.read_bytes())
    for key, value in sorted(standin.build_args.items()):
        digest.update(f"arg {key}={value}\n".encode())
    for image, image_id in sorted(base_ids.items()):
        digest.update(f"base {image}={image_id}\n".encode())
    digest.update(f"image {standin.image}\n".encode())
    return digest.hexdigest()[:20]


@contextmanager
def _build_lock() -> Iterator[None]:
    with open(LOCK_FILE, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # blocks until another builder is done
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_base_images(on_line: Callable[[str], None] | None = None) -> dict[str, str]:
    """Build the Debian/Python bases (owned by tests/images/build_base.sh) and return their IDs."""
    run(["bash", str(BASE_SCRIPT)], on_line=on_line)
    return {image: _podman("image", "inspect", "--format", "{{.Id}}", image) for image in BASE_IMAGES}


def _build(standin: StandIn, digest: str, on_line: Callable[[str], None], *, cold: bool = False) -> None:
    lines: list[str] = []

    def keep(line: str) -> None:
        lines.append(line)
        on_line(f"[{standin.name}] {line}")

    with tempfile.TemporaryDirectory(prefix=f"standin-{standin.name}-") as tmp:
        context = Path(tmp)
        for name, path in standin.context_files():
            target = context / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        argv = ["podman", "build", "--pull=never", *(["--no-cache"] if cold else []), "-t", standin.image]
        argv += ["--label", f"{HASH_LABEL}={digest}", "--label", f"sandbox.standin.for={standin.image}"]
        for key, value in sorted(standin.build_args.items()):
            argv += ["--build-arg", f"{key}={value}"]
        argv.append(str(context))
        try:
            run(argv, on_line=keep)
        except CommandFailed as exc:
            tail = "\n".join(lines[-TAIL_LINES:])
            raise ImageBuildError(
                f"stand-in image {standin.image} failed to build (exit {exc.returncode}):\n{tail}",
                hint=f"reproduce with: podman build {standin.folder}",
            ) from exc


def ensure_standins(
    on_line: Callable[[str], None] | None = None,
    *,
    names: tuple[str, ...] | None = None,
    cold: bool = False,
) -> dict[str, str]:
    """Build what is missing or stale, one image at a time; return {stand-in name: image}."""
    emit = on_line or (lambda line: None)
    selected = [s for s in standins() if names is None or s.name in names]
    with _build_lock():
        base_ids = ensure_base_images(emit)
        for standin in selected:
            digest = content_hash(standin, base_ids)
            if not cold and _label(standin.image, HASH_LABEL) == digest:
                continue
            emit(f"building stand-in {standin.image} ({standin.name}, hash {digest})")
            _build(standin, digest, emit, cold=cold)
    return {s.name: s.image for s in selected}


def main(argv: list[str]) -> int:
    """Build (or verify) every stand-in, printing each one's time and size."""
    cold = "--cold" in argv
    base_started = time.monotonic()
    base_ids = ensure_base_images(lambda line: print(line, flush=True))
    print(f"bases ready in {time.monotonic() - base_started:.1f}s")
    for standin in standins():
        started = time.monotonic()
        try:
            ensure_standins(lambda line: print(line, flush=True), names=(standin.name,), cold=cold)
        except ImageBuildError as exc:
            print(exc.message, file=sys.stderr)
            return 1
        size = _podman("image", "inspect", "--format", "{{.Size}}", standin.image)
        print(
            f"{standin.image}: {time.monotonic() - started:.1f}s, {int(size) / 1e6:.0f} MB,"
            f" hash {content_hash(standin, base_ids)}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
