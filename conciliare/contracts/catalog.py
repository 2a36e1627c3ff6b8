"""Contracts of the catalog service (schema version 1).

The offering's own rules live in ``services/catalog/domain.py``; what crosses the
broker is the ``OfferingSnapshot`` below, everything a consumer (enrolment,
vouchers, notifications) needs without calling the catalog back.
"""

from datetime import date
from typing import ClassVar

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
