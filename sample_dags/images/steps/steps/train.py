"""train_compare_deploy, step 3: fit one candidate model, score it on the test split.

`--model a`: linear in x1, x2, x3. `--model b`: the same plus the x1*x3 interaction.
`--output` is a folder: model.json (weights) and metrics.json (what `compare` reads).
Ridge regression solved exactly (normal equations), so the result is deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from steps import common

MODELS = {"a": ("x1", "x2", "x3"), "b": ("x1", "x2", "x3", "x1_x3")}
RIDGE = 1e-3


def solve(a: list[list[float]], b: list[float]) -> list[float]:
    """Gauss-Jordan elimination with partial pivoting (the systems here are 5x5 at most)."""
    n = len(b)
    m = [row[:] + [b[i]] for i, row in enumerate(a)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(m[r][col]))
        m[col], m[pivot] = m[pivot], m[col]
        for r in range(n):
            if r != col:
                factor = m[r][col] / m[col][col]
                m[r] = [x - factor * y for x, y in zip(m[r], m[col], strict=True)]
    return [m[i][n] / m[i][i] for i in range(n)]


def fit(x: list[list[float]], y: list[float]) -> list[float]:
    """Weights (bias last) minimising squared error + RIDGE * |w|^2."""
    rows = [r + [1.0] for r in x]
    k = len(rows[0])
    xtx = [
        [math.fsum(r[i] * r[j] for r in rows) + (RIDGE if i == j else 0.0) for j in range(k)]
        for i in range(k)
    ]
    xty = [math.fsum(r[i] * t for r, t in zip(rows, y, strict=True)) for i in range(k)]
    return solve(xtx, xty)


def predict(weights: Sequence[float], x: Sequence[float]) -> float:
    return math.fsum(w * v for w, v in zip(weights, [*x, 1.0], strict=True))


def evaluate(weights: Sequence[float], x: list[list[float]], y: list[float]) -> dict[str, float]:
    errors = [predict(weights, r) - t for r, t in zip(x, y, strict=True)]
    mean = math.fsum(y) / len(y)
    ss_res = math.fsum(e * e for e in errors)
    ss_tot = math.fsum((t - mean) ** 2 for t in y)
    return {"rmse": round(math.sqrt(ss_res / len(y)), 6), "r2": round(1 - ss_res / ss_tot, 6)}


def _main(argv: Sequence[str] | None) -> dict[str, Any]:
    cli = common.parser(__doc__.splitlines()[0])
    cli.add_argument("--model", required=True, choices=sorted(MODELS))
    args = cli.parse_args(argv)
    table = common.read_json(args.input)
    columns = [table["features"].index(name) for name in MODELS[args.model]]

    def select(part: dict[str, Any]) -> list[list[float]]:
        return [[row[c] for c in columns] for row in part["X"]]

    weights = fit(select(table["train"]), table["train"]["y"])
    metrics = {"model": args.model, **evaluate(weights, select(table["test"]), table["test"]["y"])}
    common.write_json(
        args.output.child("model.json"),
        {
            "date": args.date,
            "model": args.model,
            "features": list(MODELS[args.model]),
            "weights": [round(w, 6) for w in weights[:-1]],
            "bias": round(weights[-1], 6),
            "scaling": table["scaling"],
        },
    )
    common.write_json(args.output.child("metrics.json"), {"date": args.date, **metrics})
    return {"step": "train", "date": args.date, "train_rows": len(table["train"]["y"]), **metrics}


def main(argv: Sequence[str] | None = None) -> int:
    return common.run(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
