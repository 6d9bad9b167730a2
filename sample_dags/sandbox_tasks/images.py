"""Which image a pod task runs: the same DAG code on the laptop and on AKS.

Imported by DAG files inside the official Airflow containers, where the `sandbox` package is not
installed: standard library only. Nothing here touches Airflow's Variables or database: DAG files
are parsed often, under a timeout, and Airflow's best practices forbid Variable access at parse
time (in the containerised dag-processor it stalled the manager past the 30-s DagBag import
timeout). Production Variables are read when the task runs, through a Jinja template in the
operator's `image`, which KubernetesPodOperator templates (`template_fields` starts with "image"
in airflow/providers/cncf/kubernetes/operators/pod.py).

Resolution, first match wins:
1. production by environment: TASK_IMAGE_REGISTRY (e.g. `myacr.azurecr.io/ml`) and
   TASK_IMAGE_TAG (e.g. `2024.06.1`) give `<registry>/<name>:<tag>`;
2. the sandbox: `.sandbox-images.json` next to this package (written by `sandbox build` into the
   DAG folder, gitignored) gives the tag built from the image's current sources; `sandbox lint`
   points SANDBOX_TASK_IMAGE_RECORD at a record of the tags a build would produce, so a DAG
   folder lints before anything is built;
3. a sandbox without a record: with a cluster (SANDBOX_CLUSTER=kind) the image is missing, an
   import error names the build command; without one (`sandbox up --stack-only`, SANDBOX_CLUSTER
   =none) pod tasks are refused when they run, so any name does: `<name>:not-built`;
4. production by Airflow Variables `task_image_registry` and `task_image_tag`, rendered when the
   task runs: `{{ var.value.task_image_registry }}/<name>:{{ var.value.task_image_tag }}`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

REGISTRY_ENV = "TASK_IMAGE_REGISTRY"
TAG_ENV = "TASK_IMAGE_TAG"
REGISTRY_VARIABLE = "task_image_registry"
TAG_VARIABLE = "task_image_tag"
RECORD_ENV = "SANDBOX_TASK_IMAGE_RECORD"
RECORD_FILE = Path(__file__).resolve().parent.parent / ".sandbox-images.json"
# Set by `sandbox up` for every Airflow process: "kind" with a cluster, "none" with --stack-only.
CLUSTER_ENV = "SANDBOX_CLUSTER"
NOT_BUILT_TAG = "not-built"


class TaskImageNotFound(LookupError):
    """The image cannot be resolved: never built in the sandbox, or production not configured."""


def _production(registry: str | None, tag: str | None, source: str) -> tuple[str, str] | None:
    if not registry and not tag:
        return None
    if not (registry and tag):
        given, missing = ("registry", "tag") if registry else ("tag", "registry")
        raise TaskImageNotFound(f"{source}: the image {given} is set but not the {missing}; set both")
    return registry.rstrip("/"), tag


def _record_file() -> Path:
    override = os.environ.get(RECORD_ENV)
    return Path(override) if override else RECORD_FILE


def _sandbox_record() -> dict[str, dict[str, str]] | None:
    record_file = _record_file()
    try:
        return dict(json.loads(record_file.read_text()).get("images") or {})
    except FileNotFoundError:
        return None
    except (ValueError, AttributeError) as exc:
        raise TaskImageNotFound(f"{record_file} is unreadable ({exc}): run `sandbox build`") from exc


def in_sandbox() -> bool:
    """True when images come from the sandbox's local build (no production settings in env)."""
    return not os.environ.get(REGISTRY_ENV) and _record_file().is_file()


def task_image(name: str) -> str:
    """The image reference for the task image built from `images/<name>/` (maybe a template
    Airflow renders when the task runs)."""
    env = _production(os.environ.get(REGISTRY_ENV), os.environ.get(TAG_ENV), f"{REGISTRY_ENV}/{TAG_ENV}")
    if env:
        return f"{env[0]}/{name}:{env[1]}"
    record = _sandbox_record()
    if record is not None:
        entry = record.get(name)
        if entry and entry.get("image"):
            return entry["image"]
        built = ", ".join(sorted(record)) or "none"
        raise TaskImageNotFound(
            f"task image {name!r} has not been built in the sandbox (built: {built}): "
            f"run `sandbox build {name}`"
        )
    cluster = os.environ.get(CLUSTER_ENV)
    if cluster == "none":
        return f"{name}:{NOT_BUILT_TAG}"
    if cluster:
        raise TaskImageNotFound(f"task image {name!r} has not been built in the sandbox: run `sandbox build {name}`")
    return f"{{{{ var.value.{REGISTRY_VARIABLE} }}}}/{name}:{{{{ var.value.{TAG_VARIABLE} }}}}"


def task_image_pull_policy() -> str | None:
    """IfNotPresent in the sandbox (images are loaded into kind, there is no registry to pull
    from); None in production, leaving Kubernetes' default for a non-latest tag (also
    IfNotPresent) and no field that ACI would ignore anyway."""
    return "IfNotPresent" if in_sandbox() else None
