"""Inserts from many concurrent requests, written together: one ``insert_many`` per round trip.

On a click day two thousand requests reserve their ``Idempotency-Key`` within the
same second. One ``insert_one`` each cost the gateway about 1 ms of CPU (driver,
command monitoring, a span) and MongoDB a command each; the round trips, not the
documents, were the work. Here every insert asked while no write is under way
leaves on the next event-loop turn, and every insert asked while one is under way
leaves together with the others as soon as it returns (group commit): a quiet day
still pays one round trip per insert, a burst pays one per batch.

The answer for each document is its own: inserted (True), a document with the same
``_id`` exists (False: the caller's key was used before), or the write error.
``ordered=False`` keeps one document's duplicate from stopping the others.
A caller that gives up (its client went away) does not cancel its insert: the
document may be stored, which the callers here allow for (a reservation whose
request was not published is published again on its retry).
"""

import asyncio
from typing import Any, Final

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, WriteError

DUPLICATE_KEY: Final = 11000
MAX_BATCH: Final = 500

Document = dict[str, Any]


class CoalescedInserts:
    def __init__(self, collection: AsyncCollection[Document], max_batch: int = MAX_BATCH) -> None:
        self._collection = collection
        self._max_batch = max_batch
        self._waiting: list[tuple[Document, asyncio.Future[bool]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def insert(self, document: Document) -> bool:
        """Insert ``document``; False if one with its ``_id`` exists. Raises the driver's error otherwise."""
        inserted: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((document, inserted))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_all())
        return await inserted

    async def _write_all(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[: self._max_batch], self._waiting[self._max_batch :]
                await self._write(batch)
        finally:
            self._writer = None

    async def _write(self, batch: list[tuple[Document, asyncio.Future[bool]]]) -> None:
        failed: dict[int, dict[str, Any]] = {}
        try:
            await self._collection.insert_many([document for document, _ in batch], ordered=False)
        except BulkWriteError as exc:
            # One entry per document that was not written, by its index in the batch. (The
            # counts beside them are not reliable on every server: mongo-java-server reports
            # every document as inserted.)
            failed = {int(error["index"]): error for error in exc.details.get("writeErrors", [])}
            if exc.details.get("writeConcernErrors"):
                _fail(batch, exc)
                return
        except Exception as exc:  # handed to every caller, who maps it (503 when the database is away)
            _fail(batch, exc)
            return
        for index, (_, inserted) in enumerate(batch):
            if inserted.done():  # its caller gave up
                continue
            error = failed.get(index)
            if error is None:
                inserted.set_result(True)
            elif error.get("code") == DUPLICATE_KEY:
                inserted.set_result(False)
            else:
                inserted.set_exception(WriteError(str(error.get("errmsg")), error.get("code"), error))


def _fail(batch: list[tuple[Document, asyncio.Future[bool]]], exc: BaseException) -> None:
    for _, inserted in batch:
        if not inserted.done():
            inserted.set_exception(exc)
