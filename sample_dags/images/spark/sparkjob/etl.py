"""spark_etl's PySpark job: a day of orders -> units and revenue per store and category.

    spark-submit etl.py --date 2021-12-01 --input sandbox/spark_etl/2021-12-01/raw/orders.jsonl \
        --output sandbox/spark_etl/2021-12-01/ [--fail true]

Blob storage is read and written by the driver with the azure-storage-blob SDK; Spark does the
computation (createDataFrame ships the rows to the executors, the aggregate comes back to the
driver). So the image needs no Hadoop Azure connector jars (docs/spark.md, "Blob storage", says
when to switch to `abfss://` paths instead). Same date and input give byte-identical outputs:
integer cents, sorted rows, no timestamps. When the day's orders do not exist (a fresh sandbox),
they are seeded: synthetic, drawn from a generator seeded by the date.

stdout carries one JSON line of metrics; errors are one `error: ...` line on stderr, exit 1.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import logging
import os
import random
import sys
from collections.abc import Sequence
from typing import Any

CONNECTION_ENV = "AZURE_STORAGE_CONNECTION_STRING"
STORES = 8
CATEGORIES = ("books", "garden", "games", "kitchen", "toys")
ORDERS = 2000
RESULT = "sales_by_store_category.csv"
SUMMARY = "summary.json"
COLUMNS = ("store", "category", "orders", "units", "revenue_cents")


class JobError(Exception):
    """A failure reported as one line on stderr with exit code 1."""


def synthetic_orders(date: str) -> list[dict[str, Any]]:
    """A day of orders: some stores and categories sell more (fixed weights), seeded by date."""
    rng = random.Random(f"spark_etl/orders/{date}")
    stores = [f"s{n:02d}" for n in range(STORES)]
    return [
        {
            "order_id": f"{date}-{n:05d}",
            "store": rng.choices(stores, weights=range(STORES, 0, -1))[0],
            "category": rng.choices(CATEGORIES, weights=(5, 2, 3, 4, 1))[0],
            "quantity": rng.randint(1, 5),
            "unit_price_cents": rng.randrange(199, 5000, 25),
        }
        for n in range(ORDERS)
    ]


def _blob_path(text: str) -> tuple[str, str]:
    container, _, name = text.strip().lstrip("/").partition("/")
    if not container or not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not <container>/<blob path>")
    return container, name


def _date(text: str) -> str:
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a YYYY-MM-DD date") from exc


class Blobs:
    """The few blob operations the job needs, through the SDK."""

    def __init__(self) -> None:
        from azure.storage.blob import BlobServiceClient

        logging.getLogger("azure").setLevel(logging.WARNING)
        connection = os.environ.get(CONNECTION_ENV)
        if not connection:
            raise JobError(f"{CONNECTION_ENV} is not set: the job cannot reach blob storage")
        self.service = BlobServiceClient.from_connection_string(connection)

    def read(self, path: tuple[str, str]) -> bytes | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return self.service.get_blob_client(*path).download_blob().readall()
        except ResourceNotFoundError:
            return None

    def write(self, path: tuple[str, str], data: bytes) -> None:
        from azure.core.exceptions import ResourceExistsError

        container = self.service.get_container_client(path[0])
        try:
            container.create_container()
        except ResourceExistsError:
            pass
        container.upload_blob(path[1], data, overwrite=True)


def read_orders(blobs: Blobs, path: tuple[str, str], date: str) -> list[dict[str, Any]]:
    raw = blobs.read(path)
    if raw is not None:
        return [json.loads(line) for line in raw.decode().splitlines() if line.strip()]
    print(f"{'/'.join(path)} does not exist: seeding synthetic orders for {date}", file=sys.stderr)
    rows = synthetic_orders(date)
    blobs.write(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode())
    return rows


def aggregate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Spark part: group the orders by store and category, sorted."""
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F
    from pyspark.sql.types import IntegerType, StringType, StructField, StructType

    # A day of orders is small: a few shuffle partitions instead of Spark's default 200.
    spark = (
        SparkSession.builder.appName("spark_etl")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("WARN")
    schema = StructType(
        [
            StructField("order_id", StringType(), False),
            StructField("store", StringType(), False),
            StructField("category", StringType(), False),
            StructField("quantity", IntegerType(), False),
            StructField("unit_price_cents", IntegerType(), False),
        ]
    )
    try:
        orders = spark.createDataFrame([tuple(r[f.name] for f in schema.fields) for r in rows], schema)
        grouped = (
            orders.groupBy("store", "category")
            .agg(
                F.count("*").alias("orders"),
                F.sum("quantity").alias("units"),
                F.sum(F.col("quantity").cast("long") * F.col("unit_price_cents")).alias("revenue_cents"),
            )
            .orderBy("store", "category")
        )
        return [{c: row[c] for c in COLUMNS} for row in grouped.collect()]
    finally:
        spark.stop()


def to_csv(groups: list[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(groups)
    return out.getvalue().encode()


def run(argv: Sequence[str] | None) -> dict[str, Any]:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--date", required=True, type=_date)
    cli.add_argument("--input", required=True, type=_blob_path, help="<container>/<orders.jsonl>")
    cli.add_argument("--output", required=True, type=_blob_path, help="<container>/<folder>/")
    cli.add_argument(
        "--fail", choices=("true", "false"), default="false", help="fail after reading the input"
    )
    args = cli.parse_args(argv)
    blobs = Blobs()
    rows = read_orders(blobs, args.input, args.date)
    if args.fail == "true":
        raise JobError(f"failing on purpose (--fail true) after reading {len(rows)} orders")
    groups = aggregate(rows)
    folder = args.output[1].rstrip("/")
    revenue = sum(g["revenue_cents"] for g in groups)
    by_store: dict[str, int] = {}
    for g in groups:
        by_store[g["store"]] = by_store.get(g["store"], 0) + g["revenue_cents"]
    summary = {
        "date": args.date,
        "orders": len(rows),
        "groups": len(groups),
        "revenue_cents": revenue,
        "top_store": min(by_store, key=lambda s: (-by_store[s], s)) if by_store else None,
    }
    blobs.write((args.output[0], f"{folder}/{RESULT}"), to_csv(groups))
    blobs.write((args.output[0], f"{folder}/{SUMMARY}"), (json.dumps(summary, sort_keys=True) + "\n").encode())
    return {"step": "spark_etl", **summary}


def main(argv: Sequence[str] | None = None) -> int:
    try:
        metrics = run(argv)
    except JobError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    print(json.dumps(metrics, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
