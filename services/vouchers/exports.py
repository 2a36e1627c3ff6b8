"""Files for people: the ranking as CSV (``;``) and PDF, the ledger as CSV and XLSX,
a voucher's QR code. Pure formatting (bytes in memory, no I/O).

Published lists carry the protocol number and the masked codice fiscale only:
never a name, never the score breakdown (it may reveal a disability).
"""

import csv
import io
from collections.abc import Sequence
from typing import Any

import segno
from fpdf import FPDF
from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from conciliare.contracts.vouchers import LedgerOut, Outcome, TieBreak
from services.vouchers.domain.programmes import euro
from services.vouchers.repository import RankedRow, Redemption

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
BOM = "\ufeff"  # so Excel opens UTF-8 CSV files with accents right

OUTCOME_LABELS = {
    Outcome.AWARDED: "Finanziata",
    Outcome.PARTIAL: "Finanziata parzialmente",
    Outcome.NOT_AWARDED: "Ammessa non finanziata",
}
TIE_BREAK_LABELS = {
    TieBreak.LOWER_ISEE: "ISEE più basso",
    TieBreak.EARLIER_SUBMISSION: "presentazione anteriore",
    TieBreak.PROTOCOL_NUMBER: "numero di protocollo",
}
KIND_LABELS = {
    "award": "Assegnazione",
    "redemption": "Utilizzo",
    "reversal": "Storno",
    "expiry_release": "Scadenza (rilascio)",
}


def _csv(rows: Sequence[Sequence[Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerows(rows)
    return (BOM + buffer.getvalue()).encode("utf-8")


def _amount(cents: int) -> str:
    """Italian decimal for spreadsheets: 30000 -> '300,00'."""
    return euro(cents).removesuffix(" €").replace(".", "")


def ranking_rows(rows: Sequence[RankedRow]) -> list[list[str]]:
    header = ["Posizione", "Protocollo", "Codice fiscale", "Punteggio", "Spareggio", "Esito", "Importo (€)"]
    return [header] + [
        [
            str(r.position),
            r.protocol,
            r.cf_masked,
            str(r.score),
            TIE_BREAK_LABELS[r.placed_by] if r.placed_by else "",
            OUTCOME_LABELS[r.outcome],
            _amount(r.award_cents),
        ]
        for r in rows
    ]


def ranking_csv(rows: Sequence[RankedRow]) -> bytes:
    return _csv(ranking_rows(rows))


def _latin1(text: str) -> str:
    """The PDF core fonts are Latin-1: euro sign spelt out, anything else outside replaced."""
    return text.replace("€", "EUR").encode("latin-1", "replace").decode("latin-1")


def ranking_pdf(title: str, final: bool, rows: Sequence[RankedRow]) -> bytes:
    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 13)
    pdf.multi_cell(0, 7, _latin1(f"Graduatoria {'definitiva' if final else 'provvisoria'}: {title}"))
    pdf.ln(2)
    pdf.set_font("Helvetica", size=8)
    widths = [16, 24, 36, 18, 34, 40, 22]
    table = ranking_rows(rows)
    for index, row in enumerate(table):
        if index == 0:
            pdf.set_font("Helvetica", "B", 8)
        for width, cell in zip(widths, row, strict=True):
            pdf.cell(width, 6, _latin1(cell), border=1)
        pdf.ln()
        if index == 0:
            pdf.set_font("Helvetica", size=8)
    return bytes(pdf.output())


def ledger_table(source_names: Sequence[str], entries: Sequence[dict[str, Any]]) -> list[list[str]]:
    header = ["Data", "Movimento", "Riferimento", "Importo (€)", *[f"{name} (€)" for name in source_names]]
    return [header] + [
        [
            e["at"].isoformat(timespec="seconds"),
            KIND_LABELS.get(e["kind"], e["kind"]),
            e["ref"],
            _amount(e["amount_cents"]),
            *[_amount(part) for part in e["split"]],
        ]
        for e in entries
    ]


def ledger_csv(source_names: Sequence[str], entries: Sequence[dict[str, Any]]) -> bytes:
    return _csv(ledger_table(source_names, entries))


def _cell_text(value: str) -> str:
    """XLSX cells refuse control characters (a name typed with one would fail the export)."""
    return ILLEGAL_CHARACTERS_RE.sub("", value)


def ledger_xlsx(
    source_names: Sequence[str],
    summary: LedgerOut,
    entries: Sequence[dict[str, Any]],
    redemptions: Sequence[Redemption],
) -> bytes:
    """Three sheets a finance office opens: per source, movements, per provider."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Fonti"
    sheet.append(["Fonte", "Budget", "Assegnato", "Speso", "Rilasciato", "Disponibile", "Da spendere"])
    for s in summary.sources:
        sheet.append(
            [
                _cell_text(s.name),
                s.budget_cents / 100,
                s.awarded_cents / 100,
                s.redeemed_cents / 100,
                s.released_cents / 100,
                s.available_cents / 100,
                s.outstanding_cents / 100,
            ]
        )
    sheet.append(
        [
            "Totale",
            summary.budget_cents / 100,
            summary.awarded_cents / 100,
            summary.redeemed_cents / 100,
            summary.released_cents / 100,
            summary.available_cents / 100,
            summary.outstanding_cents / 100,
        ]
    )
    moves = book.create_sheet("Movimenti")
    moves.append(["Data", "Movimento", "Riferimento", "Importo", *map(_cell_text, source_names)])
    for e in entries:
        moves.append(
            [
                e["at"].replace(tzinfo=None),
                KIND_LABELS.get(e["kind"], e["kind"]),
                _cell_text(e["ref"]),
                e["amount_cents"] / 100,
                *[part / 100 for part in e["split"]],
            ]
        )
    providers = book.create_sheet("Enti erogatori")
    providers.append(["Ente erogatore", "Utilizzi", "Importo", *map(_cell_text, source_names)])
    totals: dict[str, list[int]] = {}
    for r in redemptions:
        if r.status != "completed":
            continue
        row = totals.setdefault(r.provider_partner_id, [0, 0, *[0] * len(source_names)])
        row[0] += 1
        row[1] += r.amount_cents
        for index, part in enumerate(r.split):
            row[2 + index] += part
    for provider, row in sorted(totals.items()):
        providers.append([_cell_text(provider), row[0], row[1] / 100, *[part / 100 for part in row[2:]]])
    for ws in (sheet, moves, providers):
        for cells in ws.iter_rows(min_row=2):
            for cell in cells:
                if isinstance(cell.value, float):
                    cell.number_format = "#,##0.00"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def voucher_qr_svg(code: str) -> bytes:
    """The voucher's code as a QR image (SVG) for the provider's desk scanner."""
    buffer = io.BytesIO()
    segno.make(code, error="m").save(buffer, kind="svg", scale=4, border=2)
    return buffer.getvalue()
