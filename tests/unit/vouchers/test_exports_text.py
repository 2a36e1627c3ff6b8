"""Exports survive whatever text people (or a fuzzer) typed into names."""

import io

from openpyxl import load_workbook

from conciliare.contracts.vouchers import LedgerOut
from services.vouchers import exports


def test_a_funding_source_named_with_control_characters_still_exports_to_xlsx() -> None:
    name = "FSE\x00\x07 POR\x1f 2014-2020"
    summary = LedgerOut.model_validate(
        {
            "programme_id": "p1",
            "budget_cents": 10_000,
            "awarded_cents": 0,
            "redeemed_cents": 0,
            "released_cents": 0,
            "available_cents": 10_000,
            "outstanding_cents": 0,
            "reconciles": True,
            "sources": [
                {
                    "name": name,
                    "budget_cents": 10_000,
                    "awarded_cents": 0,
                    "redeemed_cents": 0,
                    "released_cents": 0,
                    "available_cents": 10_000,
                    "outstanding_cents": 0,
                }
            ],
        }
    )
    book = load_workbook(io.BytesIO(exports.ledger_xlsx([name], summary, [], [])))
    assert book["Fonti"]["A2"].value == "FSE POR 2014-2020"
    assert book["Movimenti"]["E1"].value == "FSE POR 2014-2020"
