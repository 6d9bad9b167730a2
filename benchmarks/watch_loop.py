"""The inner loop: saved step code -> the new image built and recorded, with `sandbox watch`
against the manual path (`sandbox build`), measured in the same run on the same engine.

    python benchmarks/watch_loop.py [--image DIR] [--base IMAGE] [--rounds N]

Copies a task image (default: sample_dags/images/steps) into a temporary project whose
sandbox.toml sets BASE_IMAGE, builds it once (cold), then for each round:
  manual  append a line to one .py file, run `sandbox build <name>` as a user would (a new
          process: CLI start-up, content hash, build of the changed layer, record), wall time;
  watch   with `sandbox watch` already running, append a line and time until the DAG-folder
          record names the new tag.
Both then need the image in the nodes and a run: `kind load` and the pod start need a kind
cluster, which this machine lacks; on a laptop add them to both sides alike (watch loads only
into the nodes that lack the image, as `sandbox load` does). Prints medians and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SANDBOX = [sys.executable, "-m", "sandbox"]


def record_ref(dags: Path, name: str) -> str | None:
    try:
        return json.loads((dags / ".sandbox-images.json").read_text())["images"][name]["image"]
    except (OSError, ValueError, KeyError):
        return None


def touch_code(context: Path, n: int) -> None:
    code = sorted(p for p in context.rglob("*.py") if "__pycache__" not in p.parts)[0]
    with code.open("a") as handle:
        handle.write(f"# edit {n} {uuid.uuid4().hex}\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", type=Path, default=REPO / "sample_dags" / "images" / "steps")
    parser.add_argument("--base", default="localhost/sandbox-python:3.11")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-watch-"))
    name = f"benchwatch{uuid.uuid4().hex[:6]}"
    context = root / "images" / name
    shutil.copytree(args.image, context, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "dags").mkdir()
    (root / "sandbox.toml").write_text(
        f'name = "benchwatch"\nruntime = "podman"\ndags_folder = "dags"\nimages_folders = ["images"]\n'
        f'[build_args]\nBASE_IMAGE = "{args.base}"\n'
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env = {k: v for k, v in env.items() if not k.startswith("SANDBOX_") or k == "SANDBOX_STRICT"}
    build = [*SANDBOX, "build", name]
    watcher = None
    try:
        cold_started = time.monotonic()
        subprocess.run(build, cwd=root, env=env, check=True, capture_output=True, timeout=1800)
        cold = time.monotonic() - cold_started
        manual: list[float] = []
        watched: list[float] = []
        watcher = subprocess.Popen([*SANDBOX, "watch"], cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(5)  # its start-up (imports, first hash) is paid once per session, not per save
        for n in range(args.rounds):
            touch_code(context, 2 * n)
            before = record_ref(root / "dags", name)
            started = time.monotonic()
            while record_ref(root / "dags", name) == before:
                if time.monotonic() - started > 900:
                    raise SystemExit("watch did not rebuild within 900 s")
                time.sleep(0.05)
            watched.append(time.monotonic() - started)
            watcher.send_signal(2)  # pause the watcher for the manual round: one build at a time
            watcher.wait(timeout=60)
            touch_code(context, 2 * n + 1)
            started = time.monotonic()
            subprocess.run(build, cwd=root, env=env, check=True, capture_output=True, timeout=900)
            manual.append(time.monotonic() - started)
            watcher = subprocess.Popen([*SANDBOX, "watch"], cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            time.sleep(5)
    finally:
        if watcher is not None and watcher.poll() is None:
            watcher.send_signal(2)
            watcher.wait(timeout=60)
        shutil.rmtree(root, ignore_errors=True)
        ours = subprocess.run(["podman", "images", "-a", "-q", "--filter", f"label=sandbox.task-image={name}"], capture_output=True, text=True)
        if ours.stdout.split():  # this run's images only
            subprocess.run(["podman", "rmi", "-f", *set(ours.stdout.split())], capture_output=True)
    manual_s, watch_s = statistics.median(manual), statistics.median(watched)
    print(f"cold build                          {cold:6.2f} s")
    print(f"manual `sandbox build` (median)     {manual_s:6.2f} s   {['%.2f' % m for m in manual]}")
    print(f"`sandbox watch`: save -> recorded   {watch_s:6.2f} s   {['%.2f' % w for w in watched]}")
    print(f"watch / manual: {watch_s / manual_s:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
