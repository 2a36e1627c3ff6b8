"""Contracts of the enrolment service (schema version 1).

The rules (codice fiscale checks, eligibility, transitions) live in
``services/enrolment/domain.py``; these models only carry data across the broker,
so enumerations travel as plain strings and the service validates them with the
domain models, answering with Italian field errors.
"""

from datetime import date, datetime
from typing import ClassVar

from pydantic import ConfigDict, Field

# ``enrolment.seat_counts`` answers with the catalog's own contract (its caller).
from conciliare.contracts.catalog import SeatCounts as SeatCounts
from conciliare.contracts.common import Contract, EntityId, IntegrationEvent
from conciliare.contracts.identity import Viewer as Viewer

SCHEMA_VERSION = 1


# --- households and children ------------------------------------------------------------


class GuardianIn(Contract):
    first_name: str = Field(max_length=100)
    last_name: str = Field(max_length=100)
    codice_fiscale: str = Field(max_length=32)
    birth_date: date | None = None
    email: str | None = Field(None, max_length=254)
    phone: str | None = Field(None, max_length=32)
    employment: str = Field(description="employed_by_partner | employed_elsewhere | self_employed | not_working")
    employer_partner_id: str | None = Field(None, description="Solo se lavora presso un ente partner dell'alleanza")


class IseeIn(Contract):
    value_cents: int = Field(description="Valore ISEE in centesimi di euro")
    kind: str = Field(description="ordinario | minorenni")
    expires_on: date


class HouseholdCreate(Contract):
    guardians: list[GuardianIn] = Field(description="Uno o due genitori/tutori")
    residence_comune_istat: str = Field(description="Codice ISTAT del Comune di residenza")
    isee: IseeIn | None = None
    single_parent: bool = False


class HouseholdOut(Contract):
    id: EntityId
    guardians: list[GuardianIn]
    residence_comune_istat: str
    residence_comune_name: str
    isee: IseeIn | None
    single_parent: bool
    created_at: datetime


class ChildCreate(Contract):
    first_name: str = Field(max_length=100)
    last_name: str = Field(max_length=100)
    codice_fiscale: str = Field(max_length=32)
    birth_date: date
    needs: list[str] = Field(
        default_factory=list,
        description="Bisogni speciali: dsa | adhd | bes | disabilita. Dato sanitario: conservato a parte",
    )


class ChildOut(Contract):
    id: EntityId
    household_id: str
    first_name: str
    last_name: str
    codice_fiscale: str
    birth_date: date
    needs: list[str] | None = Field(description="Presente solo per chi è autorizzato a leggerlo (accesso registrato)")
    created_at: datetime


# --- enrolments ------------------------------------------------------------------


class PeriodIn(Contract):
    start: date
    end: date


class EnrolmentCreate(Contract):
    child_id: EntityId
    offering_id: EntityId
    period: PeriodIn
    attendance_mode: str = Field(description="full | chosen_days | hour_package")
    chosen_weekdays: list[int] | None = Field(None, description="Giorni ISO (1 = lunedì) per chosen_days")
    hours: float | None = Field(None, description="Ore del pacchetto per hour_package")


class EnrolmentQuery(Contract):
    offering_id: str | None = None
    child_id: str | None = None
    status: str | None = None
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0)


class CancelRequest(Contract):
    reason: str | None = Field(None, max_length=500)


class RefusalReason(Contract):
    """Why a request was refused: a stable code and its explanation in Italian."""

    code: str = Field(description="es. age_out_of_range, needs_not_supported, not_in_alliance, overlapping_enrolment")
    message: str


class EnrolmentOut(Contract):
    """An enrolment request and where it stands.

    While it is ``requested`` (accepted, not decided yet) only what the request itself
    said is known: the fields about the offering and the child may be empty. A
    ``refused`` request lists every reason in ``refusal_reasons``.
    """

    id: EntityId
    protocol: str | None = Field(None, description="Numero di protocollo della ricevuta")
    offering_id: str | None
    offering_title: str | None
    alliance_id: str | None
    provider_partner_id: str | None
    child_id: str | None
    child_name: str | None
    child_codice_fiscale: str | None = Field(description="Mascherato")
    household_id: str | None
    period: PeriodIn | None
    attendance_mode: str | None
    chosen_weekdays: list[int] | None
    hours: float | None
    status: str = Field(description="requested | confirmed | waitlisted | refused | cancelled | completed")
    status_label: str
    sequence: int | None = Field(description="Ordine di arrivo della richiesta per il servizio")
    waitlist_position: int | None
    promoted: bool
    refusal_reasons: list[RefusalReason] = Field(default_factory=list)
    # Optional for readers of answers from an enrolment service older than this field.
    accepted_at: datetime | None = Field(None, description="Quando la piattaforma ha accettato la richiesta")
    requested_at: datetime = Field(description="Come accepted_at (nome storico)")
    decided_at: datetime | None
    cancelled_at: datetime | None
    cancel_reason: str | None


class RosterEntry(Contract):
    enrolment_id: str
    child_id: str
    child_name: str
    child_codice_fiscale: str = Field(description="Mascherato")
    birth_date: date
    needs: list[str] | None = Field(description="Solo per l'ente gestore del servizio (accesso registrato)")
    status: str
    sequence: int | None
    waitlist_position: int | None
    period: PeriodIn
    attendance_mode: str
    requested_at: datetime


class OfferingRoster(Contract):
    """The provider's view of an offering: confirmed children and the waitlist in order."""

    offering_id: str
    title: str
    capacity: int
    confirmed_count: int
    waitlisted_count: int
    needs_disclosed: bool
    confirmed: list[RosterEntry]
    waitlist: list[RosterEntry]


# --- attendance --------------------------------------------------------------------


class AttendanceDay(Contract):
    day: date
    present: bool
    hours: float | None = Field(None, description="Ore di presenza (in quarti d'ora), per i pacchetti di ore")


class AttendanceRecord(Contract):
    entries: list[AttendanceDay] = Field(min_length=1, max_length=62)


class AttendanceTotals(Contract):
    days_present: int
    hours: float


class MonthTotals(AttendanceTotals):
    month: str = Field(description="AAAA-MM")


class AttendanceOut(Contract):
    enrolment_id: str
    entries: list[AttendanceDay]
    months: list[MonthTotals]
    totals: AttendanceTotals


class RegisterExport(Contract):
    # The CSV ends with CRLF: keep it byte for byte.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    filename: str
    content: str = Field(description="CSV separato da punto e virgola, con BOM UTF-8")


# --- events ---------------------------------------------------------------------


class EnrolmentEvent(IntegrationEvent):
    offering_id: str
    enrolment_id: str
    child_id: str
    household_id: str
    provider_partner_id: str
    sequence: int | None = None


class EnrolmentConfirmed(EnrolmentEvent):
    event_type: ClassVar[str] = "enrolment.confirmed"


class EnrolmentWaitlisted(EnrolmentEvent):
    event_type: ClassVar[str] = "enrolment.waitlisted"
    position: int = Field(ge=1)


class EnrolmentPromoted(EnrolmentEvent):
    """A waitlisted child got a seat; ``position`` is the one it held in the waitlist."""

    event_type: ClassVar[str] = "enrolment.promoted"
    position: int = Field(ge=1)


class EnrolmentRefused(IntegrationEvent):
    """A request the service could not accept; ``reasons`` lists every one (codes and Italian text)."""

    event_type: ClassVar[str] = "enrolment.refused"
    # Empty when the offering named in the request is unknown.
    alliance_id: str = ""
    enrolment_id: str
    offering_id: str
    child_id: str
    household_id: str | None = None
    reasons: list[RefusalReason]


class EnrolmentCancelled(EnrolmentEvent):
    event_type: ClassVar[str] = "enrolment.cancelled"
    previous_status: str
    reason: str | None = None
