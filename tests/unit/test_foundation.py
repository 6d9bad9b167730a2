"""The shared primitives: settings layering, state dir secrets, run(), wait_until()."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.core.airflow_config import airflow_env, compose_topology, render_env_file
from sandbox.config import airflow_image, airflow_version, load_settings
from sandbox.core.dates import parse_logical_date
from sandbox.errors import CommandFailed, ConfigError, LockHeld, ToolMissing, UsageError, WaitTimeout
from sandbox.proc import run
from sandbox.state import StateDir
from sandbox.waiting import NotReady, wait_until


def test_settings_layers_file_then_env_then_flags(tmp_path: Path) -> None:
    (tmp_path / "sandbox.toml").write_text('name = "fromfile"\nprofile = "aci-v2"\n[ports]\napi = 9000\n')
    env = {"SANDBOX_NAME": "fromenv", "SANDBOX_PORT_FLOWER": "5600"}
    settings = load_settings(tmp_path, environ=env, overrides={"profile": "aci-v1"})
    assert settings.name == "fromenv"
    assert settings.profile == "aci-v1"
    assert settings.ports.api == 9000 and settings.ports.flower == 5600
    assert settings.dags_folder == tmp_path / "sample_dags"


def test_settings_reject_unknown_keys_and_values(tmp_path: Path) -> None:
    (tmp_path / "sandbox.toml").write_text('colour = "blue"\n')
    with pytest.raises(ConfigError, match="unknown setting"):
        load_settings(tmp_path, environ={})
    (tmp_path / "sandbox.toml").write_text('profile = "aci-v3"\n')
    with pytest.raises(ConfigError, match="unknown profile"):
        load_settings(tmp_path, environ={})
    (tmp_path / "sandbox.toml").write_text('build_args = "BASE_IMAGE=python:3.12"\n')
    with pytest.raises(ConfigError, match="build_args must be a table"):
        load_settings(tmp_path, environ={})


def test_scheduled_runs_from_file_env_and_bad_values(tmp_path: Path) -> None:
    from sandbox.core.airflow_config import airflow_env, compose_topology
    from sandbox.state import Secrets

    (tmp_path / "sandbox.toml").write_text("scheduled_runs = false\n")
    settings = load_settings(tmp_path, environ={})
    assert settings.scheduled_runs is False
    env = airflow_env(settings, Secrets.generate(), compose_topology(settings))
    assert env["AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE"] == "False"
    assert load_settings(tmp_path, environ={"SANDBOX_SCHEDULED_RUNS": "yes"}).scheduled_runs is True
    with pytest.raises(ConfigError, match="scheduled_runs must be true or false"):
        load_settings(tmp_path, environ={"SANDBOX_SCHEDULED_RUNS": "sometimes"})


def test_image_load_setting(tmp_path: Path) -> None:
    assert load_settings(tmp_path, environ={}).image_load == "auto"
    assert load_settings(tmp_path, environ={"SANDBOX_IMAGE_LOAD": "archive"}).image_load == "archive"
    with pytest.raises(ConfigError, match="unknown image_load 'tarball'"):
        load_settings(tmp_path, environ={"SANDBOX_IMAGE_LOAD": "tarball"})


def test_build_args_table_merges_with_flags(tmp_path: Path) -> None:
    (tmp_path / "sandbox.toml").write_text('[build_args]\nBASE_IMAGE = "python:3.11-slim"\nJOBS = 4\n')
    settings = load_settings(tmp_path, environ={}, overrides={"build_args": {"JOBS": "8"}})
    assert settings.build_args == {"BASE_IMAGE": "python:3.11-slim", "JOBS": "8"}


def test_airflow_version_is_the_pyproject_pin(repo: Path) -> None:
    import tomllib

    deps = tomllib.loads((repo / "pyproject.toml").read_text())["project"]["dependencies"]
    pin = next(d for d in deps if d.startswith("apache-airflow["))
    assert pin.endswith(f"=={airflow_version()}")
    assert airflow_image() == f"apache/airflow:{airflow_version()}-python3.11"


def test_secrets_are_generated_once_and_private(tmp_path: Path) -> None:
    state = StateDir(tmp_path / ".sandbox")
    first = state.secrets()
    assert state.secrets() == first
    for path in (state.secrets_file, state.passwords_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.path.stat().st_mode) == 0o700


def test_lock_refuses_a_second_holder(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    with state.lock("up"):
        code = (
            "import sys; from pathlib import Path; from sandbox.state import StateDir\n"
            f"with StateDir(Path({str(tmp_path)!r})).lock('down'): pass"
        )
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert proc.returncode != 0 and "LockHeld" in proc.stderr and "sandbox up" in proc.stderr
    with state.lock("down"):
        pass
    assert LockHeld  # the type the second holder raised


def test_env_is_shared_and_points_inside_compose(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, environ={})
    env = airflow_env(settings, StateDir(tmp_path / "s").secrets(), compose_topology(settings))
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert "@postgres:5432/" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("amqp://airflow:")
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    assert "/opt/airflow/.kube/config" in env["AIRFLOW_CONN_KUBERNETES_DEFAULT"]
    assert "127.0.0.1" not in env["AIRFLOW_CONN_KUBERNETES_DEFAULT"]
    rendered = render_env_file(env)
    assert len(rendered.splitlines()) == len(env)
    stack_only = airflow_env(
        settings, StateDir(tmp_path / "s").secrets(), compose_topology(settings, with_cluster=False)
    )
    assert "AIRFLOW_CONN_KUBERNETES_DEFAULT" not in stack_only


def test_run_raises_typed_errors() -> None:
    assert run([sys.executable, "-c", "print('hi')"]).stdout == "hi\n"
    with pytest.raises(CommandFailed) as failed:
        run([sys.executable, "-c", "import sys; sys.stderr.write('boom\\n'); sys.exit(3)"])
    assert failed.value.returncode == 3 and "boom" in str(failed.value)
    with pytest.raises(ToolMissing):
        run(["definitely-not-a-tool-xyz"])
    lines: list[str] = []
    result = run([sys.executable, "-c", "print('a'); print('b')"], on_line=lines.append)
    assert lines == ["a", "b"] and result.returncode == 0


def test_wait_until_reports_last_state_and_hint() -> None:
    now = [0.0]
    states = iter(["starting", "starting", "unhealthy"])

    def check() -> None:
        raise NotReady(next(states, "unhealthy"))

    with pytest.raises(WaitTimeout) as timeout:
        wait_until(
            check, what="postgres healthy", timeout=2, interval=1, hint="see logs",
            clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s),
        )
    assert "postgres healthy" in str(timeout.value) and "unhealthy" in str(timeout.value)
    assert timeout.value.hint == "see logs"
    answers = iter([None, ValueError("blip"), 42])

    def flaky() -> int | None:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert wait_until(flaky, what="x", timeout=5, interval=0, transient=(ValueError,)) == 42


def test_wait_until_follows_an_interval_schedule_and_the_runs_one() -> None:
    from sandbox.core.follow import run_poll_interval

    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(round(seconds, 3))
        now[0] += seconds

    with pytest.raises(WaitTimeout):
        wait_until(lambda: None, what="x", timeout=1.0, interval=lambda elapsed: 0.2 if elapsed < 0.5 else 0.3,
                   clock=lambda: now[0], sleep=sleep)
    assert slept == [0.2, 0.2, 0.2, 0.3, 0.1]  # the last pause stops at the deadline
    assert [run_poll_interval(s) for s in (0, 9.9, 10, 119, 120, 3600)] == [0.2, 0.2, 0.5, 0.5, 1.0, 1.0]


def test_cli_starts_without_heavy_imports() -> None:
    code = (
        "import sys; from sandbox.cli.app import app\n"
        "heavy = [m for m in ('airflow', 'kubernetes', 'docker', 'celpy', 'httpx') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == ""


def test_ctrl_c_says_nothing_was_lost(tmp_path: Path) -> None:
    """SIGINT while a command runs: exit 130 and one line, no traceback."""
    code = (
        "import os, signal, sys, typer\n"
        "from sandbox.cli import app as cli\n"
        "@cli.app.command('sleepy')\n"
        "def sleepy() -> None:\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "cli.main(['sleepy'])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 130
    assert "interrupted; nothing was lost" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_env_file_refuses_values_compose_would_alter() -> None:
    assert render_env_file({"B": "x=1;y", "A": '{"k": "v"}'}) == 'A={"k": "v"}\nB=x=1;y\n'
    for bad in ("a\nb", "pa$$word", "value #comment"):
        with pytest.raises(ConfigError, match="compose env files alter"):
            render_env_file({"K": bad})


def test_readme_settings_example_is_valid(repo: Path, tmp_path: Path) -> None:
    """The sandbox.toml shown in the README loads, with every key it names."""
    readme = (repo / "README.md").read_text()
    example = readme.split("# sandbox.toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "sandbox.toml").write_text(example)
    settings = load_settings(tmp_path, environ={})
    assert settings.profile == "aci-v1" and settings.ports.azurite_blob == 10000
    assert settings.build_args == {"BASE_IMAGE": "python:3.12-slim"}


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("ports = 8080\n", "ports must be a table, not 8080"),
        ('[ports]\napi = "abc"\n', "ports.api must be a whole number, not 'abc'"),
        ("[ports]\napi = true\n", "ports.api must be a whole number, not True"),
        ("[ports]\nflower = 8080.9\n", "ports.flower must be a whole number"),
        ("[ports]\napi = inf\n", "ports.api must be a whole number, not inf"),
        ("[timeouts]\nrun = -5\n", "timeouts.run must be a positive number"),
        ("[timeouts]\nrun = nan\n", "timeouts.run must be a positive number"),
        ("[ports]\nbogus = 1\n", "unknown setting ports.bogus"),
        ("[ports]\napi = 99999\n", "port(s) out of range: api=99999"),
        ("[ports]\napi = 5555\n", "two services share a host port"),
        ("timeouts = 5\n", "timeouts must be a table"),
        ('images_folders = "images"\n', "images_folders must be a list of folders"),
        ('[build_args]\nX = ["x"]\n', "build_args.X must be a string"),
        ("verbose = true\n", "unknown setting(s): verbose"),  # a flag (-v), not a setting
    ],
)
def test_settings_name_the_bad_key_instead_of_crashing(tmp_path: Path, toml: str, message: str) -> None:
    (tmp_path / "sandbox.toml").write_text(toml)
    with pytest.raises(ConfigError) as err:
        load_settings(tmp_path, environ={})
    assert message in err.value.message


def test_unreadable_settings_files_are_config_errors(tmp_path: Path) -> None:
    (tmp_path / "sandbox.toml").write_bytes(b'name = "\xff"\n')
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_settings(tmp_path, environ={})
    with pytest.raises(ConfigError, match="ports.api must be a whole number"):
        load_settings(tmp_path / "elsewhere", environ={"SANDBOX_PORT_API": "eighty"})


def test_dates_out_of_range_in_utc_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="out of range in UTC"):
        parse_logical_date("9999-12-31T23:00:00-05:00")


def test_a_corrupt_secrets_file_is_never_replaced_silently(tmp_path: Path) -> None:
    state = StateDir(tmp_path / ".sandbox")
    state.ensure()
    state.secrets_file.write_text("[1]")
    with pytest.raises(ConfigError, match="secrets.json is corrupt"):
        state.secrets()
    assert state.secrets_file.read_text() == "[1]"  # the database volume was made with the old one


def test_a_brief_api_outage_while_following_is_not_yet_and_a_long_one_is_the_answer() -> None:
    from sandbox.core.follow import tolerating_outages
    from sandbox.errors import AirflowApiError, StackError

    now = [0.0]
    answers: list[object] = []

    def check() -> str:
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return str(answer)

    guarded = tolerating_outages(check, grace=10, clock=lambda: now[0])
    database = AirflowApiError(500, "Database error", method="GET", path="/api/v2/dags/d/dagRuns/r")
    answers += [database, StackError("cannot reach the Airflow API"), NotReady("running"), database]
    for at in (0, 5, 9, 12):  # Postgres restarting, the api-server restarting, then back
        now[0] = at
        with pytest.raises(NotReady):
            guarded()
    answers += [database, "done"]
    now[0] = 21.9  # the outage that began at 12 is still short of the grace
    with pytest.raises(NotReady, match="asking again: Airflow API returned 500"):
        guarded()
    assert guarded() == "done"
    answers += [database, database]
    now[0] = 30
    with pytest.raises(NotReady):
        guarded()
    now[0] = 40  # 10 s of failures in a row: that is the answer
    with pytest.raises(AirflowApiError):
        guarded()
    answers.append(AirflowApiError(404, "run not found"))
    with pytest.raises(AirflowApiError):  # not an outage: at once
        guarded()
