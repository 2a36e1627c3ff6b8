"""Measure the mongo-java-server limits that scripts/infra/README.md tells the code to design for.

    .venv/bin/python scripts/infra/mongo-server/measure_limits.py [MONGO_URI] [DOCS]

Defaults: mongodb://127.0.0.1:27017/ and 50,000 documents of ~300 bytes. Works in a
database of its own (dropped at the end). Prints one line per measurement: median
and 90th percentile latency of single requests from one client, or a throughput.
Run it against real MongoDB to see the difference: every "scan" line becomes an
index lookup there.
"""

import random
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from pymongo import MongoClient

URI = sys.argv[1] if len(sys.argv) > 1 else "mongodb://127.0.0.1:27017/"
DOCS = int(sys.argv[2]) if len(sys.argv) > 2 else 50_000


def doc_id(i: int) -> str:
    return f"d{i:07d}"


def near_end(i: int) -> int:
    # The last documents in _id order, so a scan cannot stop early on a lucky match.
    return DOCS - 1 - (i % 100)


def timed(label: str, request: Callable[[int], Any], n: int = 200, pause: float = 0.0) -> None:
    """pause: up to that many seconds (random) between requests, so that requests do
    not fall into step with another client's and arrive at random points of its work."""
    for i in range(10):  # warm up the JIT and the connection
        request(i)
    samples = []
    for i in range(n):
        if pause:
            time.sleep(random.uniform(0, pause))  # noqa: S311 -- jitter, not security
        start = time.perf_counter()
        request(i)
        samples.append(time.perf_counter() - start)
    samples.sort()
    p90 = samples[int(len(samples) * 0.9)]
    print(f"  {label:<66} median {statistics.median(samples) * 1000:8.2f} ms   p90 {p90 * 1000:8.2f} ms")


def while_scanning(database: str, scanners: int, body: Callable[[], None]) -> None:
    """Run body() while `scanners` other clients loop full scans of `docs`."""
    stop = threading.Event()

    def scan() -> None:
        with MongoClient[dict[str, Any]](URI) as client:
            while not stop.is_set():
                list(client[database].docs.find({"tenant": "none-such"}))

    threads = [threading.Thread(target=scan) for _ in range(scanners)]
    for thread in threads:
        thread.start()
    time.sleep(1)
    try:
        body()
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def write_throughput(database: str, threads: int, pairs: int, shared: bool) -> float:
    def work(k: int) -> None:
        with MongoClient[dict[str, Any]](URI, maxPoolSize=1) as client:
            coll = client[database]["tp" if shared else f"tp{k}"]
            for i in range(pairs):
                coll.insert_one({"_id": f"{k}-{i}", "n": 0})
                coll.update_one({"_id": f"{k}-{i}"}, {"$inc": {"n": 1}})

    workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return threads * pairs / (time.perf_counter() - start)


def main() -> None:
    client: MongoClient[dict[str, Any]] = MongoClient(URI)
    database = f"measure_limits_{uuid.uuid4().hex[:8]}"
    db = client[database]
    info = client.server_info()
    print(f"server {info.get('version')} at {URI}, {DOCS:,} documents in {database}.docs")
    try:
        start = time.perf_counter()
        for first in range(0, DOCS, 5000):
            db.docs.insert_many(
                [
                    {"_id": doc_id(i), "k": i, "tenant": f"t{i % 50}", "code": f"c{i}", "pad": "x" * 250}
                    for i in range(first, min(DOCS, first + 5000))
                ]
            )
        print(f"  insert_many of {DOCS:,} documents in batches of 5,000: {time.perf_counter() - start:.1f} s")
        db.docs.create_index("code", unique=True)
        db.docs.create_index("tenant")

        print("reads")
        timed("find_one {_id}", lambda i: db.docs.find_one({"_id": doc_id(near_end(i))}))
        timed("find_one {_id: {$in: [one id]}}", lambda i: db.docs.find_one({"_id": {"$in": [doc_id(near_end(i))]}}))
        timed(
            "find_one {_id, tenant}                 (_id + another field: scan)",
            lambda i: db.docs.find_one({"_id": doc_id(near_end(i)), "tenant": f"t{near_end(i) % 50}"}),
            50,
        )
        timed(
            "find_one {code}                        (unique index)",
            lambda i: db.docs.find_one({"code": f"c{near_end(i)}"}),
        )
        timed(
            "find_one {code, tenant}                (unique key + another field: scan)",
            lambda i: db.docs.find_one({"code": f"c{near_end(i)}", "tenant": f"t{near_end(i) % 50}"}),
            50,
        )
        timed(
            "find_one {tenant, k}                   (non-unique index on tenant: scan)",
            lambda i: db.docs.find_one({"tenant": f"t{near_end(i) % 50}", "k": near_end(i)}),
            50,
        )
        timed(
            "find_one {k}                           (no index: scan)",
            lambda i: db.docs.find_one({"k": near_end(i)}),
            50,
        )
        timed(
            "find_one {_id: {$gt: ...}}             (range on _id: scan)",
            lambda i: db.docs.find_one({"_id": {"$gt": doc_id(DOCS - 2)}}),
            50,
        )
        timed("count_documents({})                    (scan)", lambda i: db.docs.count_documents({}), 20)
        timed("estimated_document_count()", lambda i: db.docs.estimated_document_count(), 50)
        timed(
            "find().sort(k, -1).limit(1)            (sorts everything)",
            lambda i: db.docs.find_one(sort=[("k", -1)]),
            20,
        )

        print("writes")
        timed("update_one {_id} $inc", lambda i: db.docs.update_one({"_id": doc_id(near_end(i))}, {"$inc": {"k": 0}}))
        timed(
            "update_one {_id, k: {$gte: 0}} $inc    (conditional: scan)",
            lambda i: db.docs.update_one({"_id": doc_id(near_end(i)), "k": {"$gte": 0}}, {"$inc": {"k": 0}}),
            50,
        )
        timed(
            "find_one_and_update {_id} $inc",
            lambda i: db.docs.find_one_and_update({"_id": doc_id(near_end(i))}, {"$inc": {"k": 0}}),
        )
        timed(
            "insert_one + delete_one {_id}",
            lambda i: (db.docs.insert_one({"_id": "tmp", "code": "tmp"}), db.docs.delete_one({"_id": "tmp"})),
        )

        print("one collection at a time")
        timed("find_one {_id}, alone", lambda i: db.docs.find_one({"_id": doc_id(near_end(i))}), 100, pause=0.005)
        db.other.insert_one({"_id": 1})
        for scanners in (1, 2):

            def during_scans(s: int = scanners) -> None:
                timed(
                    f"find_one {{_id}} while {s} other client(s) scan the collection",
                    lambda i: db.docs.find_one({"_id": doc_id(near_end(i))}),
                    100,
                    pause=0.005,
                )
                timed(
                    "find_one {_id} of another collection meanwhile",
                    lambda i: db.other.find_one({"_id": 1}),
                    100,
                    pause=0.005,
                )

            while_scanning(database, scanners, during_scans)
        for shared in (True, False):
            rate = write_throughput(database, 8, 200, shared)
            where = "one shared collection" if shared else "a collection each"
            print(f"  8 clients, insert_one + update_one pairs, {where:<24} {rate:8.0f} pairs/s")
    finally:
        client.drop_database(database)
        client.close()


if __name__ == "__main__":
    main()
