"""Use cases of the catalog service: load, apply a domain rule, store, answer.

Each function takes the repository (and the remote clients it needs) and validated
models; ``service.py`` only parses payloads, calls one of these and publishes the
outbox. Events ride in the offering's own document (see ``chassis/outbox.py``).

Drafts are private: consumers hear of an offering from its first publication on
(``offering.published``), then of every change (``offering.updated``), suspension
and archiving. A draft archived without ever being published emits nothing.
"""

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from conciliare.chassis.validation import parse
from conciliare.contracts.catalog import (
    OfferingArchived,
    OfferingEvent,
    OfferingOut,
    OfferingPublished,
    OfferingQuery,
    OfferingSnapshot,
    OfferingSuspended,
    OfferingUpdated,
    ProviderOfferingQuery,
    SnapshotPeriod,
)
from conciliare.contracts.common import Page, new_id
from conciliare.errors import Conflict, DomainError, FieldError, NotFound, ValidationFailed
from services.catalog.dependencies import (
    EnrolmentClient,
    PartnersClient,
    RemoteRefused,
    RemoteUnavailable,
)
from services.catalog.domain import (
    CapacityBelowConfirmed,
    CatalogError,
    InvalidTransition,
    NotEditable,
    NotPublishable,
    OfferingSpec,
    OfferingView,
    SearchCriteria,
    change_status,
    check_update,
    matches,
    search_tokens,
    sort_results,
)
from services.catalog.repository import CatalogRepository
from conciliare.contracts.taxonomy import OfferingStatus

Document = dict[str, Any]
ROME = ZoneInfo("Europe/Rome")
OFFERING_NOT_FOUND = "Offerta non trovata."
STALE_OFFERING = "L'offerta è stata modificata da qualcun altro nel frattempo: ricaricala e riprova."
# Status changes do not depend on what the caller saw, so a few retries absorb a
# concurrent edit instead of bouncing it back to the user.
STATUS_CHANGE_ATTEMPTS = 5

# Actions of ``change_status`` and the status each one leads to.
ACTIONS: dict[str, OfferingStatus] = {
    "publish": OfferingStatus.PUBLISHED,
    "resume": OfferingStatus.PUBLISHED,
    "suspend": OfferingStatus.SUSPENDED,
    "archive": OfferingStatus.ARCHIVED,
}
# "publish" and "resume" both lead to published; each is meant for one starting state.
ACTION_SOURCE: dict[str, tuple[OfferingStatus, str]] = {
    "publish": (OfferingStatus.DRAFT, "L'offerta è sospesa: per renderla di nuovo visibile usa «riprendi»."),
    "resume": (OfferingStatus.SUSPENDED, "L'offerta non è sospesa: una bozza si rende visibile con «pubblica»."),
}
EVENT_FOR_STATUS: dict[OfferingStatus, type[OfferingEvent]] = {
    OfferingStatus.PUBLISHED: OfferingPublished,
    OfferingStatus.SUSPENDED: OfferingSuspended,
    OfferingStatus.ARCHIVED: OfferingArchived,
}


def rome_today(now: datetime) -> date:
    """The calendar day in Europe/Rome, where every offering's calendar lives."""
    return now.astimezone(ROME).date()


def _bson_time(now: datetime) -> datetime:
    """``now`` as MongoDB stores it (milliseconds), so answers equal later reads."""
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _sentence(message: str) -> str:
    text = message.strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith(".") else f"{text}."


def _domain_error(exc: CatalogError) -> DomainError:
    """The catalog's business-rule errors as the errors that cross RPC."""
    if isinstance(exc, NotPublishable):
        errors: list[FieldError] = [
            {"field": field, "message": reason} for field, reason in zip(exc.fields, exc.reasons, strict=True)
        ]
        return ValidationFailed(_sentence(str(exc)), errors)
    if isinstance(exc, CapacityBelowConfirmed):
        return Conflict(_sentence(str(exc)), [{"field": "capacity", "message": str(exc)}])
    if isinstance(exc, InvalidTransition | NotEditable):
        return Conflict(_sentence(str(exc)))
    return ValidationFailed(_sentence(str(exc)))


# --- documents, views, snapshots -------------------------------------------------


def _spec(doc: Document) -> OfferingSpec:
    return OfferingSpec.model_validate(doc["spec"])


def _view(doc: Document) -> OfferingView:
    return OfferingView(
        id=doc["_id"],
        alliance_id=doc["alliance_id"],
        provider_partner_id=doc["provider_partner_id"],
        status=OfferingStatus(doc["status"]),
        spec=_spec(doc),
    )


def _offering_out(doc: Document) -> OfferingOut:
    return OfferingOut(
        id=doc["_id"],
        alliance_id=doc["alliance_id"],
        provider_partner_id=doc["provider_partner_id"],
        status=doc["status"],
        version=doc["version"],
        spec=doc["spec"],
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
        published_at=doc.get("published_at"),
    )


def _spec_fields(spec: OfferingSpec) -> Document:
    """What is stored for a spec: its JSON dump plus what the search prefilter reads."""
    periods = spec.calendar.periods
    return {
        "spec": spec.model_dump(mode="json"),
        "search_tokens": search_tokens(spec),
        "calendar_first_day": min(p.start for p in periods).isoformat() if periods else None,
        "calendar_last_day": max(p.end for p in periods).isoformat() if periods else None,
    }


def snapshot(
    offering_id: str,
    alliance_id: str,
    provider_partner_id: str,
    status: OfferingStatus,
    spec: OfferingSpec,
    version: int,
) -> OfferingSnapshot:
    """What consumers of the catalog's events know of an offering."""
    return OfferingSnapshot(
        offering_id=offering_id,
        alliance_id=alliance_id,
        provider_partner_id=provider_partner_id,
        status=status.value,
        type=spec.type.value,
        title=spec.title,
        comune_istat=spec.comune_istat,
        capacity=spec.capacity,
        age_min_months=spec.age_range.min_months,
        age_max_months=spec.age_range.max_months,
        special_needs_supported=[n.value for n in spec.special_needs_supported],
        attendance_modes=[m.value for m in spec.attendance_modes],
        periods=[SnapshotPeriod(kind=p.kind.value, start=p.start, end=p.end) for p in spec.calendar.periods],
        closures=list(spec.calendar.closures),
        weekdays=sorted({slot.weekday for slot in spec.weekly_slots}),
        price_cents=spec.price.amount_cents,
        price_unit=spec.price.unit.value,
        version=version,
    )


def _event(kind: type[OfferingEvent], doc: Document, status: OfferingStatus, spec: OfferingSpec) -> OfferingEvent:
    """An event about ``doc`` as it is *after* the write (version + 1)."""
    version = doc["version"] + 1
    offering = snapshot(doc["_id"], doc["alliance_id"], doc["provider_partner_id"], status, spec, version)
    return kind(alliance_id=doc["alliance_id"], offering=offering)


def _require_offering(repo: CatalogRepository, offering_id: str) -> Document:
    doc = repo.get_offering(offering_id)
    if doc is None:
        raise NotFound(OFFERING_NOT_FOUND)
    return doc


# --- what other services say ------------------------------------------------------


def _partners_unavailable() -> Conflict:
    return Conflict(
        "Non è possibile verificare l'alleanza e il partner erogatore: il servizio partner non risponde. "
        "Riprova tra poco."
    )


def _alliance_missing(exc: RemoteRefused) -> DomainError:
    if exc.exc_type == "NotFound":
        return ValidationFailed(
            "L'alleanza indicata non esiste.", [{"field": "alliance_id", "message": "nessuna alleanza con questo id"}]
        )
    raise exc


def ensure_formalized_provider(partners: PartnersClient, alliance_id: str, provider_partner_id: str) -> None:
    """The provider must be a formalized member of the alliance (partners decides)."""
    try:
        check = partners.membership_of(alliance_id, provider_partner_id)
    except RemoteUnavailable:
        raise _partners_unavailable() from None
    except RemoteRefused as exc:
        raise _alliance_missing(exc) from None
    if check.is_formalized:
        return
    reasons = {
        None: "il partner non è membro dell'alleanza",
        "pending": "l'adesione del partner all'alleanza non è ancora formalizzata",
        "withdrawn": "il partner ha receduto dall'alleanza",
    }
    reason = reasons.get(check.status.value if check.status else None, "adesione non valida")
    raise ValidationFailed(
        "Il partner erogatore deve essere un membro formalizzato dell'alleanza.",
        [{"field": "provider_partner_id", "message": reason}],
    )


def ensure_comune_in_territory(partners: PartnersClient, alliance_id: str, comune_istat: str) -> None:
    """The offering's Comune must be one of the alliance's Comuni."""
    try:
        territory = partners.alliance_territory(alliance_id)
    except RemoteUnavailable:
        raise _partners_unavailable() from None
    except RemoteRefused as exc:
        raise _alliance_missing(exc) from None
    if comune_istat not in territory.comuni_istat:
        raise ValidationFailed(
            "Il Comune del servizio non fa parte del territorio dell'alleanza.",
            [{"field": "comune_istat", "message": "il Comune non appartiene agli ambiti dell'alleanza"}],
        )


def confirmed_seats(enrolment: EnrolmentClient, offering_id: str) -> int:
    """Seats already confirmed, asked to the enrolment service; no guessing when it is away."""
    try:
        return enrolment.seat_counts(offering_id).confirmed
    except (RemoteUnavailable, RemoteRefused):
        raise Conflict(
            "Non è possibile ridurre la capienza adesso: il servizio iscrizioni non risponde e i posti già "
            "confermati non sono verificabili. Riprova tra poco (aumentare la capienza è sempre possibile).",
            [{"field": "capacity", "message": "posti confermati non verificabili"}],
        ) from None


# --- use cases ---------------------------------------------------------------------


def create_offering(
    repo: CatalogRepository,
    partners: PartnersClient,
    alliance_id: str,
    provider_partner_id: str,
    spec: OfferingSpec,
    now: datetime,
) -> OfferingOut:
    ensure_formalized_provider(partners, alliance_id, provider_partner_id)
    ensure_comune_in_territory(partners, alliance_id, spec.comune_istat)
    now = _bson_time(now)
    doc: Document = {
        "_id": new_id(),
        "alliance_id": alliance_id,
        "provider_partner_id": provider_partner_id,
        "status": OfferingStatus.DRAFT.value,
        "version": 1,
        **_spec_fields(spec),
        "created_at": now,
        "updated_at": now,
        "published_at": None,
    }
    repo.insert_offering(doc, [])
    return _offering_out(doc)


def get_offering(repo: CatalogRepository, offering_id: str) -> OfferingOut:
    return _offering_out(_require_offering(repo, offering_id))


def get_snapshot(repo: CatalogRepository, offering_id: str) -> OfferingSnapshot:
    doc = _require_offering(repo, offering_id)
    status = OfferingStatus(doc["status"])
    return snapshot(doc["_id"], doc["alliance_id"], doc["provider_partner_id"], status, _spec(doc), doc["version"])


def update_offering(
    repo: CatalogRepository,
    partners: PartnersClient,
    enrolment: EnrolmentClient,
    offering_id: str,
    expected_version: int,
    spec: OfferingSpec,
    now: datetime,
) -> OfferingOut:
    doc = _require_offering(repo, offering_id)
    if doc["version"] != expected_version:
        raise Conflict(STALE_OFFERING, [{"field": "version", "message": f"versione attuale: {doc['version']}"}])
    status = OfferingStatus(doc["status"])
    current = _spec(doc)
    confirmed = 0
    # Only an offering that was ever published can have enrolments; growing
    # capacity needs no count at all.
    lowering = spec.capacity < current.capacity
    if status is not OfferingStatus.ARCHIVED and lowering and doc.get("published_at") is not None:
        confirmed = confirmed_seats(enrolment, offering_id)
    try:
        check_update(status, spec, confirmed, rome_today(now))
    except CatalogError as exc:
        raise _domain_error(exc) from None
    if spec.comune_istat != current.comune_istat:
        ensure_comune_in_territory(partners, doc["alliance_id"], spec.comune_istat)
    events = []
    if status in (OfferingStatus.PUBLISHED, OfferingStatus.SUSPENDED):
        events.append(_event(OfferingUpdated, doc, status, spec))
    fields = {**_spec_fields(spec), "updated_at": now}
    if not repo.save_offering(offering_id, expected_version, fields, list(events)):
        raise Conflict(STALE_OFFERING)
    return get_offering(repo, offering_id)


def change_offering_status(
    repo: CatalogRepository, partners: PartnersClient, offering_id: str, action: str, now: datetime
) -> OfferingOut:
    target = ACTIONS.get(action)
    if target is None:
        raise ValidationFailed(
            "Azione sconosciuta.",
            [{"field": "target", "message": "valori ammessi: " + ", ".join(ACTIONS)}],
        )
    for _ in range(STATUS_CHANGE_ATTEMPTS):
        doc = _require_offering(repo, offering_id)
        current = OfferingStatus(doc["status"])
        spec = _spec(doc)
        source = ACTION_SOURCE.get(action)
        if source is not None and current not in (source[0], target, OfferingStatus.ARCHIVED):
            raise Conflict(source[1])
        try:
            new_status = change_status(current, target, spec, rome_today(now))
        except CatalogError as exc:
            raise _domain_error(exc) from None
        fields: Document = {"status": new_status.value, "updated_at": now, "status_changed_at": now}
        if new_status is OfferingStatus.PUBLISHED:
            # Membership may have changed since the draft was written.
            ensure_formalized_provider(partners, doc["alliance_id"], doc["provider_partner_id"])
            if doc.get("published_at") is None:
                fields["published_at"] = now
        events = []
        if new_status is not OfferingStatus.ARCHIVED or doc.get("published_at") is not None:
            events.append(_event(EVENT_FOR_STATUS[new_status], doc, new_status, spec))
        if repo.save_offering(offering_id, doc["version"], fields, list(events)):
            return get_offering(repo, offering_id)
    raise Conflict(STALE_OFFERING)


def _statuses(values: list[str], field: str) -> list[OfferingStatus]:
    try:
        return [OfferingStatus(v) for v in dict.fromkeys(values)]
    except ValueError:
        allowed = ", ".join(s.value for s in OfferingStatus)
        raise ValidationFailed(
            "I dati inviati non sono validi.", [{"field": field, "message": f"valori ammessi: {allowed}"}]
        ) from None


def search_offerings(repo: CatalogRepository, query: OfferingQuery, now: datetime) -> Page[OfferingOut]:
    """Prefilter in MongoDB, decide with the domain's ``matches``, order, then paginate."""
    statuses = _statuses(query.statuses, "statuses")
    criteria = parse(
        SearchCriteria,
        {
            **query.model_dump(include=set(SearchCriteria.model_fields) - {"only_published"}),
            "only_published": False,
        },
    )
    allowed = {s.value for s in statuses}
    docs = {d["_id"]: d for d in repo.search_candidates(criteria, sorted(allowed), query.unpublished_only_of)}

    def visible(view: OfferingView) -> bool:
        if view.status.value not in allowed:
            return False
        restricted = query.unpublished_only_of is not None and view.status is not OfferingStatus.PUBLISHED
        return not restricted or view.provider_partner_id == query.unpublished_only_of

    found = [v for v in (_view(d) for d in docs.values()) if visible(v) and matches(v, criteria)]
    ordered = sort_results(found, criteria, rome_today(now))
    page = ordered[query.offset : query.offset + query.limit]
    return Page(
        items=[_offering_out(docs[v.id]) for v in page], total=len(ordered), limit=query.limit, offset=query.offset
    )


def list_offerings_of_provider(
    repo: CatalogRepository, provider_partner_id: str, query: ProviderOfferingQuery
) -> Page[OfferingOut]:
    statuses = None if query.statuses is None else [s.value for s in _statuses(query.statuses, "statuses")]
    docs, total = repo.find_by_provider(provider_partner_id, query.alliance_id, statuses, query.limit, query.offset)
    return Page(items=[_offering_out(d) for d in docs], total=total, limit=query.limit, offset=query.offset)
