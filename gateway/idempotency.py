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
- the operation fails without an answer (service unavailable, timeout, or a 409
  "busy, retry" from the service): the reservation is released
  (``release_idempotency_key``), so the client may retry with the same key.

The key is also handed to the operation, which passes it to the service: if the
gateway times out or dies mid-request, the service recognises the retry by the key
and answers with the enrolment it already made instead of making a second one.
That is also why a reservation abandoned by a dead gateway may be run again.

Answers are stored as their own documents (``idempotency_answers``, insert-only)
rather than with ``complete_idempotency_key``: on FerretDB 1.x an update costs time
proportional to the collection (~15 ms at 4,000 keys, and keys accumulate), while
an insert and a read by ``_id`` cost the same at any size.
"""

import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from fastapi import Request, Response
from pymongo.errors import DuplicateKeyError

from conciliare.errors import Conflict, DomainError
from gateway.errors import STATUS_BY_ERROR, ProblemError, problem
from gateway.identity import IdentityStore
from gateway.responses import service_json

IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
REPLAYED_HEADER: Final = "Idempotent-Replayed"
ANSWERS: Final = "idempotency_answers"
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
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
        status, content = await operation(None)
        return service_json(content, status)
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
        status, content = await operation(key)
    except Conflict:
        # 409 from the service means "not now" (busy, still processing): retryable.
        await identity.release_idempotency_key(key, owner)
        raise
    except DomainError as exc:
        # A refusal (404, 422, 403) is the answer to this request: replayed like a success.
        status, title = STATUS_BY_ERROR.get(type(exc), (400, "Richiesta non valida"))
        refusal = problem(status, title, exc.detail, request, exc.errors)
        problem_body = json.loads(bytes(refusal.body))
        await _store_answer(identity, owner, key, status, problem_body, now + ttl, refusal.media_type or "")
        return refusal
    except BaseException:
        # No answer (service unavailable, timeout): the client may retry with this
        # key; after a timeout the service recognises it and returns what it made.
        await identity.release_idempotency_key(key, owner)
        raise
    await _store_answer(identity, owner, key, status, content, now + ttl, "application/json")
    return service_json(content, status)
