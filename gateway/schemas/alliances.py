from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from conciliare.contracts.common import Page
from conciliare.contracts.partners import AllianceCreate, AllianceOut, MemberAdd, MemberOut

__all__ = [
    "AllianceCreate",
    "AllianceOut",
    "AlliancePage",
    "MemberAdd",
    "MemberOut",
    "MemberPage",
    "MemberStatusChange",
]

AlliancePage = Page[AllianceOut]
MemberPage = Page[MemberOut]


class MemberTargetStatus(StrEnum):
    FORMALIZED = "formalized"
    WITHDRAWN = "withdrawn"


class MemberStatusChange(BaseModel):
    """Formalize a pending adhesion or record a withdrawal."""

    model_config = ConfigDict(extra="forbid")
    status: MemberTargetStatus
