from conciliare.contracts.common import Page
from conciliare.contracts.enrolment import ChildCreate, ChildOut, HouseholdCreate, HouseholdOut

__all__ = ["ChildCreate", "ChildOut", "HouseholdCreate", "HouseholdOut", "HouseholdPage"]

HouseholdPage = Page[HouseholdOut]
