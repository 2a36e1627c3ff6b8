"""Who is calling, as every service sees it: the roles and the authenticated viewer.

The gateway authenticates people and integrators and passes a ``Viewer`` with each
RPC that needs access decisions; each service decides visibility in its own
``access.py`` (or ``domain.py``) with these types, never with bare strings.
"""

from enum import StrEnum

from pydantic import Field

from conciliare.contracts.common import Contract


class Role(StrEnum):
    PLATFORM_ADMIN = "platform_admin"
    ALLIANCE_MANAGER = "alliance_manager"
    PARTNER_OPERATOR = "partner_operator"
    FAMILY = "family"


class Viewer(Contract):
    """The caller as the gateway authenticated it: the service decides visibility."""

    subject: str = Field(min_length=1, max_length=200)
    role: Role
    partner_id: str | None = None
    alliance_ids: list[str] = Field(default_factory=list)
