"""Accepting an enrolment request: the use case behind ``POST /v1/enrolments``.

- The caller is a family whose token carries ``enrolments:write`` (403 otherwise).
- The body has the shape of ``EnrolmentCreate`` (422 with every field error).
- The request is published with a publisher confirm (``gateway.intake``); the answer
  is its receipt: 202 with the id, ``requested``, the protocol number and
  ``accepted_at``. A broker that is away or refuses it is a 503: nothing accepted.
- ``Prefer: wait=N`` holds the answer up to N seconds for the decision: 201 with it
  when it comes in time.
- With an ``Idempotency-Key`` the request is first reserved under the key
  (``gateway.request_keys``, the only write here). A retry, even one sent while the
  first is still under way, gets the same receipt and the request's outcome now;
  while undecided it is published again, which is harmless (the service decides a
  request id once) and means a first attempt that died before its publish is not
  lost. The same key with another body is a 422.

It knows no HTTP: both entries of the route call it, the fast lane
(``gateway.fast_lane``) and the route FastAPI documents (``gateway.routers.enrolments``).
"""

import asyncio
import contextlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

from pydantic import ValidationError

from conciliare.contracts.enrolment import EnrolmentCreate
from conciliare.contracts.enrolment_requests import EnrolmentRequested
from conciliare.contracts.identity import Viewer
from conciliare.contracts.taxonomy import EnrolmentStatus
from conciliare.errors import NotFound, Unavailable, ValidationFailed
from gateway.deps import ensure_scope, unfit_numbers
from gateway.errors import INVALID_DATA, ProblemError, field_errors
from gateway.idempotency import IDEMPOTENCY_HEADER, KEY_PATTERN, REPLAYED_HEADER, fingerprint
from gateway.prefer import applied, preferred_wait
from gateway.receipts import Receipt, ReceiptIssuer
from gateway.request_keys import RequestKeysPort
from gateway.rpc import RpcError, ServiceUnavailable
from gateway.schemas.enrolments import viewer_of
from gateway.security import Principal, Role

PATH: Final = "/v1/enrolments"
SCOPE: Final = "enrolments:write"
_KEY: Final = re.compile(KEY_PATTERN)


class IntakePort(Protocol):
    async def submit(self, command: EnrolmentRequested) -> None: ...

    def watch(self, enrolment_id: str) -> contextlib.AbstractContextManager["asyncio.Future[None]"]: ...


class RpcPort(Protocol):
    async def call(self, service: str, method: str, timeout: float | None = None, **kwargs: Any) -> Any: ...  # noqa: ASYNC109


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EnrolmentAcceptance:
    intake: IntakePort
    rpc: RpcPort
    receipts: ReceiptIssuer
    keys: RequestKeysPort
    key_ttl: timedelta

    async def accept(self, principal: Principal, document: Any, prefer: Iterable[str], key: str | None) -> Answer:
        """Accept (or replay) one request; raises ``ProblemError``, ``ValidationFailed`` or ``ServiceUnavailable``."""
        ensure_scope(principal, SCOPE)
        if principal.role is not Role.FAMILY:
            raise ProblemError(403, "Operazione non consentita", "Solo le famiglie iscrivono i propri figli.")
        request = _parse(document)
        wait = preferred_wait(prefer)
        payload = request.model_dump(mode="json")
        viewer = viewer_of(principal)
        replayed = False
        if key is None:
            receipt = self.receipts.issue(principal.subject, datetime.now(UTC))
            await self._publish(receipt, viewer, request)
        else:
            receipt, replayed = await self._reserve(principal, key, payload)
            if not replayed:
                try:
                    await self._publish(receipt, viewer, request)
                except ServiceUnavailable:
                    # Not accepted: the retry gets a receipt (and a time) of its own. A client
                    # that went away mid-publish keeps the reservation: its retry republishes.
                    await self.keys.release(principal.subject, key, receipt)
                    raise
        headers = {"Location": f"{PATH}/{receipt.id}"}
        if wait is not None:
            headers.update(applied(wait))
        if replayed:
            headers[REPLAYED_HEADER] = "true"
            decided = await self._decided(viewer, receipt.id)
            if decided is not None:
                return Answer(201, decided, headers)
            # Undecided: the first attempt may have died before its publish went out.
            await self._publish(receipt, viewer, request)
        if wait:
            decided = await self._decision(viewer, receipt.id, wait)
            if decided is not None:
                return Answer(201, decided, headers)
        return Answer(202, requested(receipt, payload), headers)

    async def _reserve(self, principal: Principal, key: str, payload: dict[str, Any]) -> tuple[Receipt, bool]:
        """The request's receipt under ``key`` and whether the key was used before (a replay)."""
        if not _KEY.match(key):
            raise ProblemError(
                422,
                "Dati non validi",
                f"L'intestazione {IDEMPOTENCY_HEADER} deve avere da 1 a 255 caratteri stampabili, senza spazi.",
            )
        now = datetime.now(UTC)
        receipt = self.receipts.issue(principal.subject, now, key)
        print_ = fingerprint("POST", PATH, payload)
        earlier = await self.keys.reserve(principal.subject, key, print_, receipt, now + self.key_ttl)
        if earlier is None:
            return receipt, False
        first = self.receipts.verify(principal.subject, earlier.receipt_id) if earlier.receipt_id else None
        if earlier.fingerprint != print_ or first is None:
            raise ProblemError(
                422,
                "Chiave di idempotenza già usata",
                f"Questa {IDEMPOTENCY_HEADER} è già stata usata per una richiesta diversa: usa una chiave nuova.",
            )
        return first, True

    async def _publish(self, receipt: Receipt, viewer: dict[str, Any], request: EnrolmentCreate) -> None:
        await self.intake.submit(
            EnrolmentRequested(
                request_id=receipt.id,
                protocol=receipt.protocol,
                accepted_at=receipt.accepted_at,
                viewer=Viewer.model_validate(viewer),
                request=request,
            )
        )

    async def _decided(self, viewer: dict[str, Any], enrolment_id: str) -> dict[str, Any] | None:
        """The enrolment once decided; None while it is not (or cannot be read now: the 202 stands)."""
        try:
            found = await self.rpc.call("enrolment", "get_enrolment", enrolment_id=enrolment_id, viewer=viewer)
        except (NotFound, Unavailable, RpcError):
            return None
        return dict(found) if found.get("status") != EnrolmentStatus.REQUESTED.value else None

    async def _decision(self, viewer: dict[str, Any], enrolment_id: str, wait: int) -> dict[str, Any] | None:
        """The decision if it is there, or arrives within ``wait`` seconds."""
        with self.intake.watch(enrolment_id) as announced:
            # Watching first, then reading: a decision made in between is not missed.
            decided = await self._decided(viewer, enrolment_id)
            if decided is not None:
                return decided
            try:
                await asyncio.wait_for(announced, wait)
            except TimeoutError:
                return None
        return await self._decided(viewer, enrolment_id)


def _parse(document: Any) -> EnrolmentCreate:
    """The request, or ``ValidationFailed`` with every field error (numbers no store holds included)."""
    unfit = list(unfit_numbers(document))
    if unfit:
        raise ValidationFailed("La richiesta contiene numeri fuori dai limiti ammessi.", unfit)
    try:
        return EnrolmentCreate.model_validate(document)
    except ValidationError as exc:
        raise ValidationFailed(INVALID_DATA, field_errors(exc.errors())) from None


def requested(receipt: Receipt, payload: dict[str, Any] | None) -> dict[str, Any]:
    """An accepted request not decided yet, as ``EnrolmentOut`` (only what the request said is known)."""
    asked = payload or {}
    return {
        "id": receipt.id,
        "protocol": receipt.protocol,
        "offering_id": asked.get("offering_id"),
        "offering_title": None,
        "alliance_id": None,
        "provider_partner_id": None,
        "child_id": asked.get("child_id"),
        "child_name": None,
        "child_codice_fiscale": None,
        "household_id": None,
        "period": asked.get("period"),
        "attendance_mode": asked.get("attendance_mode"),
        "chosen_weekdays": asked.get("chosen_weekdays"),
        "hours": asked.get("hours"),
        "status": EnrolmentStatus.REQUESTED.value,
        "status_label": "richiesta",
        "sequence": None,
        "waitlist_position": None,
        "promoted": False,
        "refusal_reasons": [],
        "accepted_at": receipt.accepted_at.isoformat(),
        "requested_at": receipt.accepted_at.isoformat(),
        "decided_at": None,
        "cancelled_at": None,
        "cancel_reason": None,
    }
