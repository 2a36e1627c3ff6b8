"""Coalesced inserts: concurrent callers share one ``insert_many``, each gets its own answer."""

import asyncio
from typing import Any

import pytest
from pymongo.errors import AutoReconnect, BulkWriteError, WriteError

from gateway.coalesced_inserts import CoalescedInserts


class FakeCollection:
    """Stores by ``_id`` like a collection's unique index; records each ``insert_many``."""

    def __init__(self) -> None:
        self.stored: dict[Any, dict[str, Any]] = {}
        self.batches: list[list[Any]] = []
        self.fail_with: Exception | None = None
        self.refuse: set[Any] = set()  # ids answered with a write error other than a duplicate

    async def insert_many(self, documents: list[dict[str, Any]], ordered: bool = True) -> None:
        assert ordered is False  # one document's error must not stop the others
        await asyncio.sleep(0)  # a round trip: callers arriving meanwhile wait for the next batch
        self.batches.append([document["_id"] for document in documents])
        if self.fail_with is not None:
            raise self.fail_with
        errors = []
        for index, document in enumerate(documents):
            if document["_id"] in self.refuse:
                errors.append({"index": index, "code": 2, "errmsg": "bad value"})
            elif document["_id"] in self.stored:
                errors.append({"index": index, "code": 11000, "errmsg": "E11000 duplicate key"})
            else:
                self.stored[document["_id"]] = document
        if errors:
            # mongo-java-server's counts are wrong (every document "inserted"): only the errors count.
            raise BulkWriteError({"writeErrors": errors, "writeConcernErrors": [], "nInserted": len(documents)})


async def test_concurrent_inserts_leave_in_one_batch_and_each_gets_its_answer() -> None:
    collection = FakeCollection()
    collection.stored["taken"] = {"_id": "taken"}
    inserts = CoalescedInserts(collection)  # type: ignore[arg-type]
    ids = ["a", "b", "taken", "c", "b"]
    answers = await asyncio.gather(*(inserts.insert({"_id": i}) for i in ids))
    assert answers == [True, True, False, True, False]  # the second "b" finds the first
    assert collection.batches == [ids]
    assert set(collection.stored) == {"a", "b", "c", "taken"}


async def test_inserts_asked_during_a_write_leave_together_in_the_next() -> None:
    collection = FakeCollection()
    inserts = CoalescedInserts(collection)  # type: ignore[arg-type]
    first = asyncio.create_task(inserts.insert({"_id": 1}))
    await asyncio.sleep(0)  # the first write is under way
    later = [asyncio.create_task(inserts.insert({"_id": n})) for n in (2, 3, 4)]
    assert await asyncio.gather(first, *later) == [True, True, True, True]
    assert collection.batches == [[1], [2, 3, 4]]


async def test_a_batch_never_exceeds_its_limit() -> None:
    collection = FakeCollection()
    inserts = CoalescedInserts(collection, max_batch=2)  # type: ignore[arg-type]
    assert all(await asyncio.gather(*(inserts.insert({"_id": n}) for n in range(5))))
    assert collection.batches == [[0, 1], [2, 3], [4]]


async def test_another_write_error_is_raised_to_its_caller_only() -> None:
    collection = FakeCollection()
    collection.refuse.add("bad")
    inserts = CoalescedInserts(collection)  # type: ignore[arg-type]
    good, bad = await asyncio.gather(
        inserts.insert({"_id": "ok"}), inserts.insert({"_id": "bad"}), return_exceptions=True
    )
    assert good is True
    assert isinstance(bad, WriteError) and bad.code == 2


async def test_a_database_away_fails_every_caller_of_the_batch_and_the_next_batch_tries_again() -> None:
    collection = FakeCollection()
    collection.fail_with = AutoReconnect("connection refused")
    inserts = CoalescedInserts(collection)  # type: ignore[arg-type]
    answers = await asyncio.gather(*(inserts.insert({"_id": n}) for n in range(3)), return_exceptions=True)
    assert all(isinstance(answer, AutoReconnect) for answer in answers)
    collection.fail_with = None
    assert await inserts.insert({"_id": 0}) is True


async def test_a_caller_that_gives_up_does_not_stop_the_others() -> None:
    collection = FakeCollection()
    inserts = CoalescedInserts(collection)  # type: ignore[arg-type]
    leaving = asyncio.create_task(inserts.insert({"_id": "gone"}))
    staying = asyncio.create_task(inserts.insert({"_id": "here"}))
    await asyncio.sleep(0)
    leaving.cancel()
    assert await staying is True
    with pytest.raises(asyncio.CancelledError):
        await leaving
    # Its document was in the batch already: stored (a retry of its request finds it).
    assert "gone" in collection.stored
