"""Example step: compute a few numbers for one date and print them as one JSON line."""

from __future__ import annotations

import argparse
import json
import random
import statistics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--date", required=True, help="the run's logical date (YYYY-MM-DD)")
    args = parser.parse_args()
    rng = random.Random(args.date)  # the same numbers for the same date: a rerun is idempotent
    values = [rng.gauss(100, 15) for _ in range(1000)]
    print(json.dumps({"date": args.date, "rows": len(values), "mean": round(statistics.fmean(values), 3)}))


if __name__ == "__main__":
    main()
