"""A DAG file that cannot be imported: lint reports it as an error (exit 1)."""

from airflow.sdk import DAG  # noqa: F401

import module_that_does_not_exist_for_lint  # noqa: F401
