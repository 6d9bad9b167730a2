"""The GitHub Actions e2e's numbers, as Markdown for the job summary ($GITHUB_STEP_SUMMARY).

- How long each step of `sandbox up` took, for the cold `up` and a second, warm one: read from
  the `✓ step (12.3s)` lines the CLI prints (sandbox/cli/console.py RichReporter), plus the wall
  time the workflow measured around each command.
- The whole stack's memory once idle: every kind node container (label io.x-k8s.kind.cluster,
  set by kind's docker provider; a node's cgroup holds its kubelet, containerd and pods) and every
  compose container (label com.docker.compose.project), summed from `docker stats --no-stream`
  (MEM USAGE, which excludes the page cache), median of a few samples.

    python tests/e2e_summary.py memory diagnostics/memory.json      (right after the warm `up`)
    python tests/e2e_summary.py render --up cold=diagnostics/up-cold --up warm=diagnostics/up-warm \
        --memory diagnostics/memory.json >> "$GITHUB_STEP_SUMMARY"
`--up LABEL=PREFIX` reads PREFIX.log (the command's output) and PREFIX.seconds (its wall time).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

MARKS = ("✓", "✗")
_STEP = re.compile(r"^(?P<mark>[✓✗]) (?P<name>.+) \((?P<seconds>\d+(?:\.\d+)?)s\)$")
_SIZE = re.compile(r"^\s*(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[KMGTPE]i)?B\s*(?:/|$)")
_UNITS = {None: 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
IDLE_GOAL_BYTES = 3 * 10**9  # issue 11: the whole sandbox idle under 3 GB
WARM_GOAL_SECONDS = 60


@dataclass(frozen=True)
class Step:
    name: str
    seconds: float
    ok: bool


def up_steps(log: str) -> list[Step]:
    """The finished steps in `sandbox up` output, in the order they finished.

    Rich wraps long lines at the console width when stderr is not a terminal, so a step line may
    continue on the next lines: they are joined until the `(N.Ns)` that ends it.
    """
    steps: list[Step] = []
    lines = log.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        i += 1
        if not line.startswith(MARKS):
            continue
        while not _STEP.match(line) and i < len(lines) and not lines[i].startswith((*MARKS, " ")):
            line = f"{line} {lines[i].strip()}"
            i += 1
        match = _STEP.match(line)
        if match:
            steps.append(Step(match["name"], float(match["seconds"]), match["mark"] == "✓"))
    return steps


def mem_usage_bytes(text: str) -> int:
    """`docker stats` MEM USAGE ("1.5GiB / 15.6GiB"): docker/cli formats it with go-units
    BytesSize (binary units, %.4g)."""
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"unreadable docker stats memory {text!r}")
    return round(float(match["number"]) * _UNITS[match["unit"]])


def _docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True, timeout=120).stdout


def stack_containers(cluster: str, project: str) -> list[str]:
    names: list[str] = []
    for label in (f"io.x-k8s.kind.cluster={cluster}", f"com.docker.compose.project={project}"):
        names += _docker("ps", "--filter", f"label={label}", "--format", "{{.Names}}").split()
    return names


def memory_sample(names: Sequence[str]) -> dict[str, int]:
    """One `docker stats --no-stream` reading: container name -> bytes.

    Keyed by `Container`, the name as given on the command line: `Name` is the engine's name
    minus its first character (docker/cli strips Docker's leading "/"; podman's API has none).
    """
    out = _docker("stats", "--no-stream", "--format", "{{json .}}", *names)
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    return {row["Container"]: mem_usage_bytes(row["MemUsage"]) for row in rows}


def idle_memory(names: Sequence[str], samples: int = 3) -> dict[str, int]:
    """Per container, the median of `samples` readings (each reading takes ~2 s)."""
    readings = [memory_sample(names) for _ in range(samples)]
    return {name: int(statistics.median(r.get(name, 0) for r in readings)) for name in names}


def _mb(size: int) -> str:
    return f"{size / 10**6:,.0f} MB"


def markdown(ups: dict[str, tuple[list[Step], float | None]], memory: dict[str, int] | None) -> str:
    lines = ["## sandbox up", ""]
    labels = list(ups)
    lines += ["| step | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    names: list[str] = []
    for steps, _ in ups.values():
        names += [s.name for s in steps if s.name not in names]
    for name in names:
        cells = []
        for steps, _ in ups.values():
            found = [s for s in steps if s.name == name]
            cells.append(" + ".join(f"{s.seconds:.1f} s" + ("" if s.ok else " ✗") for s in found) or "–")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    walls = [f"**{wall:.0f} s**" if wall is not None else "–" for _, wall in ups.values()]
    lines.append("| **wall time of the command** | " + " | ".join(walls) + " |")
    warm = ups.get("warm", ([], None))[1]
    if warm is not None:
        verdict = "met" if warm < WARM_GOAL_SECONDS else "**missed**"
        lines += ["", f"Warm `up`: {warm:.0f} s (goal < {WARM_GOAL_SECONDS} s: {verdict})."]
    if memory is not None:
        total = sum(memory.values())
        verdict = "met" if total < IDLE_GOAL_BYTES else "**missed**"
        lines += ["", "## Idle memory (docker stats, page cache excluded)", "", "| container | memory |", "|---|---:|"]
        lines += [f"| {name} | {_mb(size)} |" for name, size in sorted(memory.items())]
        lines += [f"| **whole stack** | **{_mb(total)}** |", "", f"Goal < {_mb(IDLE_GOAL_BYTES)}: {verdict}."]
    return "\n".join(lines) + "\n"


def _read_up(prefix: Path) -> tuple[list[Step], float | None]:
    log = prefix.with_name(prefix.name + ".log")
    seconds = prefix.with_name(prefix.name + ".seconds")
    steps = up_steps(log.read_text(encoding="utf-8", errors="replace")) if log.is_file() else []
    wall = float(seconds.read_text().strip()) if seconds.is_file() and seconds.read_text().strip() else None
    return steps, wall


def measure(out: Path) -> dict[str, int]:
    """The idle stack's memory per container, written to `out` as JSON for `render`."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from sandbox.config import load_settings

    settings = load_settings()
    names = stack_containers(settings.cluster_name, settings.compose_project)
    if not names:
        raise SystemExit(f"no container of kind cluster {settings.cluster_name!r} or compose project "
                         f"{settings.compose_project!r} is running: is the sandbox up?")
    memory = idle_memory(names)
    out.write_text(json.dumps(memory, indent=1, sort_keys=True) + "\n")
    return memory


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    memory = commands.add_parser("memory", help="measure the idle stack's memory into a JSON file")
    memory.add_argument("out", type=Path)
    render = commands.add_parser("render", help="the job summary as Markdown, on stdout")
    render.add_argument("--up", action="append", default=[], metavar="LABEL=PREFIX",
                        help="a `sandbox up` run: PREFIX.log is its output, PREFIX.seconds its wall time")
    render.add_argument("--memory", type=Path, help="the JSON file `memory` wrote")
    args = parser.parse_args(argv)
    if args.command == "memory":
        measure(args.out)
        return 0
    ups = {}
    for spec in args.up:
        label, _, prefix = spec.partition("=")
        ups[label] = _read_up(Path(prefix))
    measured = json.loads(args.memory.read_text()) if args.memory is not None else None
    sys.stdout.write(markdown(ups, measured))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
