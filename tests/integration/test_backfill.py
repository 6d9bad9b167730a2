"""`sandbox backfill` with Airflow's backfill API against the real stack."""

from __future__ import annotations

from datetime import UTC, datetime


def test_three_dates_with_at_most_two_at_once(sandbox, api) -> None:
    result = sandbox.json(
        "backfill", "sbx_daily", "--start", "2021-06-01", "--end", "2021-06-03",
        "--max-active-runs", "2",
    )
    assert result["ok"] is True
    assert [(r["logical_date"][:10], r["state"]) for r in result["runs"]] == [
        ("2021-06-01", "success"), ("2021-06-02", "success"), ("2021-06-03", "success"),
    ]
    backfill = api.get_backfill(result["backfill_id"])
    assert backfill.max_active_runs == 2
    runs = api.list_runs(
        "sbx_daily", start=datetime(2021, 6, 1, tzinfo=UTC), end=datetime(2021, 6, 3, tzinfo=UTC)
    )
    # At no run's start were two others already running: the cap held.
    for run in runs:
        overlapping = [
            o for o in runs
            if o is not run and o.start_date <= run.start_date < o.end_date  # type: ignore[operator]
        ]
        assert len(overlapping) <= 1


def test_start_after_end_is_a_usage_error(sandbox) -> None:
    proc = sandbox("backfill", "sbx_daily", "--start", "2021-06-03", "--end", "2021-06-01")
    assert proc.returncode == 2 and "is after --end" in proc.stderr
