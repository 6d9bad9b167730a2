"""train_compare_deploy, step 2: dataset -> standardised features, split into train and test.

The split is by row id (every fifth row is test), so it is the same on every run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from steps import common

RAW = ("x1", "x2", "x3")
FEATURES = ("x1", "x2", "x3", "x1_x3")


def raw_features(row: dict[str, Any]) -> list[float]:
    return [row["x1"], row["x2"], row["x3"], row["x1"] * row["x3"]]


def build(rows: list[dict[str, Any]]) -> dict[str, Any]:
    train = [r for r in rows if r["id"] % 5]
    test = [r for r in rows if not r["id"] % 5]
    columns = list(zip(*(raw_features(r) for r in train), strict=True))
    means = [math.fsum(c) / len(c) for c in columns]
    stds = [
        math.sqrt(math.fsum((v - m) ** 2 for v in c) / len(c)) or 1.0
        for c, m in zip(columns, means, strict=True)
    ]

    def encode(part: list[dict[str, Any]]) -> dict[str, list[Any]]:
        return {
            "X": [
                [
                    round((v - m) / s, 6)
                    for v, m, s in zip(raw_features(r), means, stds, strict=True)
                ]
                for r in part
            ],
            "y": [r["y"] for r in part],
        }

    return {
        "features": list(FEATURES),
        "scaling": {
            "mean": [round(m, 6) for m in means],
            "std": [round(s, 6) for s in stds],
        },
        "train": encode(train),
        "test": encode(test),
    }


def _main(argv: Sequence[str] | None) -> dict[str, Any]:
    args = common.parser(__doc__.splitlines()[0]).parse_args(argv)
    dataset = common.read_json(args.input)
    table = build(dataset["rows"])
    common.write_json(args.output, {"date": args.date, **table})
    return {
        "step": "features",
        "date": args.date,
        "features": len(table["features"]),
        "train_rows": len(table["train"]["y"]),
        "test_rows": len(table["test"]["y"]),
    }


def main(argv: Sequence[str] | None = None) -> int:
    return common.run(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
