"""Contracts of the partners service (schema version 1)."""

from datetime import date, datetime
from enum import StrEnum
from typing import ClassVar

from pydantic import Field, field_validator, model_validator

from conciliare.contracts.common import Cents, Contract, EntityId, IntegrationEvent, IstatCode

SCHEMA_VERSION = 1


class PartnerKind(StrEnum):
    COMUNE = "comune"
    COOPERATIVA = "cooperativa"
    PARROCCHIA = "parrocchia"
    AZIENDA_SPECIALE_CONSORTILE = "azienda_speciale_consortile"
    ASST = "asst"
    ATS = "ats"
    IMPRESA = "impresa"
    UFFICIO_DI_PIANO = "ufficio_di_piano"
    ASSOCIAZIONE = "associazione"
    ALTRO = "altro"


class MembershipRole(StrEnum):
    CAPOFILA = "capofila"
    PARTNER = "partner"


class MembershipStatus(StrEnum):
    PENDING = "pending"
    FORMALIZED = "formalized"
    WITHDRAWN = "withdrawn"


class AllianceStatus(StrEnum):
    ACTIVE = "active"
    CLOSED = "closed"


# --- partners ---------------------------------------------------------------


class PartnerCreate(Contract):
    kind: PartnerKind
    name: str = Field(min_length=2, max_length=200)
    tax_code: str = Field(
        min_length=11,
        max_length=16,
        description="Codice fiscale (11 cifre per gli enti, 16 caratteri per le persone) o P.IVA",
    )
    comune_istat: IstatCode
    email: str | None = Field(None, max_length=200)
    family_friendly: bool = Field(False, description="Marchio 'family friendly' (seed 001)")

    @field_validator("tax_code")
    @classmethod
    def _normalise_tax_code(cls, value: str) -> str:
        return value.replace(" ", "").upper()


class PartnerOut(Contract):
    id: EntityId
    kind: PartnerKind
    name: str
    tax_code: str
    comune_istat: str
    comune_name: str
    email: str | None
    family_friendly: bool
    created_at: datetime


class PartnerQuery(Contract):
    alliance_ids: list[str] | None = Field(None, description="Solo i membri (non receduti) di queste alleanze")
    registered_by: str | None = Field(
        None,
        max_length=200,
        description="Con alliance_ids: anche i partner registrati da questo utente (non ancora membri)",
    )
    partner_ids: list[str] | None = None
    kind: PartnerKind | None = None
    tax_code: str | None = None
    text: str | None = Field(None, max_length=100)
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0)


# --- alliances & memberships -----------------------------------------------


class Ambito(Contract):
    name: str = Field(min_length=2, max_length=200)
    comuni_istat: list[IstatCode] = Field(min_length=1)


class AllianceCreate(Contract):
    code: str = Field(pattern=r"^[A-Z0-9][A-Z0-9-]{1,31}$", description="Codice univoco, es. CASTELLANZA")
    name: str = Field(min_length=3, max_length=200)
    ambiti: list[Ambito] = Field(min_length=1)
    capofila_partner_id: EntityId

    @field_validator("code", mode="before")
    @classmethod
    def _upper_code(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value


class Membership(Contract):
    partner_id: str
    role: MembershipRole
    status: MembershipStatus
    joined_at: datetime
    formalized_at: datetime | None = None
    withdrawn_at: datetime | None = None


class ComuneOut(Contract):
    istat: str
    name: str
    province: str


class AmbitoOut(Contract):
    name: str
    comuni: list[ComuneOut]


class AllianceOut(Contract):
    id: EntityId
    code: str
    name: str
    status: AllianceStatus
    ambiti: list[AmbitoOut]
    capofila_partner_id: str
    member_count: int
    created_at: datetime


class MemberAdd(Contract):
    partner_id: EntityId
    role: MembershipRole = MembershipRole.PARTNER
    status: MembershipStatus = Field(
        MembershipStatus.PENDING, description="pending finché l'adesione non è formalizzata"
    )

    @model_validator(mode="after")
    def _no_withdrawn_on_add(self) -> "MemberAdd":
        if self.status is MembershipStatus.WITHDRAWN:
            raise ValueError("un partner non può essere aggiunto già receduto")
        return self


class MemberOut(Contract):
    partner: PartnerOut
    role: MembershipRole
    status: MembershipStatus
    joined_at: datetime
    formalized_at: datetime | None
    withdrawn_at: datetime | None


class PartnerAccess(Contract):
    """Answer of ``partners.partner_access``: what decides who may read a partner."""

    partner_id: str
    alliance_ids: list[str] = Field(description="Alleanze di cui è membro (non receduto)")
    registered_by: str | None = Field(None, description="Soggetto dell'utente che lo ha registrato")


class MemberQuery(Contract):
    status: MembershipStatus | None = Field(
        None, description="Solo questo stato; senza, tutti tranne i receduti (come member_count)"
    )
    include_withdrawn: bool = Field(False, description="Senza status: includere anche i receduti")
    role: MembershipRole | None = None
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0)


class AllianceMembershipCheck(Contract):
    """Answer of ``partners.membership_of``: what another service needs to decide."""

    alliance_id: str
    partner_id: str
    role: MembershipRole | None
    status: MembershipStatus | None

    @property
    def is_formalized(self) -> bool:
        return self.status is MembershipStatus.FORMALIZED


class AllianceTerritory(Contract):
    """Answer of ``partners.alliance_territory``: Comuni and formalized partners."""

    alliance_id: str
    comuni_istat: list[str]
    formalized_partner_ids: list[str]


# --- projects ---------------------------------------------------------------


class FundingSource(Contract):
    name: str = Field(min_length=2, max_length=200, description="es. Regione Lombardia, FSE POR 2014-2020, ATS")
    amount_cents: Cents


class ProjectAction(Contract):
    code: str = Field(pattern=r"^[A-Z][0-9]?$", description="es. A, B, C1, E1")
    title: str = Field(min_length=2, max_length=500)
    description: str | None = Field(None, max_length=5000)


class Cofinancing(Contract):
    cash_cents: Cents = 0
    valued_work_hours_cents: Cents = Field(0, description="Valorizzazione delle ore di lavoro")
    valued_work_hours: int | None = Field(None, ge=0, description="Ore di lavoro valorizzate")


class ProjectSpec(Contract):
    title: str = Field(min_length=3, max_length=300)
    period_start: date
    period_end: date
    total_cost_cents: Cents
    requested_contribution_cents: Cents
    cofinancing: Cofinancing
    funding_sources: list[FundingSource] = Field(default_factory=list)
    actions: list[ProjectAction] = Field(default_factory=list)


class ProjectUpdate(ProjectSpec):
    """A project's data again, with the version it was read at (or ``If-Match``)."""

    version: int | None = Field(
        None,
        ge=1,
        le=2**31 - 1,
        description="La versione letta (in alternativa all'intestazione If-Match): se nel frattempo è cambiata, 409",
    )


class ProjectOut(ProjectSpec):
    id: EntityId
    alliance_id: str
    created_at: datetime
    updated_at: datetime
    version: int


# --- events -----------------------------------------------------------------


class AllianceCreated(IntegrationEvent):
    event_type: ClassVar[str] = "alliance.created"
    code: str
    name: str
    comuni_istat: list[str]
    capofila_partner_id: str


class MembershipChanged(IntegrationEvent):
    event_type: ClassVar[str] = "membership.changed"
    partner_id: str
    role: MembershipRole
    status: MembershipStatus
    previous_status: MembershipStatus | None


class ProjectCreated(IntegrationEvent):
    event_type: ClassVar[str] = "project.created"
    project_id: str
    title: str
    total_cost_cents: int
    requested_contribution_cents: int
    version: int


class ProjectUpdated(ProjectCreated):
    event_type: ClassVar[str] = "project.updated"
