"""train_compare_deploy, step 1: the day's raw measurements -> a clean dataset.

When the day's raw measurements do not exist yet (a fresh sandbox), the step first seeds them:
synthetic, drawn from a generator seeded by the date. The target depends on an interaction
(x1 * x3), which only model b can express, so the comparison has a meaningful winner.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from steps import common

ROWS = 300
FIELDS = ("x1", "x2", "x3", "y")


def synthetic_measurements(date: str) -> list[dict[str, Any]]:
    rng = random.Random(f"train_compare_deploy/measurements/{date}")
    rows = []
    for n in range(ROWS):
        x1, x2, x3 = (round(rng.random(), 4) for _ in range(3))
        y = 3 * x1 - 2 * x2 + 4 * x1 * x3 + rng.gauss(0, 0.1)
        row: dict[str, Any] = {"id": n, "x1": x1, "x2": x2, "x3": x3, "y": round(y, 4)}
        if rng.random() < 0.03:  # sensors fail now and then
            row[rng.choice(FIELDS)] = None
        rows.append(row)
    return rows


def clean(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with every field present, ordered by id."""
    complete = [r for r in rows if all(isinstance(r.get(f), int | float) for f in FIELDS)]
    return sorted(complete, key=lambda r: r["id"])


def _main(argv: Sequence[str] | None) -> dict[str, Any]:
    args = common.parser(__doc__.splitlines()[0]).parse_args(argv)
    rows = common.read_rows_or_seed(args.input, args.date, "measurements", synthetic_measurements)
    dataset = clean(rows)
    common.write_json(args.output, {"date": args.date, "rows": dataset})
    return {
        "step": "extract",
        "date": args.date,
        "rows_in": len(rows),
        "rows_out": len(dataset),
        "dropped": len(rows) - len(dataset),
    }


def main(argv: Sequence[str] | None = None) -> int:
    return common.run(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
