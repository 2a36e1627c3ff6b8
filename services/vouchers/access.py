"""Who may see and do what in the vouchers service: the one place that decides.

Platform admins see everything; alliance managers their alliances; partner
operators (providers) the programmes of their alliances, the vouchers presented to
them and their own redemptions; families their own applications and vouchers.
Whoever may not see a resource of another tenant gets NotFound, never a hint.
"""

from conciliare.contracts.identity import Role, Viewer
from conciliare.errors import Forbidden, NotFound
from services.vouchers.repository import Application, Programme, Redemption, Scope, Voucher

PROGRAMME_NOT_FOUND = "Bando non trovato."
APPLICATION_NOT_FOUND = "Domanda non trovata."
VOUCHER_NOT_FOUND = "Voucher non trovato."
REDEMPTION_NOT_FOUND = "Utilizzo del voucher non trovato."


def manages(viewer: Viewer, alliance_id: str) -> bool:
    if viewer.role is Role.PLATFORM_ADMIN:
        return True
    return viewer.role is Role.ALLIANCE_MANAGER and alliance_id in viewer.alliance_ids


def ensure_manages(viewer: Viewer, alliance_id: str) -> None:
    """Staff of the alliance (or the platform admin); anyone else: NotFound or Forbidden."""
    if manages(viewer, alliance_id):
        return
    if viewer.role is Role.FAMILY or alliance_id not in viewer.alliance_ids:
        raise NotFound(PROGRAMME_NOT_FOUND)
    raise Forbidden("Solo il personale dell'alleanza può gestire il bando.")


def sees_programme(viewer: Viewer, programme: Programme) -> bool:
    if manages(viewer, programme.alliance_id):
        return True
    if programme.status.value == "draft":
        return False
    # Families may apply to any open call; providers see their alliances' calls.
    return viewer.role is Role.FAMILY or programme.alliance_id in viewer.alliance_ids


def ensure_sees_programme(viewer: Viewer, programme: Programme | None) -> Programme:
    if programme is None or not sees_programme(viewer, programme):
        raise NotFound(PROGRAMME_NOT_FOUND)
    return programme


def ensure_family(viewer: Viewer) -> None:
    if viewer.role is not Role.FAMILY:
        raise Forbidden("Solo una famiglia può presentare domanda per i propri figli.")


def sees_application(viewer: Viewer, application: Application) -> bool:
    if manages(viewer, application.alliance_id):
        return True
    return viewer.role is Role.FAMILY and application.applicant_subject == viewer.subject


def ensure_sees_application(viewer: Viewer, application: Application | None) -> Application:
    if application is None or not sees_application(viewer, application):
        raise NotFound(APPLICATION_NOT_FOUND)
    return application


def applicant_filter(viewer: Viewer, alliance_id: str) -> str | None:
    """Whose applications of a programme the viewer lists: None = all (staff), else a subject."""
    if manages(viewer, alliance_id):
        return None
    if viewer.role is Role.FAMILY:
        return viewer.subject
    raise NotFound(PROGRAMME_NOT_FOUND)


def sees_voucher(viewer: Viewer, voucher: Voucher) -> bool:
    if manages(viewer, voucher.alliance_id):
        return True
    if viewer.role is Role.FAMILY:
        return voucher.holder_subject == viewer.subject
    if viewer.role is Role.PARTNER_OPERATOR:
        return viewer.partner_id is not None and viewer.partner_id in voucher.providers
    return False


def ensure_sees_voucher(viewer: Viewer, voucher: Voucher | None) -> Voucher:
    if voucher is None or not sees_voucher(viewer, voucher):
        raise NotFound(VOUCHER_NOT_FOUND)
    return voucher


def ensure_provider_in(viewer: Viewer, alliance_id: str) -> str:
    """A provider of the voucher's alliance, presenting or redeeming it: its partner id."""
    if viewer.role is not Role.PARTNER_OPERATOR or viewer.partner_id is None or alliance_id not in viewer.alliance_ids:
        raise NotFound(VOUCHER_NOT_FOUND)
    return viewer.partner_id


def voucher_scope(viewer: Viewer) -> Scope:
    """Which vouchers a viewer may list."""
    if viewer.role is Role.PLATFORM_ADMIN:
        return Scope()
    if viewer.role is Role.ALLIANCE_MANAGER:
        return Scope(alliance_ids=list(viewer.alliance_ids))
    if viewer.role is Role.FAMILY:
        return Scope(holder_subject=viewer.subject)
    return Scope(provider_partner_id=viewer.partner_id or "-")


def redemption_scope(viewer: Viewer) -> Scope:
    """Which redemptions a viewer may list (families read their vouchers' balances instead)."""
    if viewer.role is Role.PLATFORM_ADMIN:
        return Scope()
    if viewer.role is Role.ALLIANCE_MANAGER:
        return Scope(alliance_ids=list(viewer.alliance_ids))
    if viewer.role is Role.PARTNER_OPERATOR:
        return Scope(provider_partner_id=viewer.partner_id or "-")
    raise NotFound(REDEMPTION_NOT_FOUND)


def sees_redemption(viewer: Viewer, redemption: Redemption) -> bool:
    if manages(viewer, redemption.alliance_id):
        return True
    return viewer.role is Role.PARTNER_OPERATOR and viewer.partner_id == redemption.provider_partner_id


def ensure_platform_admin(viewer: Viewer) -> None:
    if viewer.role is not Role.PLATFORM_ADMIN:
        raise Forbidden("Operazione riservata all'amministratore della piattaforma.")
