"""The REST adapter against the real api-server: login, token renewal, typed errors."""

from __future__ import annotations

import pytest

from airflow_stack import free_port
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
