"""Airflow's REST API v2: the only module that speaks HTTP to Airflow (and imports httpx).

Responses are parsed into small frozen models at this edge; every non-2xx answer becomes an
AirflowApiError carrying the API's `detail`, and an unreachable server becomes a StackError.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from sandbox.errors import AirflowApiError, StackError

log = logging.getLogger("sandbox.http")

PAGE = 100
READ_RETRIES = 2
FINISHED_RUN_STATES = frozenset({"success", "failed"})
FINISHED_TASK_STATES = frozenset(
    {"success", "failed", "skipped", "upstream_failed", "removed"}
)


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def format_time(value: datetime) -> str:
    """The API's datetime format: ISO-8601 with an explicit offset (aware datetimes only)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime sent to the Airflow API")
    return value.isoformat()


@dataclass(frozen=True)
class Dag:
    dag_id: str
    is_paused: bool
    has_import_errors: bool
    relative_fileloc: str | None
    schedule: str | None
    last_parsed: datetime | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Dag:
        return cls(
            dag_id=data["dag_id"],
            is_paused=bool(data["is_paused"]),
            has_import_errors=bool(data.get("has_import_errors")),
            relative_fileloc=data.get("relative_fileloc"),
            schedule=data.get("timetable_summary"),
            last_parsed=parse_time(data.get("last_parsed_time")),
        )


@dataclass(frozen=True)
class DagRun:
    dag_id: str
    run_id: str
    state: str
    run_type: str
    logical_date: datetime | None
    start_date: datetime | None
    end_date: datetime | None
    conf: Mapping[str, Any] = field(default_factory=dict)
    # When the scheduler last looked at the run: proof it has seen the run since some moment.
    last_scheduling_decision: datetime | None = None
    note: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DagRun:
        return cls(
            dag_id=data["dag_id"],
            run_id=data["dag_run_id"],
            state=data["state"],
            run_type=data["run_type"],
            logical_date=parse_time(data.get("logical_date")),
            start_date=parse_time(data.get("start_date")),
            end_date=parse_time(data.get("end_date")),
            conf=data.get("conf") or {},
            last_scheduling_decision=parse_time(data.get("last_scheduling_decision")),
            note=data.get("note"),
        )

    @property
    def duration_s(self) -> float | None:
        if self.start_date and self.end_date:
            return (self.end_date - self.start_date).total_seconds()
        return None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_RUN_STATES


@dataclass(frozen=True)
class TaskInstance:
    task_id: str
    map_index: int
    state: str | None  # None: not scheduled yet
    try_number: int
    max_tries: int
    operator: str | None
    start_date: datetime | None
    end_date: datetime | None
    duration: float | None
    run_id: str | None = None
    logical_date: datetime | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TaskInstance:
        return cls(
            task_id=data["task_id"],
            map_index=int(data.get("map_index", -1)),
            state=data.get("state"),
            try_number=int(data.get("try_number") or 0),
            max_tries=int(data.get("max_tries") or 0),
            operator=data.get("operator"),
            start_date=parse_time(data.get("start_date")),
            end_date=parse_time(data.get("end_date")),
            duration=data.get("duration"),
            run_id=data.get("dag_run_id"),
            logical_date=parse_time(data.get("logical_date")),
        )

    @property
    def key(self) -> str:
        return self.task_id if self.map_index < 0 else f"{self.task_id}[{self.map_index}]"

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_TASK_STATES

    @property
    def runs_in_a_pod(self) -> bool:
        """KubernetesPodOperator and its decorator: the tasks whose log is worth streaming."""
        return "Kubernetes" in (self.operator or "")


@dataclass(frozen=True)
class ImportErrorRecord:
    filename: str
    bundle_name: str | None
    stack_trace: str
    timestamp: datetime | None = None  # when the DAG processor last failed to import the file

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ImportErrorRecord:
        return cls(
            data["filename"], data.get("bundle_name"), data.get("stack_trace") or "",
            parse_time(data.get("timestamp")),
        )


@dataclass(frozen=True)
class Backfill:
    id: int
    dag_id: str
    from_date: datetime
    to_date: datetime
    max_active_runs: int
    reprocess_behavior: str
    completed_at: datetime | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Backfill:
        return cls(
            id=int(data["id"]),
            dag_id=data["dag_id"],
            from_date=parse_time(data["from_date"]),  # type: ignore[arg-type]
            to_date=parse_time(data["to_date"]),  # type: ignore[arg-type]
            max_active_runs=int(data["max_active_runs"]),
            reprocess_behavior=data["reprocess_behavior"],
            completed_at=parse_time(data.get("completed_at")),
        )


@dataclass(frozen=True)
class LogEntry:
    """One structured log event: its full timestamp (ISO, sortable) and its text lines."""

    stamp: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class LogChunk:
    """Log events since the last token; `token` is None once the log is complete."""

    entries: tuple[LogEntry, ...]
    token: str | None

    @property
    def lines(self) -> tuple[str, ...]:
        return tuple(line for entry in self.entries for line in entry.lines)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LogChunk:
        content = data.get("content") or []
        token = data.get("continuation_token")
        if isinstance(content, str):  # plain-text logs (older handlers)
            return cls(tuple(LogEntry("", (line,)) for line in content.splitlines()), token)
        entries = []
        for item in content:
            lines = tuple(log_lines(item))
            if lines:
                entries.append(LogEntry(str(item.get("timestamp", "")), lines))
        return cls(tuple(entries), token)


def log_lines(entry: Mapping[str, Any]) -> Iterator[str]:
    """One structured log entry as text; exceptions as `Type: value` plus the last frame."""
    event = str(entry.get("event", ""))
    if event.startswith("::") or "timestamp" not in entry:
        return  # the UI's folding markers and the log-source preamble
    stamp = str(entry.get("timestamp", ""))[11:19]
    level = str(entry.get("level", "")).upper()
    yield " ".join(part for part in (stamp, level, event) if part)
    for error in entry.get("error_detail") or []:
        frames = error.get("frames") or []
        if frames:
            last = frames[-1]
            yield f"  File {last.get('filename')}, line {last.get('lineno')}, in {last.get('name')}"
        yield f"  {error.get('exc_type')}: {error.get('exc_value')}"


def detail_text(body: Any) -> str:
    """The API's `detail` (a string, a validation list, or a dict) as one readable line."""
    detail = body.get("detail", body) if isinstance(body, Mapping) else body
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, Mapping):
                where = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                parts.append(f"{where}: {item.get('msg')}" if where else str(item.get("msg")))
            else:
                parts.append(str(item))
        return "; ".join(parts)
    if isinstance(detail, Mapping):
        return str(detail.get("reason") or detail.get("message") or json.dumps(detail))
    return str(detail)


class AirflowApi:
    """A logged-in client; the token comes from POST /auth/token and is renewed once when refused."""

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        *,
        timeout: float = 15.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._username = username
        self._password = password
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)
        self._token: str | None = None

    def __enter__(self) -> AirflowApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- transport ------------------------------------------------------------------------
    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; a GET whose answer timed out is asked again (READ_RETRIES times): it is
        idempotent, and a server slowed by a loaded machine is not a server that is down."""
        for attempt in range(READ_RETRIES + 1):
            try:
                response = self._http.request(method, path, **kwargs)
                break
            except httpx.TimeoutException as exc:  # connect, read, write or pool
                if method != "GET" or attempt == READ_RETRIES:
                    raise self._unreachable(exc) from exc
                log.debug("%s %s%s timed out; asking again", method, self.base_url, path)
            except httpx.TransportError as exc:
                raise self._unreachable(exc) from exc
        log.debug("%s %s%s -> %s", method, self.base_url, path, response.status_code)
        return response

    def _unreachable(self, exc: httpx.TransportError) -> StackError:
        return StackError(
            f"cannot reach the Airflow API at {self.base_url}: {exc or type(exc).__name__} ({type(exc).__name__})",
            hint="start the sandbox with `sandbox up` (or check it with `sandbox status`)",
        )

    def _login(self) -> str:
        response = self._send(
            "POST", "/auth/token", json={"username": self._username, "password": self._password}
        )
        if response.status_code not in (200, 201):
            raise AirflowApiError(
                response.status_code, detail_text(_body(response)), method="POST", path="/auth/token"
            )
        self._token = str(response.json()["access_token"])
        return self._token

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """JSON body of a 2xx answer; a refused token is renewed once; other errors are typed."""
        for attempt in (1, 2):
            token = self._token or self._login()
            response = self._send(
                method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs
            )
            # An expired or revoked token: 401, or 403 "Invalid JWT token" (Airflow 3.3).
            if response.status_code in (401, 403) and attempt == 1:
                self._token = None
                continue
            break
        if not response.is_success:
            raise AirflowApiError(
                response.status_code, detail_text(_body(response)), method=method, path=path
            )
        return _body(response)

    def _pages(self, path: str, key: str, params: Mapping[str, Any] | None = None) -> Iterator[Any]:
        offset = 0
        while True:
            body = self.request("GET", path, params={**(params or {}), "limit": PAGE, "offset": offset})
            items = body[key]
            yield from items
            offset += len(items)
            if not items or offset >= body.get("total_entries", 0):
                return

    # -- DAGs --------------------------------------------------------------------------------
    def list_dags(self) -> list[Dag]:
        return [Dag.from_json(d) for d in self._pages("/api/v2/dags", "dags")]

    def get_dag(self, dag_id: str) -> Dag | None:
        try:
            return Dag.from_json(self.request("GET", f"/api/v2/dags/{_seg(dag_id)}"))
        except AirflowApiError as exc:
            if exc.status == 404:
                return None
            raise

    def set_paused(self, dag_id: str, paused: bool) -> Dag:
        body = self.request("PATCH", f"/api/v2/dags/{_seg(dag_id)}", json={"is_paused": paused})
        return Dag.from_json(body)

    def task_ids(self, dag_id: str) -> list[str]:
        """The DAG's task ids (GET /dags/{id}/tasks, sorted by id)."""
        return list(self.task_graph(dag_id))

    def task_graph(self, dag_id: str) -> dict[str, tuple[str, ...]]:
        """Each task id -> the ids directly downstream of it (GET /dags/{id}/tasks)."""
        body = self.request("GET", f"/api/v2/dags/{_seg(dag_id)}/tasks")
        return {str(t["task_id"]): tuple(str(d) for d in t.get("downstream_task_ids") or ()) for t in body["tasks"]}

    def import_errors(self) -> list[ImportErrorRecord]:
        return [
            ImportErrorRecord.from_json(e)
            for e in self._pages("/api/v2/importErrors", "import_errors")
        ]

    # -- runs ---------------------------------------------------------------------------------
    def trigger(
        self,
        dag_id: str,
        logical_date: datetime,
        conf: Mapping[str, Any] | None = None,
        *,
        note: str | None = None,
    ) -> DagRun:
        payload: dict[str, Any] = {"logical_date": format_time(logical_date)}
        if conf:
            payload["conf"] = dict(conf)
        if note:
            payload["note"] = note
        body = self.request("POST", f"/api/v2/dags/{_seg(dag_id)}/dagRuns", json=payload)
        return DagRun.from_json(body)

    def get_run(self, dag_id: str, run_id: str) -> DagRun:
        body = self.request("GET", f"/api/v2/dags/{_seg(dag_id)}/dagRuns/{_seg(run_id)}")
        return DagRun.from_json(body)

    def list_runs(
        self,
        dag_id: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        latest_only: bool = False,
        states: tuple[str, ...] = (),
        last: int | None = None,
    ) -> list[DagRun]:
        """Runs by logical date (inclusive bounds), oldest first; `states` filters (any of);
        `last`: only the newest N (still oldest first); `latest_only`: the most recent one."""
        params: dict[str, Any] = {"order_by": "-run_after" if latest_only else "logical_date"}
        if start is not None:
            params["logical_date_gte"] = format_time(start)
        if end is not None:
            params["logical_date_lte"] = format_time(end)
        if states:
            params["state"] = list(states)  # repeated ?state=: the API ORs them
        path = f"/api/v2/dags/{_seg(dag_id)}/dagRuns"
        if latest_only:
            body = self.request("GET", path, params={**params, "limit": 1})
            return [DagRun.from_json(r) for r in body["dag_runs"]]
        if last is not None:
            body = self.request(
                "GET", path, params={**params, "order_by": "-run_after", "limit": last}
            )
            return [DagRun.from_json(r) for r in reversed(body["dag_runs"])]
        return [DagRun.from_json(r) for r in self._pages(path, "dag_runs", params)]

    def set_run_note(self, dag_id: str, run_id: str, note: str) -> DagRun:
        """PATCH the run's note (Airflow caps it at 1000 characters)."""
        body = self.request(
            "PATCH", f"/api/v2/dags/{_seg(dag_id)}/dagRuns/{_seg(run_id)}", json={"note": note},
            params={"update_mask": "note"},
        )
        return DagRun.from_json(body)

    def clear_run(self, dag_id: str, run_id: str) -> DagRun:
        body = self.request(
            "POST",
            f"/api/v2/dags/{_seg(dag_id)}/dagRuns/{_seg(run_id)}/clear",
            json={"dry_run": False},
        )
        return DagRun.from_json(body)

    def clear_task_instances(
        self,
        dag_id: str,
        *,
        start: datetime,
        end: datetime,
        task_ids: tuple[str, ...] = (),
        downstream: bool = False,
        upstream: bool = False,
        only_failed: bool = False,
        dry_run: bool = True,
    ) -> list[TaskInstance]:
        """POST /dags/{id}/clearTaskInstances over logical dates start..end (inclusive); the task
        instances it cleared (or would clear). Every flag is sent: the API's defaults are
        dry_run=true and only_failed=true."""
        payload: dict[str, Any] = {
            "dry_run": dry_run,
            "start_date": format_time(start),
            "end_date": format_time(end),
            "only_failed": only_failed,
            "only_running": False,
            "reset_dag_runs": True,
            "include_downstream": downstream,
            "include_upstream": upstream,
            "include_future": False,
            "include_past": False,
        }
        if task_ids:
            payload["task_ids"] = list(task_ids)
        body = self.request("POST", f"/api/v2/dags/{_seg(dag_id)}/clearTaskInstances", json=payload)
        return [TaskInstance.from_json(t) for t in body["task_instances"]]

    def set_task_state(
        self, dag_id: str, run_id: str, task_id: str, state: str, *, downstream: bool = False
    ) -> list[TaskInstance]:
        """PATCH a task instance's state (the API also sets its downstream when asked)."""
        path = f"/api/v2/dags/{_seg(dag_id)}/dagRuns/{_seg(run_id)}/taskInstances/{_seg(task_id)}"
        body = self.request(
            "PATCH", path, json={"new_state": state, "include_downstream": downstream}
        )
        return [TaskInstance.from_json(t) for t in body["task_instances"]]

    def task_instances(self, dag_id: str, run_id: str) -> list[TaskInstance]:
        path = f"/api/v2/dags/{_seg(dag_id)}/dagRuns/{_seg(run_id)}/taskInstances"
        return [TaskInstance.from_json(t) for t in self._pages(path, "task_instances")]

    def task_log(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        try_number: int,
        *,
        map_index: int = -1,
        token: str | None = None,
    ) -> LogChunk:
        """The log from `token` on (from the start without); `full_content` stays false so
        the continuation token walks the log as it grows."""
        params: dict[str, Any] = {"full_content": "false", "map_index": map_index}
        if token:
            params["token"] = token
        path = (
            f"/api/v2/dags/{_seg(dag_id)}/dagRuns/{_seg(run_id)}"
            f"/taskInstances/{_seg(task_id)}/logs/{try_number}"
        )
        return LogChunk.from_json(self.request("GET", path, params=params))

    def xcom_value(
        self, dag_id: str, run_id: str, task_id: str, key: str, *, map_index: int = -1
    ) -> Any:
        """One XCom's value as the task pushed it; None when there is none.

        Without `deserialize` the API returns the stored JSON itself (routes/public/xcom.py,
        `get_xcom_entry`); `deserialize=true` would stringify it for display.
        """
        path = (
            f"/api/v2/dags/{_seg(dag_id)}/dagRuns/{_seg(run_id)}"
            f"/taskInstances/{_seg(task_id)}/xcomEntries/{_seg(key)}"
        )
        try:
            body = self.request("GET", path, params={"map_index": map_index})
        except AirflowApiError as exc:
            if exc.status == 404:
                return None
            raise
        value = body.get("value")
        if isinstance(value, str):  # stored as serialized JSON text by some writers
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value

    def xcom_tasks(self, dag_id: str, run_id: str, key: str) -> list[tuple[str, int]]:
        """(task_id, map_index) of the run's task instances holding an XCom `key`."""
        path = f"/api/v2/dags/{_seg(dag_id)}/dagRuns/{_seg(run_id)}/taskInstances/~/xcomEntries"
        return [
            (e["task_id"], int(e.get("map_index", -1)))
            for e in self._pages(path, "xcom_entries", {"xcom_key": key})
        ]

    # -- backfills ----------------------------------------------------------------------------
    def create_backfill(
        self,
        dag_id: str,
        start: datetime,
        end: datetime,
        *,
        max_active_runs: int,
        reprocess_behavior: str,
        conf: Mapping[str, Any] | None = None,
    ) -> Backfill:
        payload: dict[str, Any] = {
            "dag_id": dag_id,
            "from_date": format_time(start),
            "to_date": format_time(end),
            "max_active_runs": max_active_runs,
            "reprocess_behavior": reprocess_behavior,
            "run_backwards": False,
        }
        if conf:
            payload["dag_run_conf"] = dict(conf)
        return Backfill.from_json(self.request("POST", "/api/v2/backfills", json=payload))

    def get_backfill(self, backfill_id: int) -> Backfill:
        return Backfill.from_json(self.request("GET", f"/api/v2/backfills/{backfill_id}"))


HEALTH_PATH = "/api/v2/monitor/health"


def fetch_health(base_url: str) -> dict[str, Any]:
    """GET /api/v2/monitor/health (no login needed); raises StackError when nothing answers."""
    try:
        response = httpx.get(base_url.rstrip("/") + HEALTH_PATH, timeout=5.0)
        response.raise_for_status()
        return dict(response.json())
    except (httpx.HTTPError, ValueError) as exc:
        raise StackError(f"the Airflow API at {base_url} did not answer its health check: {exc}") from exc


def _seg(value: str) -> str:
    """One URL path segment (run ids contain ':' and '+')."""
    return quote(value, safe="")


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {"detail": response.text.strip() or response.reason_phrase}
