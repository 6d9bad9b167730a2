"""One error hierarchy; the CLI edge turns each into one line (what, why, how to fix) and an exit code."""

from __future__ import annotations

from collections.abc import Sequence


class SandboxError(Exception):
    """Base of every error the CLI reports as a message instead of a traceback."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(SandboxError):
    """The user's input is malformed (a date, a flag combination, an unknown name)."""

    exit_code = 2


class ConfigError(SandboxError):
    """The sandbox configuration (sandbox.toml, kind-config.yaml, compose file) is invalid."""

    exit_code = 2


class PrerequisiteError(SandboxError):
    """Something the host must provide is missing or too small (Docker, memory, a free port)."""


class ToolMissing(PrerequisiteError):
    """An executable the sandbox runs is not installed."""

    def __init__(self, tool: str, *, hint: str | None = None) -> None:
        super().__init__(f"`{tool}` is not installed or not on PATH", hint=hint)
        self.tool = tool


class CommandFailed(SandboxError):
    """An external command exited non-zero; carries what is needed to reproduce it."""

    def __init__(
        self, argv: Sequence[str], returncode: int, stderr: str, *, hint: str | None = None
    ) -> None:
        import shlex

        from sandbox.text import last_line

        tail = last_line(stderr, "(no output)")
        super().__init__(
            f"`{shlex.join(argv)}` failed with exit code {returncode}: {tail}", hint=hint
        )
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr


class WaitTimeout(SandboxError):
    """A poll ran out of time; the message says what was awaited and the last state seen."""


class LockHeld(SandboxError):
    """Another sandbox command holds the state-dir lock."""


class ClusterError(SandboxError):
    """The kind cluster or the Kubernetes API is not in the state the sandbox needs."""


class StackError(SandboxError):
    """The compose stack (Airflow, Postgres, RabbitMQ, Azurite) is not healthy."""


class AirflowApiError(SandboxError):
    """The Airflow REST API answered with a non-2xx status."""

    def __init__(self, status: int, detail: str, *, method: str = "", path: str = "") -> None:
        where = f" ({method} {path})" if method else ""
        super().__init__(f"Airflow API returned {status}{where}: {detail}")
        self.status = status
        self.detail = detail


class ImageBuildError(SandboxError):
    """A task image failed to build."""


class ImageInUse(ImageBuildError):
    """The engine refuses to remove an image a container still uses."""


class DownloadError(SandboxError):
    """A pinned tool could not be downloaded or failed checksum verification."""


class KubeApiError(ClusterError):
    """The Kubernetes API refused a request; `status` is its HTTP status (404: no such object)."""

    def __init__(self, status: int, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class LintFailed(SandboxError):
    """`sandbox lint` (or run-dag's lint step) found violations or import errors."""

    def __init__(self, summary: str, *, hint: str | None = None) -> None:
        super().__init__(
            summary,
            hint=hint or "fix each ✗ line as it says; every rule is explained in docs/aci-rules.md",
        )


class UnknownDag(UsageError):
    """No parsed DAG has that id (the message lists the known ones)."""


class DagImportFailed(SandboxError):
    """The DAG's file fails to import; the message carries Airflow's traceback."""


class RunExists(UsageError):
    """A run for that DAG and logical date exists already (Airflow answered 409)."""
