"""recommend, step 1: raw interactions of a day -> per-user item weights.

When the day's raw interactions do not exist yet (a fresh sandbox), the step first seeds them:
synthetic, drawn from a generator seeded by the date, so every run for a date sees the same data.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from steps import common

USERS = 40
ITEMS = 25
EVENT_WEIGHTS = {"view": 1, "click": 3, "purchase": 5}


def synthetic_interactions(date: str) -> list[dict[str, str]]:
    """A day of interactions: popular items are drawn more often (Zipf-like weights)."""
    rng = random.Random(f"recommend/interactions/{date}")
    items = [f"i{n:03d}" for n in range(ITEMS)]
    popularity = [1.0 / (rank + 1) for rank in range(ITEMS)]
    events = list(EVENT_WEIGHTS)
    rows = []
    for u in range(USERS):
        for _ in range(rng.randint(3, 12)):
            rows.append(
                {
                    "user": f"u{u:03d}",
                    "item": rng.choices(items, weights=popularity)[0],
                    "event": rng.choices(events, weights=(70, 25, 5))[0],
                }
            )
    return rows


def item_weights(rows: list[dict[str, str]]) -> dict[str, dict[str, int]]:
    weights: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in rows:
        weights[row["user"]][row["item"]] += EVENT_WEIGHTS.get(row["event"], 0)
    return {user: dict(items) for user, items in weights.items()}


def _main(argv: Sequence[str] | None) -> dict[str, Any]:
    args = common.parser(__doc__.splitlines()[0]).parse_args(argv)
    rows = common.read_rows_or_seed(args.input, args.date, "interactions", synthetic_interactions)
    users = item_weights(rows)
    common.write_json(args.output, {"date": args.date, "users": users})
    return {
        "step": "preprocess",
        "date": args.date,
        "interactions": len(rows),
        "users": len(users),
        "items": len({item for items in users.values() for item in items}),
    }


def main(argv: Sequence[str] | None = None) -> int:
    return common.run(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
