"""The one way the sandbox runs a subprocess: argv lists, logged copy-pasteable, typed failures."""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sandbox.errors import CommandFailed, ToolMissing

log = logging.getLogger("sandbox.proc")


@dataclass(frozen=True)
class Completed:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str


# What every adapter that runs a command takes: `run` itself, or a test's recording fake.
Runner = Callable[..., Completed]


def command_line(argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    """A shell line that reproduces the call, environment overrides first."""
    prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted((env or {}).items()))
    return f"{prefix} {shlex.join(argv)}".strip()


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    input: str | None = None,
    check: bool = True,
    timeout: float | None = None,
    on_line: Callable[[str], None] | None = None,
    inherit_stdio: bool = False,
) -> Completed:
    """Run argv; with `on_line`, stream merged output line by line while it runs; with
    `inherit_stdio`, hand it this terminal (an interactive command; nothing is captured).

    `env` holds overrides on top of os.environ. Raises ToolMissing when the executable is
    absent and CommandFailed on a non-zero exit when `check` is true.
    """
    argv = [str(a) for a in argv]
    log.debug("$ %s", command_line(argv, env))
    full_env = {**os.environ, **env} if env else None
    try:
        if inherit_stdio:
            attached = subprocess.run(argv, env=full_env, cwd=cwd, timeout=timeout)
            result = Completed(argv, attached.returncode, "", "")
        elif on_line is None:
            proc = subprocess.run(
                argv,
                env=full_env,
                cwd=cwd,
                input=input,
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=None if input is not None else subprocess.DEVNULL,
            )
            result = Completed(argv, proc.returncode, proc.stdout, proc.stderr)
        else:
            result = _run_streaming(argv, full_env, cwd, input, timeout, on_line)
    except FileNotFoundError as exc:
        if exc.filename in (argv[0], None):
            raise ToolMissing(argv[0]) from exc
        raise
    except subprocess.TimeoutExpired as exc:
        raise CommandFailed(argv, -1, f"timed out after {timeout:.0f}s") from exc
    if check and result.returncode != 0:
        raise CommandFailed(argv, result.returncode, result.stderr or result.stdout)
    return result


def _run_streaming(
    argv: list[str],
    env: Mapping[str, str] | None,
    cwd: Path | str | None,
    input: str | None,
    timeout: float | None,
    on_line: Callable[[str], None],
) -> Completed:
    proc = subprocess.Popen(
        argv,
        env=env,
        cwd=cwd,
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    lines: list[str] = []
    timer = threading.Timer(timeout, proc.kill) if timeout else None
    if timer:
        timer.start()
    try:
        if input is not None and proc.stdin:
            proc.stdin.write(input)
            proc.stdin.close()
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            lines.append(line)
            on_line(line)
        returncode = proc.wait()
    finally:
        if timer:
            timer.cancel()
    output = "\n".join(lines)
    return Completed(argv, returncode, output, output)
