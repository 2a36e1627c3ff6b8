"""Who may see and do what in the enrolment service: the one place that decides it.

Per role (``conciliare.contracts.identity.Role``) and tenant:
- a family: its own household, children and enrolments; only it registers a
  household or a child, requests or cancels for its own child, and reads its
  children's needs;
- a partner operator: the enrolments of the offerings its organisation provides,
  with the children's needs (each read audited); it cancels them and keeps their
  attendance registers;
- an alliance manager: every enrolment, roster and register of its alliances, read
  only and without needs;
- the platform operator: everything, without needs; it may also cancel and record.

Another tenant's household, enrolment or offering is answered "not found", never
"forbidden": a caller must not learn that it exists.
"""

from typing import Final

from conciliare.contracts.identity import Role, Viewer
from conciliare.errors import Forbidden, NotFound
from services.enrolment.domain import OfferingProjection
from services.enrolment.records import Enrolment, EnrolmentFilter, Household

HOUSEHOLD_NOT_FOUND: Final = "Nucleo familiare non trovato."
CHILD_NOT_FOUND: Final = "Bambino non trovato."
ENROLMENT_NOT_FOUND: Final = "Iscrizione non trovata."
OFFERING_NOT_FOUND: Final = "Servizio non trovato."


# --- households and children ------------------------------------------------------------------


def ensure_family(viewer: Viewer, message: str) -> None:
    if viewer.role is not Role.FAMILY:
        raise Forbidden(message)


def owns(viewer: Viewer, household: Household) -> bool:
    return viewer.role is Role.FAMILY and household.owner_subject == viewer.subject


def readable_household(viewer: Viewer, household: Household | None) -> Household:
    """The household if the viewer may read it (its family, the platform operator)."""
    if household is not None and (viewer.role is Role.PLATFORM_ADMIN or owns(viewer, household)):
        return household
    raise NotFound(HOUSEHOLD_NOT_FOUND)


def writable_household(viewer: Viewer, household: Household | None) -> Household:
    """The household if the viewer may change it: only its own family."""
    readable = readable_household(viewer, household)
    if not owns(viewer, readable):
        raise Forbidden("Solo la famiglia può modificare il proprio nucleo.")
    return readable


def may_list_every_household(viewer: Viewer) -> bool:
    """The platform operator lists every household; a family sees its own; nobody else any."""
    if viewer.role is Role.PLATFORM_ADMIN:
        return True
    ensure_family(viewer, "I nuclei familiari sono visibili solo alle famiglie stesse.")
    return False


def may_read_needs(viewer: Viewer, household: Household) -> bool:
    """Children's needs are health data: in a household listing, only for the family itself."""
    return owns(viewer, household)


# --- enrolments -------------------------------------------------------------------------------


def may_see_enrolment(viewer: Viewer, enrolment: Enrolment) -> bool:
    match viewer.role:
        case Role.PLATFORM_ADMIN:
            return True
        case Role.FAMILY:
            return enrolment.owner_subject == viewer.subject
        case Role.PARTNER_OPERATOR:
            return viewer.partner_id is not None and enrolment.provider_partner_id == viewer.partner_id
        case Role.ALLIANCE_MANAGER:
            return enrolment.alliance_id in viewer.alliance_ids
    return False


def may_read_refusal(viewer: Viewer, owner_subject: str) -> bool:
    """A refused request naming no child or offering of ours: only its family (and the platform) read it."""
    return viewer.role is Role.PLATFORM_ADMIN or viewer.subject == owner_subject


def visible_enrolment(viewer: Viewer, enrolment: Enrolment | None) -> Enrolment:
    if enrolment is None or not may_see_enrolment(viewer, enrolment):
        raise NotFound(ENROLMENT_NOT_FOUND)
    return enrolment


def enrolment_filter(viewer: Viewer, offering_id: str | None, child_id: str | None) -> EnrolmentFilter | None:
    """Which enrolments the viewer may list (narrowed by the caller's filters); None: none."""
    match viewer.role:
        case Role.PLATFORM_ADMIN:
            return EnrolmentFilter(everything=True, offering_id=offering_id, child_id=child_id)
        case Role.FAMILY:
            return EnrolmentFilter(owner_subject=viewer.subject, offering_id=offering_id, child_id=child_id)
        case Role.PARTNER_OPERATOR if viewer.partner_id:
            return EnrolmentFilter(provider_partner_id=viewer.partner_id, offering_id=offering_id, child_id=child_id)
        case Role.ALLIANCE_MANAGER if viewer.alliance_ids:
            return EnrolmentFilter(
                alliance_ids=frozenset(viewer.alliance_ids), offering_id=offering_id, child_id=child_id
            )
    return None


def ensure_may_cancel(viewer: Viewer) -> None:
    """Cancelling is for the family, the provider and the platform operator (after visibility)."""
    if viewer.role is Role.ALLIANCE_MANAGER:
        raise Forbidden("L'annullamento spetta alla famiglia o all'ente gestore del servizio.")


def ensure_may_record_attendance(viewer: Viewer) -> None:
    if viewer.role not in (Role.PARTNER_OPERATOR, Role.PLATFORM_ADMIN):
        raise Forbidden("Le presenze le registra l'ente gestore del servizio.")


# --- offerings (rosters, registers) ---------------------------------------------------------


def is_provider(viewer: Viewer, offering: OfferingProjection) -> bool:
    return viewer.role is Role.PARTNER_OPERATOR and viewer.partner_id == offering.provider_partner_id


def staff_offering(viewer: Viewer, offering: OfferingProjection | None) -> OfferingProjection:
    """The offering if the viewer is its provider, a manager of its alliance or the operator."""
    if offering is not None and (
        viewer.role is Role.PLATFORM_ADMIN
        or is_provider(viewer, offering)
        or (viewer.role is Role.ALLIANCE_MANAGER and offering.alliance_id in viewer.alliance_ids)
    ):
        return offering
    raise NotFound(OFFERING_NOT_FOUND)


def discloses_needs(viewer: Viewer, offering: OfferingProjection) -> bool:
    """In a roster, children's needs are shown (and each read audited) only to the provider."""
    return is_provider(viewer, offering)
