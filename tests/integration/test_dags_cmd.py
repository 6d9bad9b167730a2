"""`sandbox dags` against the real stack."""

from __future__ import annotations


def test_dags_lists_paused_state_last_run_and_import_errors(sandbox, airflow_stack) -> None:
    assert sandbox("run-dag", "sbx_noop3", "--date", "2021-03-01", "--no-lint").returncode == 0
    report = sandbox.json("dags")
    by_id = {d["dag_id"]: d for d in report["dags"]}
    assert {"sbx_noop3", "sbx_fail", "sbx_conf", "sbx_daily"} <= set(by_id)
    assert by_id["sbx_noop3"]["paused"] is False  # run-dag unpaused it
    assert by_id["sbx_noop3"]["last_run_state"] == "success"
    assert isinstance(report["import_errors"], list)
    human = sandbox("dags")
    assert human.returncode == 0 and "sbx_noop3" in human.stdout and "success" in human.stdout
