"""`sandbox run-dag`'s own overhead on a warm stack, beside `airflow dags test`, in one run.

    SANDBOX_TEST_POSTGRES_URL=... SANDBOX_TEST_RABBITMQ_URL=... .venv/bin/python benchmarks/run_dag_overhead.py

Starts the native test stack (tests/airflow_stack.py) with tests/dags and times, wall clock,
each as a separate process the way a user runs it:
  - `sandbox run-dag sbx_noop3` with a cold lint cache (the first run after an edit);
  - the same for new dates with the lint cache warm (the DAG folder unchanged): median of --runs;
  - the same with --no-lint: median;
  - `airflow dags test sbx_noop3 DATE` with the stack's own environment (same DB and DAG folder);
  - `sandbox run-dag` with the API stopped: how soon a stopped sandbox is reported.
Goal: the warm run-dag <= 2 s. Exit 1 when it is not met.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from airflow_stack import AirflowStack, services  # noqa: E402

GOAL_S = 2.0
SANDBOX = [sys.executable, "-m", "sandbox"]


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.monotonic()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-rundag-"))
    try:
        with services() as found, AirflowStack(found, workdir, dags_source=REPO / "tests" / "dags") as stack:
            env = {**stack.cli_env(), "PYTHONPATH": str(REPO), "COLUMNS": "200"}
            env = {k: v for k, v in env.items() if not k.startswith("AIRFLOW")}
            day = iter(range(1, 28))
            date = lambda: f"2021-11-{next(day):02d}"  # noqa: E731 - a fresh logical date per run
            cold = timed([*SANDBOX, "run-dag", "sbx_noop3", "--date", date()], env)
            warm = [timed([*SANDBOX, "run-dag", "sbx_noop3", "--date", date()], env) for _ in range(args.runs)]
            no_lint = [timed([*SANDBOX, "run-dag", "sbx_noop3", "--date", date(), "--no-lint"], env) for _ in range(args.runs)]
            airflow = str(Path(sys.executable).parent / "airflow")
            dags_test = [timed([airflow, "dags", "test", "sbx_noop3", date()], stack.env) for _ in range(2)]
            stack.stop()
            started = time.monotonic()
            stopped = subprocess.run([*SANDBOX, "run-dag", "sbx_noop3", "--date", date()], env=env, capture_output=True, text=True, timeout=600)
            stopped_s = time.monotonic() - started
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    warm_s, no_lint_s, dags_test_s = statistics.median(warm), statistics.median(no_lint), statistics.median(dags_test)
    print(f"run-dag, cold lint cache     {cold:6.2f} s")
    print(f"run-dag, warm (median of {args.runs})  {warm_s:6.2f} s   {['%.2f' % w for w in warm]}")
    print(f"run-dag --no-lint (median)   {no_lint_s:6.2f} s")
    print(f"airflow dags test (median)   {dags_test_s:6.2f} s   {['%.2f' % w for w in dags_test]}")
    print(f"run-dag, API stopped         {stopped_s:6.2f} s   exit {stopped.returncode}: {stopped.stderr.strip().splitlines()[0] if stopped.stderr.strip() else ''}")
    print(f"warm run-dag / airflow dags test: {warm_s / dags_test_s:.2f}")
    met = warm_s <= GOAL_S and stopped.returncode != 0
    print(f"goal warm run-dag <= {GOAL_S} s: {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
