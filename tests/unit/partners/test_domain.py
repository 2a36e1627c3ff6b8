"""Partners domain rules, without servers."""

from datetime import UTC, date, datetime

import pytest

from conciliare.contracts.partners import (
    Cofinancing,
    FundingSource,
    Membership,
    MembershipRole,
    MembershipStatus,
    ProjectAction,
    ProjectSpec,
)
from conciliare.demo.data import CASTELLANZA, demo_tax_code
from conciliare.errors import Conflict, NotFound, ValidationFailed
from services.partners import domain

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def member(
    partner_id: str,
    role: MembershipRole = MembershipRole.PARTNER,
    status: MembershipStatus = MembershipStatus.FORMALIZED,
) -> Membership:
    return Membership(partner_id=partner_id, role=role, status=status, joined_at=NOW)


def seed_003_project(**changes: object) -> ProjectSpec:
    return ProjectSpec.model_validate({**CASTELLANZA.project, **changes})


class TestTaxCode:
    def test_valid_organisation_code(self) -> None:
        assert domain.tax_code_problem(demo_tax_code(1234567)) is None

    def test_wrong_check_digit(self) -> None:
        code = demo_tax_code(1234567)
        broken = code[:-1] + str((int(code[-1]) + 1) % 10)
        assert "cifra di controllo" in (domain.tax_code_problem(broken) or "")

    def test_valid_person_code(self) -> None:
        assert domain.tax_code_problem("RSSMRA85T10A562S") is None

    def test_wrong_length(self) -> None:
        assert "11 cifre" in (domain.tax_code_problem("12345") or "")

    def test_partner_with_bad_code_and_unknown_comune_reports_both(self) -> None:
        with pytest.raises(ValidationFailed) as raised:
            domain.ensure_valid_partner("00000000001", "999999")
        fields = {e["field"] for e in raised.value.errors}
        assert fields == {"tax_code", "comune_istat"}


class TestTerritory:
    def test_seed_003_territory_is_valid(self) -> None:
        domain.ensure_valid_territory([comuni for _, comuni in CASTELLANZA.ambiti])

    def test_unknown_istat_code_names_the_code(self) -> None:
        with pytest.raises(ValidationFailed) as raised:
            domain.ensure_valid_territory([["012042", "012999"]])
        assert "012999" in raised.value.errors[0]["message"]

    def test_comune_in_two_ambiti_is_refused(self) -> None:
        with pytest.raises(ValidationFailed) as raised:
            domain.ensure_valid_territory([["012042"], ["012042"]])
        assert raised.value.errors[0]["field"] == "ambiti.1.comuni_istat"


class TestMemberships:
    def test_second_capofila_is_a_conflict(self) -> None:
        members = [member("asc", MembershipRole.CAPOFILA)]
        with pytest.raises(Conflict, match="capofila"):
            domain.add_member(members, "marnate", MembershipRole.CAPOFILA, MembershipStatus.PENDING, NOW)

    def test_new_partner_is_added_pending(self) -> None:
        members = [member("asc", MembershipRole.CAPOFILA)]
        new, added, previous = domain.add_member(members, "seme", MembershipRole.PARTNER, MembershipStatus.PENDING, NOW)
        assert [m.partner_id for m in new] == ["asc", "seme"]
        assert added.status is MembershipStatus.PENDING and added.formalized_at is None
        assert previous is None

    def test_existing_member_cannot_be_added_again(self) -> None:
        with pytest.raises(Conflict):
            domain.add_member([member("totem")], "totem", MembershipRole.PARTNER, MembershipStatus.PENDING, NOW)

    def test_withdrawn_partner_can_rejoin(self) -> None:
        members = [member("totem", status=MembershipStatus.WITHDRAWN)]
        new, added, previous = domain.add_member(
            members, "totem", MembershipRole.PARTNER, MembershipStatus.PENDING, NOW
        )
        assert len(new) == 1 and added.status is MembershipStatus.PENDING
        assert previous is MembershipStatus.WITHDRAWN

    def test_formalize_pending(self) -> None:
        members = [member("seme", status=MembershipStatus.PENDING)]
        new, updated, previous = domain.formalize_member(members, "seme", NOW)
        assert updated.status is MembershipStatus.FORMALIZED and updated.formalized_at == NOW
        assert previous is MembershipStatus.PENDING and new == [updated]

    def test_formalize_twice_is_a_conflict(self) -> None:
        with pytest.raises(Conflict, match="formalized"):
            domain.formalize_member([member("seme")], "seme", NOW)

    def test_formalize_unknown_member(self) -> None:
        with pytest.raises(NotFound):
            domain.formalize_member([member("seme")], "other", NOW)

    def test_capofila_cannot_withdraw(self) -> None:
        with pytest.raises(Conflict, match="capofila"):
            domain.withdraw_member([member("asc", MembershipRole.CAPOFILA)], "asc", NOW)

    def test_withdraw_keeps_history(self) -> None:
        _new, updated, previous = domain.withdraw_member([member("totem")], "totem", NOW)
        assert updated.status is MembershipStatus.WITHDRAWN and updated.withdrawn_at == NOW
        assert previous is MembershipStatus.FORMALIZED


class TestProjectBudget:
    def test_seed_003_budget_adds_up(self) -> None:
        assert domain.project_budget_errors(seed_003_project()) == []

    def test_total_that_does_not_add_up_names_all_amounts(self) -> None:
        errors = domain.project_budget_errors(seed_003_project(total_cost_cents=6_000_000))
        assert errors[0]["field"] == "total_cost_cents"
        assert "60.000,00 €" in errors[0]["message"] and "60.741,00 €" in errors[0]["message"]

    def test_funding_sources_must_sum_to_requested_contribution(self) -> None:
        spec = seed_003_project(funding_sources=[{"name": "Regione Lombardia", "amount_cents": 3_000_000}])
        errors = domain.project_budget_errors(spec)
        assert [e["field"] for e in errors] == ["funding_sources"]

    def test_seed_002_shape_with_two_sources_and_work_hours(self) -> None:
        spec = ProjectSpec(
            title="Conciliare le responsabilità",
            period_start=date(2017, 1, 1),
            period_end=date(2018, 12, 31),
            total_cost_cents=18_957_400,
            requested_contribution_cents=14_400_000,
            cofinancing=Cofinancing(valued_work_hours_cents=4_557_400),
            funding_sources=[
                FundingSource(name="FSE POR 2014-2020", amount_cents=10_000_000),
                FundingSource(name="ATS Val Padana", amount_cents=4_400_000),
            ],
            actions=[ProjectAction(code="A", title="Voucher per servizi di filiera")],
        )
        domain.ensure_valid_project(spec)

    def test_end_before_start_and_duplicate_actions(self) -> None:
        spec = seed_003_project(
            period_end="2016-01-01", actions=[{"code": "A", "title": "uno"}, {"code": "A", "title": "due"}]
        )
        with pytest.raises(ValidationFailed) as raised:
            domain.ensure_valid_project(spec)
        assert {e["field"] for e in raised.value.errors} == {"period_end", "actions"}


def test_euro_formatting() -> None:
    assert domain.euro(6_074_100) == "60.741,00 €"
    assert domain.euro(5) == "0,05 €"


class TestProjectPeriodAndAmounts:
    """Issue 7: a project of all zeros in the year 2000 is refused, each field named in Italian."""

    def test_all_zero_project_in_2000_names_every_field(self) -> None:
        spec = ProjectSpec(
            title="Progetto vuoto",
            period_start=date(2000, 1, 1),
            period_end=date(2000, 1, 1),
            total_cost_cents=0,
            requested_contribution_cents=0,
            cofinancing=Cofinancing(),
        )
        with pytest.raises(ValidationFailed) as raised:
            domain.ensure_valid_project(spec)
        fields = [e["field"] for e in raised.value.errors]
        assert fields == ["period_start", "period_end", "total_cost_cents", "requested_contribution_cents"]
        messages = {e["field"]: e["message"] for e in raised.value.errors}
        assert messages["period_start"] == "la data 01/01/2000 è fuori dagli anni ammessi (2014–2100)"
        assert messages["total_cost_cents"] == "il costo complessivo deve essere maggiore di zero"

    @pytest.mark.parametrize(
        ("start", "end", "fields"),
        [
            ("2014-01-01", "2100-12-31", []),
            ("2013-12-31", "2015-01-01", ["period_start"]),
            ("2020-01-01", "2101-01-01", ["period_end"]),
            ("2020-06-01", "2020-05-31", ["period_end"]),
        ],
    )
    def test_period_bounds_and_order(self, start: str, end: str, fields: list[str]) -> None:
        errors = domain.project_period_errors(seed_003_project(period_start=start, period_end=end))
        assert [e["field"] for e in errors] == fields

    def test_end_before_start_names_both_dates(self) -> None:
        (error,) = domain.project_period_errors(seed_003_project(period_start="2020-06-01", period_end="2020-05-31"))
        assert error["message"] == "la fine del progetto (31/05/2020) precede l'inizio (01/06/2020)"

    def test_contributions_must_add_up_even_when_positive(self) -> None:
        spec = seed_003_project(requested_contribution_cents=1, funding_sources=[])
        assert [e["field"] for e in domain.project_budget_errors(spec)] == ["total_cost_cents"]


class TestRequestIds:
    def test_same_request_same_id(self) -> None:
        assert domain.request_id("partner", "u1", "k") == domain.request_id("partner", "u1", "k")

    def test_caller_kind_and_scope_each_make_another_id(self) -> None:
        ids = {
            domain.request_id("partner", "u1", "k"),
            domain.request_id("partner", "u2", "k"),
            domain.request_id("alliance", "u1", "k"),
            domain.request_id("project", "u1", "k", "a1"),
            domain.request_id("project", "u1", "k", "a2"),
            domain.request_id("partner", "u1", "k2"),
        }
        assert len(ids) == 6
        assert all(len(i) == 32 for i in ids)


class TestListedMembers:
    def test_withdrawn_are_left_out_by_default(self) -> None:
        members = [
            member("a", status=MembershipStatus.PENDING),
            member("b"),
            member("c", status=MembershipStatus.WITHDRAWN),
        ]

        def listed(status: MembershipStatus | None, include_withdrawn: bool) -> list[str]:
            return [m.partner_id for m in members if domain.listed_member(m, status, include_withdrawn)]

        assert listed(None, False) == ["a", "b"]
        assert listed(None, True) == ["a", "b", "c"]
        assert listed(MembershipStatus.WITHDRAWN, False) == ["c"]
        assert listed(MembershipStatus.PENDING, True) == ["a"]
