"""Faults the containerised stack must survive, through the product's own commands.

On the session's stack (Compose v2 on podman, the unmodified compose file): the Celery worker
container killed mid-task, Postgres restarted mid-run, `sandbox up` SIGKILLed at two points
after a `down`, and finally `down --purge`. Every wait polls with the product's wait primitive.

The tests run in order: the last two take the stack down.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from datetime import UTC, datetime
from typing import Any

from harness import Project, json_from, output_of

from sandbox.errors import SandboxError
from sandbox.waiting import NotReady, wait_until

DAG = "fault_hold"
RUN_TIMEOUT_S = 600


def _date(day: int) -> datetime:
    return datetime(2021, 12, day, tzinfo=UTC)


def run_dag(stack: Project, day: int, hold: str | int) -> subprocess.Popen[str]:
    return stack.popen(
        "run-dag", DAG, "--date", f"2021-12-{day:02d}", "--conf", json.dumps({"hold": hold}),
        "--no-lint", "--json", "--timeout", str(RUN_TIMEOUT_S),
    )


def wait_for_hold_running(stack: Project, day: int) -> None:
    """Until try 1 of `hold` runs on a worker (the API may answer errors while it starts)."""
    with stack.api() as api:

        def running() -> bool:
            runs = api.list_runs(DAG, start=_date(day), end=_date(day))
            states = {t.task_id: t.state for t in api.task_instances(DAG, runs[0].run_id)} if runs else {}
            if states.get("hold") != "running":
                raise NotReady(f"hold is {states.get('hold')}")
            return True

        wait_until(running, what="task hold running", timeout=300, interval=1.0, transient=(SandboxError,))


def finish(cli: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        stdout, stderr = cli.communicate(timeout=RUN_TIMEOUT_S + 60)
    except BaseException:
        stop(cli)
        raise
    return cli.returncode, stdout, stderr


def stop(cli: subprocess.Popen[str]) -> None:
    if cli.poll() is None:
        os.killpg(cli.pid, signal.SIGKILL)
    cli.communicate()


def history(stack: Project) -> dict[tuple[str, str], dict[str, Any]]:
    """Every run of every DAG: its state, and each task try's state and log text."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    with stack.api() as api:
        for dag in api.list_dags():
            for run in api.list_runs(dag.dag_id):
                tasks = {}
                for ti in api.task_instances(dag.dag_id, run.run_id):
                    logs = [
                        "\n".join(api.task_log(dag.dag_id, run.run_id, ti.task_id, n).lines)
                        for n in range(1, ti.try_number + 1)
                    ]
                    tasks[ti.task_id] = (ti.state, ti.try_number, logs)
                found[(dag.dag_id, run.run_id)] = {"state": run.state, "tasks": tasks}
    return found


def test_a_killed_worker_container_comes_back_with_up_and_its_task_is_retried(stack: Project, docker_client: Any) -> None:
    up = stack.sandbox("up", "--stack-only")
    assert up.returncode == 0, output_of(up)
    cli = run_dag(stack, 2, "forever")  # try 1 blocks until its worker dies
    try:
        wait_for_hold_running(stack, 2)
        stack.container(docker_client, "airflow-worker").kill()  # `docker kill`: stays down
        status = stack.sandbox("status", "--json", timeout=120)
        assert status.returncode == 1, output_of(status)
        worker = {s["service"]: s for s in json_from(status.stdout)["services"]}["airflow-worker"]
        assert worker["state"] == "exited", worker
        up = stack.sandbox("up", "--stack-only")
        assert up.returncode == 0, output_of(up)
    except BaseException:
        stop(cli)
        raise
    code, stdout, stderr = finish(cli)
    assert code == 0, stderr[-4000:]
    tasks = {t["task"]: t for t in json_from(stdout)["tasks"]}
    assert tasks["hold"]["state"] == "success" and tasks["hold"]["tries"] >= 2, tasks
    assert tasks["after"]["state"] == "success", tasks
    # Nothing lost: try 1's log, written before the kill, is still there.
    with stack.api() as api:
        run = api.list_runs(DAG, start=_date(2), end=_date(2))[0]
        assert "holding (try 1): forever" in "\n".join(api.task_log(DAG, run.run_id, "hold", 1).lines)


def test_postgres_restarted_mid_run_the_run_finishes_or_fails_clearly_and_history_stays(
    stack: Project, docker_client: Any
) -> None:
    before = set(history(stack))
    cli = run_dag(stack, 3, 30)
    try:
        wait_for_hold_running(stack, 3)
        stack.container(docker_client, "postgres").restart(timeout=30)
    except BaseException:
        stop(cli)
        raise
    code, stdout, stderr = finish(cli)
    assert "Traceback" not in stdout + stderr, stderr[-4000:]
    if code == 0:
        assert json_from(stdout)["state"] == "success"
    else:  # one clear message naming what went wrong (after the progress lines)
        assert len([line for line in stderr.splitlines() if line.startswith("error:")]) == 1, stderr[-4000:]
    up = stack.sandbox("up", "--stack-only")  # whatever broke, `up` makes the stack healthy again
    assert up.returncode == 0, output_of(up)
    after = history(stack)
    assert before <= set(after), before - set(after)
    assert after[next(k for k in before if k[0] == DAG)]["state"] == "success"


def test_down_then_up_killed_twice_then_up_keeps_every_run_and_its_logs(stack: Project, docker_client: Any) -> None:
    before = history(stack)
    assert any(run["state"] == "success" for run in before.values()), before
    down = stack.sandbox("down", timeout=300)
    assert down.returncode == 0, output_of(down)
    assert stack.containers(docker_client) == []
    assert any(v.endswith("postgres-data") for v in stack.volumes(docker_client)), stack.volumes(docker_client)

    def states() -> dict[str, tuple[str, str]]:
        from docker.errors import NotFound

        found = {}
        try:
            for c in stack.containers(docker_client):
                c.reload()
                found[c.labels["com.docker.compose.service"]] = (c.status, (c.attrs["State"].get("Health") or {}).get("Status", ""))
        except NotFound as exc:  # compose removed or replaced a container between list and inspect
            raise NotReady(f"a container went away while listing: {exc}") from exc
        return found

    def containers_created() -> bool:
        if "postgres" not in states():
            raise NotReady(f"containers: {states()}")
        return True

    def migrated_but_not_all_healthy() -> bool:
        now = states()
        if now.get("airflow-init", ("", ""))[0] != "exited":
            raise NotReady(f"containers: {now}")
        return True

    # SIGKILL to the whole process group (a closed terminal): `up` and the compose it runs.
    for point, reached in (("containers created", containers_created), ("migration done", migrated_but_not_all_healthy)):
        killed = stack.popen("up", "--stack-only")
        try:
            wait_until(reached, what=f"`up` to reach: {point}", timeout=600, interval=0.5)
        finally:
            os.killpg(killed.pid, signal.SIGKILL)
            killed.communicate()
        assert killed.returncode == -signal.SIGKILL, f"`up` ended before {point}"

    up = stack.sandbox("up", "--stack-only")
    assert up.returncode == 0, output_of(up)
    status = stack.sandbox("status", "--json", timeout=120)
    assert status.returncode == 0 and json_from(status.stdout)["healthy"], output_of(status)
    assert history(stack) == before


def test_down_purge_removes_the_database_volume(stack: Project, docker_client: Any) -> None:
    result = stack.sandbox("down", "--purge", "--yes", timeout=300)
    assert result.returncode == 0, output_of(result)
    assert stack.containers(docker_client) == []
    assert stack.volumes(docker_client) == []
    assert not (stack.path / ".sandbox").exists()
