"""The inner loop: saved step code -> the new code built (and, on a cluster, running in a pod),
with `sandbox watch` against the manual path, measured in the same run on the same machine.

Here (no kind cluster; a temporary copy of the image in its own project):
    python benchmarks/watch_loop.py [--image DIR] [--base IMAGE] [--rounds N]
  manual  append a line to one .py file, run `sandbox build <name>` (a new process: CLI start-up,
          content hash, build of the changed layer, record), wall time;
  watch   with `sandbox watch` running, the same edit until the DAG-folder record names the new tag.

On a running full sandbox (the GitHub e2e, or a laptop), in the project folder:
    python benchmarks/watch_loop.py --pod recommend.preprocess --date 2021-12-01 [--summary FILE]
  watch   with `sandbox watch` running: save a print of a fresh marker into the image's code ->
          watch builds, loads into the nodes lacking it and records ("ready:") -> `sandbox
          run-task DAG TASK` (in the date's existing run), and after a second save the same with
          --fresh (`tasks test`), each until its log shows that save's marker (new code in a pod);
  manual  the same save -> `sandbox build` + `sandbox load` + `sandbox run-dag DAG` (a new date
          per round), the path without watch.
  The edited file is restored and its image rebuilt/reloaded/recorded at the end.
Goal (issue 12): watch's path < 15 s and < half the manual path. Prints medians, the parts, the
ratio; --summary appends a Markdown table (the e2e job summary). Exit 1 when a path failed.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SANDBOX = [sys.executable, "-m", "sandbox"]
GOAL_S = 15.0


class Watcher:
    """`sandbox watch` in the background; its output lines, read as they come."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.proc = subprocess.Popen([*SANDBOX, "watch"], cwd=cwd, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1)
        threading.Thread(target=self._read, daemon=True).start()
        self.wait_for("watching ")  # start-up (imports, first hash) is paid once per session

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 900) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise SystemExit(f"`sandbox watch` printed no {text!r} within {timeout:.0f} s") from None
            print(f"  watch | {line}", flush=True)
            if "✗" in line:  # a failed build, or an import error
                raise SystemExit(f"`sandbox watch` failed: {line}")
            if text in line:
                return line

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(2)
            self.proc.wait(timeout=60)


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    started = time.monotonic()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[2:])} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return elapsed, proc.stdout + proc.stderr


def record_ref(dags: Path, name: str) -> str | None:
    try:
        return json.loads((dags / ".sandbox-images.json").read_text())["images"][name]["image"]
    except (OSError, ValueError, KeyError):
        return None


def first_code_file(context: Path) -> Path:
    return sorted(p for p in context.rglob("*.py") if "__pycache__" not in p.parts)[0]


def append(path: Path, line: str) -> None:
    with path.open("a") as handle:
        handle.write(line + "\n")


def build_only(args: argparse.Namespace, env: dict[str, str]) -> dict[str, list[float]]:
    root = Path(tempfile.mkdtemp(prefix="bench-watch-"))
    name = f"benchwatch{uuid.uuid4().hex[:6]}"
    context = root / "images" / name
    shutil.copytree(args.image, context, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "dags").mkdir()
    (root / "sandbox.toml").write_text(
        f'name = "benchwatch"\nruntime = "podman"\ndags_folder = "dags"\nimages_folders = ["images"]\n'
        f'[build_args]\nBASE_IMAGE = "{args.base}"\n'
    )
    code = first_code_file(context)
    times: dict[str, list[float]] = {"cold build": [], "manual: sandbox build": [], "watch: save -> recorded": []}
    try:
        times["cold build"].append(run([*SANDBOX, "build", name], root, env)[0])
        for n in range(args.rounds):
            watcher = Watcher(root, env)
            try:
                before = record_ref(root / "dags", name)
                started = time.monotonic()
                append(code, f"# edit {uuid.uuid4().hex}")
                watcher.wait_for("ready:")
                times["watch: save -> recorded"].append(time.monotonic() - started)
                assert record_ref(root / "dags", name) != before, "watch said ready but the record did not change"
            finally:
                watcher.stop()  # one build at a time: the manual round runs alone
            append(code, f"# edit {uuid.uuid4().hex}")
            times["manual: sandbox build"].append(run([*SANDBOX, "build", name], root, env)[0])
    finally:
        shutil.rmtree(root, ignore_errors=True)
        ours = subprocess.run(["podman", "images", "-a", "-q", "--filter", f"label=sandbox.task-image={name}"],
                              capture_output=True, text=True)
        if ours.stdout.split():  # this run's images only
            subprocess.run(["podman", "rmi", "-f", *set(ours.stdout.split())], capture_output=True)
    return times


def in_a_pod(args: argparse.Namespace, env: dict[str, str]) -> dict[str, list[float]]:
    project = args.project.resolve()
    dag_id, task_id = args.pod.split(".", 1)
    edited = (project / args.edit).resolve()
    original = edited.read_bytes()
    day = date.fromisoformat(args.date)
    # Two ways `run-task` runs the saved code, with watch keeping the image current: again in the
    # date's existing run through the scheduler and Celery (its default when that run exists),
    # and `--fresh`: Airflow's `tasks test` in the scheduler container.
    loops = {
        "run-task": [*SANDBOX, "run-task", dag_id, task_id, "--date", args.date],
        "run-task --fresh": [*SANDBOX, "run-task", dag_id, task_id, "--date", args.date, "--fresh"],
    }
    times: dict[str, list[float]] = {k: [] for k in (
        *(f"watch + {loop}: {part}" for loop in loops for part in ("save -> loaded and recorded", "the command", "total")),
        "manual: sandbox build", "manual: sandbox load", "manual: sandbox run-dag", "manual: total")}
    try:
        for n in range(args.rounds):
            watcher = Watcher(project, env)  # running through the commands, as in a user's loop
            try:
                for loop, argv in loops.items():
                    marker = f"sandbox-bench-{uuid.uuid4().hex}"
                    started = time.monotonic()
                    append(edited, f'print("{marker}", flush=True)')
                    watcher.wait_for("ready:")
                    ready = time.monotonic() - started
                    took, output = run(argv, project, env)
                    if marker not in output:
                        raise SystemExit(f"{loop} ran, but its log lacks {marker}: the pod ran old code\n{output[-3000:]}")
                    for part, value in (("save -> loaded and recorded", ready), ("the command", took), ("total", ready + took)):
                        times[f"watch + {loop}: {part}"].append(value)
            finally:
                watcher.stop()  # the manual round runs without it

            append(edited, f'print("sandbox-bench-{uuid.uuid4().hex}", flush=True)')
            build = run([*SANDBOX, "build", args.image_name], project, env)[0]
            load = run([*SANDBOX, "load", args.image_name], project, env)[0]
            when = (day + timedelta(days=10 + n)).isoformat()  # a new run each round
            run_dag = run([*SANDBOX, "run-dag", dag_id, "--date", when], project, env)[0]
            for key, value in (("build", build), ("load", load), ("run-dag", run_dag), ("total", build + load + run_dag)):
                times[f"manual: {'sandbox ' if key != 'total' else ''}{key}"].append(value)
    finally:
        edited.write_bytes(original)
        for step in ("build", "load"):  # the original code's image is recorded and on the nodes again
            subprocess.run([*SANDBOX, step, args.image_name], cwd=project, env=env, capture_output=True, timeout=1800)
    return times


def report(times: dict[str, list[float]], summary: Path | None, pod: bool) -> None:
    medians = {k: statistics.median(v) for k, v in times.items() if v}
    for key, value in medians.items():
        print(f"{key:52s} {value:7.2f} s   {['%.2f' % x for x in times[key]]}")
    if pod:
        theirs = medians["manual: total"]
        verdicts = []
        for key in (k for k in medians if k.startswith("watch + ") and k.endswith(": total")):
            ratio = medians[key] / theirs
            met = medians[key] < GOAL_S and ratio < 0.5
            verdicts.append(f"{key.removesuffix(': total')} / manual: {ratio:.2f}, goal {'met' if met else 'NOT met'}")
        verdict = "; ".join(verdicts) + f" (saved code -> running in a pod < {GOAL_S:.0f} s and < half the manual path)"
    else:
        ratio = medians["watch: save -> recorded"] / medians["manual: sandbox build"]
        verdict = f"watch / manual: {ratio:.2f}; the goal is for saved code -> a pod (--pod, on a cluster)"
    print(verdict)
    if summary is not None:
        rows = "".join(f"| {k} | {v:.1f} s |\n" for k, v in medians.items())
        with summary.open("a") as handle:
            handle.write(f"### Inner loop (medians)\n\n| path | wall |\n|---|---|\n{rows}\n{verdict}\n\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", type=Path, default=REPO / "sample_dags" / "images" / "steps")
    parser.add_argument("--base", default="localhost/sandbox-python:3.11")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pod", metavar="DAG.TASK", help="on a running full sandbox: time until the new code runs in this task's pod")
    parser.add_argument("--date", default="2021-12-01", help="--pod: run-task's logical date (run-dag's are 10+ days later)")
    parser.add_argument("--project", type=Path, default=Path.cwd(), help="--pod: the sandbox project folder")
    parser.add_argument("--image-name", default="steps", help="--pod: the task image the task runs")
    parser.add_argument("--edit", type=Path, default=Path("sample_dags/images/steps/steps/__init__.py"),
                        help="--pod: a Python file of that image the task imports (relative to --project)")
    parser.add_argument("--summary", type=Path, help="append a Markdown table to this file")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_") or k in ("SANDBOX_STRICT", "SANDBOX_SCHEDULED_RUNS")}
    env.update(PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", COLUMNS="200")  # watch's lines whole, as they come
    times = in_a_pod(args, env) if args.pod else build_only(args, env)
    report(times, args.summary, bool(args.pod))
    return 0


if __name__ == "__main__":
    sys.exit(main())
