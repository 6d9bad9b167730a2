"""What every step shares: the CLI contract, blob paths, blob IO, the metrics line.

A step reads `--input` and writes `--output`, both `<container>/<blob path>`; same date and
same input give byte-identical output (sorted JSON keys, rounded floats, overwrite), so a
rerun for a date is harmless. The connection string comes from AZURE_STORAGE_CONNECTION_STRING
(a Kubernetes Secret in the pod, Azurite's in the sandbox, a real account on Azure).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient

CONNECTION_ENV = "AZURE_STORAGE_CONNECTION_STRING"


class StepError(Exception):
    """A failure the step reports as one line on stderr with exit code 1."""


@dataclass(frozen=True)
class BlobPath:
    """`<container>/<name>`; a name ending in `/` is a folder of blobs."""

    container: str
    name: str

    @classmethod
    def parse(cls, text: str) -> BlobPath:
        container, _, name = text.strip().lstrip("/").partition("/")
        if not container or not name:
            raise argparse.ArgumentTypeError(f"{text!r} is not <container>/<blob path>")
        return cls(container, name)

    def child(self, name: str) -> BlobPath:
        return BlobPath(self.container, self.name.rstrip("/") + "/" + name)

    def __str__(self) -> str:
        return f"{self.container}/{self.name}"


def parse_date(text: str) -> str:
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a YYYY-MM-DD date") from exc


def parser(description: str) -> argparse.ArgumentParser:
    """The contract every step shares: --date, --input, --output."""
    cli = argparse.ArgumentParser(description=description)
    cli.add_argument("--date", required=True, type=parse_date, help="run date, YYYY-MM-DD")
    cli.add_argument("--input", required=True, type=BlobPath.parse, help="<container>/<path>")
    cli.add_argument("--output", required=True, type=BlobPath.parse, help="<container>/<path>")
    return cli


@lru_cache(maxsize=1)
def service() -> BlobServiceClient:
    from azure.storage.blob import BlobServiceClient

    # The SDK logs every request at INFO: keep it off stdout even where logging is configured.
    logging.getLogger("azure").setLevel(logging.WARNING)
    connection = os.environ.get(CONNECTION_ENV)
    if not connection:
        raise StepError(f"{CONNECTION_ENV} is not set: the step cannot reach blob storage")
    return BlobServiceClient.from_connection_string(connection)


def read_bytes(path: BlobPath) -> bytes | None:
    """The blob's content, or None when it (or its container) does not exist."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return service().get_blob_client(path.container, path.name).download_blob().readall()
    except ResourceNotFoundError:
        return None


def write_bytes(path: BlobPath, data: bytes) -> None:
    from azure.core.exceptions import ResourceExistsError

    container = service().get_container_client(path.container)
    try:
        container.create_container()
    except ResourceExistsError:
        pass
    container.upload_blob(path.name, data, overwrite=True)


def dumps(value: Any) -> bytes:
    return (json.dumps(value, sort_keys=True, separators=(",", ":")) + "\n").encode()


def read_rows_or_seed(
    path: BlobPath, date: str, what: str, seed: Callable[[str], list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """The JSON-lines input of a first step; on a fresh sandbox, seed it deterministically for
    the date (and store it, so reruns and later steps read the same rows)."""
    raw = read_bytes(path)
    if raw is not None:
        return [json.loads(line) for line in raw.decode().splitlines() if line.strip()]
    note(f"{path} does not exist: seeding synthetic {what} for {date}")
    rows = seed(date)
    write_bytes(path, b"".join(dumps(row) for row in rows))
    return rows


def read_json(path: BlobPath) -> Any:
    data = read_bytes(path)
    if data is None:
        raise StepError(f"input {path} does not exist: did the previous step run for this date?")
    return json.loads(data)


def write_json(path: BlobPath, value: Any) -> None:
    write_bytes(path, dumps(value))


def run(main: Callable[[Sequence[str] | None], dict[str, Any]], argv: Sequence[str] | None) -> int:
    """Run a step body; print its metrics as one JSON line, or one error line and exit 1."""
    try:
        metrics = main(argv)
    except StepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(metrics, sort_keys=True), flush=True)
    return 0


def note(message: str) -> None:
    """Progress for humans goes to stderr; stdout carries only the metrics line."""
    print(message, file=sys.stderr, flush=True)
