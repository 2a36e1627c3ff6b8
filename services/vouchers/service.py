"""Vouchers service: the bando, applications, the graduatoria, vouchers, redemptions
and the budget ledger (entrypoints only).

Where things are: the rules in ``domain/``; ``access.py`` (who sees what);
``programmes.py``, ``applications.py``, ``awards.py`` (ranking and awards),
``redemptions.py`` (the redemption saga), ``reports.py`` and ``exports.py``
(ledger and files); storage is ``repository.py``.
"""

import base64
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from nameko.events import EventDispatcher
from nameko.timer import timer

from conciliare.chassis.entrypoints import OutboxService, domain_rpc
from conciliare.chassis.validation import dump, parse
from conciliare.contracts.common import PageRequest, utc_now
from conciliare.contracts.identity import Viewer
from conciliare.contracts.vouchers import (
    ApplicationCreate,
    ApplicationQuery,
    ExportFile,
    ProgrammeCreate,
    ProgrammeQuery,
    RedemptionCreate,
    ReversalRequest,
    ReviewDecision,
    TransitionNote,
    VoucherQuery,
    WithdrawRequest,
)
from conciliare.errors import ValidationFailed
from conciliare.tracing import instrument_nameko, setup_tracing
from services.vouchers import access, applications, awards, exports, programmes, redemptions, reports
from services.vouchers.dependencies import (
    CatalogClient,
    CatalogRpc,
    EnrolmentClient,
    EnrolmentRpc,
    PartnersClient,
    PartnersRpc,
    VouchersStore,
)
from services.vouchers.domain.programmes import ROME
from services.vouchers.repository import APPLICATIONS, PROGRAMMES, VOUCHERS, VouchersRepository

setup_tracing("vouchers-service")
instrument_nameko()

EXPORT_FORMATS = {"ranking": ("csv", "pdf"), "ledger": ("csv", "xlsx")}
RELAY_ROUNDS = 20


def _format(kind: str, fmt: str) -> str:
    if fmt not in EXPORT_FORMATS[kind]:
        allowed = ", ".join(EXPORT_FORMATS[kind])
        raise ValidationFailed("Formato non disponibile.", [{"field": "format", "message": f"formati: {allowed}"}])
    return fmt


class VouchersService(OutboxService):
    name = "vouchers"

    store: VouchersRepository = VouchersStore()
    dispatch: Callable[[str, dict[str, Any]], None] = EventDispatcher()
    enrolment: EnrolmentClient = EnrolmentRpc()
    partners: PartnersClient = PartnersRpc()
    catalog: CatalogClient = CatalogRpc()

    @timer(interval=2)
    def relay_outbox(self) -> None:
        """Publish events left in an outbox and finish redemptions a crash left half-way."""
        for _ in range(RELAY_ROUNDS):
            if not self.store.publish_all(self.dispatch):
                break
        redemptions.resume_stale(self.store, utc_now())

    @timer(interval=3600)
    def expire_daily(self) -> None:
        """Expire the vouchers whose validity ended and release their balance to the budget."""
        now = utc_now()
        awards.expire_vouchers(self.store, now.astimezone(ROME).date(), now)

    # --- programmes -------------------------------------------------------------

    @domain_rpc
    def create_programme(self, viewer: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
        """Create a draft bando for a project action of an alliance."""
        spec = parse(ProgrammeCreate, payload)
        return dump(programmes.create_programme(self.store, self.partners, parse(Viewer, viewer), spec, utc_now()))

    @domain_rpc
    def get_programme(self, programme_id: str, viewer: dict[str, Any]) -> dict[str, Any]:
        """One bando with its rules and its audited status history."""
        return dump(programmes.get_programme(self.store, parse(Viewer, viewer), programme_id))

    @domain_rpc
    def list_programmes(self, viewer: dict[str, Any], query: dict[str, Any]) -> dict[str, Any]:
        """Bandi the caller may see, oldest first."""
        request = parse(ProgrammeQuery, query)
        return dump(programmes.list_programmes(self.store, parse(Viewer, viewer), request))

    @domain_rpc
    def open_programme(self, programme_id: str, viewer: dict[str, Any]) -> dict[str, Any]:
        """Validate the bando's rules and open it to applications."""
        result = programmes.open_programme(self.store, parse(Viewer, viewer), programme_id, utc_now())
        self.store.publish(self.dispatch, PROGRAMMES, programme_id)
        return dump(result)

    @domain_rpc
    def close_programme(self, programme_id: str, viewer: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
        """Close the bando to applications."""
        note = parse(TransitionNote, payload).note
        return dump(programmes.close_programme(self.store, parse(Viewer, viewer), programme_id, utc_now(), note))

    @domain_rpc
    def rank_programme(self, programme_id: str, viewer: dict[str, Any]) -> dict[str, Any]:
        """Compute (or recompute) the draft ranking of the eligible applications."""
        return dump(awards.rank_programme(self.store, parse(Viewer, viewer), programme_id, utc_now()))

    @domain_rpc
    def publish_ranking(self, programme_id: str, viewer: dict[str, Any]) -> dict[str, Any]:
        """Make the draft ranking final (one-way)."""
        result = awards.publish_ranking(self.store, parse(Viewer, viewer), programme_id, utc_now())
        self.store.publish(self.dispatch, PROGRAMMES, programme_id)
        return dump(result)

    @domain_rpc
    def award_programme(self, programme_id: str, viewer: dict[str, Any]) -> dict[str, Any]:
        """Create the vouchers of the final ranking within the budget, with the ledger."""
        result = awards.award(self.store, parse(Viewer, viewer), programme_id, utc_now())
        self.store.publish(self.dispatch, PROGRAMMES, programme_id)
        return dump(result)

    @domain_rpc
    def get_ranking(self, programme_id: str, viewer: dict[str, Any], page: dict[str, Any]) -> dict[str, Any]:
        """The ranking (staff: draft and breakdown; others: the published list), paginated."""
        request = parse(PageRequest, page)
        ranking = awards.get_ranking(self.store, parse(Viewer, viewer), programme_id, request.limit, request.offset)
        return dump(ranking)

    @domain_rpc
    def export_ranking(self, programme_id: str, viewer: dict[str, Any], fmt: str) -> dict[str, Any]:
        """The ranking as CSV (semicolons) or PDF, base64-encoded."""
        fmt = _format("ranking", fmt)
        return dump(reports.ranking_export(self.store, parse(Viewer, viewer), programme_id, fmt))

    # --- applications -------------------------------------------------------------

    @domain_rpc
    def submit_application(self, programme_id: str, viewer: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
        """A family applies for one child; the household's data is frozen with the application."""
        spec = parse(ApplicationCreate, payload)
        result = applications.submit(
            self.store, self.enrolment, self.partners, parse(Viewer, viewer), programme_id, spec, utc_now()
        )
        self.store.publish(self.dispatch, APPLICATIONS, result.id)
        return dump(result)

    @domain_rpc
    def get_application(self, application_id: str, viewer: dict[str, Any]) -> dict[str, Any]:
        """One application (its family, or the alliance's staff)."""
        return dump(applications.get_application(self.store, parse(Viewer, viewer), application_id))

    @domain_rpc
    def list_applications(self, programme_id: str, viewer: dict[str, Any], query: dict[str, Any]) -> dict[str, Any]:
        """Applications of a bando by protocol number (families: their own)."""
        request = parse(ApplicationQuery, query)
        return dump(applications.list_applications(self.store, parse(Viewer, viewer), programme_id, request))

    @domain_rpc
    def review_application(
        self, application_id: str, viewer: dict[str, Any], payload: dict[str, Any]
    ) -> dict[str, Any]:
        """Staff confirm or override the automatic eligibility checks."""
        decision = parse(ReviewDecision, payload)
        result = applications.review_application(self.store, parse(Viewer, viewer), application_id, decision)
        self.store.publish(self.dispatch, APPLICATIONS, application_id)
        return dump(result)

    @domain_rpc
    def confirm_reviews(self, programme_id: str, viewer: dict[str, Any]) -> int:
        """Staff confirm the automatic result of every application not reviewed yet."""
        return applications.confirm_automatic_reviews(self.store, parse(Viewer, viewer), programme_id)

    @domain_rpc
    def withdraw_application(
        self, application_id: str, viewer: dict[str, Any], payload: dict[str, Any]
    ) -> dict[str, Any]:
        """The family withdraws its application."""
        request = parse(WithdrawRequest, payload)
        return dump(applications.withdraw(self.store, parse(Viewer, viewer), application_id, request))

    # --- vouchers and redemptions -----------------------------------------------------

    @domain_rpc
    def get_voucher(self, voucher_id: str, viewer: dict[str, Any]) -> dict[str, Any]:
        """One voucher: amount, balance, validity."""
        return dump(redemptions.get_voucher(self.store, parse(Viewer, viewer), voucher_id))

    @domain_rpc
    def voucher_by_code(self, code: str, viewer: dict[str, Any]) -> dict[str, Any]:
        """The voucher a family presents at a provider's desk, by its short code."""
        return dump(redemptions.voucher_by_code(self.store, parse(Viewer, viewer), code))

    @domain_rpc
    def voucher_qr(self, voucher_id: str, viewer: dict[str, Any]) -> dict[str, Any]:
        """The voucher's code as a QR image (SVG, base64)."""
        voucher = redemptions.get_voucher(self.store, parse(Viewer, viewer), voucher_id)
        content = exports.voucher_qr_svg(voucher.code)
        return dump(
            ExportFile(
                filename=f"voucher-{voucher.code}.svg",
                media_type="image/svg+xml",
                content_b64=base64.b64encode(content).decode(),
            )
        )

    @domain_rpc
    def list_vouchers(self, viewer: dict[str, Any], query: dict[str, Any]) -> dict[str, Any]:
        """Vouchers the caller may see (families: theirs; providers: those presented to them)."""
        request = parse(VoucherQuery, query)
        status = request.status.value if request.status else None
        return dump(
            redemptions.list_vouchers(
                self.store, parse(Viewer, viewer), request.programme_id, status, request.limit, request.offset
            )
        )

    @domain_rpc
    def redeem(self, voucher_id: str, viewer: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
        """A provider spends a voucher for an invoice of a confirmed enrolment."""
        spec = parse(RedemptionCreate, payload)
        result = redemptions.redeem(
            self.store, self.enrolment, self.catalog, parse(Viewer, viewer), voucher_id, spec, utc_now()
        )
        self.store.publish(self.dispatch, VOUCHERS, voucher_id)
        return dump(result)

    @domain_rpc
    def list_redemptions(self, viewer: dict[str, Any], voucher_id: str | None, page: dict[str, Any]) -> dict[str, Any]:
        """Redemptions the caller may see (providers: their own), optionally of one voucher."""
        request = parse(PageRequest, page)
        return dump(
            redemptions.list_redemptions(self.store, parse(Viewer, viewer), voucher_id, request.limit, request.offset)
        )

    @domain_rpc
    def reverse_redemption(self, redemption_id: str, viewer: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
        """Staff reverse a redemption with a reason."""
        request = parse(ReversalRequest, payload)
        return dump(redemptions.reverse(self.store, parse(Viewer, viewer), redemption_id, request, utc_now()))

    # --- ledger -------------------------------------------------------------------------

    @domain_rpc
    def get_ledger(self, programme_id: str, viewer: dict[str, Any]) -> dict[str, Any]:
        """Budget, awarded, redeemed and available, in all and per funding source."""
        return dump(reports.ledger_of(self.store, parse(Viewer, viewer), programme_id))

    @domain_rpc
    def export_ledger(self, programme_id: str, viewer: dict[str, Any], fmt: str) -> dict[str, Any]:
        """The ledger as CSV (semicolons) or XLSX, base64-encoded."""
        fmt = _format("ledger", fmt)
        return dump(reports.ledger_export(self.store, parse(Viewer, viewer), programme_id, fmt))

    @domain_rpc
    def expire_vouchers(self, viewer: dict[str, Any], days_ahead: int = 0) -> int:
        """Expire now the vouchers past their validity (platform admin; also run hourly)."""
        access.ensure_platform_admin(parse(Viewer, viewer))
        now = utc_now()
        return awards.expire_vouchers(self.store, now.astimezone(ROME).date() + timedelta(days=days_ahead), now)
