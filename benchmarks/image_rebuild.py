"""How long a code-only change in one task image takes to rebuild, against a cold build.

Copies a task image folder (default: sample_dags/images/steps) into a temporary project and
runs the product's build (`sandbox.core.images.build`) three times:
  cold      every layer above the base rebuilt (a nonce in requirements.txt busts the cache);
  code      one line appended to one .py file: only the layers after `COPY <code>` rebuild;
  nothing   no change: the content tag exists, so nothing is built.
It also times `docker save` of the image, the host-side half of `kind load`; the node-side
import needs a kind cluster and cannot run on machines without Docker (GitHub Actions e2e does).

    python benchmarks/image_rebuild.py [--image DIR] [--base IMAGE] [--goal SECONDS]

Exit status 1 when the code-only rebuild misses the goal (default 10 s).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sandbox.adapters.docker_images import DockerImages  # noqa: E402
from sandbox.config import Settings  # noqa: E402
from sandbox.core import images  # noqa: E402
from sandbox.progress import SilentReporter  # noqa: E402


def timed_build(settings: Settings, engine: DockerImages, build_args: dict[str, str]) -> tuple[float, images.BuildResult]:
    started = time.monotonic()
    [result] = images.build(settings, SilentReporter(), engine, build_args=build_args)
    return time.monotonic() - started, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=REPO / "sample_dags" / "images" / "steps")
    parser.add_argument("--base", default="localhost/sandbox-python:3.11",
                        help="BASE_IMAGE build arg (python:3.12-slim where a registry is reachable)")
    parser.add_argument("--goal", type=float, default=10.0)
    args = parser.parse_args()
    if not (args.image / "Dockerfile").is_file():
        print(f"no Dockerfile in {args.image}", file=sys.stderr)
        return 2

    engine = DockerImages()
    build_args = {"BASE_IMAGE": args.base}
    with tempfile.TemporaryDirectory(prefix="sandbox-bench-") as tmp:
        root = Path(tmp)
        context = root / "images" / "bench-rebuild"
        shutil.copytree(args.image, context, ignore=shutil.ignore_patterns("__pycache__"))
        settings = Settings(project_dir=root, images_folders=(root / "images",), dags_folder=root / "dags")
        requirements = context / "requirements.txt"
        if requirements.is_file():
            requirements.write_text(requirements.read_text() + f"\n# bench nonce {uuid.uuid4().hex}\n")
        else:
            (context / "bench-nonce").write_text(uuid.uuid4().hex)
        code_files = sorted(p for p in context.rglob("*.py") if "requirements" not in p.name)
        if not code_files:
            print(f"no .py file under {args.image} to change", file=sys.stderr)
            return 2
        built: list[str] = []
        try:
            cold, first = timed_build(settings, engine, build_args)
            built.append(first.image_id)
            code_files[0].write_text(code_files[0].read_text() + "\n# a code-only change\n")
            code, second = timed_build(settings, engine, build_args)
            built.append(second.image_id)
            nothing, third = timed_build(settings, engine, build_args)
            assert first.built and second.built and not third.built
            archive = root / "image.tar"
            started = time.monotonic()
            engine.save(images.CANONICAL_PREFIX + second.ref, archive)
            save = time.monotonic() - started
            archive_mb = archive.stat().st_size / 1e6
        finally:
            for image_id in built:
                engine.remove(image_id)

    print(f"image: {args.image.name} from {args.base}, {second.size / 1e6:.0f} MB")
    print(f"cold build                {cold:6.1f} s")
    print(f"code-only change rebuild  {code:6.1f} s   ratio {code / cold:.2f} of cold  (goal <= {args.goal:.0f} s)")
    print(f"nothing changed           {nothing:6.2f} s   (no build: tag exists)")
    print(f"docker save (kind load's host half)  {save:5.1f} s   {archive_mb:.0f} MB archive")
    print("kind's node-side import: not measurable here (no kind); see the GitHub Actions e2e")
    return 0 if code <= args.goal else 1


if __name__ == "__main__":
    sys.exit(main())
