"""`sandbox lint` over tests/lint_dags: exactly the expected findings, for both profiles.

Every task is rendered by the real provider and checked by the same rule code the admission
policy carries; the folder is loaded once per profile (module fixtures), and once more through
the CLI entry point (exit code, JSON alone on stdout, one error line, no traceback).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sandbox.config import load_settings
from sandbox.core.lint import LintReport, lint_dags

REPO = Path(__file__).resolve().parents[2]
V = "virtual-node"
Expected = dict[str, tuple[str, set[str], set[str]]]  # task_id -> (target, violations, warnings)


def _expected() -> dict[str, Expected]:
    """tests/lint_dags/expected.json: per profile, what lint must say about each task (the e2e
    test holds the real API server to the same file)."""
    raw = json.loads((REPO / "tests" / "lint_dags" / "expected.json").read_text())
    return {
        profile: {t: (e["target"], set(e["violations"]), set(e["warnings"])) for t, e in tasks.items()}
        for profile, tasks in raw.items()
    }


EXPECTED = _expected()
EXPECTED_V2 = EXPECTED["aci-v2"]


@pytest.fixture(scope="module")
def folder(repo: Path) -> Path:
    return repo / "tests" / "lint_dags"


@pytest.fixture(scope="module")
def reports(repo: Path, folder: Path) -> dict[str, LintReport]:
    settings = load_settings(repo, environ={})
    return {p: lint_dags(settings, folder, profile=p) for p in EXPECTED}


def findings(items: list[dict]) -> Expected:
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
        ("broken_import.py", "ModuleNotFoundError: No module named 'module_that_does_not_exist_for_lint' (line 5)")
    ]
    assert not report.ok


def test_profiles_differ_where_the_issue_says() -> None:
    v1, v2 = EXPECTED["aci-v1"], EXPECTED["aci-v2"]
    changed = {t for t in v1 if v1[t] != v2[t]}
    assert changed == {"volume_pvc", "init_containers", "host_aliases", "lifecycle_hooks",
                       "xcom_sidecar", "init_container_resources", "v2_selector"}
    assert all(not v2[t][1] for t in changed - {"init_container_resources"})
    # The node differs too: only the v2 node carries virtualization=virtualnode2.
    assert (v1["v2_selector"][0], v2["v2_selector"][0]) == ("unschedulable", V)


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
    assert items["render_fails"]["violations"] == [
        "the provider cannot build this task's pod: ValueError: Invalid value for `name`, must not be `None`"
    ]
    broken = items[None]
    assert broken["target"] == "import-error" and broken["file"] == "broken_import.py"


def test_text_lines_for_run_dag(reports: dict[str, LintReport]) -> None:
    lines = reports["aci-v1"].lines()
    assert "broken_import.py: import error: ModuleNotFoundError: No module named 'module_that_does_not_exist_for_lint' (line 5)" in lines
    assert any(line.startswith("aci_rules.host_aliases: virtual-node (fits sandbox-worker2)") for line in lines)
    assert lines[-1].startswith("49 pod task(s) in 2 DAG(s), profile aci-v1: 21 violation(s)")


def test_dag_ids_limit_the_report(repo: Path, folder: Path) -> None:
    settings = load_settings(repo, environ={})
    report = lint_dags(settings, folder, dag_ids=["placement"])
    assert {t.dag_id for t in report.tasks} == {"placement"}
    assert not report.import_errors  # the broken file is not the DAG asked for
    missing = lint_dags(settings, folder, dag_ids=["nope"])
    assert missing.missing_dags == ("nope",) and missing.import_errors and not missing.ok


def test_cli_json_and_exit_code(repo: Path, folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Through the real entry point (in-process: Airflow is already imported here)."""
    from sandbox.cli.app import main

    with pytest.raises(SystemExit) as exit_info:
        main(["-C", str(repo), "lint", str(folder), "--profile", "aci-v2", "--json"])
    out, err = capsys.readouterr()
    assert exit_info.value.code == 1, err
    assert findings(json.loads(out)) == EXPECTED_V2  # stdout is the JSON and nothing else
    assert "Traceback" not in err
    assert "error: 49 pod task(s) in 2 DAG(s), profile aci-v2: 15 violation(s)" in " ".join(err.split())


def test_cli_refuses_a_missing_folder_and_unknown_profile(repo: Path, tmp_path: Path) -> None:
    from sandbox.cli.app import main

    for args, message in (
        ([str(tmp_path / "nope")], "does not exist"),
        ([str(tmp_path), "--profile", "aci-v3"], "unknown profile 'aci-v3'"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(["-C", str(repo), "lint", *args])
        assert exit_info.value.code == 2, message


@pytest.mark.parametrize("profile", ["aci-v1", "aci-v2"])
def test_sample_dags_are_clean(repo: Path, profile: str) -> None:
    """`sandbox lint sample_dags` must pass under both profiles: the samples show how to use the
    virtual node, and their helper aims at the profile's (SANDBOX_PROFILE, which lint sets)."""
    before = os.environ.get("SANDBOX_PROFILE")
    report = lint_dags(load_settings(repo, environ={}), repo / "sample_dags", profile=profile)
    assert report.ok, "\n".join(report.lines())
    assert report.tasks, "sample_dags has no KubernetesPodOperator task"
    pods = [t for t in report.tasks if t.target != "worker"]
    assert pods and all(t.target == "virtual-node" for t in pods), "\n".join(report.lines())
    # The one warning the samples accept: Spark itself sets its pods' IP env from the downward
    # API (docs/spark.md); no template can change that.
    unexpected = [
        w for t in report.tasks for w in t.warnings
        if not (" → spark " in t.task_id and w.rule == "downward-api-ignored")
    ]
    assert not unexpected, "\n".join(report.lines())
    assert os.environ.get("SANDBOX_PROFILE") == before  # restored after parsing


def test_the_unschedulable_hint_names_the_profiles_selector(reports: dict[str, LintReport]) -> None:
    for profile, selector in (("aci-v1", "type=virtual-kubelet"), ("aci-v2", "virtualization=virtualnode2")):
        (task,) = [t for t in reports[profile].tasks if t.task_id == "wrong_selector"]
        (finding,) = task.violations
        assert f"to run on the {profile} virtual node select" in finding.message and selector in finding.message


def test_broken_files_are_one_line_each_with_the_line_to_look_at(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sandbox.cli.app import main

    (tmp_path / "unclosed.py").write_text("from airflow.sdk import DAG\nx = (\n")
    (tmp_path / "missing.py").write_text("from airflow.sdk import DAG\n\nimport nothere_mod\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["-C", str(repo), "lint", str(tmp_path)])
    out, err = capsys.readouterr()
    assert exit_info.value.code == 1 and "Traceback" not in err
    assert "unclosed.py: import error: SyntaxError: '(' was never closed (line 2)" in out
    assert "missing.py: import error: ModuleNotFoundError: No module named 'nothere_mod' (line 3)" in out
    (tmp_path / ".airflowignore").write_bytes(b"\xff\xfe\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["-C", str(repo), "lint", str(tmp_path)])
    _, err = capsys.readouterr()
    assert exit_info.value.code == 2 and "is not UTF-8 text" in err and "Traceback" not in err
