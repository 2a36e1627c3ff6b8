import random

import pytest

from conciliare.contracts.vouchers import LedgerKind
from conciliare.errors import Conflict
from services.vouchers.domain.codes import (
    ALPHABET,
    display_code,
    is_valid_code,
    make_code,
    normalize_code,
)
from services.vouchers.domain.ledger import (
    Entry,
    VoucherTotals,
    allocate_awards,
    ensure_within_budget,
    split_by_source,
    split_within,
    summarize,
)

SOURCES = [("FSE POR 2014-2020", 10_000_000), ("ATS Val Padana", 4_400_000)]
WEIGHTS = [amount for _, amount in SOURCES]


def test_split_is_exact_and_proportional() -> None:
    assert split_by_source(30_000, WEIGHTS) == [20_833, 9_167]
    assert split_by_source(1, WEIGHTS) == [1, 0]
    assert split_by_source(100, [1, 1, 1]) == [34, 33, 33]
    assert split_by_source(500, [0, 0]) == [500, 0]
    rng = random.Random(7)
    for _ in range(500):
        weights = [rng.randint(0, 10**7) for _ in range(rng.randint(1, 5))]
        amount = rng.randint(0, 10**6)
        parts = split_by_source(amount, weights)
        assert sum(parts) == amount and all(p >= 0 for p in parts)


def test_ledger_totals_per_source_reconcile_with_vouchers() -> None:
    award = Entry(LedgerKind.AWARD, 30_000, tuple(split_by_source(30_000, WEIGHTS)))
    redeem = Entry(LedgerKind.REDEMPTION, 12_000, tuple(split_by_source(12_000, list(award.split))))
    reverse = Entry(LedgerKind.REVERSAL, 12_000, redeem.split)
    redeem2 = Entry(LedgerKind.REDEMPTION, 5_000, tuple(split_by_source(5_000, list(award.split))))
    entries = [award, award, redeem, reverse, redeem2]
    vouchers = VoucherTotals(amount_cents=60_000, balance_cents=55_000, released_cents=0)
    ledger = summarize("p1", SOURCES, entries, vouchers)
    assert (ledger.budget_cents, ledger.awarded_cents, ledger.redeemed_cents) == (14_400_000, 60_000, 5_000)
    assert ledger.available_cents == 14_340_000 and ledger.outstanding_cents == 55_000
    assert sum(s.awarded_cents for s in ledger.sources) == ledger.awarded_cents
    assert sum(s.redeemed_cents for s in ledger.sources) == ledger.redeemed_cents
    assert ledger.reconciles
    wrong = summarize("p1", SOURCES, entries, VoucherTotals(60_000, 54_000, 0))
    assert not wrong.reconciles


def test_expiry_release_returns_funds_to_available() -> None:
    award = Entry(LedgerKind.AWARD, 30_000, tuple(split_by_source(30_000, WEIGHTS)))
    release = Entry(LedgerKind.EXPIRY_RELEASE, 30_000, award.split)
    ledger = summarize("p1", SOURCES, [award, release], VoucherTotals(30_000, 30_000, 30_000))
    assert ledger.available_cents == ledger.budget_cents and ledger.outstanding_cents == 0 and ledger.reconciles


def test_awards_beyond_budget_are_refused() -> None:
    ensure_within_budget(100, 40, 60)
    with pytest.raises(Conflict):
        ensure_within_budget(100, 40, 61)


def test_codes_use_an_unambiguous_alphabet_and_a_check_character() -> None:
    assert not set("01OIUL") & set(ALPHABET)
    rng = random.Random(1)
    for _ in range(200):
        code = make_code([rng.randrange(len(ALPHABET)) for _ in range(8)])
        assert len(code) == 9 and is_valid_code(code)
        assert is_valid_code(display_code(code).lower())
        position = rng.randrange(9)
        typo = code[:position] + next(c for c in ALPHABET if c != code[position]) + code[position + 1 :]
        assert not is_valid_code(typo)
        swapped = code[1] + code[0] + code[2:]
        assert code[0] == code[1] or not is_valid_code(swapped)
    assert normalize_code(" abcd-efgh ") == "ABCDEFGH"
    assert not is_valid_code("0000-0000-0")
    with pytest.raises(ValueError):
        make_code([1, 2])


def test_split_within_never_overdraws_a_source() -> None:
    rng = random.Random(11)
    for _ in range(2000):
        remaining = [rng.randint(0, 5_000) for _ in range(rng.randint(1, 4))]
        if not sum(remaining):
            continue
        amount = rng.randint(0, sum(remaining))
        parts = split_within(amount, remaining)
        assert sum(parts) == amount and all(0 <= p <= r for p, r in zip(parts, remaining, strict=True))
    with pytest.raises(ValueError):
        split_within(10, [3, 4])


def test_awards_drawn_one_after_another_fit_each_source() -> None:
    budgets = [10_000_000, 4_400_000]  # seed 002: FSE and ATS
    splits = allocate_awards([30_000] * 480, budgets)
    totals = [sum(s[i] for s in splits) for i in range(2)]
    assert totals == budgets  # 480 vouchers of 300 € spend exactly 144,000 €, source by source
    # Per-voucher rounding would have overdrawn ATS: 480 x 9,167 = 4,400,160.
    assert 480 * split_by_source(30_000, budgets)[1] > budgets[1]
