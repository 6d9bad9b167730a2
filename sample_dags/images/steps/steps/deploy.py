"""train_compare_deploy, step 4: publish the chosen model where serving picks it up.

`--input` is the model's folder (model.json, metrics.json); `--output` the deployment record.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from steps import common


def _main(argv: Sequence[str] | None) -> dict[str, Any]:
    args = common.parser(__doc__.splitlines()[0]).parse_args(argv)
    model = common.read_json(args.input.child("model.json"))
    metrics = common.read_json(args.input.child("metrics.json"))
    if model["date"] != args.date:
        raise common.StepError(f"{args.input} holds a model for {model['date']}, not {args.date}")
    record = {
        "date": args.date,
        "model": model["model"],
        "source": str(args.input),
        "metrics": {k: v for k, v in metrics.items() if k not in ("date", "model")},
        "artifact": model,
    }
    common.write_json(args.output, record)
    return {"step": "deploy", "date": args.date, "model": model["model"], **record["metrics"]}


def main(argv: Sequence[str] | None = None) -> int:
    return common.run(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
