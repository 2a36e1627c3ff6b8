"""What the application code relies on from the MongoDB-wire server, asserted against
whatever server ``MONGO_URI`` names (mongo-java-server natively, MongoDB in Docker).

The concurrency tests matter most: the previous native server passed every
single-client test and still lost concurrent updates. To catch a server like that the
requests must really overlap on the wire. Green threads (this suite runs under eventlet's monkey patch) do
not give that: against a fast local server a reply is usually there before the
green thread would block, so it never yields and the "concurrent" workers run one
request at a time. So the workers run in child processes started from this file
(no eventlet there), PROCESSES x THREADS real threads with a connection each, released
together once all are connected; and every concurrency test asserts, from the
workers' request timestamps, that many requests were in flight at once.
"""

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from pymongo import DeleteOne, InsertOne, MongoClient, ReturnDocument, UpdateMany, UpdateOne
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError, DuplicateKeyError

pytestmark = pytest.mark.integration

PROCESSES = 4
THREADS = 4
WORKERS = PROCESSES * THREADS  # 16, each with its own connection
ATTEMPTS = 20
DUPLICATE_KEY = 11000

Doc = dict[str, Any]
Timed = Callable[..., Any]  # timed(request, *args, **kwargs): request(*args, **kwargs), timed


@pytest.fixture
def db(mongo_client: MongoClient[Doc], fresh_database: str) -> Any:
    return mongo_client[fresh_database]


# --- The workers' side (runs in the child processes) ------------------------------
# Each scenario: (worker number, its collection, `timed` wrapper for every request)
# -> a JSON-able result for the test to check.


def take_seats(number: int, seats: Collection[Doc], timed: Timed) -> int:
    wins = 0
    for _ in range(ATTEMPTS):
        wins += timed(seats.update_one, {"_id": "offering", "n": {"$lt": 20}}, {"$inc": {"n": 1}}).modified_count
    return wins


def increment(number: int, counters: Collection[Doc], timed: Timed) -> int:
    modified = 0
    for _ in range(ATTEMPTS):
        modified += timed(counters.update_one, {"_id": "c"}, {"$inc": {"n": 1}}).modified_count
    return modified


def write_versions(number: int, things: Collection[Doc], timed: Timed) -> list[int]:
    """Versions this worker moved forward (compare-and-set on `version`)."""
    won = []
    for _ in range(ATTEMPTS):
        version = timed(things.find_one, {"_id": "t"}, {"version": 1})["version"]
        after = timed(
            things.find_one_and_update,
            {"_id": "t", "version": version},
            {"$set": {"version": version + 1}, "$push": {"writers": number}},
            return_document=ReturnDocument.AFTER,
        )
        if after is not None:
            assert after["version"] == version + 1, after
            won.append(version)
    return won


def draw_numbers(number: int, sequences: Collection[Doc], timed: Timed) -> list[int]:
    """Numbers this worker drew from a counter, as the services number things."""
    return [
        timed(
            sequences.find_one_and_update,
            {"_id": "seq"},
            {"$inc": {"value": 1}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )["value"]
        for _ in range(ATTEMPTS)
    ]


def acquire_leases(number: int, leases: Collection[Doc], timed: Timed) -> list[int]:
    """Resources this worker got, by inserting against a unique index."""
    got = []
    for resource in range(ATTEMPTS):
        try:
            timed(leases.insert_one, {"_id": f"{number}-{resource}", "resource": f"r{resource}"})
            got.append(resource)
        except DuplicateKeyError:
            pass
    return got


TORN_ITEMS = 2_000


def write_or_read(number: int, things: Collection[Doc], timed: Timed) -> int:
    """Even workers rewrite a large document whole; odd ones read it and count torn reads."""
    if number % 2 == 0:
        for attempt in range(ATTEMPTS):
            stamp = number * 1000 + attempt
            timed(things.update_one, {"_id": "t"}, {"$set": {"items": [stamp] * TORN_ITEMS, "stamp": stamp}})
        return 0
    torn = 0
    for _ in range(ATTEMPTS * 3):
        doc = timed(things.find_one, {"_id": "t"})  # no projection: the server's plain read path
        torn += int(set(doc["items"]) != {doc["stamp"]})
    return torn


SCENARIOS: dict[str, Callable[[int, Collection[Doc], Timed], Any]] = {
    "write_or_read": write_or_read,
    "take_seats": take_seats,
    "increment": increment,
    "write_versions": write_versions,
    "draw_numbers": draw_numbers,
    "acquire_leases": acquire_leases,
}


def worker_process(scenario: str, uri: str, database: str, collection: str, first: int) -> None:
    """Child process: THREADS workers; prints "ready", waits for a line on stdin,
    runs, prints one JSON line: results and (start, end) of every request."""
    clients = [MongoClient[Doc](uri, maxPoolSize=1) for _ in range(THREADS)]
    for client in clients:
        client.admin.command("ping")  # connected before the start signal
    results: list[Any] = [None] * THREADS
    spans: list[tuple[int, int]] = []
    errors: list[str] = []

    def run(k: int) -> None:
        def timed(request: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            start = time.monotonic_ns()
            try:
                return request(*args, **kwargs)
            finally:
                spans.append((start, time.monotonic_ns()))  # list.append is atomic

        try:
            results[k] = SCENARIOS[scenario](first + k, clients[k][database][collection], timed)
        except BaseException as exc:
            errors.append(repr(exc))

    threads = [threading.Thread(target=run, args=(k,)) for k in range(THREADS)]
    print("ready", flush=True)
    sys.stdin.readline()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({"results": results, "spans": spans, "errors": errors}), flush=True)


# --- The test's side ------------------------------------------------------------------


def run_concurrently(scenario: str, database: str, collection: str) -> list[Any]:
    """Run SCENARIOS[scenario] in WORKERS workers at once; their results, by worker number."""
    command = [sys.executable, os.path.abspath(__file__), scenario, os.environ["MONGO_URI"], database, collection]
    children = [
        subprocess.Popen([*command, str(p * THREADS)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for p in range(PROCESSES)
    ]
    try:
        for child in children:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready", "a worker did not start"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        reports = [json.loads(child.communicate(timeout=120)[0]) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    errors = [error for report in reports for error in report["errors"]]
    assert not errors, errors
    assert_really_concurrent([tuple(span) for report in reports for span in report["spans"]])
    return [result for report in reports for result in report["results"]]


def assert_really_concurrent(spans: list[tuple[int, int]]) -> None:
    # Without overlap on the wire even a server that loses updates would pass.
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    in_flight = most = 0
    for _, step in events:
        in_flight += step
        most = max(most, in_flight)
    assert most >= WORKERS // 2, f"at most {most} of {WORKERS} workers' requests were in flight together"


def test_a_conditional_inc_has_exactly_as_many_winners_as_the_condition_allows(db: Any) -> None:
    db.seats.insert_one({"_id": "offering", "n": 0})
    wins = run_concurrently("take_seats", db.name, "seats")
    assert sum(wins) == 20
    assert db.seats.find_one({"_id": "offering"})["n"] == 20


def test_concurrent_incs_lose_nothing(db: Any) -> None:
    db.counters.insert_one({"_id": "c", "n": 0})
    assert run_concurrently("increment", db.name, "counters") == [ATTEMPTS] * WORKERS
    assert db.counters.find_one({"_id": "c"})["n"] == WORKERS * ATTEMPTS


def test_a_versioned_find_one_and_update_has_exactly_one_winner_per_version(db: Any) -> None:
    db.things.insert_one({"_id": "t", "version": 0, "writers": []})
    won = run_concurrently("write_versions", db.name, "things")
    winners_of: dict[int, list[int]] = {}
    for worker, versions in enumerate(won):
        for version in versions:
            winners_of.setdefault(version, []).append(worker)
    final = db.things.find_one({"_id": "t"})
    assert {v: w for v, w in winners_of.items() if len(w) > 1} == {}
    assert sorted(winners_of) == list(range(final["version"]))
    assert final["writers"] == [winners_of[v][0] for v in range(final["version"])]
    # The writers did conflict (some compare-and-sets failed), yet no version had two winners.
    assert 0 < final["version"] < WORKERS * ATTEMPTS


def test_numbers_drawn_concurrently_from_a_counter_are_all_different(db: Any) -> None:
    # The value find_one_and_update returns must be the one this call wrote: stock
    # mongo-java-server 1.47.0 sometimes answers with a later one (see the launcher).
    drawn = [n for numbers in run_concurrently("draw_numbers", db.name, "sequences") for n in numbers]
    assert sorted(drawn) == list(range(1, WORKERS * ATTEMPTS + 1))


def test_a_read_never_sees_half_of_a_concurrent_update(db: Any) -> None:
    # Stock mongo-java-server 1.47.0 encodes a plain find's documents after releasing the
    # collection lock while an update rewrites them in place (see the launcher).
    db.things.insert_one({"_id": "t", "items": [0] * TORN_ITEMS, "stamp": 0})
    assert sum(run_concurrently("write_or_read", db.name, "things")) == 0


def test_concurrent_inserts_of_one_unique_key_have_exactly_one_winner(db: Any) -> None:
    db.leases.create_index("resource", unique=True)
    got = run_concurrently("acquire_leases", db.name, "leases")
    assert sorted(r for resources in got for r in resources) == list(range(ATTEMPTS))
    assert db.leases.count_documents({}) == ATTEMPTS


def test_a_unique_index_rejects_duplicates_from_every_kind_of_write(db: Any) -> None:
    db.users.create_index("email", unique=True)
    db.users.insert_one({"_id": 1, "email": "a@example.org"})

    with pytest.raises(DuplicateKeyError) as single:
        db.users.insert_one({"_id": 2, "email": "a@example.org"})
    assert single.value.code == DUPLICATE_KEY

    with pytest.raises(BulkWriteError) as many:
        db.users.insert_many(
            [{"_id": 3, "email": "a@example.org"}, {"_id": 4, "email": "b@example.org"}, {"_id": 1, "email": "c"}],
            ordered=False,
        )
    errors = many.value.details["writeErrors"]
    assert [(e["index"], e["code"], e["op"]["_id"]) for e in errors] == [(0, DUPLICATE_KEY, 3), (2, DUPLICATE_KEY, 1)]
    # Which index was violated (services/vouchers tells a code collision from a
    # repeated award by it): MongoDB says keyPattern, mongo-java-server only errmsg.
    assert names_index(errors[0], "email") and names_index(errors[1], "_id")
    # Not nInserted: mongo-java-server reports the number of documents sent (3 here).

    with pytest.raises(BulkWriteError) as bulk:
        db.users.bulk_write(
            [InsertOne({"_id": 5, "email": "e@example.org"}), InsertOne({"_id": 6, "email": "b@example.org"})]
        )
    assert [(e["index"], e["code"]) for e in bulk.value.details["writeErrors"]] == [(1, DUPLICATE_KEY)]

    with pytest.raises(DuplicateKeyError):
        db.users.update_one({"_id": 5}, {"$set": {"email": "a@example.org"}})

    assert sorted(d["_id"] for d in db.users.find()) == [1, 4, 5]


def names_index(error: Doc, field: str) -> bool:
    return field in (error.get("keyPattern") or {}) or f"index: {field}_" in error.get("errmsg", "")


def test_dropping_a_database_leaves_one_whose_name_it_prefixes_alone(
    mongo_client: MongoClient[Doc], fresh_database: str
) -> None:
    # Every test drops its database: it must not touch another test's (mongo-java-server
    # 1.47.0 does, by name prefix; scripts/infra's launcher works around it).
    longer = mongo_client[fresh_database + "x"]
    try:
        longer.things.create_index("code", unique=True)
        longer.things.insert_one({"_id": 1, "code": "a"})
        mongo_client[fresh_database].things.insert_one({"_id": 1})
        mongo_client.drop_database(fresh_database)
        assert list(longer.things.find()) == [{"_id": 1, "code": "a"}]
        longer.things.insert_one({"_id": 2, "code": "b"})
        assert longer.things.count_documents({}) == 2
    finally:
        mongo_client.drop_database(longer.name)


def test_pull_with_a_condition_removes_exactly_the_matching_elements(db: Any) -> None:
    items = [{"event_id": "a", "n": 1}, {"event_id": "b", "n": 2}, {"event_id": "c", "n": 3}, {"event_id": "b", "n": 4}]
    db.outbox.insert_one({"_id": "o", "items": items})
    result = db.outbox.update_one({"_id": "o"}, {"$pull": {"items": {"event_id": "b"}}})
    assert result.modified_count == 1
    assert db.outbox.find_one({"_id": "o"})["items"] == [items[0], items[2]]

    assert db.outbox.update_one({"_id": "o"}, {"$pull": {"items": {"event_id": "zzz"}}}).modified_count == 0
    db.outbox.update_one({"_id": "o"}, {"$pull": {"items": {"n": {"$gte": 3}}}})
    assert db.outbox.find_one({"_id": "o"})["items"] == [items[0]]


def test_group_and_sum_over_ten_thousand_documents(db: Any) -> None:
    docs: list[Doc] = [{"_id": i, "alliance": f"a{i % 7}", "cents": i * 3 + 1} for i in range(10_000)]
    db.payments.insert_many(docs)
    expected: Counter[str] = Counter()
    for doc in docs:
        expected[doc["alliance"]] += doc["cents"]

    rows = db.payments.aggregate(
        [
            {"$match": {"cents": {"$gt": 0}}},
            {"$group": {"_id": "$alliance", "total": {"$sum": "$cents"}, "count": {"$sum": 1}}},
            {"$sort": {"_id": 1}},
        ]
    )
    got = {row["_id"]: (row["total"], row["count"]) for row in rows}
    counts = Counter(doc["alliance"] for doc in docs)
    assert got == {alliance: (total, counts[alliance]) for alliance, total in expected.items()}
    assert all(isinstance(total, int) for total, _ in got.values())


def test_update_many_and_bulk_write_report_the_right_counts(db: Any) -> None:
    db.enrolments.insert_many(
        [{"_id": i, "status": "waitlisted" if i % 2 else "confirmed", "pos": i} for i in range(10)]
    )

    many = db.enrolments.update_many({"status": "waitlisted"}, {"$set": {"notified": True}})
    assert (many.matched_count, many.modified_count) == (5, 5)
    again = db.enrolments.update_many({"status": "waitlisted"}, {"$set": {"notified": True}})
    assert (again.matched_count, again.modified_count) == (5, 0)

    bulk = db.enrolments.bulk_write(
        [
            InsertOne({"_id": 100, "status": "confirmed"}),
            UpdateOne({"_id": 0}, {"$set": {"status": "cancelled"}}),
            UpdateMany({"status": "waitlisted"}, {"$inc": {"pos": -1}}),
            UpdateOne({"_id": 200}, {"$set": {"status": "confirmed"}}, upsert=True),
            UpdateOne({"_id": 300}, {"$set": {"status": "confirmed"}}),
            DeleteOne({"_id": 2}),
        ]
    )
    assert bulk.inserted_count == 1
    assert bulk.matched_count == 1 + 5
    assert bulk.modified_count == 1 + 5
    assert bulk.upserted_count == 1 and bulk.upserted_ids == {3: 200}
    assert bulk.deleted_count == 1
    assert db.enrolments.count_documents({}) == 10 + 1 + 1 - 1
    assert [d["pos"] for d in db.enrolments.find({"status": "waitlisted"}).sort("_id", 1)] == [0, 2, 4, 6, 8]


def test_find_one_and_update_with_upsert_returns_the_document_after(db: Any) -> None:
    def bump() -> Doc:
        result = db.sequences.find_one_and_update(
            {"_id": "waitlist:o1"},
            {"$inc": {"value": 1}, "$setOnInsert": {"created": "now"}},
            return_document=ReturnDocument.AFTER,
            upsert=True,
        )
        assert result is not None
        return dict(result)

    assert bump() == {"_id": "waitlist:o1", "value": 1, "created": "now"}
    assert bump() == {"_id": "waitlist:o1", "value": 2, "created": "now"}
    assert db.sequences.count_documents({}) == 1


if __name__ == "__main__":
    scenario, uri, database, collection, first = sys.argv[1:6]
    worker_process(scenario, uri, database, collection, int(first))
