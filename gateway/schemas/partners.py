from conciliare.contracts.common import Page
from conciliare.contracts.partners import PartnerCreate, PartnerKind, PartnerOut

__all__ = ["PartnerCreate", "PartnerKind", "PartnerOut", "PartnerPage"]

PartnerPage = Page[PartnerOut]
