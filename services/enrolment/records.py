"""What the enrolment service keeps, as typed objects: the repository's vocabulary.

The repository (``repository.py``) turns these into MongoDB documents and back; use
cases only ever see these, the domain models (``domain.py``) and the seats
aggregate (``seats.py``). They carry stored facts: the rules live elsewhere.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from conciliare.contracts.identity import Role, Viewer
from conciliare.contracts.taxonomy import AttendanceMode
from services.enrolment.domain import (
    ChildSpec,
    EnrolmentStatus,
    ExistingEnrolment,
    HouseholdSpec,
    Period,
)
from services.enrolment.seats import Reason


@dataclass(frozen=True)
class Household:
    id: str
    owner_subject: str
    spec: HouseholdSpec
    created_at: datetime
    child_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class ListedEnrolment:
    """An entry of a child's own list of enrolments (what overlap checks read)."""

    enrolment_id: str
    offering_id: str
    period: Period
    listed_at: datetime


@dataclass(frozen=True)
class Child:
    """A child's identity (never its needs: those are stored apart) and its enrolments."""

    id: str
    household_id: str
    first_name: str
    last_name: str
    codice_fiscale: str
    birth_date: date
    created_at: datetime
    enrolments: tuple[ListedEnrolment, ...] = ()

    @classmethod
    def register(cls, child_id: str, household_id: str, spec: ChildSpec, at: datetime) -> "Child":
        return cls(
            id=child_id,
            household_id=household_id,
            first_name=spec.first_name,
            last_name=spec.last_name,
            codice_fiscale=spec.codice_fiscale,
            birth_date=spec.birth_date,
            created_at=at,
        )


@dataclass(frozen=True)
class Enrolment:
    """What a family asked for, as stored when it asked: never changed afterwards.

    Where it stands (confirmed, waitlisted, cancelled ...) is the offering's seats'
    business (``seats.OfferingSeats.placement``). The child's codice fiscale is
    stored masked.
    """

    id: str
    offering_id: str
    offering_title: str
    alliance_id: str
    provider_partner_id: str
    child_id: str
    child_first_name: str
    child_last_name: str
    child_codice_fiscale: str
    child_birth_date: date
    household_id: str
    owner_subject: str
    period: Period
    attendance_mode: AttendanceMode
    chosen_weekdays: frozenset[int] | None
    hours: float | None
    requested_at: datetime
    protocol: str | None = None

    @property
    def child_name(self) -> str:
        return f"{self.child_first_name} {self.child_last_name}"

    def as_existing(self, status: EnrolmentStatus) -> ExistingEnrolment:
        """The enrolment as the eligibility and attendance rules take it."""
        return ExistingEnrolment.model_construct(
            enrolment_id=self.id,
            child_id=self.child_id,
            offering_id=self.offering_id,
            period=self.period,
            attendance_mode=self.attendance_mode,
            chosen_weekdays=self.chosen_weekdays,
            hours=self.hours,
            status=status,
            requested_at=self.requested_at,
        )


@dataclass(frozen=True)
class RefusedRequest:
    """A request refused before it could name a child and an offering of this service.

    The child is not the caller's (or does not exist), or the offering is unknown:
    there is nothing to store an ``Enrolment`` from, yet the family must read the
    outcome. Requests about a known child and offering are refused by the offering's
    seats instead (``seats.OfferingSeats.refuse``).
    """

    id: str
    owner_subject: str
    protocol: str
    offering_id: str
    child_id: str
    reasons: tuple[Reason, ...]
    requested_at: datetime
    decided_at: datetime


@dataclass(frozen=True)
class EnrolmentFilter:
    """Which enrolments a list shows: a viewer's tenant scope plus the caller's filters.

    ``everything`` lifts the tenant scope (platform operator); otherwise an enrolment
    matches when it was asked by ``owner_subject``, its provider is
    ``provider_partner_id`` or its alliance is one of ``alliance_ids``.
    """

    everything: bool = False
    owner_subject: str | None = None
    provider_partner_id: str | None = None
    alliance_ids: frozenset[str] = frozenset()
    offering_id: str | None = None
    child_id: str | None = None

    def matches(self, enrolment: Enrolment) -> bool:
        in_scope = (
            self.everything
            or (self.owner_subject is not None and enrolment.owner_subject == self.owner_subject)
            or (self.provider_partner_id is not None and enrolment.provider_partner_id == self.provider_partner_id)
            or enrolment.alliance_id in self.alliance_ids
        )
        return (
            in_scope
            and self.offering_id in (None, enrolment.offering_id)
            and self.child_id in (None, enrolment.child_id)
        )


class AuditPurpose(StrEnum):
    """Why a child's needs (health data, GDPR art. 9) were read: answers the DPO's questions."""

    REGISTRATION = "registrazione_bambino"
    FAMILY_VIEW = "consultazione_famiglia"
    ELIGIBILITY = "verifica_idoneita_iscrizione"
    PROVIDER_ROSTER = "gestione_servizio_ente_gestore"


@dataclass(frozen=True)
class AuditEntry:
    """One read of one child's needs: who, in which role, why, on what basis, when."""

    child_id: str
    reader_subject: str
    reader_role: Role
    reader_partner_id: str | None
    purpose: AuditPurpose
    basis: str
    at: datetime

    @classmethod
    def of(cls, reader: Viewer, child_id: str, purpose: AuditPurpose, basis: str, at: datetime) -> "AuditEntry":
        return cls(child_id, reader.subject, reader.role, reader.partner_id, purpose, basis, at)


@dataclass(frozen=True)
class RecordedDay:
    """One day of an enrolment's attendance register, as recorded."""

    day: date
    present: bool
    hours: float | None
    recorded_by: str
    recorded_at: datetime


@dataclass(frozen=True)
class AttendanceMonth:
    enrolment_id: str
    month: str
    days: Mapping[date, RecordedDay] = field(default_factory=dict)
