"""Contracts of the vouchers service (schema version 1): the bando, applications,
the ranking (graduatoria), vouchers, redemptions and the budget ledger.

The rules live in ``services/vouchers/domain/``; these models carry data across the
broker. Amounts are integer cents; date-times are ISO 8601 with their offset (the
bando's opening and closing are read in Europe/Rome).
"""

from datetime import date, datetime
from enum import StrEnum
from typing import ClassVar

from pydantic import ConfigDict, Field

from conciliare.contracts.common import Cents, Contract, EntityId, IntegrationEvent
from conciliare.contracts.identity import Viewer as Viewer
from conciliare.contracts.taxonomy import ServiceType

SCHEMA_VERSION = 1
DEFAULT_CAP_CENTS = 30_000


class ProgrammeStatus(StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    CLOSED = "closed"
    RANKED = "ranked"
    PUBLISHED = "published"
    AWARDED = "awarded"


class RankingMode(StrEnum):
    FUNDS = "funds"  # down the ranking until the budget is spent
    PLACES = "places"  # a fixed number of vouchers
    ADMISSION = "admission"  # every eligible application in order of submission, while funds last


class WhoMayApply(StrEnum):
    EMPLOYEES = "employees"  # employees of the alliance's partners
    RESIDENTS = "residents"  # residents of the alliance's Comuni
    BOTH = "both"  # either of the two


class CriterionKind(StrEnum):
    ISEE_BANDS = "isee_bands"
    SINGLE_PARENT = "single_parent"
    CHILD_DISABILITY = "child_disability"
    MINORS = "minors"
    BOTH_WORKING = "both_working"
    WEEKLY_HOURS = "weekly_hours"


class TieBreak(StrEnum):
    LOWER_ISEE = "lower_isee"
    EARLIER_SUBMISSION = "earlier_submission"
    PROTOCOL_NUMBER = "protocol_number"


class AttachmentKind(StrEnum):
    ISEE_CERTIFICATE = "isee_certificate"
    DIAGNOSIS = "diagnosis"  # sensitive: health data
    OTHER = "other"


class ApplicationStatus(StrEnum):
    SUBMITTED = "submitted"
    ELIGIBLE = "eligible"
    INELIGIBLE = "ineligible"
    WITHDRAWN = "withdrawn"


class Outcome(StrEnum):
    AWARDED = "awarded"
    PARTIAL = "partial"  # the last award, for what was left of the budget
    NOT_AWARDED = "not_awarded"  # eligible, but the funds or places ran out


class VoucherStatus(StrEnum):
    ACTIVE = "active"
    EXHAUSTED = "exhausted"
    EXPIRED = "expired"
    REVOKED = "revoked"


class LedgerKind(StrEnum):
    AWARD = "award"
    REDEMPTION = "redemption"
    REVERSAL = "reversal"
    EXPIRY_RELEASE = "expiry_release"


# --- programmes -------------------------------------------------------------------


class FundingShare(Contract):
    name: str = Field(min_length=2, max_length=200, description="Fonte di finanziamento, es. FSE POR 2014-2020, ATS")
    amount_cents: Cents


class IseeBand(Contract):
    max_isee_cents: Cents = Field(description="ISEE fino a questo valore (incluso)")
    points: int = Field(ge=0, le=1000)


class Criterion(Contract):
    kind: CriterionKind
    points: int = Field(0, ge=0, le=1000, description="Punti del criterio (per le fasce ISEE: vedi bands)")
    bands: list[IseeBand] = Field(default_factory=list, description="Solo per isee_bands: fasce crescenti")
    unit_max: int | None = Field(
        None, ge=1, le=200, description="minors: figli conteggiati al massimo; weekly_hours: ore per il punteggio pieno"
    )


DEFAULT_TIE_BREAKS = [TieBreak.LOWER_ISEE, TieBreak.EARLIER_SUBMISSION, TieBreak.PROTOCOL_NUMBER]


class ProgrammeSpec(Contract):
    project_id: EntityId
    action_code: str = Field(pattern=r"^[A-Z][0-9]?$", description="Azione del progetto, es. A, B")
    title: str = Field(min_length=3, max_length=300)
    year: int = Field(ge=2000, le=2100, description="Anno del tetto per minore")
    budget_cents: Cents
    funding_sources: list[FundingShare] = Field(min_length=1)
    cap_per_child_cents: Cents = Field(DEFAULT_CAP_CENTS, description="Tetto annuo per minore (tutti i bandi)")
    voucher_amount_cents: Cents | None = Field(None, description="Importo di ogni voucher; predefinito: il tetto")
    eligible_service_types: list[ServiceType] = Field(min_length=1)
    min_age_years: int = Field(0, ge=0, le=18)
    max_age_years: int = Field(16, ge=0, le=18)
    who_may_apply: WhoMayApply = WhoMayApply.BOTH
    isee_max_cents: Cents | None = None
    isee_kinds: list[str] = Field(default_factory=lambda: ["ordinario", "minorenni"])
    required_attachments: list[AttachmentKind] = Field(default_factory=lambda: [AttachmentKind.ISEE_CERTIFICATE])
    opens_at: datetime
    closes_at: datetime
    ranking_mode: RankingMode = RankingMode.FUNDS
    places: int | None = Field(None, ge=1, le=1_000_000)
    criteria: list[Criterion] = Field(default_factory=list)
    tie_breaks: list[TieBreak] = Field(default_factory=lambda: list(DEFAULT_TIE_BREAKS))
    partial_last_award: bool = False
    voucher_valid_until: date


class ProgrammeCreate(ProgrammeSpec):
    alliance_id: EntityId


class StatusChange(Contract):
    status: ProgrammeStatus
    by: str
    at: datetime
    note: str | None = None


class ProgrammeOut(ProgrammeCreate):
    id: EntityId
    status: ProgrammeStatus
    history: list[StatusChange]
    awarded_cents: int = 0
    created_at: datetime
    version: int


class ProgrammeQuery(Contract):
    alliance_id: str | None = None
    status: ProgrammeStatus | None = None
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0)


class TransitionNote(Contract):
    note: str | None = Field(None, max_length=1000)


# --- applications -----------------------------------------------------------------


ATTACHMENT_MEDIA_TYPES = ("application/pdf", "image/jpeg", "image/png")
ATTACHMENT_MAX_BYTES = 10 * 1024 * 1024


def attachment_prefix(subject: str) -> str:
    """Where the gateway stores a family's uploads: an application may cite only its own."""
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in subject)
    return f"vouchers/{safe}/"


class AttachmentRef(Contract):
    kind: AttachmentKind
    object_key: str = Field(min_length=1, max_length=500, description="Chiave dell'oggetto privato (MinIO)")
    filename: str = Field(min_length=1, max_length=200)


class ApplicationCreate(Contract):
    household_id: EntityId
    child_id: EntityId
    weekly_hours: list[int] = Field(
        default_factory=list, description="Ore settimanali di lavoro dichiarate, per genitore (ordine del nucleo)"
    )
    claims_disability_priority: bool = Field(False, description="Priorità disabilità: richiede la diagnosi")
    no_double_funding: bool = Field(description="Dichiaro che lo stesso costo non è pagato da altre misure pubbliche")
    attachments: list[AttachmentRef] = Field(default_factory=list, max_length=10)


class GuardianSnapshot(Contract):
    codice_fiscale: str
    employment: str
    employer_partner_id: str | None
    weekly_hours: int


class ApplicantSnapshot(Contract):
    """The household's data as declared at submission, frozen with the application."""

    residence_comune_istat: str
    single_parent: bool
    isee_cents: int | None
    isee_kind: str | None
    isee_expires_on: date | None
    guardians: list[GuardianSnapshot]
    minors_count: int
    child_codice_fiscale: str
    child_birth_date: date


class Reason(Contract):
    code: str
    message: str


class CriterionScore(Contract):
    kind: CriterionKind
    label: str
    points: int


class ApplicationOut(Contract):
    id: EntityId
    programme_id: str
    alliance_id: str
    protocol: str
    sequence: int
    submitted_at: datetime
    applicant_subject: str
    household_id: str
    child_id: str
    snapshot: ApplicantSnapshot
    claims_disability_priority: bool
    no_double_funding: bool
    attachments: list[AttachmentRef]
    status: ApplicationStatus
    automatic_reasons: list[Reason] = Field(description="Esito dei controlli automatici: vuoto se ammissibile")
    review_note: str | None
    reviewed_by: str | None
    score: int | None
    breakdown: list[CriterionScore]


class ApplicationQuery(Contract):
    status: ApplicationStatus | None = None
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0)


class ReviewDecision(Contract):
    eligible: bool
    note: str | None = Field(None, max_length=1000, description="Obbligatoria se si discosta dai controlli automatici")


class WithdrawRequest(Contract):
    reason: str | None = Field(None, max_length=500)


# --- ranking ----------------------------------------------------------------------


class RankingEntry(Contract):
    position: int
    application_id: str
    protocol: str
    codice_fiscale_masked: str = Field(description="Primi 3 e ultimi 3 caratteri")
    score: int
    breakdown: list[CriterionScore]
    placed_by: TieBreak | None = Field(description="Lo spareggio che ha deciso la posizione rispetto al precedente")
    outcome: Outcome
    award_cents: int


class RankingOut(Contract):
    programme_id: str
    status: ProgrammeStatus
    final: bool
    computed_at: datetime
    entries: list[RankingEntry]
    total: int
    awarded_cents: int


class RankingExport(Contract):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    filename: str
    media_type: str
    content_b64: str


# --- vouchers, redemptions, ledger ------------------------------------------------


class VoucherOut(Contract):
    id: EntityId
    code: str
    programme_id: str
    alliance_id: str
    application_id: str
    child_id: str
    holder_subject: str
    amount_cents: int
    balance_cents: int
    valid_from: date
    valid_until: date
    status: VoucherStatus
    eligible_service_types: list[ServiceType]


class VoucherQuery(Contract):
    programme_id: str | None = None
    status: VoucherStatus | None = None
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0)


class RedemptionCreate(Contract):
    enrolment_id: EntityId
    invoice_ref: str = Field(min_length=1, max_length=100, description="Riferimento della fattura/ricevuta")
    amount_cents: Cents | None = Field(None, description="Se assente: presenze x prezzo dell'offerta")


class RedemptionOut(Contract):
    id: EntityId
    voucher_id: str
    programme_id: str
    alliance_id: str
    provider_partner_id: str
    enrolment_id: str
    child_id: str
    invoice_ref: str
    amount_cents: int
    status: str = Field(description="pending | completed | refused | reversed")
    refusal: str | None
    created_at: datetime
    reversed_reason: str | None


class ReversalRequest(Contract):
    reason: str = Field(min_length=3, max_length=500)


class SourceTotals(Contract):
    name: str
    budget_cents: int
    awarded_cents: int
    redeemed_cents: int
    released_cents: int
    available_cents: int = Field(description="Budget non ancora assegnato")
    outstanding_cents: int = Field(description="Assegnato e non ancora speso")


class LedgerOut(Contract):
    programme_id: str
    budget_cents: int
    awarded_cents: int
    redeemed_cents: int
    released_cents: int
    available_cents: int
    outstanding_cents: int
    sources: list[SourceTotals]
    reconciles: bool = Field(description="Il registro coincide con i saldi dei voucher")


class ExportFile(Contract):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    filename: str
    media_type: str
    content_b64: str = Field(description="Contenuto in base64")


# --- events -----------------------------------------------------------------------


class ProgrammeOpened(IntegrationEvent):
    event_type: ClassVar[str] = "programme.opened"
    programme_id: str
    title: str
    budget_cents: int
    opens_at: datetime
    closes_at: datetime


class ApplicationSubmitted(IntegrationEvent):
    event_type: ClassVar[str] = "application.submitted"
    programme_id: str
    application_id: str
    protocol: str
    applicant_subject: str


class ApplicationReviewed(IntegrationEvent):
    event_type: ClassVar[str] = "application.reviewed"
    programme_id: str
    application_id: str
    protocol: str
    applicant_subject: str
    eligible: bool


class RankingPublished(IntegrationEvent):
    event_type: ClassVar[str] = "ranking.published"
    programme_id: str
    entries: int
    awarded_cents: int


class VoucherAwarded(IntegrationEvent):
    event_type: ClassVar[str] = "voucher.awarded"
    programme_id: str
    voucher_id: str
    application_id: str
    holder_subject: str
    amount_cents: int
    valid_until: date


class VoucherRedeemed(IntegrationEvent):
    event_type: ClassVar[str] = "voucher.redeemed"
    programme_id: str
    voucher_id: str
    redemption_id: str
    provider_partner_id: str
    amount_cents: int


class VoucherExpired(IntegrationEvent):
    event_type: ClassVar[str] = "voucher.expired"
    programme_id: str
    voucher_id: str
    released_cents: int
