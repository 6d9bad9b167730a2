"""`sandbox clear|mark|runs|pause` through the console script against the shared native stack.

Each test owns its DAG id / logical dates. Waiting is on observable Airflow state (a run's
state, the scheduler's last look at a run), never on sleeps.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sandbox.waiting import NotReady, wait_until
from support import task_states, wait_run


def _day(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_clear_reruns_a_failed_task_and_its_downstream(sandbox, api, tmp_path) -> None:
    flag = tmp_path / "flag"
    day = _day("2021-03-01")
    api.set_paused("sbx_flag", False)
    api.trigger("sbx_flag", day, {"flag": str(flag)})
    run = wait_run(api, "sbx_flag", day, ("success", "failed"))
    before = task_states(api, run)
    assert before == {"prepare": ("success", 1), "check": ("failed", 1), "report": ("upstream_failed", 0)}

    # --dry-run lists what would be cleared and changes nothing.
    plan = sandbox.json("clear", "sbx_flag", "--date", "2021-03-01", "--task", "check", "--downstream", "--dry-run")
    assert plan["dry_run"] is True and plan["runs"] == []
    assert sorted(c["task"] for c in plan["cleared"]) == ["check", "report"]
    assert api.get_run("sbx_flag", run.run_id).state == "failed"
    assert task_states(api, run) == before

    flag.write_text("go")
    proc = sandbox("clear", "sbx_flag", "--date", "2021-03-01", "--task", "check", "--downstream")
    assert proc.returncode == 0, proc.stderr
    assert "succeeded" in proc.stdout and "(rerun)" in proc.stdout  # run-dag's summary
    assert task_states(api, run) == {"prepare": ("success", 1), "check": ("success", 2), "report": ("success", 1)}
    assert api.get_run("sbx_flag", run.run_id).state == "success"


def test_clear_that_fails_again_exits_1_like_run_dag(sandbox) -> None:
    assert sandbox("run-dag", "sbx_fail", "--date", "2021-03-02", "--no-lint").returncode == 1
    result = sandbox.json("clear", "sbx_fail", "--date", "2021-03-02", "--only-failed", expect=1)
    assert result["ok"] is False
    [rerun] = result["runs"]
    assert rerun["state"] == "failed" and rerun["rerun"] is True
    explode = next(t for t in rerun["tasks"] if t["task"] == "explode")
    assert explode["tries"] == 2 and any("sbx-deliberate-failure" in line for line in explode["log_tail"])


def test_mark_failed_stops_later_days_while_earlier_days_finish(sandbox, api) -> None:
    """The seed's technique: with depends_on_past, fail the latest day's task; the day after
    never starts while the catch-up of the day before runs to success."""
    before, day, after = _day("2021-04-01"), _day("2021-04-02"), _day("2021-04-03")
    assert sandbox("pause", "sbx_past").returncode == 0
    for logical_date in (before, day, after):
        api.trigger("sbx_past", logical_date)  # paused: the runs wait, queued

    marked = sandbox.json("mark", "sbx_past", "--date", "2021-04-02", "--task", "work", "failed")
    assert {t["task"]: t["state"] for t in marked["tasks"]}["work"] == "failed"
    assert sandbox("unpause", "sbx_past").returncode == 0

    done = wait_run(api, "sbx_past", before, ("success", "failed"))
    assert done.state == "success"
    assert wait_run(api, "sbx_past", day, ("success", "failed")).state == "failed"
    # Once the scheduler has looked at day N+1 after day N failed, its task still never started.
    seen_after = datetime.now(UTC)

    def looked_at():
        run = wait_run(api, "sbx_past", after, ("running", "queued", "success", "failed"))
        if run.last_scheduling_decision and run.last_scheduling_decision > seen_after:
            return run
        raise NotReady(f"last scheduling decision {run.last_scheduling_decision}")

    blocked = wait_until(looked_at, what="the scheduler to examine day N+1", timeout=60, interval=0.3)
    assert blocked.state == "running"
    assert task_states(api, blocked) == {"work": (None, 0), "publish": (None, 0)}
    listed = sandbox.json("runs", "sbx_past", "--state", "running")
    assert [r["logical_date"][:10] for r in listed["runs"]] == ["2021-04-03"]
    assert sandbox("pause", "sbx_past").returncode == 0  # leave no running DAG behind


def test_runs_json_lists_what_the_api_has(sandbox, api) -> None:
    for date in ("2021-05-01", "2021-05-02"):
        assert sandbox("run-dag", "sbx_noop3", "--date", date, "--no-lint").returncode == 0
    listed = sandbox.json("runs", "sbx_noop3")
    expected = api.list_runs("sbx_noop3")
    assert [r["run_id"] for r in listed["runs"]] == [r.run_id for r in expected]
    row = next(r for r in listed["runs"] if r["logical_date"].startswith("2021-05-02"))
    assert row["run_type"] == "manual" and row["state"] == "success" and row["duration_s"] > 0
    [newest] = sandbox.json("runs", "sbx_noop3", "--last", "1")["runs"]  # the last one triggered
    assert newest["run_id"] == row["run_id"]
    human = sandbox("runs", "sbx_noop3")
    assert human.returncode == 0 and "2021-05-02" in human.stdout and "manual" in human.stdout


def test_pause_holds_a_queued_run_until_unpause(sandbox, api) -> None:
    day = _day("2021-07-01")
    [change] = sandbox.json("pause", "sbx_noop3")["dags"]
    assert change["dag_id"] == "sbx_noop3" and change["paused"] is True
    assert api.get_dag("sbx_noop3").is_paused
    held = api.trigger("sbx_noop3", day)
    # Another DAG's run going from trigger to success proves the scheduler looped many times.
    assert sandbox("run-dag", "sbx_retry", "--date", "2021-07-01", "--no-lint").returncode == 0
    assert api.get_run("sbx_noop3", held.run_id).state == "queued"
    assert sandbox("unpause", "sbx_noop3").returncode == 0
    assert wait_run(api, "sbx_noop3", day, ("success", "failed")).state == "success"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("pause", "no_such_dag"), "no DAG 'no_such_dag'"),
        (("pause",), "name the DAGs or pass --all"),
        (("runs", "no_such_dag"), "no DAG 'no_such_dag'"),
        (("runs", "sbx_noop3", "--state", "done"), "--state 'done' is not one of"),
        (("mark", "sbx_noop3", "--date", "2021-05-01", "--task", "first", "finished"), "STATE 'finished' is not one of"),
        (("mark", "sbx_noop3", "--date", "2021-05-01", "--task", "nope", "failed"), "has no task 'nope'"),
        (("mark", "sbx_noop3", "--date", "1999-01-01", "--task", "first", "failed"), "has no run for 1999-01-01"),
        (("clear", "sbx_noop3", "--date", "2021-05-01", "--task", "nope"), "has no task 'nope'"),
        (("clear", "sbx_noop3", "--start", "2021-05-03", "--end", "2021-05-01"), "is after --end"),
        (("clear", "sbx_noop3", "--date", "1999-01-01"), "nothing to clear"),
        (("clear", "sbx_noop3"), "give --date, or both --start and --end"),
        (("clear", "sbx_noop3", "--date", "yesterday"), "is not a valid date"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(sandbox, args, says) -> None:
    proc = sandbox(*args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("error:") and says in lines[0], proc.stderr
    assert len(lines) <= 2 and "Traceback" not in proc.stderr  # the error and its hint
