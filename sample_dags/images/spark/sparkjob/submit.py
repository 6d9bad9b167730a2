"""The submit pod's command: spark-submit in cluster mode, then the driver's coordinates as XCom.

    python3 -m sparkjob.submit --xcom /airflow/xcom/return.json -- <spark-submit arguments>

1. Pod templates: for each `--conf spark.kubernetes.{driver,executor}.podTemplateFile=PATH`, the
   template comes from the environment variable SPARK_{DRIVER,EXECUTOR}_POD_TEMPLATE (JSON, which
   is also YAML) and is written to PATH. The DAG builds the templates, so `sandbox lint` checks
   them like any pod; no ConfigMap has to be managed.
2. `$SPARK_HOME/bin/spark-submit <arguments>`: with
   spark.kubernetes.submission.waitAppCompletion=false it returns once the driver pod exists.
3. `{"driver_pod", "namespace", "submission_id"}` to the XCom file KubernetesPodOperator reads
   (do_xcom_push=True). Spark's submission id is `<namespace>:<driver pod name>` (Spark's
   Client.submissionId; docs/running-on-kubernetes.md "Spark Application Management").

The driver pod name and namespace are taken from the confs (spark.kubernetes.driver.pod.name,
spark.kubernetes.namespace): the DAG names the driver, so the name is known before submitting.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

TEMPLATE_ENV = {
    "spark.kubernetes.driver.podTemplateFile": "SPARK_DRIVER_POD_TEMPLATE",
    "spark.kubernetes.executor.podTemplateFile": "SPARK_EXECUTOR_POD_TEMPLATE",
}


class SubmitError(Exception):
    """Bad arguments or a failed submission: one `error:` line, non-zero exit."""


def confs(arguments: Sequence[str]) -> dict[str, str]:
    """The `--conf key=value` pairs of a spark-submit command line (last one wins, as in Spark)."""
    found: dict[str, str] = {}
    items = iter(arguments)
    for item in items:
        if item == "--conf":
            key, sep, value = next(items, "").partition("=")
        elif item.startswith("--conf="):
            key, sep, value = item.removeprefix("--conf=").partition("=")
        else:
            continue
        if not sep:
            raise SubmitError(f"--conf {key!r} has no '=': write --conf key=value")
        found[key] = value
    return found


def coordinates(conf: dict[str, str]) -> dict[str, str]:
    """What the sensor needs: the driver pod, its namespace and Spark's submission id."""
    missing = [k for k in ("spark.kubernetes.driver.pod.name", "spark.kubernetes.namespace") if not conf.get(k)]
    if missing:
        raise SubmitError(f"set {' and '.join(missing)}: the driver must be known before submitting")
    if conf.get("spark.kubernetes.submission.waitAppCompletion", "true").lower() != "false":
        raise SubmitError(
            "set spark.kubernetes.submission.waitAppCompletion=false: the sensor follows the driver"
        )
    pod, namespace = conf["spark.kubernetes.driver.pod.name"], conf["spark.kubernetes.namespace"]
    return {"driver_pod": pod, "namespace": namespace, "submission_id": f"{namespace}:{pod}"}


def write_templates(conf: dict[str, str], environ: dict[str, str]) -> list[Path]:
    written = []
    for key, env in TEMPLATE_ENV.items():
        if key not in conf:
            continue
        text = environ.get(env)
        if not text:
            raise SubmitError(f"{key} is set but {env} is empty: the DAG passes the template there")
        path = Path(conf[key])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--xcom", required=True, type=Path, help="where KubernetesPodOperator reads XCom")
    cli.add_argument("spark_submit", nargs=argparse.REMAINDER, help="-- then spark-submit's arguments")
    args = cli.parse_args(argv)
    arguments = args.spark_submit[1:] if args.spark_submit[:1] == ["--"] else args.spark_submit
    try:
        conf = confs(arguments)
        result = coordinates(conf)
        write_templates(conf, dict(os.environ))
        command = [os.path.join(os.environ.get("SPARK_HOME", "/opt/spark"), "bin", "spark-submit"), *arguments]
        print("+ " + " ".join(command), file=sys.stderr, flush=True)
        code = subprocess.run(command, check=False).returncode
        if code != 0:
            raise SubmitError(f"spark-submit exited with {code} (its output is above)")
    except SubmitError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    args.xcom.parent.mkdir(parents=True, exist_ok=True)
    args.xcom.write_text(json.dumps(result, sort_keys=True))
    print(json.dumps(result, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
