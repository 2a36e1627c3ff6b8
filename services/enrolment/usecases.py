"""Use cases of the enrolment service: load, apply a domain rule, store, answer.

Each function takes the repository, validated contract models and a ``Runtime``
(clock, sleep, event dispatch, RPC fall-backs, how to wait for a decision);
``service.py`` only parses payloads and calls one of these.

How seats stay exact on click day (two instances, any concurrency, crashes)
---------------------------------------------------------------------------
The database guarantees less than it seems (see ``repository.py``): on FerretDB
1.x a conditional ``$inc`` is not atomic (300 concurrent callers all "won" 20
seats in a test), so seats are never counted with one. What is atomic on both
MongoDB and FerretDB is a unique insert and a delete. Hence:

1. *Request*: eligibility is checked, the child's list of enrolments gets an entry
   (a unique insert at the next index: two simultaneous requests for one child
   cannot both pass the overlap check), and the request is stored as its own
   document in ``enrolment_requests`` (status ``requested``). Its id derives from
   the idempotency key, so a retried request finds itself.
2. *Decision*: whoever takes the offering's lease lock (a unique insert; two
   instances compete) decides *every* waiting request of the offering in arrival
   order: the next sequence number, confirmed while seats are free and nobody
   waits, otherwise appended to the FIFO waitlist. One pass decides a batch. In
   the service, one loop per offering and process does this and wakes the waiting
   workers (``dependencies.DecisionBoard``); without it, each caller polls.
3. *One write commits a pass*: the offering's ledger (confirmed ids, waitlist ids,
   last sequence) is saved together with a journal of the enrolment documents to
   write and the events to publish, in one single-document write (the outbox
   pattern, with the ledger as the aggregate). Then the journal is applied
   (inserts by ``_id``, idempotent), the decided requests deleted, the events
   dispatched, and a second write empties journal and outbox.
4. *Crash at any point*: before the ledger write nothing happened (the requests
   still wait, and the relay timer decides them); after it, the next holder of the
   lock or the relay replays the journal (re-inserting an existing ``_id`` is a
   no-op) and re-dispatches the events (consumers de-duplicate by ``event_id``).
   Seats are the ledger's lists, never a counter incremented on the side, so
   nothing is counted twice and no enrolment exists without its seat decision.
5. Cancellations, promotions (FIFO, on cancellation and on a capacity increase)
   and projection updates run under the same lock through the same pass, so each
   waitlisted child is promoted exactly once.

The lock is a lease (20 s): a holder that dies is replaced once the lease expires.
A holder that stalls longer than the lease while alive could overlap with its
successor; passes take milliseconds, and a holder yields after two seconds.
"""

import hashlib
import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final, TypeVar

from pydantic import BaseModel, ValidationError

from conciliare.chassis.locks import STALE_CHECK_SECONDS, acquire
from conciliare.chassis.outbox import OUTBOX_FIELD, PENDING_FLAG, outbox_record
from conciliare.contracts.catalog import OfferingEvent, OfferingSnapshot
from conciliare.contracts.common import IntegrationEvent, Page, new_id, utc_now
from conciliare.contracts.enrolment import (
    AttendanceDay,
    AttendanceOut,
    AttendanceRecord,
    AttendanceTotals,
    ChildCreate,
    ChildOut,
    EnrolmentCancelled,
    EnrolmentConfirmed,
    EnrolmentCreate,
    EnrolmentOut,
    EnrolmentPromoted,
    EnrolmentQuery,
    EnrolmentWaitlisted,
    HouseholdCreate,
    HouseholdOut,
    MonthTotals,
    OfferingRoster,
    RegisterExport,
    RosterEntry,
    SeatCounts,
    Viewer,
)
from conciliare.contracts.partners import AllianceCreated, MembershipChanged, MembershipStatus
from conciliare.errors import (
    Conflict,
    FieldError,
    Forbidden,
    NotFound,
    ValidationFailed,
    validation_failed_from_pydantic,
)
from conciliare.geo import comune_by_istat
from services.enrolment import attendance as registers
from services.enrolment.domain import (
    ENROLMENT_STATUS_LABELS,
    ROME,
    ChildNeeds,
    ChildSpec,
    EnrolmentRequest,
    EnrolmentStatus,
    ExistingEnrolment,
    Guardian,
    HouseholdSpec,
    InvalidTransition,
    Isee,
    OfferingProjection,
    OfferingStatus,
    Period,
    check_eligibility,
    format_date,
    mask_codice_fiscale,
    transition,
)
from services.enrolment.repository import EnrolmentRepository

log = logging.getLogger(__name__)

Document = dict[str, Any]
Fetch = Callable[[str], dict[str, Any] | None]
M = TypeVar("M", bound=BaseModel)

PLATFORM_ADMIN: Final = "platform_admin"
ALLIANCE_MANAGER: Final = "alliance_manager"
PARTNER_OPERATOR: Final = "partner_operator"
FAMILY: Final = "family"

LOCK_LEASE_SECONDS: Final = 20.0
LOCK_WAIT_SECONDS: Final = 10.0
EVENT_LOCK_WAIT_SECONDS: Final = 30.0
# Below the gateway's RPC timeout (10 s): past it the request stays "requested"
# and the relay timer decides it.
DECISION_WAIT_SECONDS: Final = 7.0
POLL_SECONDS: Final = 0.02
LOCK_RETRY_EVERY: Final = 3
PASS_BATCH: Final = 200
# How long one holder keeps deciding before giving others a turn.
HOLD_BUDGET_SECONDS: Final = 2.0
STALE_REQUEST_SECONDS: Final = 3.0
# An entry in a child's list whose request is not stored yet is "in flight" for
# this long; after it, the attempt that wrote it died and the entry holds nothing.
IN_FLIGHT_SECONDS: Final = 60.0
APPEND_ATTEMPTS: Final = 5

HOUSEHOLD_NOT_FOUND: Final = "Nucleo familiare non trovato."
CHILD_NOT_FOUND: Final = "Bambino non trovato."
ENROLMENT_NOT_FOUND: Final = "Iscrizione non trovata."
OFFERING_NOT_FOUND: Final = "Servizio non trovato."
BUSY: Final = "Il servizio è molto richiesto in questo momento: riprova tra qualche secondo."
NOT_PUBLISHED_REASON: Final = "Il servizio non accetta più iscrizioni (non è pubblicato)."

# Who read a child's needs, and why: the audit log answers the family's and the
# DPO's questions (GDPR art. 9 and 30).
PURPOSE_REGISTRATION: Final = "registrazione_bambino"
PURPOSE_FAMILY_VIEW: Final = "consultazione_famiglia"
PURPOSE_ELIGIBILITY: Final = "verifica_idoneita_iscrizione"
PURPOSE_PROVIDER_ROSTER: Final = "gestione_servizio_ente_gestore"


def _no_fetch(_: str) -> dict[str, Any] | None:
    return None


Decider = Callable[["EnrolmentRepository", str, str, "Runtime"], Document | None]


@dataclass(frozen=True)
class Runtime:
    """What a use case needs from its surroundings; tests and the service provide it.

    ``await_decision`` waits for a queued request to be decided; by default each
    caller polls, the service shares one deciding loop per offering instead.
    """

    dispatch: Callable[[str, dict[str, Any]], None]
    now: Callable[[], datetime] = utc_now
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    fetch_territory: Fetch = _no_fetch
    fetch_offering: Fetch = _no_fetch
    await_decision: Decider | None = None


def _today(now: datetime) -> date:
    return now.astimezone(ROME).date()


def _validate(model: type[M], data: Any, context: dict[str, Any] | None = None, prefix: str = "") -> M:
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise validation_failed_from_pydantic(exc, prefix) from None


# --- lease locks ------------------------------------------------------------------------


def _acquire(repo: EnrolmentRepository, key: str, runtime: Runtime, wait: float) -> str:
    return acquire(
        repo.locks,
        key,
        wait=wait,
        lease=LOCK_LEASE_SECONDS,
        busy_message=BUSY,
        now=runtime.now,
        monotonic=runtime.monotonic,
        sleep=runtime.sleep,
    )


@contextmanager
def _locked(repo: EnrolmentRepository, key: str, runtime: Runtime, wait: float = LOCK_WAIT_SECONDS) -> Iterator[None]:
    token = _acquire(repo, key, runtime, wait)
    try:
        yield
    finally:
        repo.release_lock(token)


def offering_lock_key(offering_id: str) -> str:
    return f"offering:{offering_id}"


# --- visibility ---------------------------------------------------------------------------


def _visible(doc: Document, viewer: Viewer) -> bool:
    """Whether ``viewer`` may see an enrolment (or a request) ``doc``."""
    if viewer.role == PLATFORM_ADMIN:
        return True
    if viewer.role == FAMILY:
        return bool(doc.get("owner_subject") == viewer.subject)
    if viewer.role == PARTNER_OPERATOR:
        return viewer.partner_id is not None and doc.get("provider_partner_id") == viewer.partner_id
    if viewer.role == ALLIANCE_MANAGER:
        return doc.get("alliance_id") in viewer.alliance_ids
    return False


def _is_provider(offering: Document, viewer: Viewer) -> bool:
    return viewer.role == PARTNER_OPERATOR and viewer.partner_id == offering["provider_partner_id"]


def _ensure_staff_of_offering(offering: Document, viewer: Viewer) -> None:
    """Provider operator, manager of the offering's alliance or admin; others get 404."""
    allowed = (
        viewer.role == PLATFORM_ADMIN
        or _is_provider(offering, viewer)
        or (viewer.role == ALLIANCE_MANAGER and offering["alliance_id"] in viewer.alliance_ids)
    )
    if not allowed:
        raise NotFound(OFFERING_NOT_FOUND)


def _audit_entry(child_id: str, viewer: Viewer, purpose: str, basis: str, now: datetime) -> Document:
    return {
        "_id": new_id(),
        "at": now,
        "child_id": child_id,
        "reader_subject": viewer.subject,
        "reader_role": viewer.role,
        "reader_partner_id": viewer.partner_id,
        "purpose": purpose,
        "basis": basis,
    }


# --- households ---------------------------------------------------------------------------


def _household_out(doc: Document) -> HouseholdOut:
    comune = comune_by_istat(doc["residence_comune_istat"])
    return HouseholdOut(
        id=doc["_id"],
        guardians=doc["guardians"],
        residence_comune_istat=doc["residence_comune_istat"],
        residence_comune_name=comune.name if comune else doc["residence_comune_istat"],
        isee=doc.get("isee"),
        single_parent=doc["single_parent"],
        created_at=doc["created_at"],
    )


def _household_spec(doc: Document) -> HouseholdSpec:
    # Stored from a validated HouseholdSpec: rebuilt without validating again (the
    # codice fiscale checks are the costly part of the request path's CPU).
    guardians = tuple(Guardian.model_construct(**guardian) for guardian in doc["guardians"])
    return HouseholdSpec.model_construct(
        guardians=guardians,
        residence_comune_istat=doc["residence_comune_istat"],
        isee=Isee.model_construct(**doc["isee"]) if doc.get("isee") else None,
        single_parent=doc["single_parent"],
    )


def _readable_household(repo: EnrolmentRepository, household_id: str, viewer: Viewer) -> Document:
    doc = repo.get_household(household_id)
    if doc is None:
        raise NotFound(HOUSEHOLD_NOT_FOUND)
    if viewer.role == PLATFORM_ADMIN or (viewer.role == FAMILY and doc["owner_subject"] == viewer.subject):
        return doc
    raise NotFound(HOUSEHOLD_NOT_FOUND)


def _owned_household(repo: EnrolmentRepository, household_id: str, viewer: Viewer) -> Document:
    doc = _readable_household(repo, household_id, viewer)
    if doc["owner_subject"] != viewer.subject:
        raise Forbidden("Solo la famiglia può modificare il proprio nucleo.")
    return doc


def create_household(
    repo: EnrolmentRepository, viewer: Viewer, spec_in: HouseholdCreate, now: datetime
) -> HouseholdOut:
    if viewer.role != FAMILY:
        raise Forbidden("Solo un utente famiglia può registrare il proprio nucleo familiare.")
    spec = _validate(HouseholdSpec, spec_in.model_dump(mode="json"))
    if comune_by_istat(spec.residence_comune_istat) is None:
        raise ValidationFailed(
            "Il nucleo non può essere registrato.",
            [
                {
                    "field": "residence_comune_istat",
                    "message": f"codice ISTAT {spec.residence_comune_istat} sconosciuto: nessun Comune con "
                    "questo codice",
                }
            ],
        )
    household_id = repo.claim_owner(viewer.subject, new_id())
    doc = {
        "_id": household_id,
        "owner_subject": viewer.subject,
        **spec.model_dump(mode="json"),
        "created_at": now,
    }
    # The owner claim comes first (unique): a crash before this insert leaves a
    # claim the next attempt completes with the same id.
    if not repo.insert_household(doc):
        raise Conflict(f"Il nucleo familiare di questo utente è già registrato (id {household_id}).")
    return _household_out(doc)


def get_household(repo: EnrolmentRepository, household_id: str, viewer: Viewer) -> HouseholdOut:
    return _household_out(_readable_household(repo, household_id, viewer))


def list_households(repo: EnrolmentRepository, viewer: Viewer, limit: int, offset: int) -> Page[HouseholdOut]:
    if viewer.role == PLATFORM_ADMIN:
        docs, total = repo.find_households(limit, offset)
        return Page(items=[_household_out(d) for d in docs], total=total, limit=limit, offset=offset)
    if viewer.role != FAMILY:
        raise Forbidden("I nuclei familiari sono visibili solo alle famiglie stesse.")
    household_id = repo.household_id_of(viewer.subject)
    doc = repo.get_household(household_id) if household_id else None
    items = [_household_out(doc)] if doc is not None and offset == 0 else []
    return Page(items=items, total=1 if doc is not None else 0, limit=limit, offset=offset)


# --- children -------------------------------------------------------------------------------


def _child_out(doc: Document, needs: list[str] | None) -> ChildOut:
    return ChildOut(
        id=doc["_id"],
        household_id=doc["household_id"],
        first_name=doc["first_name"],
        last_name=doc["last_name"],
        codice_fiscale=doc["codice_fiscale"],
        birth_date=date.fromisoformat(doc["birth_date"]),
        needs=needs,
        created_at=doc["created_at"],
    )


def add_child(
    repo: EnrolmentRepository, household_id: str, viewer: Viewer, spec_in: ChildCreate, runtime: Runtime
) -> ChildOut:
    """Register a child: identity, and needs (health data) in a collection of their own."""
    _owned_household(repo, household_id, viewer)
    now = runtime.now()
    identity = spec_in.model_dump(mode="json", exclude={"needs"})
    spec = _validate(ChildSpec, identity, context={"today": _today(now)})
    needs = sorted(_validate(ChildNeeds, {"needs": spec_in.needs}).needs)
    household_cf = f"{household_id}:{spec.codice_fiscale}"
    duplicate = Conflict(f"Il bambino con codice fiscale {spec.codice_fiscale} è già registrato in questo nucleo.")
    with _locked(repo, f"child-claim:{household_cf}", runtime):
        # The claim (unique per household and codice fiscale) fixes the child's id
        # first: a crash before the child is stored leaves a claim the next attempt
        # completes with the same id.
        child_id = repo.claim_child(household_cf, new_id())
        if repo.get_child(child_id) is not None:
            raise duplicate
        # Health data before identity: a child is never stored without its needs.
        repo.insert_needs(child_id, list(needs), now)
        doc = {
            "_id": child_id,
            "household_id": household_id,
            **spec.model_dump(mode="json"),
            "created_at": now,
        }
        if not repo.insert_child(doc):
            raise duplicate
    repo.audit([_audit_entry(child_id, viewer, PURPOSE_REGISTRATION, "household", now)])
    return _child_out(doc, list(needs))


def list_children(repo: EnrolmentRepository, household_id: str, viewer: Viewer, now: datetime) -> list[ChildOut]:
    household = _readable_household(repo, household_id, viewer)
    children = repo.children_of(household_id)
    if household["owner_subject"] != viewer.subject:
        # The platform operator sees who is registered, never health data.
        return [_child_out(c, None) for c in children]
    needs = repo.needs_of(c["_id"] for c in children)
    repo.audit([_audit_entry(c["_id"], viewer, PURPOSE_FAMILY_VIEW, "household", now) for c in children])
    return [_child_out(c, needs.get(c["_id"], [])) for c in children]


# --- projections: alliances ---------------------------------------------------------------------


def _alliance_lock(alliance_id: str) -> str:
    return f"alliance:{alliance_id}"


def apply_alliance_created(repo: EnrolmentRepository, event: AllianceCreated, runtime: Runtime) -> None:
    """Store an alliance's Comuni (idempotent by event id)."""

    def apply() -> None:
        doc = repo.get_alliance(event.alliance_id) or {"_id": event.alliance_id, "members": {}}
        doc.update(
            code=event.code,
            name=event.name,
            comuni_istat=list(event.comuni_istat),
            capofila_partner_id=event.capofila_partner_id,
        )
        repo.save_alliance(doc)

    with _locked(repo, _alliance_lock(event.alliance_id), runtime, EVENT_LOCK_WAIT_SECONDS):
        repo.inbox.consume_once("alliance_projection", _envelope(event), apply)


def apply_membership_changed(repo: EnrolmentRepository, event: MembershipChanged, runtime: Runtime) -> None:
    """Track which partners are formalized members (idempotent; the newest change wins)."""

    def apply() -> None:
        doc = repo.get_alliance(event.alliance_id) or {"_id": event.alliance_id, "members": {}}
        members: dict[str, Document] = doc.setdefault("members", {})
        current = members.get(event.partner_id)
        if current is None or current["at"] <= event.occurred_at:
            members[event.partner_id] = {"status": event.status.value, "at": event.occurred_at}
            repo.save_alliance(doc)

    with _locked(repo, _alliance_lock(event.alliance_id), runtime, EVENT_LOCK_WAIT_SECONDS):
        repo.inbox.consume_once("alliance_projection", _envelope(event), apply)


def _envelope(event: IntegrationEvent) -> dict[str, Any]:
    return {"event_id": event.event_id, "occurred_at": event.occurred_at}


def _heal_alliance(repo: EnrolmentRepository, alliance_id: str, runtime: Runtime) -> Document:
    """Fetch a territory this service never heard of (it started after the events)."""
    fetched = runtime.fetch_territory(alliance_id)
    if fetched is None:
        raise Conflict("Il territorio dell'alleanza del servizio non è ancora disponibile: riprova tra poco.")
    now = runtime.now()
    formalized = set(fetched["formalized_partner_ids"])
    with _locked(repo, _alliance_lock(alliance_id), runtime):
        doc = repo.get_alliance(alliance_id) or {"_id": alliance_id, "members": {}}
        doc["comuni_istat"] = list(fetched["comuni_istat"])
        members: dict[str, Document] = doc.setdefault("members", {})
        for partner_id in formalized:
            members.setdefault(partner_id, {"status": MembershipStatus.FORMALIZED.value, "at": now})
        for partner_id, member in members.items():
            if partner_id not in formalized and member["status"] == MembershipStatus.FORMALIZED.value:
                members[partner_id] = {"status": "not_formalized", "at": now}
        doc["healed_at"] = now
        repo.save_alliance(doc)
    return doc


def _territory(repo: EnrolmentRepository, alliance_id: str, runtime: Runtime) -> tuple[frozenset[str], frozenset[str]]:
    doc = repo.get_alliance(alliance_id)
    if doc is None or doc.get("comuni_istat") is None:
        doc = _heal_alliance(repo, alliance_id, runtime)
    formalized = frozenset(
        partner_id
        for partner_id, member in doc.get("members", {}).items()
        if member["status"] == MembershipStatus.FORMALIZED.value
    )
    return frozenset(doc["comuni_istat"]), formalized


# --- projections: offerings --------------------------------------------------------------------


def _snapshot_doc(snapshot: OfferingSnapshot, now: datetime) -> Document:
    return {"_id": snapshot.offering_id, **snapshot.model_dump(mode="json"), "updated_at": now}


def _projection(doc: Document) -> OfferingProjection:
    return OfferingProjection.model_validate(
        {
            "offering_id": doc["offering_id"],
            "alliance_id": doc["alliance_id"],
            "provider_partner_id": doc["provider_partner_id"],
            "status": doc["status"],
            "capacity": doc["capacity"],
            "age_range": {"min_months": doc["age_min_months"], "max_months": doc["age_max_months"]},
            "special_needs_supported": doc["special_needs_supported"],
            "attendance_modes": doc["attendance_modes"],
            "periods": doc["periods"],
            "comune_istat": doc["comune_istat"],
            "price": {"amount_cents": doc["price_cents"], "unit": doc["price_unit"]},
            "version": doc["version"],
        }
    )


def apply_offering_event(repo: EnrolmentRepository, event: OfferingEvent, runtime: Runtime) -> None:
    """Keep the newest snapshot of an offering, then settle its seats.

    Older versions are ignored; a capacity increase promotes as many waitlisted
    children as now fit, in FIFO order.
    """
    snapshot = event.offering

    def apply() -> None:
        current = repo.get_offering(snapshot.offering_id)
        if current is None or int(current["version"]) < snapshot.version:
            repo.save_offering(_snapshot_doc(snapshot, runtime.now()))

    with _locked(repo, offering_lock_key(snapshot.offering_id), runtime, EVENT_LOCK_WAIT_SECONDS):
        repo.inbox.consume_once("offering_projection", _envelope(event), apply)
        drain(repo, snapshot.offering_id, runtime)


def _offering(repo: EnrolmentRepository, offering_id: str, runtime: Runtime) -> Document:
    doc = repo.get_offering(offering_id)
    if doc is not None:
        return doc
    # Self-healing: the catalog published this offering before we listened.
    fetched = runtime.fetch_offering(offering_id)
    if fetched is None:
        raise NotFound(f"{OFFERING_NOT_FOUND} Se è appena stato pubblicato, riprova tra qualche secondo.")
    snapshot = _validate(OfferingSnapshot, fetched)
    with _locked(repo, offering_lock_key(offering_id), runtime):
        current = repo.get_offering(offering_id)
        if current is None or int(current["version"]) < snapshot.version:
            repo.save_offering(_snapshot_doc(snapshot, runtime.now()))
    found = repo.get_offering(offering_id)
    assert found is not None
    return found


# --- enrolment documents ------------------------------------------------------------------------


def _existing(doc: Document) -> ExistingEnrolment:
    return ExistingEnrolment.model_validate(
        {
            "enrolment_id": doc["_id"],
            "child_id": doc["child_id"],
            "offering_id": doc["offering_id"],
            "period": doc["period"],
            "attendance_mode": doc["attendance_mode"],
            "chosen_weekdays": doc.get("chosen_weekdays"),
            "hours": doc.get("hours"),
            "status": doc.get("status", EnrolmentStatus.REQUESTED.value),
            "requested_at": doc["requested_at"],
            "sequence": doc.get("sequence") or 0,
        }
    )


def _position(ledger: Document | None, enrolment_id: str) -> int | None:
    if ledger is None:
        return None
    try:
        return list(ledger.get("waitlist", [])).index(enrolment_id) + 1
    except ValueError:
        return None


def _enrolment_out(doc: Document, position: int | None = None) -> EnrolmentOut:
    status = EnrolmentStatus(doc.get("status", EnrolmentStatus.REQUESTED.value))
    return EnrolmentOut(
        id=doc["_id"],
        offering_id=doc["offering_id"],
        offering_title=doc["offering_title"],
        alliance_id=doc["alliance_id"],
        provider_partner_id=doc["provider_partner_id"],
        child_id=doc["child_id"],
        child_name=doc["child_name"],
        child_codice_fiscale=doc["child_codice_fiscale"],
        household_id=doc["household_id"],
        period=doc["period"],
        attendance_mode=doc["attendance_mode"],
        chosen_weekdays=doc.get("chosen_weekdays"),
        hours=doc.get("hours"),
        status=status.value,
        status_label=ENROLMENT_STATUS_LABELS[status],
        sequence=doc.get("sequence"),
        waitlist_position=position if status is EnrolmentStatus.WAITLISTED else None,
        promoted=bool(doc.get("promoted", False)),
        requested_at=doc["requested_at"],
        decided_at=doc.get("decided_at"),
        cancelled_at=doc.get("cancelled_at"),
        cancel_reason=doc.get("cancel_reason"),
    )


def _event_fields(doc: Document) -> dict[str, Any]:
    return {
        "alliance_id": doc["alliance_id"],
        "offering_id": doc["offering_id"],
        "enrolment_id": doc["_id"],
        "child_id": doc["child_id"],
        "household_id": doc["household_id"],
        "provider_partner_id": doc["provider_partner_id"],
        "sequence": doc.get("sequence"),
    }


# --- the seat ledger: one pass under the offering's lock ------------------------------------------


@dataclass(frozen=True)
class _Cancellation:
    enrolment_id: str
    reason: str | None
    viewer: Viewer


def _finish(
    repo: EnrolmentRepository,
    offering_id: str,
    journal: list[Document],
    records: list[Document],
    runtime: Runtime,
) -> None:
    """Apply a committed journal, publish its events, then empty journal and outbox.

    Every step is safe to repeat, so a journal left by a crash is simply replayed.
    """
    repo.insert_enrolments([entry["doc"] for entry in journal if entry["op"] == "insert"])
    for entry in journal:
        if entry["op"] == "set":
            repo.set_enrolment_fields(entry["id"], entry["fields"])
    for entry in journal:
        if entry["op"] == "delete_requests":
            repo.delete_requests(entry["ids"])
    for record in records:
        runtime.dispatch(record["event_type"], record["payload"])
    repo.save_ledger(offering_id, {"journal": [], OUTBOX_FIELD: [], PENDING_FLAG: False})


def _settle(
    repo: EnrolmentRepository,
    offering_id: str,
    runtime: Runtime,
    cancel: _Cancellation | None = None,
) -> list[Document]:
    """One pass (caller holds the offering's lock): cancel, promote, decide waiting requests.

    Returns the enrolments it made of waiting requests.
    """
    ledger = repo.get_ledger(offering_id)
    if ledger is not None and (ledger.get("journal") or ledger.get(OUTBOX_FIELD)):
        _finish(repo, offering_id, ledger.get("journal", []), ledger.get(OUTBOX_FIELD, []), runtime)
    offering = repo.get_offering(offering_id)
    now = runtime.now()
    confirmed: list[str] = list(ledger.get("confirmed", [])) if ledger else []
    waitlist: list[str] = list(ledger.get("waitlist", [])) if ledger else []
    sequence = int(ledger.get("next_sequence", 0)) if ledger else 0
    published = offering is not None and offering["status"] == OfferingStatus.PUBLISHED.value
    capacity = int(offering["capacity"]) if offering is not None else 0
    journal: list[Document] = []
    events: list[IntegrationEvent] = []

    def promote() -> None:
        free = capacity - len(confirmed)
        if not published or free <= 0 or not waitlist:
            return
        chosen = waitlist[:free]
        del waitlist[:free]
        for position, enrolment_id in enumerate(chosen, start=1):
            doc = repo.get_enrolment(enrolment_id)
            if doc is None:  # cannot happen once journals are applied; never promote a ghost
                log.error("waitlisted enrolment %s of %s has no document", enrolment_id, offering_id)
                continue
            journal.append(
                {
                    "op": "set",
                    "id": enrolment_id,
                    "fields": {"status": EnrolmentStatus.CONFIRMED.value, "promoted": True, "confirmed_at": now},
                }
            )
            events.append(EnrolmentPromoted(**_event_fields(doc), position=position))
            confirmed.append(enrolment_id)

    # Restores "no free seat while someone waits" if an earlier pass could not.
    promote()

    if cancel is not None:
        doc = repo.get_enrolment(cancel.enrolment_id)
        if doc is None:
            raise Conflict("La richiesta di iscrizione è ancora in elaborazione: riprova tra qualche istante.")
        current = EnrolmentStatus(doc["status"])
        try:
            transition(current, EnrolmentStatus.CANCELLED)
        except InvalidTransition as exc:
            # nameko serialises the class name: the gateway knows Conflict, not this subclass.
            raise Conflict(exc.detail) from None
        if cancel.enrolment_id in confirmed:
            confirmed.remove(cancel.enrolment_id)
        if cancel.enrolment_id in waitlist:
            waitlist.remove(cancel.enrolment_id)
        journal.append(
            {
                "op": "set",
                "id": cancel.enrolment_id,
                "fields": {
                    "status": EnrolmentStatus.CANCELLED.value,
                    "cancelled_at": now,
                    "cancel_reason": cancel.reason,
                    "cancelled_by": {"subject": cancel.viewer.subject, "role": cancel.viewer.role},
                },
            }
        )
        events.append(EnrolmentCancelled(**_event_fields(doc), previous_status=current.value, reason=cancel.reason))
        promote()

    decided: list[Document] = []
    for request in repo.pending_requests(offering_id, PASS_BATCH):
        doc = {
            **request,
            "promoted": False,
            "decided_at": now,
            "confirmed_at": None,
            "cancelled_at": None,
            "cancel_reason": None,
        }
        if not published:
            # Suspended or archived between the eligibility check and this pass.
            doc.update(status=EnrolmentStatus.CANCELLED.value, sequence=None, cancelled_at=now)
            doc["cancel_reason"] = NOT_PUBLISHED_REASON
            events.append(
                EnrolmentCancelled(
                    **_event_fields(doc),
                    previous_status=EnrolmentStatus.REQUESTED.value,
                    reason=NOT_PUBLISHED_REASON,
                )
            )
        else:
            sequence += 1
            doc["sequence"] = sequence
            if len(confirmed) < capacity and not waitlist:
                doc.update(status=EnrolmentStatus.CONFIRMED.value, confirmed_at=now)
                confirmed.append(doc["_id"])
                events.append(EnrolmentConfirmed(**_event_fields(doc)))
            else:
                waitlist.append(doc["_id"])
                doc.update(status=EnrolmentStatus.WAITLISTED.value, position_at_request=len(waitlist))
                events.append(EnrolmentWaitlisted(**_event_fields(doc), position=len(waitlist)))
        journal.append({"op": "insert", "doc": doc})
        decided.append(doc)
    if decided:
        journal.append({"op": "delete_requests", "ids": [doc["_id"] for doc in decided]})

    if not journal:
        return []
    records = [outbox_record(event) for event in events]
    # The commit point: state, journal and events in one single-document write.
    repo.save_ledger(
        offering_id,
        {
            "confirmed": confirmed,
            "waitlist": waitlist,
            "next_sequence": sequence,
            "journal": journal,
            OUTBOX_FIELD: records,
            PENDING_FLAG: True,
            "updated_at": now,
        },
    )
    _finish(repo, offering_id, journal, records, runtime)
    return decided


def drain(repo: EnrolmentRepository, offering_id: str, runtime: Runtime) -> list[Document]:
    """Passes until no request waits, within a time budget (caller holds the offering's lock).

    Returns the enrolments made of waiting requests, so local waiters can be woken.
    """
    deadline = runtime.monotonic() + HOLD_BUDGET_SECONDS
    decided: list[Document] = []
    while True:
        batch = _settle(repo, offering_id, runtime)
        decided += batch
        if not batch or runtime.monotonic() >= deadline:
            return decided


def _await_decision(
    repo: EnrolmentRepository, enrolment_id: str, offering_id: str, runtime: Runtime
) -> Document | None:
    """Decide waiting requests if the lock is free, else wait for whoever holds it."""
    deadline = runtime.monotonic() + DECISION_WAIT_SECONDS
    next_stale_check = runtime.monotonic() + STALE_CHECK_SECONDS
    attempt = 0
    while True:
        if attempt % LOCK_RETRY_EVERY == 0:
            token = repo.try_lock(offering_lock_key(offering_id), runtime.now(), LOCK_LEASE_SECONDS)
            if token is not None:
                try:
                    drain(repo, offering_id, runtime)
                except Exception:  # the decision may be stored all the same: look for it
                    log.exception("allocation pass for offering %s failed", offering_id)
                finally:
                    repo.release_lock(token)
            elif runtime.monotonic() >= next_stale_check:
                repo.break_stale_lock(offering_lock_key(offering_id), runtime.now())
                next_stale_check = runtime.monotonic() + STALE_CHECK_SECONDS
        doc = repo.get_enrolment(enrolment_id)
        if doc is not None:
            return doc
        if runtime.monotonic() >= deadline:
            return None
        attempt += 1
        runtime.sleep(POLL_SECONDS)


# --- enrolment requests ---------------------------------------------------------------------------


def enrolment_id_for(owner_subject: str, request_key: str) -> str:
    """Stable id of the enrolment an idempotency key creates: a retry finds the first."""
    return hashlib.sha256(f"{owner_subject}\x00{request_key}".encode()).hexdigest()[:32]


def _answer(repo: EnrolmentRepository, doc: Document) -> EnrolmentOut:
    if doc.get("status") == EnrolmentStatus.CANCELLED.value and doc.get("cancel_reason") == NOT_PUBLISHED_REASON:
        raise ValidationFailed(
            "L'iscrizione non può essere accettata.",
            [{"field": "offering_not_published", "message": NOT_PUBLISHED_REASON}],
        )
    position = doc.get("position_at_request") if doc.get("status") == EnrolmentStatus.WAITLISTED.value else None
    return _enrolment_out(doc, position)


def _active_overlapping(
    repo: EnrolmentRepository, items: list[Document], period: Period, skip_id: str, now: datetime
) -> list[ExistingEnrolment]:
    """The child's enrolments whose period overlaps ``period`` (only those matter)."""
    found: list[ExistingEnrolment] = []
    for item in items:
        if item["enrolment_id"] == skip_id:
            continue
        if not Period(start=item["start"], end=item["end"]).overlaps(period):
            continue
        doc = repo.get_enrolment(item["enrolment_id"]) or repo.get_request(item["enrolment_id"])
        if doc is not None:
            found.append(_existing(doc))
        elif _in_flight(item, now):
            # Listed a moment ago, its request not stored yet: it counts as requested.
            placeholder = {
                "_id": item["enrolment_id"],
                "child_id": item["child_id"],
                "offering_id": item["offering_id"],
                "period": {"start": item["start"], "end": item["end"]},
                "attendance_mode": "full",  # only its period and status matter here
                "requested_at": item["listed_at"],
            }
            found.append(_existing(placeholder))
        # Otherwise a request that a crash never stored: it holds nothing.
    return found


def _in_flight(item: Document, now: datetime) -> bool:
    return bool(now - item["listed_at"] < timedelta(seconds=IN_FLIGHT_SECONDS))


def request_enrolment(
    repo: EnrolmentRepository,
    viewer: Viewer,
    spec_in: EnrolmentCreate,
    request_key: str | None,
    runtime: Runtime,
) -> EnrolmentOut:
    """Check eligibility, queue the request, and answer with its decision.

    Two simultaneous requests for one child must not both pass the overlap check:
    each appends to the child's list at the next free index with a unique insert,
    and the one that loses the race checks again against the winner's entry.
    """
    if viewer.role != FAMILY:
        raise Forbidden("Solo le famiglie possono iscrivere i propri figli.")
    request = _validate(EnrolmentRequest, spec_in.model_dump(mode="json"))
    enrolment_id = enrolment_id_for(viewer.subject, request_key) if request_key else new_id()
    child = repo.get_child(request.child_id)
    household = repo.get_household(child["household_id"]) if child else None
    if child is None or household is None or household["owner_subject"] != viewer.subject:
        raise NotFound(CHILD_NOT_FOUND)
    items = repo.child_enrolment_items(child["_id"])
    mine = next((item for item in items if item["enrolment_id"] == enrolment_id), None)
    now = runtime.now()
    if mine is not None and (
        _in_flight(mine, now) or repo.get_request(enrolment_id) or repo.get_enrolment(enrolment_id)
    ):
        # A retry with the same idempotency key: answer with the first request.
        return _wait_and_answer(repo, enrolment_id, request.offering_id, runtime)
    # (An entry of ours with no request long after: that attempt died before
    # storing it; this one completes it.)
    offering = _offering(repo, request.offering_id, runtime)
    projection = _projection(offering)
    comuni, partners = _territory(repo, projection.alliance_id, runtime)
    needs = repo.get_needs(child["_id"]) or []
    repo.audit([_audit_entry(child["_id"], viewer, PURPOSE_ELIGIBILITY, "household", now)])
    household_spec = _household_spec(household)
    child_needs = ChildNeeds.model_validate({"needs": needs})
    birth_date = date.fromisoformat(child["birth_date"])
    for _ in range(APPEND_ATTEMPTS):
        refusals = check_eligibility(
            request,
            birth_date,
            child_needs,
            household_spec,
            projection,
            comuni,
            partners,
            _active_overlapping(repo, items, request.period, enrolment_id, now),
            _today(now),
        )
        if refusals:
            errors: list[FieldError] = [{"field": r.code.value, "message": r.message} for r in refusals]
            raise ValidationFailed("L'iscrizione non può essere accettata.", errors)
        if mine is not None:
            break
        # The child's own list first: a request is never stored without its entry.
        entry = {
            "enrolment_id": enrolment_id,
            "offering_id": request.offering_id,
            "child_id": child["_id"],
            "start": request.period.start.isoformat(),
            "end": request.period.end.isoformat(),
            "attendance_mode": request.attendance_mode.value,
            "listed_at": now,
        }
        if repo.add_child_enrolment_item(child["_id"], len(items), entry):
            break
        # Someone appended first (another request for this child): check again.
        items = repo.child_enrolment_items(child["_id"])
    else:
        raise Conflict(BUSY)
    repo.insert_request(
        {
            "_id": enrolment_id,
            "offering_id": projection.offering_id,
            "offering_title": offering["title"],
            "alliance_id": projection.alliance_id,
            "provider_partner_id": projection.provider_partner_id,
            "child_id": child["_id"],
            "child_name": f"{child['first_name']} {child['last_name']}",
            "child_first_name": child["first_name"],
            "child_last_name": child["last_name"],
            "child_codice_fiscale": mask_codice_fiscale(child["codice_fiscale"]),
            "child_birth_date": child["birth_date"],
            "household_id": household["_id"],
            "owner_subject": viewer.subject,
            **request.model_dump(mode="json", include={"period", "attendance_mode", "hours"}),
            "chosen_weekdays": sorted(request.chosen_weekdays) if request.chosen_weekdays else None,
            "status": EnrolmentStatus.REQUESTED.value,
            "requested_at": now,
        }
    )
    return _wait_and_answer(repo, enrolment_id, request.offering_id, runtime)


def _wait_and_answer(repo: EnrolmentRepository, enrolment_id: str, offering_id: str, runtime: Runtime) -> EnrolmentOut:
    decided = repo.get_enrolment(enrolment_id)
    if decided is not None:  # the usual retry: already decided
        return _answer(repo, decided)
    wait = runtime.await_decision or _await_decision
    doc = wait(repo, enrolment_id, offering_id, runtime)
    if doc is not None:
        return _answer(repo, doc)
    # Still queued (the holder is slow or died): answered as "requested"; the
    # relay timer decides it and the family sees the outcome on the next read.
    waiting = repo.get_request(enrolment_id) or repo.get_enrolment(enrolment_id)
    if waiting is None:
        raise Conflict(BUSY)
    return _answer(repo, waiting)


def cancel_enrolment(
    repo: EnrolmentRepository, enrolment_id: str, viewer: Viewer, reason: str | None, runtime: Runtime
) -> EnrolmentOut:
    """Cancel; a freed seat goes to the first waitlisted child at once."""
    doc = repo.get_enrolment(enrolment_id) or repo.get_request(enrolment_id)
    if doc is None or not _visible(doc, viewer):
        raise NotFound(ENROLMENT_NOT_FOUND)
    if viewer.role == ALLIANCE_MANAGER:
        raise Forbidden("L'annullamento spetta alla famiglia o all'ente gestore del servizio.")
    cancellation = _Cancellation(enrolment_id, reason, viewer)
    with _locked(repo, offering_lock_key(doc["offering_id"]), runtime):
        _settle(repo, doc["offering_id"], runtime, cancellation)
        drain(repo, doc["offering_id"], runtime)
    updated = repo.get_enrolment(enrolment_id)
    assert updated is not None
    return _enrolment_out(updated)


# --- reads ------------------------------------------------------------------------------------------


def get_enrolment(repo: EnrolmentRepository, enrolment_id: str, viewer: Viewer) -> EnrolmentOut:
    doc = repo.get_enrolment(enrolment_id) or repo.get_request(enrolment_id)
    if doc is None or not _visible(doc, viewer):
        raise NotFound(ENROLMENT_NOT_FOUND)
    position = None
    if doc.get("status") == EnrolmentStatus.WAITLISTED.value:
        position = _position(repo.get_ledger(doc["offering_id"]), enrolment_id)
    return _enrolment_out(doc, position)


def _scope(viewer: Viewer) -> Document | None:
    """The part of an enrolment query that keeps a viewer in its tenant; None: nothing."""
    if viewer.role == PLATFORM_ADMIN:
        return {}
    if viewer.role == FAMILY:
        return {"owner_subject": viewer.subject}
    if viewer.role == PARTNER_OPERATOR and viewer.partner_id:
        return {"provider_partner_id": viewer.partner_id}
    if viewer.role == ALLIANCE_MANAGER and viewer.alliance_ids:
        return {"alliance_id": {"$in": list(viewer.alliance_ids)}}
    return None


def list_enrolments(repo: EnrolmentRepository, viewer: Viewer, query: EnrolmentQuery) -> Page[EnrolmentOut]:
    scope = _scope(viewer)
    if scope is None:
        return Page(items=[], total=0, limit=query.limit, offset=query.offset)
    if query.status is not None and query.status not in {s.value for s in EnrolmentStatus}:
        raise ValidationFailed(
            "Filtro non valido.",
            [
                {
                    "field": "status",
                    "message": "stato sconosciuto: requested, confirmed, waitlisted, cancelled, completed",
                }
            ],
        )
    filters = {"offering_id": query.offering_id, "child_id": query.child_id, "status": query.status}
    docs, total = repo.find_enrolments(
        {**scope, **{k: v for k, v in filters.items() if v is not None}}, query.limit, query.offset
    )
    ledgers = {
        offering_id: repo.get_ledger(offering_id)
        for offering_id in {d["offering_id"] for d in docs if d["status"] == EnrolmentStatus.WAITLISTED.value}
    }
    items = [_enrolment_out(d, _position(ledgers.get(d["offering_id"]), d["_id"])) for d in docs]
    return Page(items=items, total=total, limit=query.limit, offset=query.offset)


def seat_counts(repo: EnrolmentRepository, offering_id: str) -> SeatCounts:
    ledger = repo.get_ledger(offering_id) or {}
    return SeatCounts(confirmed=len(ledger.get("confirmed", [])), waitlisted=len(ledger.get("waitlist", [])))


def offering_roster(repo: EnrolmentRepository, offering_id: str, viewer: Viewer, now: datetime) -> OfferingRoster:
    """Confirmed children and the waitlist in order; needs only for the provider (audited)."""
    offering = repo.get_offering(offering_id)
    if offering is None:
        raise NotFound(OFFERING_NOT_FOUND)
    _ensure_staff_of_offering(offering, viewer)
    ledger = repo.get_ledger(offering_id) or {}
    confirmed_ids: list[str] = list(ledger.get("confirmed", []))
    waitlist_ids: list[str] = list(ledger.get("waitlist", []))
    docs = repo.enrolments_by_ids(confirmed_ids + waitlist_ids)
    disclose = _is_provider(offering, viewer)
    needs: dict[str, list[str]] = {}
    if disclose:
        child_ids = sorted({d["child_id"] for d in docs.values()})
        needs = repo.needs_of(child_ids)
        repo.audit(
            [_audit_entry(c, viewer, PURPOSE_PROVIDER_ROSTER, "provider_of_enrolled_service", now) for c in child_ids]
        )

    def entry(doc: Document, position: int | None) -> RosterEntry:
        return RosterEntry(
            enrolment_id=doc["_id"],
            child_id=doc["child_id"],
            child_name=doc["child_name"],
            child_codice_fiscale=doc["child_codice_fiscale"],
            birth_date=date.fromisoformat(doc["child_birth_date"]),
            needs=needs.get(doc["child_id"], []) if disclose else None,
            status=doc["status"],
            sequence=doc.get("sequence"),
            waitlist_position=position,
            period=doc["period"],
            attendance_mode=doc["attendance_mode"],
            requested_at=doc["requested_at"],
        )

    confirmed = sorted((docs[i] for i in confirmed_ids if i in docs), key=lambda d: d.get("sequence") or 0)
    waitlist = [docs[i] for i in waitlist_ids if i in docs]
    return OfferingRoster(
        offering_id=offering_id,
        title=offering["title"],
        capacity=int(offering["capacity"]),
        confirmed_count=len(confirmed_ids),
        waitlisted_count=len(waitlist_ids),
        needs_disclosed=disclose,
        confirmed=[entry(d, None) for d in confirmed],
        waitlist=[entry(d, index) for index, d in enumerate(waitlist, start=1)],
    )


# --- attendance ---------------------------------------------------------------------------------------


def _months(period: Document) -> list[str]:
    start, end = date.fromisoformat(period["start"]), date.fromisoformat(period["end"])
    months = []
    year, month = start.year, start.month
    while (year, month) <= (end.year, end.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def _stored_entries(doc: Document, months: dict[str, Document]) -> list[registers.AttendanceEntry]:
    entries = []
    for month_doc in months.values():
        for day, value in month_doc.get("days", {}).items():
            entries.append(
                registers.AttendanceEntry(
                    enrolment_id=doc["_id"], day=date.fromisoformat(day), present=value["present"], hours=value["hours"]
                )
            )
    return sorted(entries, key=lambda e: e.day)


def _attendance_out(repo: EnrolmentRepository, doc: Document) -> AttendanceOut:
    months = _months(doc["period"])
    stored = repo.attendance_months(doc["_id"], months)
    entries = _stored_entries(doc, stored)
    month_totals = []
    for month in months:
        year, number = int(month[:4]), int(month[5:])
        totals = registers.monthly_totals(entries, year, number).get(doc["_id"])
        if totals is not None:
            month_totals.append(MonthTotals(month=month, days_present=totals.days_present, hours=totals.hours))
    return AttendanceOut(
        enrolment_id=doc["_id"],
        entries=[AttendanceDay(day=e.day, present=e.present, hours=e.hours) for e in entries],
        months=month_totals,
        totals=AttendanceTotals(
            days_present=sum(m.days_present for m in month_totals), hours=sum(m.hours for m in month_totals)
        ),
    )


def get_attendance(repo: EnrolmentRepository, enrolment_id: str, viewer: Viewer) -> AttendanceOut:
    doc = repo.get_enrolment(enrolment_id)
    if doc is None or not _visible(doc, viewer):
        raise NotFound(ENROLMENT_NOT_FOUND)
    return _attendance_out(repo, doc)


def record_attendance(
    repo: EnrolmentRepository, enrolment_id: str, viewer: Viewer, record: AttendanceRecord, runtime: Runtime
) -> AttendanceOut:
    """Record presence (or hours) per day; a day recorded again is replaced."""
    doc = repo.get_enrolment(enrolment_id)
    if doc is None or not _visible(doc, viewer):
        raise NotFound(ENROLMENT_NOT_FOUND)
    if viewer.role not in (PARTNER_OPERATOR, PLATFORM_ADMIN):
        raise Forbidden("Le presenze le registra l'ente gestore del servizio.")
    now = runtime.now()
    existing = _existing(doc)
    errors: list[FieldError] = []
    entries: list[registers.AttendanceEntry] = []
    seen: set[date] = set()
    for index, item in enumerate(record.entries):
        if item.day in seen:
            errors.append({"field": f"entries.{index}.day", "message": f"Il giorno {format_date(item.day)} è ripetuto"})
            continue
        seen.add(item.day)
        try:
            entry = registers.AttendanceEntry.model_validate(
                {"enrolment_id": enrolment_id, "day": item.day, "present": item.present, "hours": item.hours}
            )
        except ValidationError as exc:
            errors += validation_failed_from_pydantic(exc, f"entries.{index}.").errors
            continue
        errors += [
            {"field": f"entries.{index}.day", "message": problem}
            for problem in registers.attendance_problems(entry, existing, _today(now))
        ]
        entries.append(entry)
    if errors:
        raise ValidationFailed("Le presenze non possono essere registrate.", errors)

    by_month: dict[str, list[registers.AttendanceEntry]] = {}
    for entry in entries:
        by_month.setdefault(entry.day.strftime("%Y-%m"), []).append(entry)
    with _locked(repo, f"attendance:{enrolment_id}", runtime):
        stored = repo.attendance_months(enrolment_id, list(by_month))
        for month, month_entries in by_month.items():
            month_id = f"{enrolment_id}:{month}"
            month_doc = stored.get(month_id) or {
                "_id": month_id,
                "enrolment_id": enrolment_id,
                "offering_id": doc["offering_id"],
                "month": month,
                "days": {},
            }
            for entry in month_entries:
                month_doc["days"][entry.day.isoformat()] = {
                    "present": entry.present,
                    "hours": entry.hours,
                    "recorded_by": viewer.subject,
                    "recorded_at": now,
                }
            repo.save_attendance_month(month_doc)
    return _attendance_out(repo, doc)


_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def attendance_register(repo: EnrolmentRepository, offering_id: str, month: str, viewer: Viewer) -> RegisterExport:
    """The month's register of an offering as a semicolon CSV (codici fiscali masked)."""
    match = _MONTH.match(month)
    if match is None:
        raise ValidationFailed(
            "Mese non valido.", [{"field": "month", "message": "indicare il mese come AAAA-MM, es. 2027-03"}]
        )
    year, number = int(match.group(1)), int(match.group(2))
    offering = repo.get_offering(offering_id)
    if offering is None:
        raise NotFound(OFFERING_NOT_FOUND)
    _ensure_staff_of_offering(offering, viewer)
    statuses = sorted(s.value for s in registers.STATUSES_WITH_ATTENDANCE)
    first = date(year, number, 1)
    last = (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    month_period = Period(start=first, end=last)
    docs = [
        d
        for d in repo.enrolments_of_offering(offering_id, statuses)
        if Period.model_validate(d["period"]).overlaps(month_period)
    ]
    stored = repo.attendance_of_month([d["_id"] for d in docs], month)
    rows = []
    for doc in docs:
        month_doc = stored.get(doc["_id"])
        entries = _stored_entries(doc, {month: month_doc} if month_doc else {})
        if doc["status"] == EnrolmentStatus.CANCELLED.value and not entries:
            continue  # cancelled before attending this month: not on the register
        rows.append(
            registers.RegisterRow(
                child_display_name=f"{doc['child_last_name']} {doc['child_first_name']}",
                child_codice_fiscale=doc["child_codice_fiscale"],
                enrolment_id=doc["_id"],
                entries=tuple(entries),
            )
        )
    rows.sort(key=lambda r: (r.child_display_name.casefold(), r.enrolment_id))
    slug = re.sub(r"[^a-z0-9]+", "-", str(offering["title"]).casefold()).strip("-")[:40] or "servizio"
    return RegisterExport(
        filename=f"registro-presenze-{slug}-{month}.csv", content=registers.register_csv(rows, year, number)
    )


# --- relay -----------------------------------------------------------------------------------------------


def relay(repo: EnrolmentRepository, runtime: Runtime) -> int:
    """Finish what crashes left: journals, unpublished events, undecided requests."""
    now = runtime.now()
    offering_ids = set(repo.ledgers_with_pending_work())
    offering_ids |= repo.offerings_with_requests_before(now - timedelta(seconds=STALE_REQUEST_SECONDS))
    handled = 0
    for offering_id in sorted(offering_ids):
        token = repo.try_lock(offering_lock_key(offering_id), now, LOCK_LEASE_SECONDS)
        if token is None:
            repo.break_stale_lock(offering_lock_key(offering_id), now)
            continue
        try:
            drain(repo, offering_id, runtime)
            handled += 1
        finally:
            repo.release_lock(token)
    return handled
