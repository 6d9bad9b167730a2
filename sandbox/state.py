"""The private state dir `.sandbox/`: generated secrets (0600), kubeconfigs, rendered env files, lock."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import secrets as _secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from sandbox.errors import ConfigError, LockHeld

ADMIN_USER = "admin"


@dataclass(frozen=True)
class Secrets:
    """Generated once per sandbox; never committed, never printed except the admin password."""

    fernet_key: str
    jwt_secret: str
    api_secret_key: str
    admin_password: str
    postgres_password: str
    rabbitmq_password: str

    @classmethod
    def generate(cls) -> Secrets:
        return cls(
            fernet_key=base64.urlsafe_b64encode(os.urandom(32)).decode(),
            jwt_secret=_secrets.token_urlsafe(32),
            api_secret_key=_secrets.token_urlsafe(32),
            admin_password=_secrets.token_urlsafe(12),
            postgres_password=_secrets.token_urlsafe(16),
            rabbitmq_password=_secrets.token_urlsafe(16),
        )


def write_private(path: Path, text: str) -> None:
    """Write a file readable by its owner only, created 0600 from the start (no window)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


def write_private_if_changed(path: Path, text: str) -> bool:
    """write_private unless the file already holds `text` with 0600 rights; True when it wrote
    (an unchanged file keeps its mtime, and the caller knows nothing changed)."""
    try:
        unchanged = path.read_text() == text and not (path.stat().st_mode & 0o077)
    except (OSError, UnicodeDecodeError):
        unchanged = False
    if unchanged:
        return False
    write_private(path, text)
    return True


@dataclass(frozen=True)
class StateDir:
    path: Path

    def ensure(self) -> Path:
        self.path.mkdir(parents=True, exist_ok=True)
        os.chmod(self.path, 0o700)
        gitignore = self.path / ".gitignore"
        if not gitignore.exists():
            gitignore.write_text("*\n")
        return self.path

    @property
    def secrets_file(self) -> Path:
        return self.path / "secrets.json"

    @property
    def admin_kubeconfig(self) -> Path:
        """Cluster-admin kubeconfig (host address); for the user and `sandbox`, never Airflow."""
        return self.path / "kubeconfig-admin"

    @property
    def airflow_kubeconfig(self) -> Path:
        """Service-account kubeconfig with the internal API address; mounted into Airflow."""
        return self.path / "kubeconfig-airflow"

    @property
    def airflow_env_file(self) -> Path:
        return self.path / "airflow.env"

    @property
    def compose_env_file(self) -> Path:
        return self.path / "compose.env"

    @property
    def passwords_file(self) -> Path:
        """SimpleAuthManager's passwords file, pre-seeded so the admin password is ours."""
        return self.path / "simple_auth_manager_passwords.json"

    @property
    def built_images_file(self) -> Path:
        """Every task image ref this sandbox built: what `sandbox prune` may remove from the engine."""
        return self.path / "images-built.json"

    @property
    def stack_record(self) -> Path:
        """How the stack was brought up (mode, name): read by `down` and `status`."""
        return self.path / "stack.json"

    @property
    def stack_fingerprint(self) -> Path:
        """Hash of what compose read at the last healthy `up`: unchanged means only verify."""
        return self.path / "stack.fingerprint"

    @property
    def cluster_record(self) -> Path:
        """The kind cluster this sandbox created (name, state, kind-config hash)."""
        return self.path / "cluster.json"

    @property
    def rendered_kind_config(self) -> Path:
        """kind-config.yaml rendered for the profile: what `kind create` gets."""
        return self.path / "kind-config.rendered.yaml"

    @property
    def tools_dir(self) -> Path:
        return self.path / "tools"

    @property
    def lock_file(self) -> Path:
        return self.path / "lock"

    def secrets(self) -> Secrets:
        """Load the sandbox's secrets, generating and storing them (0600) on first use."""
        self.ensure()
        if self.secrets_file.exists():
            try:
                loaded = Secrets(**json.loads(self.secrets_file.read_text()))
            except (ValueError, TypeError) as exc:
                raise ConfigError(
                    f"{self.secrets_file} is corrupt ({exc})",
                    hint="restore it; the database volume was made with its passwords. Or start over: "
                    "`sandbox down --purge` (removes the database volume too)",
                ) from None
        else:
            loaded = Secrets.generate()
            write_private(self.secrets_file, json.dumps(asdict(loaded), indent=2))
        if not self.passwords_file.exists():
            write_private(self.passwords_file, json.dumps({ADMIN_USER: loaded.admin_password}))
        return loaded

    @contextmanager
    def lock(self, command: str) -> Iterator[None]:
        """Exclusive lock so two `up`/`down` cannot race; fails at once if held."""
        self.ensure()
        handle = open(self.lock_file, "a+")
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another sandbox command"
                raise LockHeld(
                    f"the sandbox is busy: {holder} holds {self.lock_file}",
                    hint="wait for it to finish (or stop it), then run this again",
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"`sandbox {command}` (pid {os.getpid()})")
            handle.flush()
            yield
        finally:
            handle.close()
