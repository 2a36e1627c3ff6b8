"""``Idempotency-Key`` reservations of enrolment requests: one insert each, coalesced.

A reservation records, under ``<caller>:<key>`` in the gateway's ``idempotency``
collection (the one every create shares, so a key names one request across
routes), the request's fingerprint and the receipt issued for it. That is all a
retry needs: the same receipt, hence the same request id; the outcome is read
from the enrolment service. Nothing else is written on the acceptance path.
"""

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError

from gateway.coalesced_inserts import CoalescedInserts
from gateway.receipts import Receipt

log = logging.getLogger(__name__)

Document = dict[str, Any]


@dataclass(frozen=True)
class Reservation:
    """What a key was first used for."""

    fingerprint: str
    receipt_id: str | None  # None: the key was first used for another kind of create


class RequestKeysPort(Protocol):
    async def reserve(
        self, owner: str, key: str, fingerprint: str, receipt: Receipt, expires_at: datetime
    ) -> Reservation | None:
        """Claim ``key`` for this request; the earlier reservation if the key was used before."""

    async def release(self, owner: str, key: str, receipt: Receipt) -> None:
        """Forget a reservation whose request was not accepted (so a retry gets a receipt of its own)."""


class RequestKeys:
    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self._collection = collection
        self._inserts = CoalescedInserts(collection)

    async def reserve(
        self, owner: str, key: str, fingerprint: str, receipt: Receipt, expires_at: datetime
    ) -> Reservation | None:
        record_id = _record_id(owner, key)
        document = {
            "_id": record_id,
            "fingerprint": fingerprint,
            "state": "accepted",
            "receipt": receipt.id,
            "accepted_at": receipt.accepted_at,
            "expires_at": expires_at,
        }
        if await self._inserts.insert(document):
            return None
        found = await self._collection.find_one({"_id": record_id})
        if found is None:  # released in between: the earlier request was not accepted after all
            return await self.reserve(owner, key, fingerprint, receipt, expires_at)
        receipt_id = found.get("receipt")
        return Reservation(str(found.get("fingerprint")), str(receipt_id) if receipt_id else None)

    async def release(self, owner: str, key: str, receipt: Receipt) -> None:
        try:
            await self._collection.delete_one({"_id": _record_id(owner, key), "receipt": receipt.id})
        except PyMongoError as exc:  # the key then replays a request that was not accepted: it is published again
            log.warning("idempotency key %s not released: %s", _record_id(owner, key), type(exc).__name__)


def _record_id(owner: str, key: str) -> str:
    return f"{owner}:{key}"
