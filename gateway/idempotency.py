"""``Idempotency-Key`` for unsafe requests: a retried request returns the first answer.

Usage in a route: build the operation as ``async (key) -> (status, body)`` and
answer with ``await idempotent(...)``. Per caller and key:

- first use: the key is reserved (``IdentityStore.reserve_idempotency_key``, a
  unique insert, atomic on MongoDB and FerretDB), the operation runs, and its
  answer (status and body) is stored and returned; a refusal (404, 422 from the
  service) is an answer too;
- same key, same request, answered: the stored status and body, unchanged, with
  ``Idempotent-Replayed: true`` (nothing runs again);
- same key, same request, still running: 409 (retry shortly);
- same key, different request: 422 (a key names one request only);
- the operation fails without an answer (service or broker unavailable, timeout, a
  409 "busy, retry" or a 503 "a dependency is away" from the service): the reservation is released
  (``release_idempotency_key``), so the client may retry with the same key.

Every route that creates something takes the ``IdempotencyDep`` dependency: it
reads and checks the header (documented once, as the OpenAPI component
``IdempotencyKey``) and runs the route's operation through ``idempotent``::

    async def register_partner(body: PartnerCreate, rpc: Rpc, once: IdempotencyDep) -> Response:
        payload = body.model_dump(mode="json")
        return await once.create(payload, lambda key: rpc.call("partners", "register_partner", payload=payload))

The key is also handed to the operation, which passes it to a service that takes
it: if the gateway times out or dies mid-request, the service
recognises the retry by the key and answers with what it already made instead of
making a second one. That is also why a reservation abandoned by a dead gateway
may be run again.

Enrolment requests, the click day's hot path, have a lighter flow of their own: one
coalesced insert per key and no stored answer (``gateway.acceptance``,
``gateway.request_keys``).

Answers are stored as their own documents (``idempotency_answers``, insert-only)
rather than with ``complete_idempotency_key``: on FerretDB 1.x an update costs time
proportional to the collection (~15 ms at 4,000 keys, and keys accumulate), while
an insert and a read by ``_id`` cost the same at any size.
"""

import hashlib
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final

from fastapi import Depends, Header, Request, Response
from pymongo.errors import DuplicateKeyError, PyMongoError
from starlette.status import HTTP_201_CREATED

from conciliare.errors import Conflict, DomainError, Unavailable
from gateway.deps import CurrentPrincipal, Identity, Settings
from gateway.errors import STATUS_BY_ERROR, ProblemError, problem
from gateway.identity import IdentityStore
from gateway.responses import service_json

log = logging.getLogger(__name__)

IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
REPLAYED_HEADER: Final = "Idempotent-Replayed"
ANSWERS: Final = "idempotency_answers"
KEY_PATTERN: Final = r"^[\x21-\x7e]{1,255}$"
_KEY = re.compile(KEY_PATTERN)
KEY_DESCRIPTION: Final = (
    "Chiave scelta dal client (es. un UUID), da 1 a 255 caratteri stampabili senza spazi. "
    "La stessa richiesta ripetuta con la stessa chiave restituisce la prima risposta "
    "(stesso codice, stesso corpo, intestazione `Idempotent-Replayed: true`) senza rifare nulla; "
    "la stessa chiave con una richiesta diversa risponde 422; mentre la prima è ancora in corso, 409. "
    "Vale 24 ore, per utente."
)
# A reservation older than this without an answer was abandoned (its gateway
# died): every RPC times out long before.
ABANDONED_AFTER: Final = timedelta(seconds=60)

Operation = Callable[[str | None], Awaitable[tuple[int, Any]]]


def fingerprint(method: str, path: str, body: Any) -> str:
    """What makes two requests "the same": method, path and canonical JSON body."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


def _answer_id(owner: str, key: str) -> str:
    return f"{owner}:{key}"


async def _stored_answer(identity: IdentityStore, owner: str, key: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = await identity.db[ANSWERS].find_one({"_id": _answer_id(owner, key)})
    return found


async def _store_answer(
    identity: IdentityStore, owner: str, key: str, status: int, body: Any, expires_at: datetime, media_type: str
) -> None:
    document = {
        "_id": _answer_id(owner, key),
        "status": status,
        "body": body,
        "media_type": media_type,
        "expires_at": expires_at,
    }
    try:
        await identity.db[ANSWERS].insert_one(document)
    except DuplicateKeyError:  # an abandoned reservation run twice: the first answer stands
        pass
    except PyMongoError as exc:
        # The operation did happen: answer it rather than a 503 that would hide a
        # write. Without the stored answer a retry waits out the reservation.
        log.warning("idempotency answer %s not stored: %s", _answer_id(owner, key), exc)


async def _release(identity: IdentityStore, owner: str, key: str) -> None:
    try:
        await identity.release_idempotency_key(key, owner)
    except PyMongoError as exc:  # the reservation then counts as abandoned after ABANDONED_AFTER
        log.warning("idempotency key %s not released: %s", _answer_id(owner, key), exc)


def _replay(answer: dict[str, Any]) -> Response:
    body = json.dumps(answer["body"], ensure_ascii=False, separators=(",", ":")).encode()
    response = Response(body, status_code=int(answer["status"]), media_type=answer["media_type"])
    response.headers[REPLAYED_HEADER] = "true"
    return response


async def idempotent(
    request: Request,
    identity: IdentityStore,
    owner: str,
    key: str | None,
    body: Any,
    operation: Operation,
    ttl: timedelta,
) -> Response:
    """Run ``operation`` at most once per ``(owner, key)`` and replay its answer."""
    if key is None:
        code, content = await operation(None)
        return service_json(content, code)
    if not _KEY.match(key):
        raise ProblemError(
            422,
            "Dati non validi",
            f"L'intestazione {IDEMPOTENCY_HEADER} deve avere da 1 a 255 caratteri stampabili, senza spazi.",
        )
    print_ = fingerprint(request.method, request.url.path, body)
    now = datetime.now(UTC)
    earlier = await identity.reserve_idempotency_key(key, owner, print_, now + ttl)
    if earlier is not None:
        if earlier["fingerprint"] != print_:
            raise ProblemError(
                422,
                "Chiave di idempotenza già usata",
                f"Questa {IDEMPOTENCY_HEADER} è già stata usata per una richiesta diversa: usa una chiave nuova.",
            )
        answer = await _stored_answer(identity, owner, key)
        if answer is not None:
            return _replay(answer)
        reserved_at = earlier["expires_at"] - ttl
        if now - reserved_at < ABANDONED_AFTER:
            raise ProblemError(
                409,
                "Richiesta già in corso",
                f"Una richiesta con la stessa {IDEMPOTENCY_HEADER} è ancora in elaborazione: "
                "riprova tra qualche istante.",
                {"Retry-After": "1"},
            )
        # Abandoned by a gateway that died: the service recognises the key, so
        # running the operation again returns what it did the first time.
    try:
        code, content = await operation(key)
    except (Conflict, Unavailable):
        # 409 from the service means "not now" (busy, still processing) and 503 "a
        # dependency is away": both retryable, so neither is the answer to keep.
        await _release(identity, owner, key)
        raise
    except DomainError as exc:
        # A refusal (404, 422, 403) is the answer to this request: replayed like a success.
        code, title = STATUS_BY_ERROR.get(type(exc), (400, "Richiesta non valida"))
        refusal = problem(code, title, exc.detail, request, exc.errors)
        problem_body = json.loads(bytes(refusal.body))
        await _store_answer(identity, owner, key, code, problem_body, now + ttl, refusal.media_type or "")
        return refusal
    except BaseException:
        # No answer (service unavailable, timeout): the client may retry with this
        # key; after a timeout the service recognises it and returns what it made.
        await _release(identity, owner, key)
        raise
    await _store_answer(identity, owner, key, code, content, now + ttl, "application/json")
    return service_json(content, code)


IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias=IDEMPOTENCY_HEADER,
        min_length=1,
        max_length=255,
        pattern=KEY_PATTERN,
        description=KEY_DESCRIPTION,
    ),
]


@dataclass(frozen=True)
class Idempotency:
    """A create route's idempotency: the caller, its ``Idempotency-Key`` (if any) and the store."""

    request: Request
    identity: IdentityStore
    owner: str
    key: str | None
    ttl: timedelta

    async def run(self, body: Any, operation: Operation) -> Response:
        """Run ``operation`` (``key -> (status, body)``) at most once per key; replay its answer."""
        return await idempotent(self.request, self.identity, self.owner, self.key, body, operation, self.ttl)

    async def create(self, body: Any, make: Callable[[str | None], Awaitable[Any]]) -> Response:
        """Run ``make`` (``key -> created resource``) at most once per key; answer 201."""

        async def operation(key: str | None) -> tuple[int, Any]:
            return HTTP_201_CREATED, await make(key)

        return await self.run(body, operation)


async def get_idempotency(
    request: Request,
    identity: Identity,
    settings: Settings,
    principal: CurrentPrincipal,
    key: IdempotencyKeyHeader = None,
) -> Idempotency:
    ttl = timedelta(hours=settings.idempotency_ttl_hours)
    return Idempotency(request=request, identity=identity, owner=principal.subject, key=key, ttl=ttl)


IdempotencyDep = Annotated[Idempotency, Depends(get_idempotency)]
