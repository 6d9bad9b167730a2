"""Metrics from stdout and the lineage record: the parser, the KPO callback against real
KubernetesPodOperator objects and the recorded pod, and the CLI side's reading of records.
"""

from __future__ import annotations

import copy
import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from sandbox.adapters.airflow_api import DagRun
from sandbox.adapters.git import Source
from sandbox.core import lineage as core

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "sample_dags"))
from sandbox_tasks import lineage  # noqa: E402  (the DAG folder is a bundle on sys.path)

POD_JSON = REPO / "tests" / "fixtures" / "kube" / "pod-train-succeeded.json"
K8S_VERSION = "1.37.0"  # the node image's Kubernetes (kind-config.yaml)


# -- the parser -------------------------------------------------------------------------------------
def test_metrics_lines_merge_and_a_repeated_key_keeps_its_last_value() -> None:
    got = lineage.parse_metrics([
        "loading features",
        '{"epoch": 1, "loss": 0.9}',
        '{"epoch": 2, "loss": 0.5}',
        '  {"rmse": 1.25, "model": "a"}  ',
    ])
    assert got.metrics == {"epoch": 2, "loss": 0.5, "rmse": 1.25, "model": "a"}
    assert got.warnings == []


def test_a_line_seen_twice_changes_nothing() -> None:
    line = '{"rmse": 1.0}'
    assert lineage.parse_metrics([line, line]).metrics == lineage.parse_metrics([line]).metrics


def test_json_that_is_not_an_object_is_ordinary_output() -> None:
    got = lineage.parse_metrics(["[1, 2]", "3", '"text"', "null", "true"])
    assert got.metrics == {} and got.warnings == []


def test_invalid_json_and_nan_are_ignored_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        got = lineage.parse_metrics(['{"rmse": 1', '{"rmse": NaN}', '{"r2": Infinity}', '{"ok": 1}'])
    assert got.metrics == {"ok": 1}
    assert len(got.warnings) == 3 and all("not a JSON object" in w for w in got.warnings)
    assert "NaN is not a JSON number" in got.warnings[1]
    assert caplog.text.count("metrics: ignored") == 3


def test_a_1_mb_line_is_ignored_with_a_warning_and_costs_no_parse() -> None:
    huge = json.dumps({"blob": "x" * (1 << 20)})
    got = lineage.parse_metrics([huge, '{"rmse": 2}'])
    assert got.metrics == {"rmse": 2}
    assert got.warnings == [f"ignored a {len(huge)}-character metrics line (limit {lineage.MAX_LINE_CHARS})"]
    plain = "y" * (1 << 20)  # a huge line that is not metrics is just output
    assert lineage.parse_metrics([plain]).warnings == []


def test_no_metrics_line_gives_empty_metrics() -> None:
    got = lineage.parse_metrics(["step done", ""])
    assert got.metrics == {} and got.warnings == [] and got.lines == 2


def test_joined_continuation_lines_are_split() -> None:
    # PodManager joins a line without a timestamp to the previous one with "\n".
    assert lineage.parse_metrics(['progress\n{"rmse": 3}']).metrics == {"rmse": 3}


def test_too_many_keys_are_capped() -> None:
    got = lineage.parse_metrics([json.dumps({f"k{i}": i for i in range(lineage.MAX_KEYS + 5)})])
    assert len(got.metrics) == lineage.MAX_KEYS and len(got.warnings) == 5


# -- the record, against a real KPO and the recorded pod ------------------------------------------
def recorded_pod(**changes: Any) -> Any:
    from kubernetes.client import ApiClient

    data = json.loads(POD_JSON.read_text())
    status = data["status"]["containerStatuses"][0]
    status.update(changes)
    return ApiClient().deserialize(SimpleNamespace(data=json.dumps(data)), "V1Pod")


class FakeTi:
    """The task instance part of a context (the one thing that needs a running Airflow)."""

    dag_id, run_id, task_id, map_index, try_number = "train_compare_deploy", "manual__1", "train_model_a", -1, 2

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        json.dumps(value, allow_nan=False)  # what reaches the XCom table must be strict JSON
        self.pushed[key] = value


def context(ti: FakeTi) -> dict[str, Any]:
    return {"ti": ti, "dag_run": SimpleNamespace(conf={"limit": 3}), "params": {"alpha": 0.1}}


def kpo() -> Any:
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from sandbox_tasks import virtual_node

    return KubernetesPodOperator(
        task_id="train_model_a", image="sandbox.local/steps:3f9c2a1b7d4e",
        cmds=["python", "-m", "steps.train"], arguments=["--model", "a"], **virtual_node(),
    )


def test_virtual_node_tasks_capture_with_the_callback() -> None:
    op = kpo()
    assert op.callbacks == [lineage.MetricsCapture] and op.get_logs and not op.deferrable


def test_the_callback_records_the_pod_the_node_ran() -> None:
    pod, ti, op = recorded_pod(), FakeTi(), kpo()
    for line in ("seeding", '{"step": "train", "rmse": 0.31, "r2": 0.9}', "{broken"):
        lineage.MetricsCapture.progress_callback(
            line=line, client=None, mode="sync", container_name=op.base_container_name, timestamp=None, pod=pod
        )
    lineage.MetricsCapture.progress_callback(  # another container's lines are not the step's
        line='{"rmse": 99}', client=None, mode="sync", container_name="sidecar", timestamp=None, pod=pod
    )
    lineage.MetricsCapture.on_pod_completion(pod=pod, client=None, mode="sync", operator=op, context=context(ti))
    record = ti.pushed[lineage.LINEAGE_KEY]
    assert ti.pushed[lineage.METRICS_KEY] == {"step": "train", "rmse": 0.31, "r2": 0.9}
    assert record["metrics"] == ti.pushed[lineage.METRICS_KEY] and len(record["warnings"]) == 1
    assert record["image"] == {
        "ref": "sandbox.local/steps:3f9c2a1b7d4e",
        "id": "sha256:4b1f9a2c7e0d3b6a8c5f2e9d1a7b4c0e6f3a9d2b8c5e1f7a4d0b6c3e9f2a8d5b",
        "pinned": None,
    }
    assert record["node"] == {"name": "sandbox-worker2", "virtual": True}
    assert record["container"]["command"] == ["python", "-m", "steps.train"]
    assert record["container"]["args"][:2] == ["--date", "2021-12-01"]
    assert "volumeMounts" not in record["container"]  # the API server's token mount
    assert [t["key"] for t in record["placement"]["tolerations"]] == ["virtual-kubelet.io/provider", "azure.com/aci"]
    assert (record["started_at"], record["finished_at"], record["duration_s"]) == (
        "2026-11-30T01:12:04+00:00", "2026-11-30T01:12:06+00:00", 2.0
    )
    assert (record["exit_code"], record["reason"], record["try_number"]) == (0, "Completed", 2)
    assert record["inputs"] == ["sandbox/train_compare_deploy/2021-12-01/features.json"]
    assert record["outputs"] == ["sandbox/train_compare_deploy/2021-12-01/model_a/"]
    assert (record["conf"], record["params"]) == ({"limit": 3}, {"alpha": 0.1})
    # the step's lines are dropped once recorded; the other container's were never published
    assert [k[2] for k in lineage.MetricsCapture._collectors] == ["sidecar"]
    lineage.MetricsCapture._collectors.clear()


def test_a_failed_container_is_recorded_with_its_exit_code() -> None:
    pod = recorded_pod()
    pod.status.container_statuses[0].state.terminated.exit_code = 1
    pod.status.container_statuses[0].state.terminated.reason = "Error"
    ti = FakeTi()
    lineage.MetricsCapture.on_pod_completion(pod=pod, client=None, mode="sync", operator=kpo(), context=context(ti))
    assert ti.pushed[lineage.LINEAGE_KEY]["exit_code"] == 1
    assert ti.pushed[lineage.METRICS_KEY] == {}


def test_a_broken_store_never_fails_the_task(caplog: pytest.LogCaptureFixture) -> None:
    class Refusing(FakeTi):
        def xcom_push(self, key: str, value: Any) -> None:
            raise RuntimeError("database gone")

    with caplog.at_level(logging.WARNING):
        lineage.MetricsCapture.on_pod_completion(
            pod=recorded_pod(), client=None, mode="sync", operator=kpo(), context=context(Refusing())
        )
    assert "could not store the metrics/lineage record" in caplog.text


@pytest.mark.parametrize(
    "image_id, pinned",
    [
        ("sha256:" + "a" * 64, None),
        ("myacr.azurecr.io/ml/steps@sha256:" + "b" * 64, "myacr.azurecr.io/ml/steps@sha256:" + "b" * 64),
        ("docker-pullable://myacr.azurecr.io/ml/steps@sha256:" + "c" * 64, "myacr.azurecr.io/ml/steps@sha256:" + "c" * 64),
        ("docker.io/library/import-2026-06-03@sha256:" + "d" * 64, None),
        ("", None),
    ],
)
def test_the_pinned_reference_comes_only_from_a_registry_digest(image_id: str, pinned: str | None) -> None:
    assert lineage.pinned_image(image_id) == pinned


def test_declared_io_reads_the_step_contract() -> None:
    assert lineage.declared_io(["--input", "c/a", "--output=c/b/", "--model", "a"]) == (["c/a"], ["c/b/"])


def test_stdout_metrics_tees_and_records_a_python_task(capsys: pytest.CaptureFixture[str]) -> None:
    ti = FakeTi()
    ti.start_date = datetime(2021, 12, 1, tzinfo=UTC)
    with lineage.stdout_metrics(context(ti)):
        print("choosing")
        print(json.dumps({"winner": "b"}), end="")
    assert capsys.readouterr().out == 'choosing\n{"winner": "b"}'
    assert ti.pushed[lineage.METRICS_KEY] == {"winner": "b"}
    assert ti.pushed[lineage.LINEAGE_KEY]["kind"] == "python"


def test_the_two_sides_agree_on_the_xcom_keys() -> None:
    assert (lineage.METRICS_KEY, lineage.LINEAGE_KEY) == (core.METRICS_KEY, core.LINEAGE_KEY)


# -- the CLI side ---------------------------------------------------------------------------------
def test_the_source_note_round_trips() -> None:
    note = core.source_note(Source("0123abcd" * 5, True), Path("sample_dags"))
    assert note == f"sandbox source: git {'0123abcd' * 5} (dirty) of sample_dags"
    assert core.parse_source("my own words\n" + note) == {
        "commit": "0123abcd" * 5, "dirty": True, "dags_folder": "sample_dags"
    }
    assert core.parse_source(core.source_note(Source("ab" * 20, False), Path("d")))["dirty"] is False
    assert core.parse_source(None) is None and core.parse_source("edited by hand") is None


def recorded_record() -> core.TaskRecord:
    ti = FakeTi()
    lineage.MetricsCapture.on_pod_completion(pod=recorded_pod(), client=None, mode="sync", operator=kpo(), context=context(ti))
    return core.TaskRecord.from_json(ti.pushed[lineage.LINEAGE_KEY])


def test_the_rerun_manifest_is_a_valid_bare_pod_of_the_same_container(tmp_path: Path) -> None:
    import kubernetes_validate

    record = recorded_record()
    manifest = core.rerun_manifest(record)
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    [container] = manifest["spec"]["containers"]
    assert container["image"] == "sandbox.local/steps:3f9c2a1b7d4e"
    assert container["args"] == record.raw["container"]["args"]
    assert manifest["metadata"]["namespace"] == "sandbox-tasks"
    assert manifest["metadata"]["generateName"] == "train-model-a-rerun-"
    command = core.rerun_command(record, dag_id="d", logical_date=None, kubeconfig=tmp_path / "kc")
    assert command.startswith("# the node reported image ID sha256:")
    assert f"KUBECONFIG={tmp_path / 'kc'} kubectl create -o name -f - <<'EOF'" in command


def test_a_registry_digest_pins_the_rerun() -> None:
    record = recorded_record()
    raw = copy.deepcopy(dict(record.raw))
    raw["image"] = {**raw["image"], "pinned": "myacr.azurecr.io/ml/steps@sha256:" + "e" * 64}
    manifest = core.rerun_manifest(core.TaskRecord.from_json(raw))
    assert manifest["spec"]["containers"][0]["image"].endswith("@sha256:" + "e" * 64)
    assert not core.rerun_command(core.TaskRecord.from_json(raw), dag_id="d", logical_date=None, kubeconfig=None).startswith("#")


def run(run_id: str, day: int) -> DagRun:
    return DagRun("d", run_id, "success", "manual", datetime(2021, 12, day, tzinfo=UTC), None, None)


class Api:
    """The two XCom reads compare makes, answering from recorded records."""

    def __init__(self, metrics: dict[str, dict[str, dict[str, Any]]]) -> None:
        self.metrics = metrics
        self.runs = [run(r, i + 1) for i, r in enumerate(metrics)][::-1]

    def get_dag(self, dag_id: str) -> object:
        return object()

    def list_runs(self, dag_id: str, *, last: int) -> list[DagRun]:
        return self.runs[:last][::-1]  # oldest first, as the adapter answers

    def xcom_tasks(self, dag_id: str, run_id: str, key: str) -> list[tuple[str, int]]:
        return [(t, -1) for t in self.metrics[run_id]]

    def xcom_value(self, dag_id: str, run_id: str, task_id: str, key: str, *, map_index: int = -1) -> Any:
        return self.metrics[run_id][task_id]


def test_compare_finds_the_best_cell_per_metric_in_its_direction() -> None:
    api = Api({
        "r1": {"train_model_a": {"rmse": 0.4, "r2": 0.7, "model": "a"}, "train_model_b": {"rmse": 0.2, "r2": 0.9}},
        "r2": {"train_model_a": {"rmse": 0.1, "r2": 0.95}, "train_model_b": {"rmse": 0.3, "r2": True}},
    })
    result = core.compare(api, "d")  # type: ignore[arg-type]
    assert result.goals == {"rmse": "min", "r2": "max"}
    assert result.best == {"rmse": ("r2", ("train_model_a", "rmse")), "r2": ("r2", ("train_model_a", "r2"))}
    assert ("train_model_a", "model") not in result.columns  # labels are not compared
    assert [r.run_id for r in result.runs] == ["r2", "r1"]
    assert core.compare(api, "d", metric="r2", goal="min").best["r2"] == ("r1", ("train_model_a", "r2"))  # type: ignore[arg-type]


def test_compare_names_the_recorded_metrics_when_the_asked_one_is_missing() -> None:
    from sandbox.errors import UsageError

    api = Api({"r1": {"t": {"rmse": 1.0}}})
    with pytest.raises(UsageError, match="no metric 'acc'") as err:
        core.compare(api, "d", metric="acc")  # type: ignore[arg-type]
    assert err.value.hint == "metrics recorded: rmse"
