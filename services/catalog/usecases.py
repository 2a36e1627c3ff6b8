"""Use cases of the catalog service: load, apply a domain rule, store, answer.

Each function takes the repository (and the remote clients it needs) and validated
models; ``service.py`` only parses payloads, calls one of these and publishes the
outbox. Events ride in the offering's own document (see ``chassis/outbox.py``).

Drafts are private: consumers hear of an offering from its first publication on
(``offering.published``), then of every change (``offering.updated``), suspension
and archiving. A draft archived without ever being published emits nothing.
"""

import hashlib
from datetime import date, datetime
from zoneinfo import ZoneInfo

from conciliare.chassis.concurrency import until_written
from conciliare.chassis.remote import RemoteRefused, RemoteUnavailable
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
    PublicationGap,
    SnapshotPeriod,
)
from conciliare.contracts.common import Page, new_id, utc_now
from conciliare.contracts.offerings import OfferingSpec
from conciliare.contracts.taxonomy import OfferingStatus
from conciliare.errors import Conflict, DomainError, FieldError, NotFound, Unavailable, ValidationFailed
from services.catalog.dependencies import EnrolmentClient, PartnersClient
from services.catalog.domain import (
    CapacityBelowConfirmed,
    CatalogError,
    InvalidTransition,
    NotEditable,
    NotPublishable,
    SearchCriteria,
    change_status,
    check_update,
    matches,
    publication_gaps,
    sort_results,
)
from services.catalog.repository import CatalogRepository, Offering, stored_time

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


# --- views and snapshots ----------------------------------------------------------


def offering_id_for(requested_by: str | None, request_key: str, alliance_id: str, provider_partner_id: str) -> str:
    """Stable id of the offering one create request makes: a retry with the same
    idempotency key (which belongs to its caller) finds the first offering."""
    material = "\x00".join(("offering", requested_by or "", request_key, alliance_id, provider_partner_id))
    return hashlib.sha256(material.encode()).hexdigest()[:32]


# Statuses whose next step is a publication (publish a draft, resume a suspension).
AWAITING_PUBLICATION = (OfferingStatus.DRAFT, OfferingStatus.SUSPENDED)


def missing_for_publication(offering: Offering, today: date) -> list[PublicationGap]:
    """What a draft (or suspended) offering still lacks to be published; empty otherwise."""
    if offering.status not in AWAITING_PUBLICATION:
        return []
    return [PublicationGap(field=field, message=reason) for field, reason in publication_gaps(offering.spec, today)]


def _offering_out(offering: Offering, today: date | None = None) -> OfferingOut:
    return OfferingOut(
        id=offering.id,
        alliance_id=offering.alliance_id,
        provider_partner_id=offering.provider_partner_id,
        status=offering.status.value,
        version=offering.version,
        spec=offering.spec.model_dump(mode="json"),
        created_at=offering.created_at,
        updated_at=offering.updated_at,
        published_at=offering.published_at,
        missing_for_publication=missing_for_publication(offering, today or rome_today(utc_now())),
    )


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


def _event(kind: type[OfferingEvent], offering: Offering, status: OfferingStatus, spec: OfferingSpec) -> OfferingEvent:
    """An event about ``offering`` as it is *after* the write (version + 1)."""
    version = offering.version + 1
    about = snapshot(offering.id, offering.alliance_id, offering.provider_partner_id, status, spec, version)
    return kind(alliance_id=offering.alliance_id, offering=about)


def _require_offering(repo: CatalogRepository, offering_id: str) -> Offering:
    offering = repo.get_offering(offering_id)
    if offering is None:
        raise NotFound(OFFERING_NOT_FOUND)
    return offering


# --- what other services say ------------------------------------------------------


def _partners_unavailable() -> Unavailable:
    return Unavailable(
        "Non è possibile verificare l'alleanza e il partner erogatore: il servizio partner non risponde. "
        "Riprova tra poco."
    )


def _partners_refusal(exc: RemoteRefused) -> Exception:
    """What the catalog answers when the partners service refuses a check."""
    if exc.exc_type == "NotFound":
        return ValidationFailed(
            "L'alleanza indicata non esiste.", [{"field": "alliance_id", "message": "nessuna alleanza con questo id"}]
        )
    # Any other domain refusal stays what it is; a crash over there stays an error.
    return exc.as_domain_error() or exc


def ensure_formalized_provider(partners: PartnersClient, alliance_id: str, provider_partner_id: str) -> None:
    """The provider must be a formalized member of the alliance (partners decides)."""
    try:
        check = partners.membership_of(alliance_id, provider_partner_id)
    except RemoteUnavailable:
        raise _partners_unavailable() from None
    except RemoteRefused as exc:
        raise _partners_refusal(exc) from None
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
        raise _partners_refusal(exc) from None
    if comune_istat not in territory.comuni_istat:
        raise ValidationFailed(
            "Il Comune del servizio non fa parte del territorio dell'alleanza.",
            [{"field": "comune_istat", "message": "il Comune non appartiene agli ambiti dell'alleanza"}],
        )


def confirmed_seats(enrolment: EnrolmentClient, offering_id: str) -> int:
    """Seats already confirmed, asked to the enrolment service; no guessing when it is away."""
    try:
        return enrolment.seat_counts(offering_id).confirmed
    except RemoteUnavailable:
        raise Unavailable(
            "Non è possibile ridurre la capienza adesso: il servizio iscrizioni non risponde e i posti già "
            "confermati non sono verificabili. Riprova tra poco (aumentare la capienza è sempre possibile).",
            [{"field": "capacity", "message": "posti confermati non verificabili"}],
        ) from None
    except RemoteRefused:
        raise Conflict(
            "Non è possibile ridurre la capienza adesso: il servizio iscrizioni non ha confermato i posti già "
            "assegnati. Riprova tra poco (aumentare la capienza è sempre possibile).",
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
    request_key: str | None = None,
    requested_by: str | None = None,
) -> OfferingOut:
    """Create a draft; it may be incomplete (``missing_for_publication`` says what for).

    With ``request_key`` (the caller's idempotency key) a retry whose first answer
    was lost answers with the offering the first try created, not a second one.
    """
    offering_id = (
        offering_id_for(requested_by, request_key, alliance_id, provider_partner_id) if request_key else new_id()
    )
    if request_key and (earlier := repo.get_offering(offering_id)) is not None:
        return _offering_out(earlier, rome_today(now))
    ensure_formalized_provider(partners, alliance_id, provider_partner_id)
    ensure_comune_in_territory(partners, alliance_id, spec.comune_istat)
    now = stored_time(now)
    offering = Offering(
        id=offering_id,
        alliance_id=alliance_id,
        provider_partner_id=provider_partner_id,
        status=OfferingStatus.DRAFT,
        version=1,
        spec=spec,
        created_at=now,
        updated_at=now,
        published_at=None,
    )
    if not repo.insert_offering_once(offering, []):
        # A concurrent try of the same request inserted first: its offering is the answer.
        return _offering_out(_require_offering(repo, offering_id), rome_today(now))
    return _offering_out(offering, rome_today(now))


def get_offering(repo: CatalogRepository, offering_id: str) -> OfferingOut:
    return _offering_out(_require_offering(repo, offering_id))


def get_snapshot(repo: CatalogRepository, offering_id: str) -> OfferingSnapshot:
    offering = _require_offering(repo, offering_id)
    return snapshot(
        offering.id,
        offering.alliance_id,
        offering.provider_partner_id,
        offering.status,
        offering.spec,
        offering.version,
    )


def _stale(current_version: int) -> Conflict:
    return Conflict(STALE_OFFERING, [{"field": "version", "message": f"versione attuale: {current_version}"}])


def update_offering(
    repo: CatalogRepository,
    partners: PartnersClient,
    enrolment: EnrolmentClient,
    offering_id: str,
    expected_version: int,
    spec: OfferingSpec,
    now: datetime,
) -> OfferingOut:
    """Replace the spec if the caller saw the current version; a lost race is a ``Conflict``.

    The caller's version is the guard of the write itself, so of two editors who
    read the same version exactly one wins, even when both pass the early check.
    """
    offering = _require_offering(repo, offering_id)
    if offering.version != expected_version:
        raise _stale(offering.version)
    status = offering.status
    confirmed = 0
    # Only an offering that was ever published can have enrolments; growing
    # capacity needs no count at all.
    lowering = spec.capacity < offering.spec.capacity
    if status is not OfferingStatus.ARCHIVED and lowering and offering.published_at is not None:
        confirmed = confirmed_seats(enrolment, offering_id)
    try:
        check_update(status, spec, confirmed, rome_today(now))
    except CatalogError as exc:
        raise _domain_error(exc) from None
    if spec.comune_istat != offering.spec.comune_istat:
        ensure_comune_in_territory(partners, offering.alliance_id, spec.comune_istat)
    events = []
    if status in (OfferingStatus.PUBLISHED, OfferingStatus.SUSPENDED):
        events.append(_event(OfferingUpdated, offering, status, spec))
    if not repo.save_spec(offering_id, expected_version, spec, stored_time(now), list(events)):
        current = repo.get_offering(offering_id)
        raise _stale(current.version if current else expected_version + 1)
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
    now = stored_time(now)

    def attempt() -> OfferingOut | None:
        offering = _require_offering(repo, offering_id)
        current = offering.status
        source = ACTION_SOURCE.get(action)
        if source is not None and current not in (source[0], target, OfferingStatus.ARCHIVED):
            raise Conflict(source[1])
        try:
            new_status = change_status(current, target, offering.spec, rome_today(now))
        except CatalogError as exc:
            raise _domain_error(exc) from None
        if new_status is OfferingStatus.PUBLISHED:
            # Membership may have changed since the draft was written.
            ensure_formalized_provider(partners, offering.alliance_id, offering.provider_partner_id)
        events = []
        if new_status is not OfferingStatus.ARCHIVED or offering.published_at is not None:
            events.append(_event(EVENT_FOR_STATUS[new_status], offering, new_status, offering.spec))
        first_publication = new_status is OfferingStatus.PUBLISHED and offering.published_at is None
        if repo.save_status(offering_id, offering.version, new_status, now, first_publication, list(events)):
            return get_offering(repo, offering_id)
        return None

    return until_written(attempt, attempts=STATUS_CHANGE_ATTEMPTS, busy_message=STALE_OFFERING)


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
    candidates = repo.search_candidates(criteria, sorted(allowed), query.unpublished_only_of)

    def visible(offering: Offering) -> bool:
        if offering.status.value not in allowed:
            return False
        restricted = query.unpublished_only_of is not None and offering.status is not OfferingStatus.PUBLISHED
        return not restricted or offering.provider_partner_id == query.unpublished_only_of

    found = [o for o in candidates if visible(o) and matches(o, criteria)]
    ordered = sort_results(found, criteria, rome_today(now))
    page = ordered[query.offset : query.offset + query.limit]
    today = rome_today(now)
    items = [_offering_out(o, today) for o in page]
    return Page(items=items, total=len(ordered), limit=query.limit, offset=query.offset)


def list_offerings_of_provider(
    repo: CatalogRepository, provider_partner_id: str, query: ProviderOfferingQuery
) -> Page[OfferingOut]:
    statuses = None if query.statuses is None else [s.value for s in _statuses(query.statuses, "statuses")]
    found, total = repo.find_by_provider(provider_partner_id, query.alliance_id, statuses, query.limit, query.offset)
    return Page(items=[_offering_out(o) for o in found], total=total, limit=query.limit, offset=query.offset)
