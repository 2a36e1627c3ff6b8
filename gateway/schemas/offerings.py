"""HTTP shapes of the catalog: the body is the domain's ``OfferingSpec`` itself.

Validating with the catalog's own value object keeps one set of rules (and their
Italian messages) for forms, integrators and the service, which validates again.
"""

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from conciliare.contracts.catalog import PublicationGap
from conciliare.contracts.common import EntityId, Page
from conciliare.contracts.offerings import OfferingSpec
from conciliare.contracts.taxonomy import OfferingStatus

__all__ = [
    "OfferingAction",
    "OfferingCreate",
    "OfferingOut",
    "OfferingPage",
    "OfferingSpec",
    "OfferingUpdate",
]


class OfferingCreate(OfferingSpec):
    """A new offering (draft) in an alliance, by a provider partner."""

    alliance_id: EntityId
    provider_partner_id: EntityId | None = Field(
        None, description="Erogatore: per gli operatori dei partner è sempre il proprio ente"
    )


class OfferingUpdate(OfferingSpec):
    """The whole offering again, with the version it was read at (here or as ``If-Match``)."""

    version: int | None = Field(
        None,
        ge=1,
        le=2**31 - 1,
        description=("La versione letta (in alternativa all'intestazione If-Match): se nel frattempo è cambiata, 409"),
    )


class OfferingOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    alliance_id: str
    provider_partner_id: str
    status: OfferingStatus
    version: int
    spec: OfferingSpec
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None
    missing_for_publication: list[PublicationGap] = Field(
        default_factory=list,
        description=(
            "Che cosa manca per pubblicare una bozza (o riprendere un'offerta sospesa): vuoto se è "
            "pubblicabile; sempre vuoto per le offerte pubblicate e archiviate"
        ),
    )


OfferingPage = Page[OfferingOut]


class OfferingAction(StrEnum):
    PUBLISH = "publish"
    SUSPEND = "suspend"
    RESUME = "resume"
    ARCHIVE = "archive"
