"""Use cases of reporting (rendicontazione): the ledger at any moment, and the exports."""

import base64

from conciliare.contracts.identity import Viewer
from conciliare.contracts.vouchers import ExportFile, LedgerOut, ProgrammeStatus
from conciliare.errors import Conflict
from services.vouchers import access, exports
from services.vouchers.domain import ledger
from services.vouchers.programmes import require, require_managed
from services.vouchers.repository import Scope, VouchersRepository


def ledger_of(repo: VouchersRepository, viewer: Viewer, programme_id: str) -> LedgerOut:
    """Budget, awarded, redeemed, available per funding source, checked against the vouchers."""
    programme = require_managed(repo, viewer, programme_id)
    sources = [(s.name, s.amount_cents) for s in programme.spec.funding_sources]
    return ledger.summarize(programme_id, sources, repo.ledger_entries(programme_id), repo.voucher_totals(programme_id))


def _file(filename: str, media_type: str, content: bytes) -> ExportFile:
    return ExportFile(filename=filename, media_type=media_type, content_b64=base64.b64encode(content).decode())


def ranking_export(repo: VouchersRepository, viewer: Viewer, programme_id: str, fmt: str) -> ExportFile:
    """The graduatoria as CSV (``;``) or PDF: protocol, masked codice fiscale, score, outcome."""
    programme = require(repo, viewer, programme_id)
    final = programme.status in (ProgrammeStatus.PUBLISHED, ProgrammeStatus.AWARDED)
    if programme.ranking_run is None or not (final or access.manages(viewer, programme.alliance_id)):
        raise Conflict("La graduatoria non è ancora stata pubblicata.")
    rows, _ = repo.ranking(programme.ranking_run)
    name = f"graduatoria-{programme.spec.year}-{programme.spec.action_code}"
    if fmt == "pdf":
        return _file(f"{name}.pdf", "application/pdf", exports.ranking_pdf(programme.spec.title, final, rows))
    return _file(f"{name}.csv", "text/csv; charset=utf-8", exports.ranking_csv(rows))


def ledger_export(repo: VouchersRepository, viewer: Viewer, programme_id: str, fmt: str) -> ExportFile:
    """Ledger and redemptions per funding source and per provider, as CSV (``;``) or XLSX."""
    programme = require_managed(repo, viewer, programme_id)
    names = [s.name for s in programme.spec.funding_sources]
    summary = ledger_of(repo, viewer, programme_id)
    entries = repo.ledger_rows(programme_id)
    redemptions, _ = repo.find_redemptions(Scope(), None, programme_id, None, 0)
    name = f"rendiconto-{programme.spec.year}-{programme.spec.action_code}"
    if fmt == "xlsx":
        content = exports.ledger_xlsx(names, summary, entries, redemptions)
        return _file(f"{name}.xlsx", exports.XLSX, content)
    return _file(f"{name}.csv", "text/csv; charset=utf-8", exports.ledger_csv(names, entries))
