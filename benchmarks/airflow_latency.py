"""Airflow latency and idle cost: the sandbox's settings vs Airflow's defaults, in one run.

    SANDBOX_TEST_POSTGRES_URL=... SANDBOX_TEST_RABBITMQ_URL=... .venv/bin/python benchmarks/airflow_latency.py

Starts the native test stack twice, one after the other (never both at once): once with
airflow_env() as the sandbox ships it, once with the tuning knobs (TUNING_KEYS) removed, i.e.
Airflow's defaults. For each it measures
  - discovery: a new DAG file written -> the API accepts a trigger for it (goal <= 2 s);
  - run overhead: trigger -> success of a 3-task no-op DAG, median of --runs (goal <= 1/3 of
    the defaults');
  - idle cost: CPU (% of one core) over --idle seconds and PSS of every stack process
    (goals: CPU <= 2x the defaults', PSS <= the defaults').
Prints the figures, the ratios and whether each goal is met; exit 1 when one is not.
`--set KEY=VALUE` adds AIRFLOW__* overrides to the sandbox side (for trying knobs).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from airflow_stack import AirflowStack, services  # noqa: E402

from sandbox.adapters.airflow_api import AirflowApi  # noqa: E402
from sandbox.core.airflow_config import TUNING_KEYS  # noqa: E402
from sandbox.errors import AirflowApiError  # noqa: E402
from sandbox.waiting import NotReady, wait_until  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
NEW_DAG = '''
from datetime import datetime
from airflow.sdk import DAG, task

with DAG("{dag_id}", schedule=None, start_date=datetime(2021, 1, 1), catchup=False):
    @task
    def only() -> None:
        pass

    only()
'''


@dataclass
class Figures:
    label: str
    discovery_s: float | None = None  # None: not within the cap
    runs_s: list[float] = field(default_factory=list)
    idle_cpu_pct: float = 0.0
    pss_mb: float = 0.0
    per_process: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def run_s(self) -> float:
        return statistics.median(self.runs_s)


def session_pids(stack: AirflowStack) -> dict[str, list[int]]:
    """Every process of each stack service (each was started as its own session)."""
    leaders = {proc.pid: name for name, proc in stack.procs.items()}
    members: dict[str, list[int]] = {name: [] for name in stack.procs}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            sid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[3])
        except (OSError, IndexError, ValueError):
            continue
        if sid in leaders:
            members[leaders[sid]].append(int(entry.name))
    return members


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def pss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def idle_cost(stack: AirflowStack, seconds: float) -> tuple[float, float, dict[str, tuple[float, float]]]:
    before = {name: {pid: cpu_ticks(pid) for pid in pids} for name, pids in session_pids(stack).items()}
    time.sleep(seconds)  # the observation window itself
    per: dict[str, tuple[float, float]] = {}
    for name, pids in session_pids(stack).items():
        ticks, pss = 0, 0
        for pid in pids:
            try:
                ticks += cpu_ticks(pid) - before[name].get(pid, 0)
                pss += pss_kb(pid)
            except OSError:
                continue
        per[name] = (100 * ticks / CLK_TCK / seconds, pss / 1024)
    return sum(c for c, _ in per.values()), sum(m for _, m in per.values()), per


def discovery(stack: AirflowStack, api: AirflowApi, cap: float) -> float | None:
    dag_id = f"bench_new_{int(time.time() * 1000)}"
    path = stack.dags_folder / f"{dag_id}.py"
    started = time.monotonic()
    path.write_text(NEW_DAG.format(dag_id=dag_id))

    def triggerable() -> bool:
        api.trigger(dag_id, datetime(2021, 1, 1, tzinfo=UTC))
        return True

    try:
        wait_until(triggerable, what=f"{dag_id} triggerable", timeout=cap, interval=0.05,
                   transient=(AirflowApiError,))
    except Exception:
        return None
    return time.monotonic() - started


def run_once(api: AirflowApi, day: datetime) -> float:
    started = time.monotonic()
    run = api.trigger("sbx_noop3", day)

    def succeeded() -> bool:
        state = api.get_run("sbx_noop3", run.run_id).state
        if state == "failed":
            raise RuntimeError(f"benchmark run {run.run_id} failed")
        if state != "success":
            raise NotReady(state)
        return True

    wait_until(succeeded, what="benchmark run", timeout=120, interval=0.05)
    return time.monotonic() - started


def measure(label: str, found, args, *, drop: tuple[str, ...] = (), extra: dict[str, str] | None = None) -> Figures:
    figures = Figures(label)
    with AirflowStack(found, Path(tempfile.mkdtemp(prefix="bench-")), dags_source=REPO / "tests" / "dags",
                      drop_env=drop, extra_env=extra) as stack, AirflowApi(stack.url, "admin", stack.admin_password) as api:
        wait_until(lambda: api.get_dag("sbx_noop3"), what="sbx_noop3 parsed", timeout=600, interval=0.2)
        api.set_paused("sbx_noop3", False)
        figures.discovery_s = discovery(stack, api, args.discovery_cap)
        base = datetime(2020, 1, 1, tzinfo=UTC)
        run_once(api, base)  # warm-up: the first task process of a fresh worker pays the imports
        figures.runs_s = [run_once(api, base + timedelta(days=i + 1)) for i in range(args.runs)]
        time.sleep(args.settle)  # let the stack go idle before observing it
        figures.idle_cpu_pct, figures.pss_mb, figures.per_process = idle_cost(stack, args.idle)
    return figures


def report(tuned: Figures, default: Figures | None) -> bool:
    def show(f: Figures) -> str:
        disc = f"{f.discovery_s:.2f} s" if f.discovery_s is not None else "not within the cap"
        runs = ", ".join(f"{r:.2f}" for r in f.runs_s)
        return (f"{f.label:>9}: discovery {disc}; run median {f.run_s:.2f} s ({runs}); "
                f"idle CPU {f.idle_cpu_pct:.1f} % of a core; PSS {f.pss_mb:.0f} MB")

    for f in (tuned, default) if default else (tuned,):
        print(show(f))
        print(f"{'':>9}  per process (CPU %, PSS MB): " + ", ".join(
            f"{name} {cpu:.1f}/{mem:.0f}" for name, (cpu, mem) in f.per_process.items()))
    if default is None:
        return True
    goals = [
        ("discovery <= 2 s", tuned.discovery_s is not None and tuned.discovery_s <= 2,
         f"{tuned.discovery_s:.2f} s" if tuned.discovery_s is not None else "n/a"),
        ("run overhead <= 1/3 of default", tuned.run_s <= default.run_s / 3,
         f"ratio {tuned.run_s / default.run_s:.2f}"),
        ("idle CPU <= 2x default", tuned.idle_cpu_pct <= 2 * default.idle_cpu_pct,
         f"ratio {tuned.idle_cpu_pct / max(default.idle_cpu_pct, 0.01):.2f}"),
        ("idle PSS <= default", tuned.pss_mb <= default.pss_mb, f"ratio {tuned.pss_mb / default.pss_mb:.2f}"),
    ]
    for name, ok, figure in goals:
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {figure}")
    return all(ok for _, ok, _ in goals)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--idle", type=float, default=30.0, help="idle observation window (s)")
    parser.add_argument("--settle", type=float, default=10.0, help="quiet time before observing (s)")
    parser.add_argument("--discovery-cap", type=float, default=30.0, help="give up on discovery after (s)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--tuned-only", action="store_true", help="skip the defaults' stack")
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.set)
    print(f"load average before: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")
    with services() as found:
        tuned = measure("sandbox", found, args, extra=extra)
        default = None if args.tuned_only else measure("defaults", found, args, drop=TUNING_KEYS)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0 if report(tuned, default) else 1


if __name__ == "__main__":
    sys.exit(main())
