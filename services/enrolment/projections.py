"""Local copies of other services' data: offerings (catalog) and alliances (partners).

Fed by events, each applied once per event id (``Repository.apply_once``) and safe
to apply again (a redelivery after a crash): the newest offering revision wins, the
newest change of each membership wins. When a projection is missing (this service
started after the events were published) the owner is asked by RPC and the answer
kept. Every write is a conditional one on the projection's version, retried when
another writer got there first: no lock anywhere.
"""

import logging
from collections.abc import Callable
from typing import Final, TypeVar

from conciliare.chassis.concurrency import until_written
from conciliare.chassis.validation import parse, parse_event
from conciliare.contracts.catalog import OfferingEvent, OfferingSnapshot
from conciliare.contracts.partners import AllianceCreated, MembershipChanged
from conciliare.errors import NotFound, Unavailable
from services.enrolment import seating
from services.enrolment.access import OFFERING_NOT_FOUND
from services.enrolment.domain import OfferingProjection, Territory
from services.enrolment.ports import Repository, Runtime

T = TypeVar("T")

log = logging.getLogger(__name__)

OFFERINGS: Final = "offering_projection"
ALLIANCES: Final = "alliance_projection"
TERRITORY_UNAVAILABLE: Final = "Il territorio dell'alleanza del servizio non è ancora disponibile: riprova tra poco."


def projection_of(snapshot: OfferingSnapshot) -> OfferingProjection:
    """What this service keeps of a catalog snapshot."""
    return parse(
        OfferingProjection,
        {
            "offering_id": snapshot.offering_id,
            "alliance_id": snapshot.alliance_id,
            "provider_partner_id": snapshot.provider_partner_id,
            "title": snapshot.title,
            "status": snapshot.status,
            "capacity": snapshot.capacity,
            "age_range": {"min_months": snapshot.age_min_months, "max_months": snapshot.age_max_months},
            "special_needs_supported": snapshot.special_needs_supported,
            "attendance_modes": snapshot.attendance_modes,
            "periods": [{"start": p.start, "end": p.end} for p in snapshot.periods],
            "comune_istat": snapshot.comune_istat,
            "price": {"amount_cents": snapshot.price_cents, "unit": snapshot.price_unit},
            "version": snapshot.version,
        },
    )


# --- offerings ----------------------------------------------------------------------------------


def offering_changed(repo: Repository, runtime: Runtime, event: OfferingEvent) -> None:
    """Keep the newest revision of an offering, and its seats in step with it.

    A capacity increase promotes as many waitlisted children as now fit, in FIFO
    order; a suspended or archived offering takes no new requests.
    """
    projection = projection_of(event.offering)

    def apply() -> None:
        _store_offering(repo, runtime, projection)
        # Brings the seats up to the projection just stored (see seating.apply).
        seating.apply(repo, runtime, projection.offering_id, lambda seats, now: [])
        seating.publish(repo, runtime, projection.offering_id)

    repo.apply_once(OFFERINGS, event, apply)


def offering_for_request(repo: Repository, runtime: Runtime, offering_id: str) -> OfferingProjection:
    """The offering as projected; fetched from the catalog if this service never heard of it."""
    found = repo.offering(offering_id)
    if found is not None:
        return found
    fetched = runtime.fetch_offering(offering_id)
    if fetched is None:
        raise NotFound(f"{OFFERING_NOT_FOUND} Se è appena stato pubblicato, riprova tra qualche secondo.")
    projection = projection_of(parse_event(OfferingSnapshot, fetched))
    _store_offering(repo, runtime, projection)
    return repo.offering(offering_id) or projection


def _store_offering(repo: Repository, runtime: Runtime, projection: OfferingProjection) -> None:
    def attempt() -> bool | None:
        current = repo.offering(projection.offering_id)
        if current is not None and current.version >= projection.version:
            return True  # a late event: the stored revision is newer
        return True if repo.save_offering(projection, current) else None

    _until_written(runtime, attempt)


# --- alliances -------------------------------------------------------------------------------


def alliance_created(repo: Repository, runtime: Runtime, event: AllianceCreated) -> None:
    """Keep an alliance's Comuni (residence eligibility)."""
    repo.apply_once(
        ALLIANCES,
        event,
        lambda: _change_territory(repo, runtime, event.alliance_id, lambda t: t.with_comuni(event.comuni_istat)),
    )


def membership_changed(repo: Repository, runtime: Runtime, event: MembershipChanged) -> None:
    """Track which partners are formalized members (employment eligibility); the newest change wins."""

    def change(territory: Territory) -> Territory:
        return territory.with_membership(event.partner_id, event.status.value, event.occurred_at)

    repo.apply_once(ALLIANCES, event, lambda: _change_territory(repo, runtime, event.alliance_id, change))


def territory_for_request(repo: Repository, runtime: Runtime, alliance_id: str) -> Territory:
    """The alliance's territory; fetched from the partners service if this service never saw it."""
    found = repo.territory(alliance_id)
    if found is not None and found.known:
        return found
    fetched = runtime.fetch_territory(alliance_id)
    if fetched is None:
        raise Unavailable(TERRITORY_UNAVAILABLE)
    comuni, formalized = list(fetched["comuni_istat"]), set(fetched["formalized_partner_ids"])
    now = runtime.now()
    return _change_territory(repo, runtime, alliance_id, lambda t: t.healed(comuni, formalized, now))


def _change_territory(
    repo: Repository, runtime: Runtime, alliance_id: str, change: Callable[[Territory], Territory]
) -> Territory:
    def attempt() -> Territory | None:
        current = repo.territory(alliance_id) or Territory(alliance_id)
        changed = change(current)
        return changed if changed == current or repo.save_territory(changed) else None

    return _until_written(runtime, attempt)


def _until_written(runtime: Runtime, attempt: Callable[[], T | None]) -> T:
    return until_written(
        attempt, attempts=seating.MAX_ATTEMPTS, busy_message=seating.BUSY, busy_error=Unavailable, sleep=runtime.sleep
    )
