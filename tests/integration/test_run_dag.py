"""`sandbox run-dag` through the console script against a real scheduler, Celery and RabbitMQ.

Each test uses its own DAG id / logical date, so they share one stack in any order.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from sandbox.waiting import NotReady, wait_until
from support import REPO

SANDBOX_BIN = str(Path(sys.executable).parent / "sandbox")


def test_success_reports_every_task(sandbox) -> None:
    result = sandbox.json("run-dag", "sbx_noop3", "--date", "2021-12-01")
    assert result["state"] == "success" and result["ok"] is True
    assert result["logical_date"] == "2021-12-01T00:00:00+00:00"
    assert [(t["task"], t["state"], t["tries"]) for t in result["tasks"]] == [
        ("first", "success", 1), ("second", "success", 1), ("third", "success", 1),
    ]
    assert result["url"].endswith(result["run_id"].replace(":", "%3A").replace("+", "%2B"))


def test_human_summary_names_tasks_and_ui_link(sandbox) -> None:
    proc = sandbox("run-dag", "sbx_noop3", "--date", "2021-12-03T06:00:00+01:00", "--no-lint")
    assert proc.returncode == 0, proc.stderr
    assert "succeeded" in proc.stdout and "third" in proc.stdout
    assert "2021-12-03T05:00:00+00:00" in proc.stdout  # the offset was honoured, shown in UTC
    assert "/dags/sbx_noop3/runs/" in proc.stdout


def test_failing_task_exits_1_with_its_log_tail(sandbox) -> None:
    proc = sandbox("run-dag", "sbx_fail", "--date", "2021-12-01")
    assert proc.returncode == 1, proc.stderr
    assert "log tail of explode" in proc.stdout
    assert "RuntimeError: sbx-deliberate-failure" in proc.stdout
    assert "upstream_failed" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_retry_shows_two_tries(sandbox) -> None:
    result = sandbox.json("run-dag", "sbx_retry", "--date", "2021-12-01", "--no-lint")
    assert result["state"] == "success"
    assert [(t["task"], t["state"], t["tries"]) for t in result["tasks"]] == [("flaky", "success", 2)]


def test_existing_run_is_refused_then_rerun_clears_it(sandbox) -> None:
    first = sandbox.json("run-dag", "sbx_noop3", "--date", "2021-12-02", "--no-lint")
    again = sandbox("run-dag", "sbx_noop3", "--date", "2021-12-02", "--no-lint")
    assert again.returncode == 2
    assert "already has a run for 2021-12-02" in again.stderr and "--rerun" in again.stderr
    rerun = sandbox.json("run-dag", "sbx_noop3", "--date", "2021-12-02", "--rerun", "--no-lint")
    assert rerun["rerun"] is True and rerun["run_id"] == first["run_id"]
    assert rerun["state"] == "success"
    assert all(t["tries"] == 2 for t in rerun["tasks"])  # the cleared tasks really ran again


def test_unknown_dag_lists_the_known_ones(sandbox) -> None:
    proc = sandbox("run-dag", "no_such_dag", "--date", "2021-12-01", "--no-lint")
    assert proc.returncode == 2
    assert "no DAG 'no_such_dag'" in proc.stderr and "sbx_noop3" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_import_error_prints_the_traceback(sandbox, airflow_stack) -> None:
    broken = airflow_stack.dags_folder / "sbx_broken.py"
    broken.write_text(
        "from airflow.sdk import DAG\nimport sbx_module_that_does_not_exist\n"
        "DAG('sbx_broken', schedule=None)\n"
    )
    try:
        proc = sandbox("run-dag", "sbx_broken", "--date", "2021-12-01", "--no-lint")
    finally:
        broken.unlink()
    text = " ".join(proc.stderr.split())  # the terminal may wrap long lines
    assert proc.returncode == 1
    assert "cannot be imported" in text
    assert "ModuleNotFoundError: No module named 'sbx_module_that_does_not_exist'" in text
    assert "sbx_broken.py\", line 2" in text  # Airflow's traceback, not a summary


def test_malformed_date_is_a_usage_error(sandbox) -> None:
    for bad, why in (("2021-13-01", "not a valid date"), ("2021-12-01T06:00", "no UTC offset")):
        proc = sandbox("run-dag", "sbx_noop3", "--date", bad)
        assert proc.returncode == 2 and why in proc.stderr and "hint:" in proc.stderr
        assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_conf_reaches_the_task(sandbox, tmp_path: Path) -> None:
    out = tmp_path / "conf.json"
    conf = {"out": str(out), "value": 42, "nested": {"ok": True}}
    result = sandbox.json("run-dag", "sbx_conf", "--date", "2021-12-01", "--conf", json.dumps(conf))
    assert result["state"] == "success"
    assert json.loads(out.read_text()) == conf


def test_worker_killed_mid_run_then_restarted_completes(sandbox, airflow_stack, api, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    os.mkfifo(gate)  # try 1 blocks reading it: the task is surely running when we kill
    date = datetime(2021, 12, 1, tzinfo=UTC)
    cli = sandbox.popen(
        "run-dag", "sbx_gate", "--date", "2021-12-01", "--conf", json.dumps({"gate": str(gate)}),
        "--no-lint", "--json", "--timeout", "240",
    )
    try:

        def hold_running() -> bool:
            runs = api.list_runs("sbx_gate", start=date, end=date)
            states = {t.task_id: t.state for t in api.task_instances("sbx_gate", runs[0].run_id)} if runs else {}
            if states.get("hold") != "running":
                raise NotReady(f"hold is {states.get('hold')}")
            return True

        wait_until(hold_running, what="task hold running", timeout=120, interval=0.3)
        airflow_stack.kill_worker()
        airflow_stack.start_worker()
        stdout, stderr = cli.communicate(timeout=240)
    finally:
        if cli.poll() is None:
            cli.kill()
    assert cli.returncode == 0, stderr
    result = json.loads(stdout)
    tasks = {t["task"]: t for t in result["tasks"]}
    assert tasks["hold"]["state"] == "success" and tasks["hold"]["tries"] >= 2
    assert tasks["after"]["state"] == "success"


def test_an_edited_dag_runs_its_new_code(sandbox, airflow_stack) -> None:
    path = airflow_stack.dags_folder / "sbx_edit.py"
    template = (
        "from datetime import datetime\nfrom airflow.sdk import DAG, task\n"
        "with DAG('sbx_edit', schedule=None, start_date=datetime(2021, 1, 1)):\n"
        "    @task\n    def {name}() -> None:\n        pass\n\n    {name}()\n"
    )
    path.write_text(template.format(name="before"))
    first = sandbox.json("run-dag", "sbx_edit", "--date", "2021-12-01", "--no-lint")
    path.write_text(template.format(name="after"))
    second = sandbox.json("run-dag", "sbx_edit", "--date", "2021-12-02", "--no-lint")
    assert [t["task"] for t in first["tasks"]] == ["before"]
    assert [t["task"] for t in second["tasks"]] == ["after"]  # not the version parsed before


def test_a_dag_that_failed_for_want_of_an_image_runs_once_the_build_records_it(sandbox, airflow_stack) -> None:
    """The DAG helper reads the image record at parse time; a record written later must not leave
    the DAG broken for min_file_process_interval (10 min): writing it touches the DAG files that
    call task_image(), and run-dag waits for the re-parse of an import error older than its file."""
    import shutil
    import time

    from sandbox.config import load_settings
    from sandbox.core import images

    folder = airflow_stack.dags_folder
    shutil.copytree(REPO / "sample_dags" / "sandbox_tasks", folder / "sandbox_tasks",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (folder / ".airflowignore").write_text("sandbox_tasks/\n")
    dag = folder / "sbx_needs_image.py"
    dag.write_text(
        # The native stack has no cluster (SANDBOX_CLUSTER=none, where a missing image is only
        # refused when a pod task runs); this file parses as a full sandbox's DAG processor would.
        "import os\nos.environ['SANDBOX_CLUSTER'] = 'kind'\n"
        "from datetime import datetime\nfrom airflow.sdk import DAG, task\n"
        "from sandbox_tasks import task_image\n\nIMAGE = task_image('sbxneeds')\n\n"
        "with DAG('sbx_needs_image', schedule=None, start_date=datetime(2021, 1, 1)):\n"
        "    @task\n    def show() -> str:\n        return IMAGE\n\n    show()\n"
    )
    settings = load_settings(airflow_stack.project_dir, environ={})
    try:
        missing = sandbox("run-dag", "sbx_needs_image", "--date", "2021-12-01", "--no-lint")
        assert missing.returncode == 1 and "task image 'sbxneeds'" in " ".join(missing.stderr.split())
        built = images.BuildResult(
            "sbxneeds", "sbxneeds:0123456789ab", "sha256:" + "ab" * 32, "0123456789ab" + "0" * 52,
            True, 0.0, 1, "2026-11-25T12:00:00Z",
        )
        images.write_dag_record(settings, [built], ["sbxneeds"])
        started = time.monotonic()
        result = sandbox.json("run-dag", "sbx_needs_image", "--date", "2021-12-01", "--no-lint")
        assert result["state"] == "success"
        assert time.monotonic() - started < 90  # the re-parse, not the 600 s periodic one
    finally:
        for path in (dag, folder / ".airflowignore", images.dag_record_path(settings)):
            path.unlink(missing_ok=True)
        shutil.rmtree(folder / "sandbox_tasks", ignore_errors=True)


def test_without_scheduled_runs_run_dag_starts_only_its_own_run(sandbox, airflow_stack, api) -> None:
    """The stack runs with `scheduled_runs = false` (use_job_schedule off): unpausing a daily
    catchup=False DAG would otherwise start its latest interval too. A CLI that believes schedules
    are on says so when it unpauses a scheduled DAG."""
    import subprocess

    path = airflow_stack.dags_folder / "sbx_sched.py"
    path.write_text(
        "from datetime import datetime\nfrom airflow.sdk import DAG, task\n"
        "with DAG('sbx_sched', schedule='@daily', start_date=datetime(2021, 1, 1), catchup=False):\n"
        "    @task\n    def only() -> None:\n        pass\n\n    only()\n"
    )
    try:
        env = {**airflow_stack.cli_env(), "SANDBOX_SCHEDULED_RUNS": "true"}
        proc = subprocess.run(
            [SANDBOX_BIN, "run-dag", "sbx_sched", "--date", "2021-12-01", "--no-lint"],
            env=env, capture_output=True, text=True, timeout=180,
        )
        assert proc.returncode == 0, proc.stderr
        assert "unpausing it also lets its schedule (0 0 * * *) start runs" in " ".join(proc.stderr.split())
        runs = api.list_runs("sbx_sched")
        assert [(r.run_type, r.logical_date) for r in runs] == [("manual", datetime(2021, 12, 1, tzinfo=UTC))]
    finally:
        path.unlink()


def test_an_import_error_that_never_looks_current_is_still_reported(sandbox, airflow_stack, api) -> None:
    """A file whose mtime stays ahead of every import error (a host clock ahead of the engine's)
    is waited for as "re-parse pending" only until dag_parsed runs out; then the error itself,
    not a timeout, is what run-dag reports."""
    import dataclasses
    import time

    from sandbox.config import Timeouts
    from sandbox.core.runs import wait_parsed
    from sandbox.errors import DagImportFailed

    path = airflow_stack.dags_folder / "sbx_drift.py"
    path.write_text("from airflow.sdk import DAG\nimport sbx_module_missing_for_drift\nDAG('sbx_drift', schedule=None)\n")
    try:
        first = sandbox("run-dag", "sbx_drift", "--date", "2021-12-01", "--no-lint")
        assert first.returncode == 1 and "sbx_module_missing_for_drift" in first.stderr
        ahead = time.time() + 3600
        os.utime(path, (ahead, ahead))
        settings = dataclasses.replace(airflow_stack.settings, timeouts=Timeouts(dag_parsed=3))
        started = time.monotonic()
        try:
            wait_parsed(api, settings, "sbx_drift")
        except DagImportFailed as exc:
            assert "No module named 'sbx_module_missing_for_drift'" in exc.message
        else:
            raise AssertionError("the import error was not reported")
        assert time.monotonic() - started >= 3  # it did wait for a re-parse first
    finally:
        path.unlink()
