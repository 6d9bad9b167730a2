"""`sandbox lint` over tests/lint_dags: exactly the expected findings, for both profiles.

Every task is rendered by the real provider and checked by the same rule code the admission
policy carries; the folder is loaded once per profile (module fixtures), the CLI runs once as
a real process (exit code, JSON on stdout, no traceback).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.config import load_settings
from sandbox.core.lint import LintReport, lint_dags

V = "virtual-node"
# task_id -> (target, violations, warnings) under aci-v1
EXPECTED_V1: dict[str, tuple[str, set[str], set[str]]] = {
    "clean": (V, set(), set()),
    "cpu_max_bad": (V, {"cpu-max"}, set()),
    "cpu_max_ok": (V, set(), set()),
    "cpu_limit_bad": (V, {"cpu-max"}, set()),
    "memory_max_bad": (V, {"memory-max"}, set()),
    "memory_max_ok": (V, set(), set()),
    "max_containers_bad": (V, {"max-containers"}, set()),
    "max_containers_ok": (V, set(), set()),
    "max_volumes_bad": (V, {"max-volumes"}, set()),
    "max_volumes_ok": (V, set(), set()),
    "startup_probe_bad": (V, {"no-startup-probe"}, set()),
    "startup_probe_ok": (V, set(), set()),
    "args_without_command_bad": (V, {"command-with-args"}, set()),
    "args_without_command_ok": (V, set(), set()),
    "volume_host_path_bad": (V, {"volume-types"}, set()),
    "volume_csi_without_secret_bad": (V, {"volume-types"}, set()),
    "volume_pvc": (V, {"volume-types"}, set()),
    "volume_ok": (V, set(), set()),
    "init_containers": (V, {"no-init-containers"}, set()),
    "host_aliases": (V, {"no-host-aliases"}, set()),
    "lifecycle_hooks": (V, {"no-lifecycle-hooks"}, set()),
    "xcom_sidecar": (V, {"no-xcom-sidecar"}, set()),
    "init_container_resources": (V, {"no-init-containers"}, set()),
    "privileged": (V, set(), {"security-context-ignored"}),
    "run_as_user": (V, set(), {"security-context-ignored"}),
    "host_network": (V, set(), {"host-network-ignored"}),
    "pull_never": (V, set(), {"image-pull-policy-ignored"}),
    "pull_if_not_present": (V, set(), set()),
    "empty_env": (V, set(), {"empty-env-value"}),
    "downward_api": (V, set(), {"downward-api-ignored"}),
    "no_requests": (V, set(), {"resource-requests"}),
    "limits_only": (V, set(), set()),
    "image_latest": (V, set(), {"image-tag"}),
    "image_untagged": (V, set(), {"image-tag"}),
    "image_latest_if_not_present": (V, set(), set()),
    "image_digest": (V, set(), set()),
    # placement DAG
    "worker_host_path": ("worker", set(), set()),
    "selector_without_toleration": ("unschedulable", {"unschedulable"}, set()),
    "wrong_selector": ("unschedulable", {"unschedulable"}, set()),
    "toleration_only_host_path": ("virtual-node-or-worker", {"volume-types"}, set()),
    "affinity_in": (V, set(), set()),
    "affinity_not_in_host_path": ("worker", set(), set()),
    "affinity_exists": (V, set(), set()),
    "tolerate_everything": ("virtual-node-or-worker", set(), set()),
    "toleration_equal": (V, set(), set()),
    "toleration_wrong_value": ("unschedulable", {"unschedulable"}, set()),
}
# aci-v2 allows init containers, host aliases, lifecycle hooks, exec with arguments, PVCs ...
EXPECTED_V2 = {
    **EXPECTED_V1,
    "volume_pvc": (V, set(), set()),
    "init_containers": (V, set(), set()),
    "host_aliases": (V, set(), set()),
    "lifecycle_hooks": (V, set(), set()),
    "xcom_sidecar": (V, set(), set()),
    # ... but its provider refuses resources on an init container.
    "init_container_resources": (V, {"init-container-fields"}, set()),
}
EXPECTED = {"aci-v1": EXPECTED_V1, "aci-v2": EXPECTED_V2}


@pytest.fixture(scope="module")
def folder(repo: Path) -> Path:
    return repo / "tests" / "lint_dags"


@pytest.fixture(scope="module")
def reports(repo: Path, folder: Path) -> dict[str, LintReport]:
    settings = load_settings(repo, environ={})
    return {p: lint_dags(settings, folder, profile=p) for p in EXPECTED}


def findings(items: list[dict]) -> dict[str, tuple[str, set[str], set[str]]]:
    return {
        i["task_id"]: (i["target"], set(i["violation_rules"]), set(i["warning_rules"]))
        for i in items
        if i["task_id"]
    }


@pytest.mark.parametrize("profile", ["aci-v1", "aci-v2"])
def test_exactly_the_expected_findings(reports: dict[str, LintReport], profile: str) -> None:
    report = reports[profile]
    assert findings(report.to_json()) == EXPECTED[profile]
    assert [(p.file, p.message) for p in report.import_errors] == [
        ("broken_import.py", "ModuleNotFoundError: No module named 'module_that_does_not_exist_for_lint'")
    ]
    assert not report.ok


def test_every_rule_has_a_violating_task_and_a_clean_one(reports: dict[str, LintReport]) -> None:
    from sandbox.core.policy import load_rules

    for profile, expected in EXPECTED.items():
        fired = set().union(*(v | w for _, v, w in expected.values()))
        rule_ids = {r.id for r in load_rules().for_profile(profile)}
        assert rule_ids <= fired, (profile, rule_ids - fired)
        assert expected["clean"] == (V, set(), set())


def test_json_items_carry_messages(reports: dict[str, LintReport]) -> None:
    items = {i["task_id"]: i for i in reports["aci-v1"].to_json()}
    xcom = items["xcom_sidecar"]
    assert {"dag_id", "task_id", "target", "violations", "warnings"} <= set(xcom)
    assert xcom["dag_id"] == "aci_rules" and xcom["file"] == "aci_rules.py"
    assert xcom["violations"][0].startswith("[aci:no-xcom-sidecar] ") and "do_xcom_push=False" in xcom["violations"][0]
    broken = items[None]
    assert broken["target"] == "import-error" and broken["file"] == "broken_import.py"


def test_text_lines_for_run_dag(reports: dict[str, LintReport]) -> None:
    lines = reports["aci-v1"].lines()
    assert "broken_import.py: import error: ModuleNotFoundError: No module named 'module_that_does_not_exist_for_lint'" in lines
    assert any(line.startswith("aci_rules.host_aliases: virtual-node (fits sandbox-worker2)") for line in lines)
    assert lines[-1].startswith("46 pod task(s) in 2 DAG(s), profile aci-v1: 19 violation(s)")


def test_dag_ids_limit_the_report(repo: Path, folder: Path) -> None:
    settings = load_settings(repo, environ={})
    report = lint_dags(settings, folder, dag_ids=["placement"])
    assert {t.dag_id for t in report.tasks} == {"placement"}
    assert not report.import_errors  # the broken file is not the DAG asked for
    missing = lint_dags(settings, folder, dag_ids=["nope"])
    assert missing.missing_dags == ("nope",) and missing.import_errors and not missing.ok


def test_cli_json_and_exit_code(repo: Path, folder: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sandbox", "-C", str(repo), "lint", str(folder), "--profile", "aci-v2", "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 1, proc.stderr
    assert findings(json.loads(proc.stdout)) == EXPECTED_V2
    assert "Traceback" not in proc.stderr
    assert "error: 46 pod task(s) in 2 DAG(s), profile aci-v2: 14 violation(s)" in proc.stderr


def test_cli_refuses_a_missing_folder_and_unknown_profile(repo: Path, tmp_path: Path) -> None:
    from sandbox.cli.app import main

    for args, message in (
        ([str(tmp_path / "nope")], "does not exist"),
        ([str(tmp_path), "--profile", "aci-v3"], "unknown profile 'aci-v3'"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(["-C", str(repo), "lint", *args])
        assert exit_info.value.code == 2, message


def test_sample_dags_are_clean(repo: Path) -> None:
    """`sandbox lint sample_dags` must pass: the samples show how to use the virtual node."""
    report = lint_dags(load_settings(repo, environ={}), repo / "sample_dags")
    assert report.ok, "\n".join(report.lines())
    assert report.tasks, "sample_dags has no KubernetesPodOperator task"
    assert any(t.target == "virtual-node" for t in report.tasks), "no sample task runs on the virtual node"
    assert not [w for t in report.tasks for w in t.warnings], "\n".join(report.lines())
