"""Contracts of the catalog service (schema version 1).

What an offering is (``OfferingSpec``) lives in ``conciliare/contracts/offerings.py``,
the catalog's rules about it in ``services/catalog/domain.py``; what crosses the
broker in events is the ``OfferingSnapshot`` below, everything a consumer (enrolment,
vouchers, notifications) needs without calling the catalog back.
"""

from datetime import date, datetime
from typing import Any, ClassVar

from pydantic import Field

from conciliare.contracts.common import Contract, IntegrationEvent

SCHEMA_VERSION = 1


class SnapshotPeriod(Contract):
    kind: str = Field(description="term_time | christmas | easter | early_september | summer")
    start: date
    end: date


class OfferingSnapshot(Contract):
    offering_id: str
    alliance_id: str
    provider_partner_id: str
    status: str = Field(description="draft | published | suspended | archived")
    type: str
    title: str
    comune_istat: str
    capacity: int = Field(ge=1)
    age_min_months: int = Field(ge=0)
    age_max_months: int = Field(ge=0)
    special_needs_supported: list[str] = Field(description="dsa | adhd | bes | disabilita")
    attendance_modes: list[str] = Field(description="full | chosen_days | hour_package")
    periods: list[SnapshotPeriod]
    closures: list[date] = Field(default_factory=list)
    weekdays: list[int] = Field(default_factory=list, description="ISO weekdays with slots; empty = every day")
    price_cents: int = Field(ge=0)
    price_unit: str = Field(description="hour | day | week | month | flat")
    version: int = Field(ge=1, description="Grows with every change: consumers ignore older snapshots")


class OfferingEvent(IntegrationEvent):
    offering: OfferingSnapshot


class OfferingPublished(OfferingEvent):
    event_type: ClassVar[str] = "offering.published"


class OfferingUpdated(OfferingEvent):
    event_type: ClassVar[str] = "offering.updated"


class OfferingSuspended(OfferingEvent):
    event_type: ClassVar[str] = "offering.suspended"


class OfferingArchived(OfferingEvent):
    event_type: ClassVar[str] = "offering.archived"


# --- RPC payloads -------------------------------------------------------------
# The writable part of an offering is ``conciliare.contracts.offerings.OfferingSpec``: it
# travels as its JSON dump and the catalog validates it again on arrival.


class PublicationGap(Contract):
    """One thing an offering still lacks before it can be published."""

    field: str = Field(description="Campo della scheda da completare (es. description, address, calendar)")
    message: str = Field(description="Che cosa manca, in italiano")


class OfferingOut(Contract):
    """An offering as the catalog answers it over RPC (``spec`` is an OfferingSpec dump)."""

    id: str
    alliance_id: str
    provider_partner_id: str
    status: str = Field(description="draft | published | suspended | archived")
    version: int = Field(ge=1, description="Da rimandare negli aggiornamenti (concorrenza ottimistica)")
    spec: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None = Field(None, description="Prima pubblicazione")
    missing_for_publication: list[PublicationGap] = Field(
        default_factory=list,
        description=(
            "Bozze e offerte sospese: che cosa manca per pubblicarle (vuoto se pubblicabili); "
            "sempre vuoto per le offerte pubblicate e archiviate"
        ),
    )


class OfferingQuery(Contract):
    """Search criteria of ``catalog.search_offerings`` (see ``SearchCriteria``).

    The alliances searched: ``alliance_id`` (one), ``alliance_ids`` (any of these), or
    every alliance when neither is given (families: the catalog is public to them).
    """

    alliance_id: str | None = Field(None, min_length=1, max_length=64)
    alliance_ids: list[str] | None = Field(None, max_length=1000, description="Una qualsiasi di queste alleanze")
    provider_partner_id: str | None = None
    comune_istat: str | None = None
    child_birth_date: date | None = None
    on_date: date | None = None
    child_age_months: int | None = None
    date_from: date | None = None
    date_to: date | None = None
    types: list[str] = Field(default_factory=list, description="Almeno uno di questi tipi")
    needs: list[str] = Field(default_factory=list, description="Tutti questi bisogni supportati")
    text: str | None = None
    statuses: list[str] = Field(default_factory=lambda: ["published"], min_length=1)
    unpublished_only_of: str | None = Field(
        None, description="Se indicato, le offerte non pubblicate valgono solo per questo partner erogatore"
    )
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0)


class ProviderOfferingQuery(Contract):
    """Criteria of ``catalog.list_offerings_of_provider``."""

    alliance_id: str | None = None
    statuses: list[str] | None = Field(None, description="Tutti gli stati se assente")
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0)


class SeatCounts(Contract):
    """Answer of ``enrolment.seat_counts`` (implemented by the enrolment service)."""

    confirmed: int = Field(ge=0)
    waitlisted: int = Field(0, ge=0)
