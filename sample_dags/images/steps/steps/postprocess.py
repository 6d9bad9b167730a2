"""recommend, step 3: candidates -> the day's top-N recommendations as CSV, the deliverable."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

from steps import common

TOP_N = 5


def to_csv(date: str, scores: Mapping[str, Sequence[Sequence[Any]]]) -> tuple[str, int, int]:
    """CSV text, row count and the number of distinct items recommended."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["date", "user", "rank", "item", "score"])
    rows, items = 0, set()
    for user in sorted(scores):
        for rank, (item, value) in enumerate(scores[user][:TOP_N], start=1):
            writer.writerow([date, user, rank, item, f"{value:.6f}"])
            rows += 1
            items.add(item)
    return out.getvalue(), rows, len(items)


def _main(argv: Sequence[str] | None) -> dict[str, Any]:
    args = common.parser(__doc__.splitlines()[0]).parse_args(argv)
    scored = common.read_json(args.input)
    text, rows, distinct = to_csv(args.date, scored["scores"])
    common.write_bytes(args.output, text.encode())
    return {
        "step": "postprocess",
        "date": args.date,
        "rows": rows,
        "users": len(scored["scores"]),
        "distinct_items": distinct,
    }


def main(argv: Sequence[str] | None = None) -> int:
    return common.run(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
