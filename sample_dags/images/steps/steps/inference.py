"""recommend, step 2: item-to-item cosine similarity -> scored candidate items per user."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from steps import common

CANDIDATES = 10


def similarities(users: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, float]]:
    """Cosine similarity of item columns of the user x item weight matrix."""
    dot: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    norm: dict[str, float] = defaultdict(float)
    for items in users.values():
        for i, wi in items.items():
            norm[i] += wi * wi
            for j, wj in items.items():
                if i != j:
                    dot[i][j] += wi * wj
    return {
        i: {j: d / math.sqrt(norm[i] * norm[j]) for j, d in others.items()}
        for i, others in dot.items()
    }


def score(users: Mapping[str, Mapping[str, int]]) -> dict[str, list[list[Any]]]:
    """Top candidates per user: items they have not touched, ranked by weighted similarity."""
    sims = similarities(users)
    result = {}
    for user in sorted(users):
        seen = users[user]
        total = sum(seen.values())
        scores: dict[str, float] = defaultdict(float)
        for i, wi in seen.items():
            for j, s in sims.get(i, {}).items():
                if j not in seen:
                    scores[j] += wi * s / total
        ranked = sorted(scores.items(), key=lambda kv: (-round(kv[1], 6), kv[0]))[:CANDIDATES]
        result[user] = [[item, round(value, 6)] for item, value in ranked]
    return result


def _main(argv: Sequence[str] | None) -> dict[str, Any]:
    args = common.parser(__doc__.splitlines()[0]).parse_args(argv)
    features = common.read_json(args.input)
    scores = score(features["users"])
    common.write_json(args.output, {"date": args.date, "scores": scores})
    tops = [candidates[0][1] for candidates in scores.values() if candidates]
    return {
        "step": "inference",
        "date": args.date,
        "users": len(scores),
        "scored_pairs": sum(len(c) for c in scores.values()),
        "mean_top_score": round(sum(tops) / len(tops), 6) if tops else 0.0,
    }


def main(argv: Sequence[str] | None = None) -> int:
    return common.run(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
