"""The REST adapter against the real api-server: login, token renewal, typed errors."""

from __future__ import annotations

import os

import pytest

from support import free_port
from sandbox.adapters.airflow_api import AirflowApi
from sandbox.errors import AirflowApiError, StackError


def test_an_expired_token_is_renewed_once(airflow_stack) -> None:
    with AirflowApi(airflow_stack.url, "admin", airflow_stack.admin_password) as api:
        assert api.get_dag("sbx_noop3") is not None
        api._token = "expired-or-revoked"  # what a token looks like to the server after expiry
        assert api.get_dag("sbx_noop3") is not None


def test_wrong_password_and_missing_objects_are_typed_errors(airflow_stack) -> None:
    with AirflowApi(airflow_stack.url, "admin", "wrong") as api, pytest.raises(AirflowApiError) as denied:
        api.list_dags()
    assert denied.value.status == 401 and "Invalid credentials" in denied.value.message
    with AirflowApi(airflow_stack.url, "admin", airflow_stack.admin_password) as api:
        assert api.get_dag("no_such_dag") is None
        with pytest.raises(AirflowApiError) as missing:
            api.get_run("no_such_dag", "nope")
        assert missing.value.status == 404


def test_a_stack_that_is_not_up_is_a_stack_error() -> None:
    with AirflowApi(f"http://127.0.0.1:{free_port()}", "admin", "x") as api, pytest.raises(StackError) as down:
        api.list_dags()
    assert "cannot reach the Airflow API" in down.value.message and "sandbox up" in (down.value.hint or "")


def test_log_streamer_follows_a_growing_log_without_repeats(airflow_stack, api, tmp_path) -> None:
    """The continuation-token walk run-dag uses for pod tasks, on a task held mid-run."""
    import json as _json
    import threading
    from datetime import UTC, datetime

    from sandbox.core.follow import LogStreamer
    from sandbox.waiting import NotReady, wait_until

    gate = tmp_path / "gate"
    os.mkfifo(gate)
    api.set_paused("sbx_gate", False)
    run = api.trigger("sbx_gate", datetime(2021, 12, 9, tzinfo=UTC), {"gate": str(gate)})
    lines: list[str] = []
    streamer = LogStreamer(api, "sbx_gate", run.run_id, lambda task, line: lines.append(f"{task}|{line}"),
                           wanted=lambda ti: ti.task_id == "hold")

    def saw(text: str, *, done: bool = False):
        def check() -> bool:
            tasks = tuple(api.task_instances("sbx_gate", run.run_id))
            streamer.poll(tasks)
            if not any(text in line for line in lines) or (done and not streamer.cursors["hold"].complete):
                raise NotReady(_json.dumps(lines[-3:]))
            return True
        return check

    wait_until(saw("Worker startup parse complete"), what="hold's first lines", timeout=120, interval=0.3)
    assert not any("Returned value" in line for line in lines)  # still blocked: read mid-run
    threading.Thread(target=gate.write_text, args=("go",), daemon=True).start()
    wait_until(saw("Done. Returned value was: None", done=True), what="hold's last lines", timeout=120, interval=0.3)
    assert len(lines) == len(set(lines)), "a line was streamed twice"
