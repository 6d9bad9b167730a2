"""How long `sandbox --help` takes to start, against `python -c pass` measured in the same run.

The ratio is what to watch: on a loaded machine both numbers grow, the ratio much less; CPU
time (user + system of the child) is printed too, as it hardly depends on the load. Each round
runs the two commands back to back; the medians of the rounds are compared.

    python benchmarks/startup.py [--rounds N] [--goal SECONDS]

Exit status 1 when the median of `sandbox --help` misses the goal (default 0.3 s).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def seconds(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall-clock and CPU seconds of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--goal", type=float, default=0.3)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    script = Path(sys.executable).parent / "sandbox"
    sandbox = [str(script)] if script.exists() else [sys.executable, "-m", "sandbox"]
    seconds([*sandbox, "--help"], env)  # warm the file cache and the bytecode
    python, helped = [], []
    for _ in range(args.rounds):
        python.append(seconds([sys.executable, "-c", "pass"], env))
        helped.append(seconds([*sandbox, "--help"], env))
    base, median = (statistics.median(w for w, _ in python), statistics.median(w for w, _ in helped))
    base_cpu, cpu = (statistics.median(c for _, c in python), statistics.median(c for _, c in helped))
    print(f"python -c pass   median {base:.3f} s wall, {base_cpu:.3f} s CPU")
    print(f"sandbox --help   median {median:.3f} s wall, {cpu:.3f} s CPU")
    print(f"ratio            {median / base:.1f}x wall, {cpu / base_cpu:.1f}x CPU (goal: < {args.goal:.2f} s wall)")
    return 0 if median < args.goal else 1


if __name__ == "__main__":
    sys.exit(main())
