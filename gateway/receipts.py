"""Receipts of enrolment requests: ids that prove whom they were issued to, and protocol numbers.

An accepted request exists only in the broker until the enrolment service decides
it, so nobody could tell "accepted, not decided yet" from "never accepted" by
looking it up. The id says it: 12 hex digits of the acceptance time (milliseconds),
8 of a nonce, and 12 of an HMAC of both and of the caller's subject under a key
derived from the gateway's secret. Only the gateway can issue one, and it answers
``requested`` for an id it issued to the caller and the service does not know yet,
without storing anything on the acceptance path.

With an ``Idempotency-Key`` the nonce comes from the key and the time from the key's
first use, so a retry (even one that runs again because the first gateway died)
publishes the very same id and the service decides it once.
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final
from zoneinfo import ZoneInfo

ROME: Final = ZoneInfo("Europe/Rome")
_TIME_DIGITS: Final = 12
_NONCE_DIGITS: Final = 8
_TAG_DIGITS: Final = 12
ID_LENGTH: Final = _TIME_DIGITS + _NONCE_DIGITS + _TAG_DIGITS


@dataclass(frozen=True)
class Receipt:
    id: str
    accepted_at: datetime

    @property
    def protocol(self) -> str:
        """Human-readable: ``ISC-<date and time in Rome>-<nonce>``, e.g. ``ISC-20270315-091502-4F7A09C2``."""
        local = self.accepted_at.astimezone(ROME)
        nonce = self.id[_TIME_DIGITS : _TIME_DIGITS + _NONCE_DIGITS].upper()
        return f"ISC-{local:%Y%m%d-%H%M%S}-{nonce}"


class ReceiptIssuer:
    def __init__(self, secret: bytes) -> None:
        # A key of its own: a receipt never doubles as anything signed with the secret.
        self._key = hmac.new(secret, b"conciliare/enrolment-receipts/v1", hashlib.sha256).digest()

    def issue(self, subject: str, at: datetime, idempotency_key: str | None = None) -> Receipt:
        """A new receipt for ``subject``, accepted at ``at`` (the same one for the same key and time)."""
        millis = int(at.timestamp() * 1000)
        if idempotency_key is None:
            nonce = secrets.token_hex(_NONCE_DIGITS // 2)
        else:
            nonce = hashlib.sha256(f"{subject}\x00{idempotency_key}".encode()).hexdigest()[:_NONCE_DIGITS]
        body = f"{millis:0{_TIME_DIGITS}x}{nonce}"
        return Receipt(body + self._tag(subject, body), datetime.fromtimestamp(millis / 1000, UTC))

    def verify(self, subject: str, receipt_id: str) -> Receipt | None:
        """The receipt if ``receipt_id`` was issued to ``subject``; None otherwise."""
        if len(receipt_id) != ID_LENGTH or any(c not in "0123456789abcdef" for c in receipt_id):
            return None
        body, tag = receipt_id[:-_TAG_DIGITS], receipt_id[-_TAG_DIGITS:]
        if not hmac.compare_digest(tag, self._tag(subject, body)):
            return None
        millis = int(body[:_TIME_DIGITS], 16)
        return Receipt(receipt_id, datetime.fromtimestamp(millis / 1000, UTC))

    def _tag(self, subject: str, body: str) -> str:
        return hmac.new(self._key, f"{subject}\x00{body}".encode(), hashlib.sha256).hexdigest()[:_TAG_DIGITS]
