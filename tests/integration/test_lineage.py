"""Metrics and lineage through a real Airflow: the worker captures, the CLI reads them back.

One native stack for this module (its own database): the DAG folder holds the real
`sandbox_tasks` package and tests/lineage_dags/sbx_metrics.py, and the project is a real git
repository, so run-dag writes a real commit into the run's note. Two dated runs with different
RMSEs go through `sandbox run-dag`; then `runs`, `show` and `compare` (and `--plot`) through the
console script against the real API, and `show` again after every Airflow process restarted.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from airflow_stack import AirflowStack, ServicesUnavailable, services
from integration.conftest import Cli
from support import REPO, require

POD_JSON = REPO / "tests" / "fixtures" / "kube" / "pod-train-succeeded.json"
RUNS = {"2021-12-01": {"rmse_a": 0.4, "rmse_b": 0.2}, "2021-12-02": {"rmse_a": 0.1, "rmse_b": 0.3}}


def _git(project: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(project), *args], check=True, capture_output=True, text=True,
        env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
             "GIT_COMMITTER_EMAIL": "t@e", "PATH": "/usr/bin:/bin"},
    ).stdout.strip()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    require(shutil.which("git") is not None, "git is not installed")
    with ExitStack() as exits:
        try:
            found = exits.enter_context(services())
        except ServicesUnavailable as exc:
            require(False, str(exc))
        airflow = AirflowStack(found, tmp_path_factory.mktemp("lineage"))
        shutil.copytree(REPO / "sample_dags" / "sandbox_tasks", airflow.dags_folder / "sandbox_tasks",
                        ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(REPO / "tests" / "lineage_dags" / "sbx_metrics.py", airflow.dags_folder)
        yield exits.enter_context(airflow)


def task_logs(stack: AirflowStack, lines: int = 30) -> str:
    found = sorted(stack.home.rglob("dag_id=sbx_metrics/**/*.log"))
    return "\n".join(
        f"===== {p.relative_to(stack.home)} =====\n" + "\n".join(p.read_text(errors="replace").splitlines()[-lines:])
        for p in found
    )


@pytest.fixture(scope="module")
def ran(stack: AirflowStack) -> dict[str, str]:
    """Both runs, the first from a clean commit, the second from a dirty tree: the commit."""
    project = stack.project_dir
    _git(project, "init", "-q")
    (project / ".gitignore").write_text(".sandbox/\n__pycache__/\n")
    _git(project, "add", "-A")
    _git(project, "commit", "-q", "-m", "dags")
    commit = _git(project, "rev-parse", "HEAD")
    cli = Cli(stack)
    for i, (date, rmse) in enumerate(RUNS.items()):
        if i == 1:
            (stack.dags_folder / "notes.txt").write_text("uncommitted\n")
        conf = json.dumps({**rmse, "pod_json": str(POD_JSON)})
        proc = cli("run-dag", "sbx_metrics", "--date", date, "--conf", conf, "--no-logs")
        assert proc.returncode == 0, proc.stderr + task_logs(stack) + stack.log_tails()
    return {"commit": commit}


def test_runs_lists_each_run_with_its_tasks_metrics(stack: AirflowStack, ran: dict[str, str]) -> None:
    text = Cli(stack)("runs", "sbx_metrics")
    assert text.returncode == 0 and "metrics" in text.stdout  # the column (content: --json below)
    body = Cli(stack).json("runs", "sbx_metrics", "--last", "5")
    by_date = {r["logical_date"][:10]: r for r in body["runs"]}
    assert list(by_date) == ["2021-12-01", "2021-12-02"]  # `sandbox runs` lists oldest first
    first = by_date["2021-12-01"]
    assert first["state"] == "success" and first["run_type"] == "manual" and first["duration_s"] > 0
    # merged lines: the progress object and the final one; the malformed line ignored
    assert first["metrics"]["train_model_a"] == {"epoch": 1, "loss": 0.9, "rmse": 0.4, "r2": 0.5}
    assert first["metrics"]["compare"] == {"margin": pytest.approx(0.2)}


def test_show_gives_the_record_and_a_rerun_command(stack: AirflowStack, ran: dict[str, str]) -> None:
    cli = Cli(stack)
    shown = cli.json("show", "sbx_metrics", "--date", "2021-12-01")
    assert shown["source"] == {"commit": ran["commit"], "dirty": False, "dags_folder": "dags"}
    assert shown["conf"]["rmse_a"] == 0.4
    tasks = {t["task_id"]: t for t in shown["tasks"]}
    assert set(tasks) == {"train_model_a", "train_model_b", "compare"}
    a = tasks["train_model_a"]
    assert a["kind"] == "pod" and a["try_number"] >= 1 and a["exit_code"] == 0
    assert a["image"]["id"].startswith("sha256:") and a["image"]["pinned"] is None
    assert a["node"] == {"name": "sandbox-worker2", "virtual": True}
    assert a["container"]["args"][-2:] == ["--model", "a"]
    assert a["inputs"] == ["sandbox/train_compare_deploy/2021-12-01/features.json"]
    assert a["duration_s"] == 2.0 and a["conf"]["rmse_b"] == 0.2
    assert a["metrics"]["rmse"] == 0.4
    assert any("not a JSON object" in w for w in a["warnings"])
    assert "kubectl create -o name -f - <<'EOF'" in a["rerun"]
    manifest = json.loads(a["rerun"].split("<<'EOF'\n", 1)[1].rsplit("\nEOF", 1)[0])
    assert manifest["spec"]["containers"][0]["command"] == ["python", "-m", "steps.train"]
    assert manifest["spec"]["nodeSelector"]["type"] == "virtual-kubelet"
    assert tasks["compare"]["kind"] == "python"
    assert tasks["compare"]["rerun"] == "sandbox airflow tasks test sbx_metrics compare 2021-12-01"
    dirty = cli.json("show", "sbx_metrics", "--date", "2021-12-02", "--task", "compare")
    assert dirty["source"]["dirty"] is True and [t["task_id"] for t in dirty["tasks"]] == ["compare"]
    text = cli("show", "sbx_metrics", "--date", "2021-12-01", "--task", "train_model_a")
    assert text.returncode == 0 and "sandbox-worker2 (virtual node)" in text.stdout
    missing = cli("show", "sbx_metrics", "--date", "2021-12-01", "--task", "nope")
    assert missing.returncode == 2 and "no lineage record for task 'nope'" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_compare_puts_the_runs_side_by_side_and_plots(
    stack: AirflowStack, ran: dict[str, str], tmp_path: Path
) -> None:
    cli = Cli(stack)
    body = cli.json("compare", "sbx_metrics", "--metric", "rmse")
    assert body["goals"] == {"rmse": "min"}
    assert body["best"]["rmse"]["task"] == "train_model_a" and body["best"]["rmse"]["value"] == 0.1
    assert body["best"]["rmse"]["run_id"] == next(
        r["run_id"] for r in body["runs"] if r["logical_date"].startswith("2021-12-02")
    )
    plot = tmp_path / "rmse.png"
    table = cli("compare", "sbx_metrics", "--metric", "rmse", "--plot", str(plot))
    assert table.returncode == 0 and "0.1 ★" in table.stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    unknown = cli("compare", "sbx_metrics", "--metric", "accuracy")
    assert unknown.returncode == 2 and "metrics recorded: epoch, loss, margin, r2, rmse" in unknown.stderr


def test_the_record_survives_a_restart_of_every_airflow_process(
    stack: AirflowStack, ran: dict[str, str]
) -> None:
    cli = Cli(stack)
    before: dict[str, Any] = cli.json("show", "sbx_metrics", "--date", "2021-12-01")
    stack.restart()
    assert cli.json("show", "sbx_metrics", "--date", "2021-12-01") == before


def test_a_get_that_times_out_is_asked_again_and_a_post_is_not() -> None:
    """A loaded machine slows the API server (seen here at load 20 on 2 cores): `run-dag`'s
    polling must ride that out, while a POST must never be sent twice."""
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from sandbox.adapters.airflow_api import READ_RETRIES, AirflowApi
    from sandbox.errors import StackError

    seen: list[str] = []

    class Slow(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            seen.append(self.command)
            if self.command == "POST" and self.path == "/auth/token":
                body = b'{"access_token": "t"}'
            else:
                if len(seen) <= READ_RETRIES + 1:  # every attempt but the last one is too slow
                    time.sleep(0.6)
                body = b'{"dag_id": "d", "is_paused": false}'
            try:
                self.send_response(201 if self.command == "POST" else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up on this attempt, as it should

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with AirflowApi(f"http://127.0.0.1:{server.server_port}", "u", "p", timeout=0.3) as api:
            assert api.get_dag("d") is not None
            assert seen == ["POST"] + ["GET"] * (READ_RETRIES + 1)
            seen.clear()
            with pytest.raises(StackError, match="cannot reach the Airflow API"):
                api.request("POST", "/api/v2/slow")
            assert seen == ["POST"]
    finally:
        server.shutdown()
