from datetime import UTC, date, datetime

import pytest

from conciliare.contracts.identity import Role, Viewer
from conciliare.contracts.taxonomy import ServiceType
from conciliare.contracts.vouchers import ProgrammeStatus, StatusChange, VoucherStatus
from conciliare.errors import Conflict, Forbidden, NotFound, ValidationFailed
from services.vouchers import access
from services.vouchers.domain.redemption import (
    RedemptionContext,
    amount_from_attendance,
    ensure_positive,
    ensure_redeemable,
)
from services.vouchers.repository import Programme, Voucher
from tests.unit.vouchers.builders import seed002_spec

TODAY = date(2027, 4, 1)


def context(**changes: object) -> RedemptionContext:
    data: dict[str, object] = {
        "voucher_status": VoucherStatus.ACTIVE,
        "voucher_child_id": "c1",
        "voucher_alliance_id": "all-1",
        "valid_from": date(2027, 3, 1),
        "valid_until": date(2027, 12, 31),
        "eligible_types": [ServiceType.BABY_SITTING],
        "enrolment_status": "confirmed",
        "enrolment_child_id": "c1",
        "enrolment_alliance_id": "all-1",
        "enrolment_provider_id": "totem",
        "offering_type": "baby_sitting",
        "provider_partner_id": "totem",
    }
    data.update(changes)
    return RedemptionContext(**data)  # type: ignore[arg-type]


def test_redeemable_against_a_confirmed_enrolment_of_the_child_at_this_provider() -> None:
    ensure_redeemable(context(), TODAY)
    with pytest.raises(Conflict, match="esaurito"):
        ensure_redeemable(context(voucher_status=VoucherStatus.EXHAUSTED), TODAY)
    with pytest.raises(Conflict, match="valido dal 01/03/2027 al 31/12/2027"):
        ensure_redeemable(context(), date(2028, 1, 1))
    with pytest.raises(Conflict) as refused:
        ensure_redeemable(
            context(enrolment_child_id="c2", enrolment_status="waitlisted", offering_type="centro_estivo"), TODAY
        )
    assert len(refused.value.errors) == 3 and "non è confermata" in refused.value.detail
    with pytest.raises(Conflict, match="non è a un servizio di questo ente"):
        ensure_redeemable(context(provider_partner_id="other"), TODAY)


def test_amount_from_attendance_and_balance() -> None:
    assert amount_from_attendance(1_250, "hour", 3, 2.25) == 2_813  # 12,50 € x 2h15 = 28,125 -> 28,13 €
    assert amount_from_attendance(3_000, "day", 4, 0) == 12_000
    with pytest.raises(ValidationFailed):
        amount_from_attendance(10_000, "month", 20, 0)
    ensure_positive(30_000, 30_000)
    with pytest.raises(ValidationFailed):
        ensure_positive(0, 30_000)
    with pytest.raises(Conflict, match="superiore al saldo"):
        ensure_positive(30_001, 30_000)


NOW = datetime(2027, 2, 1, tzinfo=UTC)
STAFF = Viewer(subject="staff", role=Role.ALLIANCE_MANAGER, alliance_ids=["all-1"])
OTHER_STAFF = Viewer(subject="other", role=Role.ALLIANCE_MANAGER, alliance_ids=["all-2"])
PROVIDER = Viewer(subject="op", role=Role.PARTNER_OPERATOR, partner_id="totem", alliance_ids=["all-1"])
FAMILY = Viewer(subject="fam", role=Role.FAMILY)
ADMIN = Viewer(subject="admin", role=Role.PLATFORM_ADMIN)


def programme(status: ProgrammeStatus) -> Programme:
    return Programme(
        id="p1",
        alliance_id="all-1",
        spec=seed002_spec(),
        status=status,
        history=[StatusChange(status=status, by="staff", at=NOW)],
        awarded_cents=0,
        ranking_run=None,
        ranked_awards_cents=0,
        version=1,
        created_at=NOW,
    )


def voucher(**changes: object) -> Voucher:
    data: dict[str, object] = {
        "id": "v1",
        "code": "ABCDEFGHK",
        "programme_id": "p1",
        "alliance_id": "all-1",
        "application_id": "a1",
        "child_id": "c1",
        "household_id": "h1",
        "holder_subject": "fam",
        "amount_cents": 30_000,
        "balance_cents": 30_000,
        "split": [30_000],
        "remaining_split": [30_000],
        "redemption_splits": {},
        "valid_from": date(2027, 3, 1),
        "valid_until": date(2027, 12, 31),
        "status": VoucherStatus.ACTIVE,
        "service_types": [ServiceType.BABY_SITTING],
        "cap_year": 2027,
        "providers": [],
        "redemptions": [],
    }
    data.update(changes)
    return Voucher(**data)  # type: ignore[arg-type]


def test_drafts_are_staff_only_and_other_tenants_get_not_found() -> None:
    draft, opened = programme(ProgrammeStatus.DRAFT), programme(ProgrammeStatus.OPEN)
    assert access.sees_programme(STAFF, draft) and access.sees_programme(ADMIN, draft)
    assert not any(access.sees_programme(v, draft) for v in (OTHER_STAFF, PROVIDER, FAMILY))
    assert access.sees_programme(FAMILY, opened) and access.sees_programme(PROVIDER, opened)
    assert not access.sees_programme(OTHER_STAFF, opened)
    with pytest.raises(NotFound):
        access.ensure_manages(OTHER_STAFF, "all-1")
    with pytest.raises(NotFound):
        access.ensure_manages(FAMILY, "all-1")
    with pytest.raises(Forbidden):
        access.ensure_manages(PROVIDER, "all-1")


def test_vouchers_for_holder_staff_and_the_providers_that_used_them() -> None:
    mine = voucher()
    assert access.sees_voucher(FAMILY, mine) and access.sees_voucher(STAFF, mine)
    assert not access.sees_voucher(Viewer(subject="other", role=Role.FAMILY), mine)
    assert not access.sees_voucher(PROVIDER, mine)  # until presented (by code) and used
    assert access.sees_voucher(PROVIDER, voucher(providers=["totem"]))
    assert access.ensure_provider_in(PROVIDER, "all-1") == "totem"
    with pytest.raises(NotFound):
        access.ensure_provider_in(PROVIDER, "all-2")
    with pytest.raises(NotFound):
        access.ensure_provider_in(STAFF, "all-1")
    assert access.voucher_scope(FAMILY).holder_subject == "fam"
    assert access.voucher_scope(PROVIDER).provider_partner_id == "totem"
    with pytest.raises(NotFound):
        access.redemption_scope(FAMILY)
