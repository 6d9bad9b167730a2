"""tests/e2e_summary.py, which writes the GitHub Actions job summary: it reads the step lines the
real RichReporter prints (wrapped as on a CI log), docker stats' memory format, and renders the
tables with the issue's goals."""

from __future__ import annotations

import io

import pytest
from e2e_summary import Step, main, markdown, mem_usage_bytes, up_steps
from rich.console import Console

from sandbox.cli.console import RichReporter


def reporter_output(width: int) -> str:
    """What `sandbox up` prints to a non-terminal stderr (GitHub Actions' log) for three steps."""
    buffer = io.StringIO()
    reporter = RichReporter(Console(file=buffer, width=width, force_terminal=False, highlight=False))
    with reporter.step("kind cluster sandbox"):
        reporter.info("created with kind-config.yaml")
    long_name = "load docker.io/library/recommend:0123456789ab into sandbox-worker, sandbox-worker2"
    with reporter.step(long_name):
        pass
    with pytest.raises(RuntimeError), reporter.step("compose stack healthy"):
        raise RuntimeError("boom")
    return buffer.getvalue()


@pytest.mark.parametrize("width", [80, 200])
def test_up_steps_are_read_from_the_real_reporter_output(width: int) -> None:
    steps = up_steps(reporter_output(width))
    assert [(s.name, s.ok) for s in steps] == [
        ("kind cluster sandbox", True),
        ("load docker.io/library/recommend:0123456789ab into sandbox-worker, sandbox-worker2", True),
        ("compose stack healthy", False),
    ]
    assert all(0 <= s.seconds < 5 for s in steps)


def test_lines_that_are_not_steps_are_ignored() -> None:
    assert up_steps("Collecting rich\n  created with kind\n✓ nothing to time\n") == []


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1.5GiB / 15.61GiB", int(1.5 * 2**30)),
        ("512MiB / 7.75GiB", 512 * 2**20),
        ("1023KiB / 1GiB", 1023 * 2**10),
        ("0B / 0B", 0),
        ("37.45MiB", round(37.45 * 2**20)),  # Windows containers: no limit part
    ],
)
def test_docker_stats_memory(text: str, size: int) -> None:
    assert mem_usage_bytes(text) == size


def test_unreadable_memory_is_an_error() -> None:
    with pytest.raises(ValueError, match="unreadable docker stats memory"):
        mem_usage_bytes("-- / --")


def test_markdown_names_every_step_both_runs_and_the_goals() -> None:
    cold = [Step("kind cluster sandbox", 61.0, True), Step("task images", 40.2, True)]
    warm = [Step("kind cluster sandbox", 0.4, True)]
    text = markdown(
        {"cold": (cold, 412.0), "warm": (warm, 48.0)},
        {"sandbox-control-plane": 900 * 10**6, "sandbox-postgres-1": 80 * 10**6},
    )
    assert "| step | cold | warm |" in text
    assert "| kind cluster sandbox | 61.0 s | 0.4 s |" in text
    assert "| task images | 40.2 s | – |" in text
    assert "| **wall time of the command** | **412 s** | **48 s** |" in text
    assert "Warm `up`: 48 s (goal < 60 s: met)." in text
    assert "| **whole stack** | **980 MB** |" in text and "Goal < 3,000 MB: met." in text
    slow = markdown({"warm": ([], 75.0)}, {"n": 3_500 * 10**6})
    assert "goal < 60 s: **missed**" in slow and "Goal < 3,000 MB: **missed**" in slow


def test_render_reads_the_files_the_workflow_writes(tmp_path, capsys) -> None:
    (tmp_path / "up-cold.log").write_text(reporter_output(80), encoding="utf-8")
    (tmp_path / "up-cold.seconds").write_text("431\n")
    (tmp_path / "up-warm.log").write_text("✓ kind cluster sandbox (0.3s)\n", encoding="utf-8")
    # no up-warm.seconds: the warm `up` failed before the workflow wrote it
    (tmp_path / "memory.json").write_text('{"sandbox-worker": 700000000}\n')
    assert main(["render", "--up", f"cold={tmp_path}/up-cold", "--up", f"warm={tmp_path}/up-warm",
                 "--memory", str(tmp_path / "memory.json")]) == 0
    text = capsys.readouterr().out
    assert "| compose stack healthy | 0.0 s ✗ | – |" in text
    assert "| **wall time of the command** | **431 s** | – |" in text
    assert "| sandbox-worker | 700 MB |" in text
